//! Service definitions that keep the VM running: a launchd daemon (shaped
//! as nix-darwin's `nix.linux-builder` writes it: the program waits for the
//! store with `/bin/wait4path /nix/store`, KeepAlive, RunAtLoad) and a
//! systemd unit. Both restart the VM only when it fails: a clean power-down
//! (`lb-vm stop`) exits 0 and stays down.
//!
//! With `--on-demand` the service runs `lb-vm start --foreground
//! --on-demand`: lb-vm holds the builder's port itself under KeepAlive /
//! Restart=on-failure, rather than launchd's socket activation (`Sockets`).
//! Activation would hand lb-vm the socket only through
//! `launch_activate_socket`, a C call needing FFI that cannot be run off
//! macOS, and launchd would still need lb-vm resident to relay and to
//! count idle time; lb-vm holding the socket is one code path on both
//! systems, tested here for real, and the idle listener holds a few MB.
//! Stopping the service must reach lb-vm only, so it powers the guest off
//! cleanly over QMP: systemd gets `KillMode=mixed` (SIGTERM to lb-vm,
//! SIGKILL to what is left only after the timeout), and both managers wait
//! 90 s (lb-vm allows 30 s for the power button, then 30 s after SIGTERM).

use std::fmt::Write as _;

use lb_common::conf::escape::{self, Unrepresentable};

/// What a service runs and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The builder's name (the systemd unit's description).
    pub name: String,
    /// The launchd label (`org.lb-vm.NAME` unless `--label`); the log is
    /// `/var/log/LABEL.log`.
    pub label: String,
    /// `lb-vm start --foreground ...`, absolute program path first.
    pub argv: Vec<String>,
    pub workdir: String,
    /// TMPDIR for the VM: not under /tmp, which macOS cleans after 3 days.
    pub tmpdir: String,
    /// More environment (`NIX_SSL_CERT_FILE`, `PATH`).
    pub env: Vec<(String, String)>,
    /// `argv` runs `start --on-demand`: lb-vm must get the stop signal itself.
    pub on_demand: bool,
}

/// How long a service manager waits for an on-demand lb-vm to power the
/// VM off before killing it.
const ON_DEMAND_STOP_SECS: u32 = 90;

impl ServiceSpec {
    #[must_use]
    pub fn label(&self) -> String {
        self.label.clone()
    }

    #[must_use]
    pub fn log(&self) -> String {
        format!("/var/log/{}.log", self.label)
    }

    /// The `/bin/sh -c` script of the plist: wait until the store is
    /// mounted (it is a separate volume on macOS, mounted late at boot),
    /// then become lb-vm.
    #[must_use]
    pub fn launchd_script(&self) -> String {
        let words: Vec<String> = self
            .argv
            .iter()
            .map(|a| shlex::try_quote(a).map_or_else(|_| a.clone(), std::borrow::Cow::into_owned))
            .collect();
        format!("/bin/wait4path /nix/store && exec {}", words.join(" "))
    }

    /// The launchd property list. Every value goes through lb-common's
    /// plist layer: one XML cannot carry (a control character) is refused.
    pub fn plist(&self) -> Result<String, Unrepresentable> {
        let x = |what: &str, v: &str| escape::plist_string(what, v);
        let mut s = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
             <plist version=\"1.0\">\n<dict>\n",
        );
        let _ = writeln!(
            s,
            "  <key>Label</key>\n  <string>{}</string>",
            x("--label", &self.label())?
        );
        s.push_str("  <key>ProgramArguments</key>\n  <array>\n");
        for a in ["/bin/sh", "-c", &self.launchd_script()] {
            let _ = writeln!(
                s,
                "    <string>{}</string>",
                x("an argument of the command", a)?
            );
        }
        s.push_str("  </array>\n");
        let _ = writeln!(
            s,
            "  <key>WorkingDirectory</key>\n  <string>{}</string>",
            x("--workdir", &self.workdir)?
        );
        s.push_str("  <key>EnvironmentVariables</key>\n  <dict>\n");
        let tmp = [("TMPDIR".to_owned(), self.tmpdir.clone())];
        for (k, v) in tmp.iter().chain(&self.env) {
            let _ = writeln!(
                s,
                "    <key>{}</key>\n    <string>{}</string>",
                x("an environment variable", k)?,
                x(k, v)?
            );
        }
        s.push_str("  </dict>\n");
        // Restart after a crash, not after a clean power-down (exit 0).
        s.push_str(
            "  <key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>\n  </dict>\n  <key>RunAtLoad</key>\n  <true/>\n",
        );
        if self.on_demand {
            let _ = writeln!(
                s,
                "  <key>ExitTimeOut</key>\n  <integer>{ON_DEMAND_STOP_SECS}</integer>"
            );
        }
        let _ = writeln!(
            s,
            "  <key>StandardOutPath</key>\n  <string>{0}</string>\n  <key>StandardErrorPath</key>\n  <string>{0}</string>",
            x("--label", &self.log())?
        );
        s.push_str("</dict>\n</plist>\n");
        Ok(s)
    }

    /// The systemd unit, every value through lb-common's unit layer
    /// (ExecStart words, each Environment assignment and WorkingDirectory
    /// quoted their own way; a newline, which would start another
    /// directive, is refused).
    pub fn unit(&self) -> Result<String, Unrepresentable> {
        let exec = self
            .argv
            .iter()
            .map(|a| escape::unit_word("an argument of the command", a))
            .collect::<Result<Vec<_>, _>>()?;
        let (what, stop) = if self.on_demand {
            (
                ", on demand",
                format!("KillMode=mixed\nTimeoutStopSec={ON_DEMAND_STOP_SECS}\n"),
            )
        } else {
            ("", "TimeoutStopSec=60\n".to_owned())
        };
        let mut env = String::new();
        let tmp = [("TMPDIR".to_owned(), self.tmpdir.clone())];
        for (k, v) in tmp.iter().chain(&self.env) {
            let _ = writeln!(env, "Environment={}", escape::unit_env(k, k, v)?);
        }
        Ok(format!(
            "[Unit]\nDescription=Linux builder VM for Nix ({name}{what})\nAfter=network.target\nRequiresMountsFor=/nix/store\n\n\
             [Service]\nExecStart={exec}\nWorkingDirectory={wd}\n{env}\
             Restart=on-failure\nRestartSec=5\n{stop}\n\
             [Install]\nWantedBy=multi-user.target\n",
            // --name is validated: letters, digits, `.`, `_`, `-`.
            name = self.name,
            exec = exec.join(" "),
            wd = escape::unit_path("--workdir", &self.workdir)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "linux-builder".to_owned(),
            label: "org.lb-vm.linux-builder".to_owned(),
            env: vec![(
                "NIX_SSL_CERT_FILE".to_owned(),
                "/etc/ssl/certs/ca-certificates.crt".to_owned(),
            )],
            argv: [
                "/usr/local/bin/lb-vm",
                "start",
                "--foreground",
                "--name",
                "linux-builder",
                "--workdir",
                "/var/lib/linux-builder",
                "--kernel",
                "/nix/store/k/bzImage",
                "--append",
                "console=ttyAMA0 panic=-1",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
            workdir: "/var/lib/linux-builder".to_owned(),
            tmpdir: "/var/lib/linux-builder/linux-builder.tmp".to_owned(),
            on_demand: false,
        }
    }

    fn on_demand_spec() -> ServiceSpec {
        let mut s = spec();
        s.argv = [
            "/usr/local/bin/lb-vm",
            "start",
            "--foreground",
            "--on-demand",
            "--idle",
            "3h",
            "--name",
            "linux-builder",
            "--workdir",
            "/var/lib/linux-builder",
            "--port",
            "31023",
            "--runner",
            "/nix/store/r/bin/create-builder",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        s.on_demand = true;
        s
    }

    #[test]
    fn launchd_plist_on_demand() {
        insta::assert_snapshot!(on_demand_spec().plist().unwrap(), @r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
          <key>Label</key>
          <string>org.lb-vm.linux-builder</string>
          <key>ProgramArguments</key>
          <array>
            <string>/bin/sh</string>
            <string>-c</string>
            <string>/bin/wait4path /nix/store &amp;&amp; exec /usr/local/bin/lb-vm start --foreground --on-demand --idle 3h --name linux-builder --workdir /var/lib/linux-builder --port 31023 --runner /nix/store/r/bin/create-builder</string>
          </array>
          <key>WorkingDirectory</key>
          <string>/var/lib/linux-builder</string>
          <key>EnvironmentVariables</key>
          <dict>
            <key>TMPDIR</key>
            <string>/var/lib/linux-builder/linux-builder.tmp</string>
            <key>NIX_SSL_CERT_FILE</key>
            <string>/etc/ssl/certs/ca-certificates.crt</string>
          </dict>
          <key>KeepAlive</key>
          <dict>
            <key>SuccessfulExit</key>
            <false/>
          </dict>
          <key>RunAtLoad</key>
          <true/>
          <key>ExitTimeOut</key>
          <integer>90</integer>
          <key>StandardOutPath</key>
          <string>/var/log/org.lb-vm.linux-builder.log</string>
          <key>StandardErrorPath</key>
          <string>/var/log/org.lb-vm.linux-builder.log</string>
        </dict>
        </plist>
        "#);
    }

    #[test]
    fn systemd_unit_on_demand() {
        insta::assert_snapshot!(on_demand_spec().unit().unwrap(), @r#"
        [Unit]
        Description=Linux builder VM for Nix (linux-builder, on demand)
        After=network.target
        RequiresMountsFor=/nix/store

        [Service]
        ExecStart=/usr/local/bin/lb-vm start --foreground --on-demand --idle 3h --name linux-builder --workdir /var/lib/linux-builder --port 31023 --runner /nix/store/r/bin/create-builder
        WorkingDirectory=/var/lib/linux-builder
        Environment="TMPDIR=/var/lib/linux-builder/linux-builder.tmp"
        Environment="NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
        Restart=on-failure
        RestartSec=5
        KillMode=mixed
        TimeoutStopSec=90

        [Install]
        WantedBy=multi-user.target
        "#);
    }

    #[test]
    fn launchd_plist() {
        insta::assert_snapshot!(spec().plist().unwrap(), @r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
          <key>Label</key>
          <string>org.lb-vm.linux-builder</string>
          <key>ProgramArguments</key>
          <array>
            <string>/bin/sh</string>
            <string>-c</string>
            <string>/bin/wait4path /nix/store &amp;&amp; exec /usr/local/bin/lb-vm start --foreground --name linux-builder --workdir /var/lib/linux-builder --kernel /nix/store/k/bzImage --append 'console=ttyAMA0 panic=-1'</string>
          </array>
          <key>WorkingDirectory</key>
          <string>/var/lib/linux-builder</string>
          <key>EnvironmentVariables</key>
          <dict>
            <key>TMPDIR</key>
            <string>/var/lib/linux-builder/linux-builder.tmp</string>
            <key>NIX_SSL_CERT_FILE</key>
            <string>/etc/ssl/certs/ca-certificates.crt</string>
          </dict>
          <key>KeepAlive</key>
          <dict>
            <key>SuccessfulExit</key>
            <false/>
          </dict>
          <key>RunAtLoad</key>
          <true/>
          <key>StandardOutPath</key>
          <string>/var/log/org.lb-vm.linux-builder.log</string>
          <key>StandardErrorPath</key>
          <string>/var/log/org.lb-vm.linux-builder.log</string>
        </dict>
        </plist>
        "#);
    }

    #[test]
    fn systemd_unit() {
        insta::assert_snapshot!(spec().unit().unwrap(), @r#"
        [Unit]
        Description=Linux builder VM for Nix (linux-builder)
        After=network.target
        RequiresMountsFor=/nix/store

        [Service]
        ExecStart=/usr/local/bin/lb-vm start --foreground --name linux-builder --workdir /var/lib/linux-builder --kernel /nix/store/k/bzImage --append "console=ttyAMA0 panic=-1"
        WorkingDirectory=/var/lib/linux-builder
        Environment="TMPDIR=/var/lib/linux-builder/linux-builder.tmp"
        Environment="NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"
        Restart=on-failure
        RestartSec=5
        TimeoutStopSec=60

        [Install]
        WantedBy=multi-user.target
        "#);
    }

    #[test]
    fn a_value_that_would_start_another_directive_is_refused() {
        let mut s = spec();
        s.env
            .push(("X".to_owned(), "a\nExecStartPre=/bin/evil".to_owned()));
        assert!(s.unit().is_err());
        // XML carries a newline; it cannot carry other control characters.
        assert!(s.plist().is_ok());
        s.env.push(("Y".to_owned(), "a\u{1b}[2J".to_owned()));
        assert!(s.plist().is_err());
    }
}
