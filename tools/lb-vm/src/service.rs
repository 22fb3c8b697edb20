//! Service definitions that keep the VM running: a launchd daemon (as
//! nix-darwin's `nix.linux-builder` writes it) and a systemd unit.
//!
//! With `--on-demand` the service runs `lb-vm start --foreground
//! --on-demand`: lb-vm holds the builder's port itself under KeepAlive /
//! Restart=always, rather than launchd's socket activation (`Sockets`).
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
use std::path::Path;

/// What a service runs and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    /// The builder's name: label `org.nixos.NAME`, log `/var/log/NAME.log`.
    pub name: String,
    /// `lb-vm start --foreground ...`, absolute program path first.
    pub argv: Vec<String>,
    pub workdir: String,
    /// TMPDIR for the VM: not under /tmp, which macOS cleans after 3 days.
    pub tmpdir: String,
    /// `argv` runs `start --on-demand`: lb-vm must get the stop signal itself.
    pub on_demand: bool,
}

/// How long a service manager waits for an on-demand lb-vm to power the
/// VM off before killing it.
const ON_DEMAND_STOP_SECS: u32 = 90;

impl ServiceSpec {
    #[must_use]
    pub fn label(&self) -> String {
        format!("org.nixos.{}", self.name)
    }

    #[must_use]
    pub fn log(&self) -> String {
        format!("/var/log/{}.log", self.name)
    }

    /// The launchd property list.
    #[must_use]
    pub fn plist(&self) -> String {
        let mut s = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
             <plist version=\"1.0\">\n<dict>\n",
        );
        let _ = writeln!(
            s,
            "  <key>Label</key>\n  <string>{}</string>",
            xml(&self.label())
        );
        s.push_str("  <key>ProgramArguments</key>\n  <array>\n");
        for a in &self.argv {
            let _ = writeln!(s, "    <string>{}</string>", xml(a));
        }
        s.push_str("  </array>\n");
        let _ = writeln!(
            s,
            "  <key>WorkingDirectory</key>\n  <string>{}</string>",
            xml(&self.workdir)
        );
        let _ = writeln!(
            s,
            "  <key>EnvironmentVariables</key>\n  <dict>\n    <key>TMPDIR</key>\n    <string>{}</string>\n  </dict>",
            xml(&self.tmpdir)
        );
        s.push_str("  <key>KeepAlive</key>\n  <true/>\n  <key>RunAtLoad</key>\n  <true/>\n");
        if self.on_demand {
            let _ = writeln!(
                s,
                "  <key>ExitTimeOut</key>\n  <integer>{ON_DEMAND_STOP_SECS}</integer>"
            );
        }
        let _ = writeln!(
            s,
            "  <key>StandardOutPath</key>\n  <string>{0}</string>\n  <key>StandardErrorPath</key>\n  <string>{0}</string>",
            xml(&self.log())
        );
        s.push_str("</dict>\n</plist>\n");
        s
    }

    /// The systemd unit.
    #[must_use]
    pub fn unit(&self) -> String {
        let exec: Vec<String> = self.argv.iter().map(|a| systemd_quote(a)).collect();
        let (what, stop) = if self.on_demand {
            (
                ", on demand",
                format!("KillMode=mixed\nTimeoutStopSec={ON_DEMAND_STOP_SECS}\n"),
            )
        } else {
            ("", "TimeoutStopSec=60\n".to_owned())
        };
        format!(
            "[Unit]\nDescription=Linux builder VM for Nix ({name}{what})\nAfter=network.target\n\n\
             [Service]\nExecStart={exec}\nWorkingDirectory={wd}\nEnvironment={env}\n\
             Restart=always\nRestartSec=5\n{stop}\n\
             [Install]\nWantedBy=multi-user.target\n",
            name = self.name,
            exec = exec.join(" "),
            wd = systemd_quote(&self.workdir),
            env = systemd_quote(&format!("TMPDIR={}", self.tmpdir)),
        )
    }

    /// How to load the installed file.
    #[must_use]
    pub fn activate_hint(&self, launchd: bool, path: &Path) -> String {
        if launchd {
            format!("sudo launchctl bootstrap system {}", path.display())
        } else {
            format!(
                "sudo systemctl daemon-reload && sudo systemctl enable --now {}.service",
                self.name
            )
        }
    }
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// systemd splits ExecStart on whitespace and honours double quotes;
/// `%` and `$` are expanded unless doubled.
fn systemd_quote(s: &str) -> String {
    let escaped = s.replace('%', "%%").replace('$', "$$");
    if escaped.is_empty() || escaped.contains(|c: char| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", escaped.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ServiceSpec {
        ServiceSpec {
            name: "linux-builder".to_owned(),
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
        insta::assert_snapshot!(on_demand_spec().plist(), @r#"
        <?xml version="1.0" encoding="UTF-8"?>
        <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
        <plist version="1.0">
        <dict>
          <key>Label</key>
          <string>org.nixos.linux-builder</string>
          <key>ProgramArguments</key>
          <array>
            <string>/usr/local/bin/lb-vm</string>
            <string>start</string>
            <string>--foreground</string>
            <string>--on-demand</string>
            <string>--idle</string>
            <string>3h</string>
            <string>--name</string>
            <string>linux-builder</string>
            <string>--workdir</string>
            <string>/var/lib/linux-builder</string>
            <string>--port</string>
            <string>31023</string>
            <string>--runner</string>
            <string>/nix/store/r/bin/create-builder</string>
          </array>
          <key>WorkingDirectory</key>
          <string>/var/lib/linux-builder</string>
          <key>EnvironmentVariables</key>
          <dict>
            <key>TMPDIR</key>
            <string>/var/lib/linux-builder/linux-builder.tmp</string>
          </dict>
          <key>KeepAlive</key>
          <true/>
          <key>RunAtLoad</key>
          <true/>
          <key>ExitTimeOut</key>
          <integer>90</integer>
          <key>StandardOutPath</key>
          <string>/var/log/linux-builder.log</string>
          <key>StandardErrorPath</key>
          <string>/var/log/linux-builder.log</string>
        </dict>
        </plist>
        "#);
    }

    #[test]
    fn systemd_unit_on_demand() {
        insta::assert_snapshot!(on_demand_spec().unit(), @"
        [Unit]
        Description=Linux builder VM for Nix (linux-builder, on demand)
        After=network.target

        [Service]
        ExecStart=/usr/local/bin/lb-vm start --foreground --on-demand --idle 3h --name linux-builder --workdir /var/lib/linux-builder --port 31023 --runner /nix/store/r/bin/create-builder
        WorkingDirectory=/var/lib/linux-builder
        Environment=TMPDIR=/var/lib/linux-builder/linux-builder.tmp
        Restart=always
        RestartSec=5
        KillMode=mixed
        TimeoutStopSec=90

        [Install]
        WantedBy=multi-user.target
        ");
    }

    #[test]
    fn launchd_plist() {
        insta::assert_snapshot!(spec().plist(), @r#"
            <?xml version="1.0" encoding="UTF-8"?>
            <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
            <plist version="1.0">
            <dict>
              <key>Label</key>
              <string>org.nixos.linux-builder</string>
              <key>ProgramArguments</key>
              <array>
                <string>/usr/local/bin/lb-vm</string>
                <string>start</string>
                <string>--foreground</string>
                <string>--name</string>
                <string>linux-builder</string>
                <string>--workdir</string>
                <string>/var/lib/linux-builder</string>
                <string>--kernel</string>
                <string>/nix/store/k/bzImage</string>
                <string>--append</string>
                <string>console=ttyAMA0 panic=-1</string>
              </array>
              <key>WorkingDirectory</key>
              <string>/var/lib/linux-builder</string>
              <key>EnvironmentVariables</key>
              <dict>
                <key>TMPDIR</key>
                <string>/var/lib/linux-builder/linux-builder.tmp</string>
              </dict>
              <key>KeepAlive</key>
              <true/>
              <key>RunAtLoad</key>
              <true/>
              <key>StandardOutPath</key>
              <string>/var/log/linux-builder.log</string>
              <key>StandardErrorPath</key>
              <string>/var/log/linux-builder.log</string>
            </dict>
            </plist>
        "#);
    }

    #[test]
    fn systemd_unit() {
        insta::assert_snapshot!(spec().unit(), @r#"
            [Unit]
            Description=Linux builder VM for Nix (linux-builder)
            After=network.target

            [Service]
            ExecStart=/usr/local/bin/lb-vm start --foreground --name linux-builder --workdir /var/lib/linux-builder --kernel /nix/store/k/bzImage --append "console=ttyAMA0 panic=-1"
            WorkingDirectory=/var/lib/linux-builder
            Environment=TMPDIR=/var/lib/linux-builder/linux-builder.tmp
            Restart=always
            RestartSec=5
            TimeoutStopSec=60

            [Install]
            WantedBy=multi-user.target
        "#);
    }

    #[test]
    fn quoting() {
        assert_eq!(xml("a<b>&\"c"), "a&lt;b&gt;&amp;&quot;c");
        assert_eq!(systemd_quote("a b"), "\"a b\"");
        assert_eq!(systemd_quote("50%$x"), "50%%$$x");
    }
}
