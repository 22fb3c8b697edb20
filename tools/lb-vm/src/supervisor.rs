//! The service manager that keeps a builder running: launchd on macOS,
//! systemd on Linux. Its commands are data (printed under `-n`,
//! snapshot-tested here where launchctl cannot exist) and run through
//! lb-common's one process runner.
//!
//! launchd: a changed plist takes effect only after `launchctl bootout`
//! and `bootstrap` again; `enable` first, because bootstrap refuses a
//! disabled label. `stop` must go through launchd or systemd when they
//! run the VM: KeepAlive or Restart= would start it again after a kill.
//!
//! The label is `org.lb-vm.NAME`, not nix-darwin's
//! `org.nixos.linux-builder`, so neither overwrites the other, unless the
//! user asks for a label (`--label`); a plist nix-darwin wrote is never
//! replaced.

use std::path::{Path, PathBuf};

use lb_common::cmd::Cmd;
use lb_common::managers;
use lb_common::paths::Root;
use lb_common::platform::Os;
use lb_common::procfacts;

/// The default launchd label of builder `name`.
#[must_use]
pub fn default_label(name: &str) -> String {
    format!("org.lb-vm.{name}")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Launchd,
    Systemd,
}

/// One builder's service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub kind: Kind,
    /// launchd label, or systemd unit (`NAME.service`).
    pub id: String,
    /// The service file inside `--root`.
    pub file: PathBuf,
    /// The same file as the service manager names it (without the root).
    pub system_file: PathBuf,
}

fn argv(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| (*w).to_owned()).collect()
}

impl Service {
    /// # Errors
    /// The service file's path would leave `--root` (paths::Error).
    pub fn new(
        kind: Kind,
        root: &Root,
        name: &str,
        label: Option<&str>,
    ) -> Result<Self, lb_common::paths::Error> {
        let (id, path) = match kind {
            Kind::Launchd => {
                let id = label.map_or_else(|| default_label(name), str::to_owned);
                let path = format!("/Library/LaunchDaemons/{id}.plist");
                (id, path)
            }
            Kind::Systemd => {
                let id = format!("{name}.service");
                let path = format!("/etc/systemd/system/{id}");
                (id, path)
            }
        };
        Ok(Service {
            kind,
            id,
            file: root.system(Path::new(&path))?,
            system_file: PathBuf::from(path),
        })
    }

    /// The service of this platform.
    /// # Errors
    /// As [`Service::new`].
    pub fn for_os(
        os: Os,
        root: &Root,
        name: &str,
        label: Option<&str>,
    ) -> Result<Self, lb_common::paths::Error> {
        let kind = match os {
            Os::MacOs => Kind::Launchd,
            Os::Linux => Kind::Systemd,
        };
        Self::new(kind, root, name, label)
    }

    fn target(&self) -> String {
        format!("system/{}", self.id)
    }

    /// Load (or reload) the installed file and start it.
    #[must_use]
    pub fn load(&self, loaded: bool) -> Vec<Vec<String>> {
        match self.kind {
            Kind::Launchd => {
                let mut v = Vec::new();
                if loaded {
                    v.push(argv(&["launchctl", "bootout", &self.target()]));
                }
                v.push(argv(&["launchctl", "enable", &self.target()]));
                v.push(argv(&[
                    "launchctl",
                    "bootstrap",
                    "system",
                    &self.system_file.to_string_lossy(),
                ]));
                v
            }
            Kind::Systemd => vec![
                argv(&["systemctl", "daemon-reload"]),
                argv(&["systemctl", "enable", &self.id]),
                argv(&["systemctl", "restart", &self.id]),
            ],
        }
    }

    /// Stop it and keep it from starting again (before its file goes).
    #[must_use]
    pub fn unload(&self) -> Vec<Vec<String>> {
        match self.kind {
            Kind::Launchd => vec![argv(&["launchctl", "bootout", &self.target()])],
            Kind::Systemd => vec![argv(&["systemctl", "disable", "--now", &self.id])],
        }
    }

    /// After the file is gone.
    #[must_use]
    pub fn after_removal(&self) -> Vec<Vec<String>> {
        match self.kind {
            Kind::Launchd => Vec::new(),
            Kind::Systemd => vec![argv(&["systemctl", "daemon-reload"])],
        }
    }

    /// Stop the VM through its manager, which would otherwise restart it
    /// (launchd: bootout; the plist stays and loads again at boot).
    #[must_use]
    pub fn stop(&self) -> Vec<Vec<String>> {
        match self.kind {
            Kind::Launchd => vec![argv(&["launchctl", "bootout", &self.target()])],
            Kind::Systemd => vec![argv(&["systemctl", "stop", &self.id])],
        }
    }

    /// How to start it again.
    #[must_use]
    pub fn start_hint(&self) -> String {
        match self.kind {
            Kind::Launchd => format!(
                "sudo launchctl bootstrap system {} (or `lb-vm service --launchd --install` again)",
                self.system_file.display()
            ),
            Kind::Systemd => format!("sudo systemctl start {}", self.id),
        }
    }

    /// Is it loaded now? launchd: `launchctl print` knows it; systemd:
    /// `systemctl is-active`. False where the manager cannot be asked.
    #[must_use]
    pub fn loaded(&self) -> bool {
        match self.kind {
            Kind::Launchd => procfacts::launchd_job(&self.id).is_some(),
            Kind::Systemd => Cmd::new("systemctl")
                .args(["is-active", "--quiet", &self.id])
                .run()
                .is_ok(),
        }
    }

    /// The pid the manager runs for it, when it says.
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        match self.kind {
            Kind::Launchd => procfacts::launchd_job(&self.id)?.pid,
            Kind::Systemd => Cmd::new("systemctl")
                .args(["show", "--property=MainPID", "--value", &self.id])
                .run()
                .ok()?
                .stdout_text()
                .trim()
                .parse()
                .ok()
                .filter(|p| *p != 0),
        }
    }

    /// The installed file, if it is this builder's (it names `workdir`).
    #[must_use]
    pub fn installed_for(&self, workdir: &Path) -> bool {
        std::fs::read_to_string(&self.file)
            .is_ok_and(|t| t.contains(&*workdir.to_string_lossy()) && t.contains("--foreground"))
    }

    /// Refuse a plist another tool owns: nix-darwin's (a link into
    /// /etc/static, or its wait4path-exec-store-path shape).
    pub fn refuse_foreign(&self) -> lb_common::Result<()> {
        if let Some(target) = managers::static_link(&self.file) {
            lb_common::bail!(
                "{}: nix-darwin owns this file (a link to {}); choose another --label, or turn off nix.linux-builder in your nix-darwin configuration first",
                self.file.display(),
                target.display()
            );
        }
        if self.kind == Kind::Launchd {
            if let Ok(text) = std::fs::read_to_string(&self.file) {
                if managers::is_nix_darwin_plist(&text) && !text.contains("--foreground") {
                    lb_common::bail!(
                        "{}: nix-darwin wrote this plist (its nix.linux-builder daemon); lb-vm does not replace it: choose another --label, or set nix.linux-builder.enable = false; and darwin-rebuild switch first",
                        self.file.display()
                    );
                }
            }
        }
        Ok(())
    }
}

/// Run service-manager commands, or only print them.
pub fn run_all(cmds: &[Vec<String>], print_only: bool) -> lb_common::Result<()> {
    for c in cmds {
        let cmd = Cmd::from_argv(c);
        if print_only {
            lb_common::ui::out(&cmd.display())?;
        } else {
            lb_common::ui::verbose(&format!("running: {}", cmd.display()));
            cmd.run()?;
        }
    }
    Ok(())
}

/// The name of the log file launchd writes for this label.
#[must_use]
pub fn launchd_log(label: &str) -> PathBuf {
    PathBuf::from(format!("/var/log/{label}.log"))
}

/// A service log (what launchd opened as our stdout) over `max` bytes is
/// cut to its last `keep` bytes at each start: launchd never rotates it,
/// and a builder restarted by KeepAlive appends forever.
pub fn bound_log(path: &Path, max: u64, keep: u64) -> std::io::Result<bool> {
    lb_common::fs::keep_tail(path, max, keep, "lb-vm")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(v: &[Vec<String>]) -> String {
        v.iter()
            .map(|c| Cmd::from_argv(c).display())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn launchctl_commands() {
        let s = Service::new(Kind::Launchd, &Root::real(), "linux-builder", None).unwrap();
        assert_eq!(
            s.system_file,
            Path::new("/Library/LaunchDaemons/org.lb-vm.linux-builder.plist")
        );
        insta::assert_snapshot!(
            format!(
                "load (fresh):\n{}\nload (loaded):\n{}\nunload:\n{}\nstop:\n{}",
                lines(&s.load(false)),
                lines(&s.load(true)),
                lines(&s.unload()),
                lines(&s.stop())
            ),
            @r"
        load (fresh):
        launchctl enable system/org.lb-vm.linux-builder
        launchctl bootstrap system /Library/LaunchDaemons/org.lb-vm.linux-builder.plist
        load (loaded):
        launchctl bootout system/org.lb-vm.linux-builder
        launchctl enable system/org.lb-vm.linux-builder
        launchctl bootstrap system /Library/LaunchDaemons/org.lb-vm.linux-builder.plist
        unload:
        launchctl bootout system/org.lb-vm.linux-builder
        stop:
        launchctl bootout system/org.lb-vm.linux-builder
        "
        );
    }

    #[test]
    fn systemctl_commands() {
        let s = Service::new(Kind::Systemd, &Root::real(), "linux-builder", None).unwrap();
        insta::assert_snapshot!(
            format!(
                "load:\n{}\nunload:\n{}\nafter removal:\n{}\nstop:\n{}",
                lines(&s.load(true)),
                lines(&s.unload()),
                lines(&s.after_removal()),
                lines(&s.stop())
            ),
            @r"
        load:
        systemctl daemon-reload
        systemctl enable linux-builder.service
        systemctl restart linux-builder.service
        unload:
        systemctl disable --now linux-builder.service
        after removal:
        systemctl daemon-reload
        stop:
        systemctl stop linux-builder.service
        "
        );
    }

    #[test]
    fn nix_darwins_plist_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(Some(tmp.path())).unwrap();
        let s = Service::new(
            Kind::Launchd,
            &root,
            "linux-builder",
            Some(managers::NIX_DARWIN_BUILDER_LABEL),
        )
        .unwrap();
        std::fs::create_dir_all(s.file.parent().unwrap()).unwrap();
        std::fs::write(
            &s.file,
            "<string>/bin/wait4path /nix/store &amp;&amp; exec /nix/store/x-linux-builder-start</string>",
        )
        .unwrap();
        let e = s.refuse_foreign().unwrap_err().to_string();
        assert!(e.contains("nix-darwin wrote this plist"), "{e}");
        std::fs::remove_file(&s.file).unwrap();
        std::os::unix::fs::symlink("/etc/static/x.plist", &s.file).unwrap();
        let e = s.refuse_foreign().unwrap_err().to_string();
        assert!(e.contains("nix-darwin owns this file"), "{e}");
    }

    #[test]
    fn log_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("b.log");
        let text = (0..2000).fold(String::new(), |mut t, i| {
            t.push_str("line ");
            t.push_str(&i.to_string());
            t.push('\n');
            t
        });
        std::fs::write(&log, &text).unwrap();
        assert!(!bound_log(&log, 1 << 20, 1024).unwrap());
        assert!(bound_log(&log, 4096, 1024).unwrap());
        let after = std::fs::read_to_string(&log).unwrap();
        assert!(after.len() < 1100, "{}", after.len());
        assert!(after.starts_with("[lb-vm: log cut"), "{after}");
        assert!(after.ends_with("line 1999\n"));
    }
}
