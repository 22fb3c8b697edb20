//! macOS and Linux differences as data, chosen at run time.
//!
//! Both code paths compile everywhere, so the macOS command lines are
//! tested on Linux. `LB_PLATFORM` overrides the detection (for tests, and
//! to print what a Mac would run): `macos` or `linux` (this machine's
//! architecture), or a Nix system name (`aarch64-darwin`, `x86_64-darwin`,
//! `aarch64-linux`, `x86_64-linux`) for another architecture too.

use crate::status::{Classify, Status};

/// The operating system of the host (as detected, or as `LB_PLATFORM` names it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    /// macOS (Nix's `darwin`).
    MacOs,
    /// Linux.
    Linux,
}

/// An `LB_PLATFORM` value that names no platform the tools know; holds
/// the value.
#[derive(Debug, thiserror::Error)]
#[error("LB_PLATFORM={0:?}: use macos, linux or a Nix system (aarch64-darwin, x86_64-darwin, aarch64-linux, x86_64-linux)")]
pub struct UnknownPlatform(String);

impl Classify for UnknownPlatform {
    fn status(&self) -> Status {
        Status::Usage
    }
}

/// The host the tools run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The operating system.
    pub os: Os,
    /// `x86_64` or `aarch64`.
    pub arch: String,
}

/// How QEMU is run for a guest on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuProfile {
    /// The QEMU program (`qemu-system-aarch64` or `qemu-system-x86_64`).
    pub binary: String,
    /// The `-machine` type (`virt`, `virt,gic-version=2`, `pc` or `q35`).
    pub machine: String,
    /// The `-cpu` model (`max`).
    pub cpu: String,
    /// Accelerators to try, best first; `tcg` always last.
    pub accels: Vec<String>,
    /// The Debian/Homebrew package that provides `binary`, for error messages.
    pub package: String,
    /// The most vCPUs the machine type takes: `virt,gic-version=2` (the
    /// GICv2 QEMU needs under HVF on Apple Silicon) addresses 8.
    pub max_cpus: Option<u32>,
}

impl Platform {
    /// The running host, or `LB_PLATFORM` if set.
    ///
    /// # Errors
    /// `LB_PLATFORM` is set to a value [`Platform::parse`] refuses
    /// ([`UnknownPlatform`]).
    pub fn current() -> Result<Self, UnknownPlatform> {
        match std::env::var("LB_PLATFORM") {
            Ok(v) => Self::parse(&v),
            Err(_) => Ok(Platform {
                os: if std::env::consts::OS == "macos" {
                    Os::MacOs
                } else {
                    Os::Linux
                },
                arch: std::env::consts::ARCH.to_owned(),
            }),
        }
    }

    /// An `LB_PLATFORM` value: `macos`/`darwin`/`linux` (this machine's
    /// architecture) or a Nix system name.
    ///
    /// # Errors
    /// `v` is none of these, or names an architecture other than `aarch64`
    /// and `x86_64` ([`UnknownPlatform`]).
    pub fn parse(v: &str) -> Result<Self, UnknownPlatform> {
        let here = std::env::consts::ARCH;
        let (arch, os) = match v.split_once('-') {
            Some((arch @ ("aarch64" | "x86_64"), os)) => (arch, os),
            Some(_) => return Err(UnknownPlatform(v.to_owned())),
            None => (here, v),
        };
        let os = match os {
            "macos" | "darwin" => Os::MacOs,
            "linux" => Os::Linux,
            _ => return Err(UnknownPlatform(v.to_owned())),
        };
        Ok(Platform::new(os, arch))
    }

    /// The platform `os` on `arch` (`x86_64` or `aarch64`).
    #[must_use]
    pub fn new(os: Os, arch: &str) -> Self {
        Platform {
            os,
            arch: arch.to_owned(),
        }
    }

    /// Nix's name for this host's system (`thisSystem`): `aarch64-darwin`,
    /// `x86_64-linux`...
    #[must_use]
    pub fn nix_system(&self) -> String {
        let os = match self.os {
            Os::MacOs => "darwin",
            Os::Linux => "linux",
        };
        format!("{}-{os}", self.arch)
    }

    /// The command that restarts the Nix daemon so it rereads nix.conf.
    #[must_use]
    pub fn restart_daemon(&self) -> Vec<String> {
        let v: &[&str] = match self.os {
            Os::MacOs => &[
                "launchctl",
                "kickstart",
                "-k",
                "system/org.nixos.nix-daemon",
            ],
            Os::Linux => &["systemctl", "restart", "nix-daemon"],
        };
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    /// The command that adds `user` to `group`.
    #[must_use]
    pub fn add_to_group(&self, user: &str, group: &str) -> Vec<String> {
        match self.os {
            Os::MacOs => ["dseditgroup", "-o", "edit", "-a", user, "-t", "user", group]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            Os::Linux => vec!["gpasswd".into(), "-a".into(), user.into(), group.into()],
        }
    }

    /// The command that removes `user` from `group` (the reverse of
    /// [`Platform::add_to_group`]).
    #[must_use]
    pub fn remove_from_group(&self, user: &str, group: &str) -> Vec<String> {
        match self.os {
            Os::MacOs => ["dseditgroup", "-o", "edit", "-d", user, "-t", "user", group]
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            Os::Linux => vec!["gpasswd".into(), "-d".into(), user.into(), group.into()],
        }
    }

    /// The command that creates a missing group (for error messages).
    #[must_use]
    pub fn create_group_hint(&self, group: &str) -> String {
        match self.os {
            Os::MacOs => format!("sudo dseditgroup -o create {group}"),
            Os::Linux => format!("sudo groupadd --system {group}"),
        }
    }

    /// QEMU for a guest of `system` (e.g. `aarch64-linux`) on this host,
    /// as the nixpkgs VM runner chooses it.
    #[must_use]
    pub fn qemu(&self, system: &str) -> QemuProfile {
        let guest_arch = system.split('-').next().unwrap_or("x86_64");
        let native = guest_arch == self.arch;
        let mut accels = Vec::new();
        if native {
            accels.push(match self.os {
                Os::MacOs => "hvf".to_owned(),
                Os::Linux => "kvm".to_owned(),
            });
        }
        accels.push("tcg".to_owned());
        let (binary, machine) = match guest_arch {
            "aarch64" => (
                "qemu-system-aarch64",
                match self.os {
                    Os::MacOs => "virt,gic-version=2",
                    Os::Linux => "virt",
                },
            ),
            _ => (
                "qemu-system-x86_64",
                match self.os {
                    Os::MacOs => "q35",
                    Os::Linux => "pc",
                },
            ),
        };
        let package = match (self.os, guest_arch) {
            (Os::MacOs, _) => "qemu (brew install qemu, or nix profile install nixpkgs#qemu)",
            (Os::Linux, "aarch64") => "qemu-system-arm (apt-get install qemu-system-arm)",
            (Os::Linux, _) => "qemu-system-x86 (apt-get install qemu-system-x86)",
        };
        QemuProfile {
            binary: binary.to_owned(),
            machine: machine.to_owned(),
            cpu: "max".to_owned(),
            accels,
            package: package.to_owned(),
            max_cpus: machine.contains("gic-version=2").then_some(8),
        }
    }

    /// Where a service definition for the builder lives.
    #[must_use]
    pub fn service_path(&self, name: &str) -> String {
        match self.os {
            // Not nix-darwin's org.nixos.linux-builder: neither overwrites the other.
            Os::MacOs => format!("/Library/LaunchDaemons/org.lb-vm.{name}.plist"),
            Os::Linux => format!("/etc/systemd/system/{name}.service"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lb_platform_takes_nix_systems() {
        for (v, os, arch) in [
            ("aarch64-darwin", Os::MacOs, "aarch64"),
            ("x86_64-darwin", Os::MacOs, "x86_64"),
            ("aarch64-linux", Os::Linux, "aarch64"),
            ("x86_64-linux", Os::Linux, "x86_64"),
            ("macos", Os::MacOs, std::env::consts::ARCH),
            ("linux", Os::Linux, std::env::consts::ARCH),
        ] {
            let p = Platform::parse(v).unwrap();
            assert_eq!((p.os, p.arch.as_str()), (os, arch), "{v}");
            if v.contains('-') {
                assert_eq!(p.nix_system(), v);
            }
        }
        for bad in ["windows", "riscv64-linux", "aarch64-windows", ""] {
            let e = Platform::parse(bad).unwrap_err().to_string();
            assert!(e.contains("aarch64-darwin"), "{e}");
        }
    }

    #[test]
    fn daemon_restart_commands() {
        let mac = Platform::new(Os::MacOs, "aarch64");
        assert_eq!(
            mac.restart_daemon().join(" "),
            "launchctl kickstart -k system/org.nixos.nix-daemon"
        );
        let linux = Platform::new(Os::Linux, "x86_64");
        assert_eq!(
            linux.restart_daemon().join(" "),
            "systemctl restart nix-daemon"
        );
    }

    #[test]
    fn group_commands() {
        let mac = Platform::new(Os::MacOs, "aarch64");
        assert_eq!(
            mac.add_to_group("alice", "nixbld").join(" "),
            "dseditgroup -o edit -a alice -t user nixbld"
        );
        let linux = Platform::new(Os::Linux, "x86_64");
        assert_eq!(
            linux.add_to_group("alice", "nixbld").join(" "),
            "gpasswd -a alice nixbld"
        );
    }

    #[test]
    fn qemu_profiles_follow_nixpkgs_runner() {
        let q = Platform::new(Os::MacOs, "aarch64").qemu("aarch64-linux");
        assert_eq!(
            (q.binary.as_str(), q.machine.as_str()),
            ("qemu-system-aarch64", "virt,gic-version=2")
        );
        assert_eq!(q.accels, ["hvf", "tcg"]);
        assert_eq!(q.max_cpus, Some(8));
        let q = Platform::new(Os::MacOs, "x86_64").qemu("x86_64-linux");
        assert_eq!(q.max_cpus, None);
        assert_eq!(
            (q.binary.as_str(), q.machine.as_str()),
            ("qemu-system-x86_64", "q35")
        );
        assert_eq!(q.accels, ["hvf", "tcg"]);
        let q = Platform::new(Os::Linux, "x86_64").qemu("x86_64-linux");
        assert_eq!(q.accels, ["kvm", "tcg"]);
        // A foreign guest can only be emulated.
        let q = Platform::new(Os::Linux, "x86_64").qemu("aarch64-linux");
        assert_eq!(q.accels, ["tcg"]);
    }
}
