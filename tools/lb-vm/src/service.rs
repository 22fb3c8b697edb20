//! Service definitions that keep the VM running: a launchd daemon (as
//! nix-darwin's `nix.linux-builder` writes it) and a systemd unit.

use std::fmt::Write as _;
use std::path::Path;

use lb_common::conf::escape::{self, Unrepresentable};

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
}

impl ServiceSpec {
    #[must_use]
    pub fn label(&self) -> String {
        format!("org.nixos.{}", self.name)
    }

    #[must_use]
    pub fn log(&self) -> String {
        format!("/var/log/{}.log", self.name)
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
            x("--name", &self.label())?
        );
        s.push_str("  <key>ProgramArguments</key>\n  <array>\n");
        for a in &self.argv {
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
        let _ = writeln!(
            s,
            "  <key>EnvironmentVariables</key>\n  <dict>\n    <key>TMPDIR</key>\n    <string>{}</string>\n  </dict>",
            x("--workdir", &self.tmpdir)?
        );
        s.push_str("  <key>KeepAlive</key>\n  <true/>\n  <key>RunAtLoad</key>\n  <true/>\n");
        let _ = writeln!(
            s,
            "  <key>StandardOutPath</key>\n  <string>{0}</string>\n  <key>StandardErrorPath</key>\n  <string>{0}</string>",
            x("--name", &self.log())?
        );
        s.push_str("</dict>\n</plist>\n");
        Ok(s)
    }

    /// The systemd unit, every value through lb-common's unit layer
    /// (ExecStart words, the Environment assignment and WorkingDirectory
    /// each quoted their own way; a newline, which would start another
    /// directive, is refused).
    pub fn unit(&self) -> Result<String, Unrepresentable> {
        let exec = self
            .argv
            .iter()
            .map(|a| escape::unit_word("an argument of the command", a))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(format!(
            "[Unit]\nDescription=Linux builder VM for Nix ({name})\nAfter=network.target\n\n\
             [Service]\nExecStart={exec}\nWorkingDirectory={wd}\nEnvironment={env}\n\
             Restart=always\nRestartSec=5\nTimeoutStopSec=60\n\n\
             [Install]\nWantedBy=multi-user.target\n",
            // --name is validated: letters, digits, `.`, `_`, `-`.
            name = self.name,
            exec = exec.join(" "),
            wd = escape::unit_path("--workdir", &self.workdir)?,
            env = escape::unit_env("--workdir", "TMPDIR", &self.tmpdir)?,
        ))
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
        }
    }

    #[test]
    fn launchd_plist() {
        insta::assert_snapshot!(spec().plist().unwrap(), @r#"
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
        insta::assert_snapshot!(spec().unit().unwrap(), @r#"
            [Unit]
            Description=Linux builder VM for Nix (linux-builder)
            After=network.target

            [Service]
            ExecStart=/usr/local/bin/lb-vm start --foreground --name linux-builder --workdir /var/lib/linux-builder --kernel /nix/store/k/bzImage --append "console=ttyAMA0 panic=-1"
            WorkingDirectory=/var/lib/linux-builder
            Environment="TMPDIR=/var/lib/linux-builder/linux-builder.tmp"
            Restart=always
            RestartSec=5
            TimeoutStopSec=60

            [Install]
            WantedBy=multi-user.target
        "#);
    }

    #[test]
    fn values_are_quoted_or_refused() {
        let mut s = spec();
        s.workdir = "/var/lib/a b%".to_owned();
        s.tmpdir = "/var/lib/a b%/$t".to_owned();
        s.argv.push("x;y".to_owned());
        let unit = s.unit().unwrap();
        assert!(
            unit.contains("\nWorkingDirectory=/var/lib/a b%%\n"),
            "{unit}"
        );
        assert!(
            unit.contains("\nEnvironment=\"TMPDIR=/var/lib/a b%%/$t\"\n"),
            "{unit}"
        );
        assert!(unit.contains(" \"x;y\"\n"), "{unit}");
        s.argv
            .push("console=ttyS0\nExecStartPre=/bin/evil".to_owned());
        let e = s.unit().unwrap_err();
        assert!(e.to_string().contains("a newline"), "{e}");
        // A newline is text to XML: kept, escaped by nothing, read back as is.
        assert!(s.plist().is_ok());
        s.argv.push("\x1b[2J".to_owned());
        assert!(s.plist().is_err());
        let mut p = spec();
        p.argv.push("a<b>&".to_owned());
        assert!(p
            .plist()
            .unwrap()
            .contains("<string>a&lt;b&gt;&amp;</string>"));
    }
}
