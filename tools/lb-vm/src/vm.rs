//! The VM's settings, its files in the working directory, the command
//! that boots it (pure: rendered without running anything, so the macOS
//! command lines are tested on Linux), and the lb-vm flags that name it
//! again ([`VmSpec::flags`], what the service files run).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use lb_common::cmd::Cmd;
use lb_common::platform::QemuProfile;

use crate::accel::accel_args;

/// One builder's files. Several builders share a working directory by
/// name: every file is `WORKDIR/NAME.*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// Absolute working directory.
    pub dir: PathBuf,
    pub name: String,
}

impl Layout {
    fn file(&self, suffix: &str) -> PathBuf {
        self.dir.join(format!("{}.{suffix}", self.name))
    }
    /// The VM process's pid.
    #[must_use]
    pub fn pid(&self) -> PathBuf {
        self.file("pid")
    }
    /// QEMU's QMP control socket.
    #[must_use]
    pub fn qmp(&self) -> PathBuf {
        self.file("qmp")
    }
    /// The guest's serial console.
    #[must_use]
    pub fn console(&self) -> PathBuf {
        self.file("console.log")
    }
    /// QEMU's (or the runner's) own stdout and stderr.
    #[must_use]
    pub fn qemu_log(&self) -> PathBuf {
        self.file("qemu.log")
    }
    /// What `start` recorded for `status`: port, accelerator, start time.
    #[must_use]
    pub fn state(&self) -> PathBuf {
        self.file("state.json")
    }
    /// The KVM probe's verdict, so it runs once per working directory.
    #[must_use]
    pub fn accel_cache(&self) -> PathBuf {
        self.file("accel")
    }
    /// The default disk image.
    #[must_use]
    pub fn disk(&self) -> PathBuf {
        self.file("qcow2")
    }
    /// The on-demand listener's pid.
    #[must_use]
    pub fn listener_pid(&self) -> PathBuf {
        self.file("listener.pid")
    }
    /// The on-demand listener's control socket (`status`, `stop`).
    #[must_use]
    pub fn control(&self) -> PathBuf {
        self.file("ctl")
    }
    /// The detached on-demand listener's log (its boots, power-offs, failures).
    #[must_use]
    pub fn listener_log(&self) -> PathBuf {
        self.file("on-demand.log")
    }
    /// TMPDIR for the runner (not under /tmp: macOS cleans /tmp after 3 days).
    #[must_use]
    pub fn tmp(&self) -> PathBuf {
        self.file("tmp")
    }
}

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Boot {
    /// A nixpkgs VM runner (`run-nixos-vm`, `create-builder`).
    Runner(PathBuf),
    /// A kernel and initrd lb-vm boots itself.
    Kernel {
        kernel: PathBuf,
        initrd: PathBuf,
        append: String,
    },
}

/// Everything needed to render the VM's command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmSpec {
    pub layout: Layout,
    pub boot: Boot,
    pub port: u16,
    /// MiB.
    pub memory: u32,
    pub cpus: u32,
    pub disk: PathBuf,
    /// MiB.
    pub disk_size: u64,
    pub keys: PathBuf,
    /// The guest's Nix system (`x86_64-linux`).
    pub system: String,
    /// The port a runner forwards by itself (baked in; on all interfaces);
    /// `port` for a kernel boot.
    pub image_port: u16,
    /// Options appended through the runner's `QEMU_OPTS` beyond the control
    /// socket: `-m`/`-smp` where `--memory`/`--cpus` differ from what it bakes.
    pub qemu_opts: Vec<String>,
    /// The CA bundle the runner copies into the guest (`NIX_SSL_CERT_FILE`).
    pub cert_file: Option<PathBuf>,
}

/// The kernel command line used when `--append` is not given: the serial
/// console QEMU's `-serial` captures on this guest architecture.
#[must_use]
pub fn default_append(system: &str) -> String {
    let console = if system.starts_with("aarch64") {
        "ttyAMA0"
    } else {
        "ttyS0"
    };
    format!("console={console} panic=-1")
}

/// QEMU's option syntax splits on commas; a comma inside a value is doubled.
fn opt_path(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

impl VmSpec {
    /// The QEMU command line for `--kernel` boots (`None` for a runner).
    #[must_use]
    pub fn qemu_command(&self, profile: &QemuProfile, accel: &str) -> Option<Cmd> {
        let Boot::Kernel {
            kernel,
            initrd,
            append,
        } = &self.boot
        else {
            return None;
        };
        let l = &self.layout;
        let cmd = Cmd::new(&profile.binary)
            .hint(format!("install {}", profile.package))
            .args(["-name", &l.name])
            .args(["-machine", &profile.machine])
            .args(accel_args(accel))
            .args(["-cpu", &profile.cpu])
            .args(["-m", &self.memory.to_string()])
            .args(["-smp", &self.cpus.to_string()])
            .args(["-display", "none", "-monitor", "none", "-no-reboot"])
            .arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .args(["-append", append])
            .arg("-drive")
            .arg(format!(
                "file={},format=qcow2,if=virtio",
                opt_path(&self.disk)
            ))
            .arg("-netdev")
            .arg(format!(
                "user,id=n0,hostfwd=tcp:127.0.0.1:{}-:22",
                self.port
            ))
            .args(["-device", "virtio-net-pci,netdev=n0"])
            .arg("-virtfs")
            .arg(format!(
                "local,path={},security_model=none,mount_tag=keys,readonly=on",
                opt_path(&self.keys)
            ))
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", opt_path(&l.qmp())))
            .arg("-serial")
            .arg(format!("file:{}", opt_path(&l.console())));
        Some(cmd)
    }

    /// The runner command (`None` for a kernel boot): the nixpkgs runner's
    /// environment contract (see docs/reference.md, "nixpkgs builder").
    #[must_use]
    pub fn runner_command(&self) -> Option<Cmd> {
        let Boot::Runner(runner) = &self.boot else {
            return None;
        };
        let mut cmd = Cmd::new(runner).dir(&self.layout.dir);
        for (k, v) in self.runner_env() {
            cmd = cmd.env(k, v);
        }
        Some(cmd)
    }

    /// The environment the runner gets.
    #[must_use]
    pub fn runner_env(&self) -> Vec<(&'static str, std::ffi::OsString)> {
        let l = &self.layout;
        // QEMU_OPTS is appended to the runner's QEMU command line and
        // word-split: the control socket lets `stop` shut the guest down
        // cleanly; a later -m/-smp overrides the baked one (QEMU takes the
        // last).
        let mut opts = format!("-qmp unix:{},server=on,wait=off", opt_path(&l.qmp()));
        for o in &self.qemu_opts {
            opts.push(' ');
            opts.push_str(o);
        }
        let mut env = vec![
            ("KEYS", self.keys.clone().into_os_string()),
            ("NIX_DISK_IMAGE", self.disk.clone().into_os_string()),
            ("TMPDIR", l.tmp().into_os_string()),
            ("USE_TMPDIR", "1".into()),
            ("QEMU_OPTS", opts.into()),
        ];
        if let Some(c) = &self.cert_file {
            env.push(("NIX_SSL_CERT_FILE", c.clone().into_os_string()));
        }
        if self.port != self.image_port {
            // The image forwards its baked port itself; QEMU_NET_OPTS is
            // spliced into its `-netdev user,...` so this forward reaches
            // the guest too.
            env.push((
                "QEMU_NET_OPTS",
                format!("hostfwd=tcp:127.0.0.1:{}-:22", self.port).into(),
            ));
        }
        env
    }

    /// The command that boots the VM.
    #[must_use]
    pub fn command(&self, profile: &QemuProfile, accel: &str) -> Cmd {
        match self.runner_command() {
            Some(c) => c,
            None => self
                .qemu_command(profile, accel)
                .unwrap_or_else(|| Cmd::new(&profile.binary)),
        }
    }
}

/// What the command line asked for beyond the spec, which [`VmSpec::flags`]
/// carries only when given: a runner's memory, cores and disk are its
/// own unless asked, and the accelerator is chosen afresh (probed) unless
/// given.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    pub memory: Option<u32>,
    pub cpus: Option<u32>,
    pub disk_size: Option<u64>,
    pub accel: Option<String>,
}

impl VmSpec {
    /// The lb-vm flags that name this VM again: `--name --workdir --port
    /// --system`, what to boot and its resources, `--disk --keys` and
    /// `--accel` if asked. The one serialiser of a spec: the service files
    /// run `lb-vm start --foreground` with these, and parsing them back
    /// gives this spec (see the round-trip test).
    #[must_use]
    pub fn flags(&self, asked: &Asked) -> Vec<OsString> {
        let l = &self.layout;
        let mut argv: Vec<OsString> = Vec::new();
        let mut flag = |name: &str, value: OsString| {
            argv.push(name.into());
            argv.push(value);
        };
        flag("--name", l.name.clone().into());
        flag("--workdir", l.dir.clone().into_os_string());
        flag("--port", self.port.to_string().into());
        flag("--system", self.system.clone().into());
        match &self.boot {
            // A runner's memory, cores and disk are its own unless asked.
            Boot::Runner(r) => {
                flag("--runner", r.clone().into_os_string());
                if let Some(m) = asked.memory {
                    flag("--memory", m.to_string().into());
                }
                if let Some(c) = asked.cpus {
                    flag("--cpus", c.to_string().into());
                }
                if let Some(d) = asked.disk_size {
                    flag("--disk-size", d.to_string().into());
                }
            }
            Boot::Kernel {
                kernel,
                initrd,
                append,
            } => {
                flag("--kernel", kernel.clone().into_os_string());
                flag("--initrd", initrd.clone().into_os_string());
                flag("--append", append.into());
                flag("--disk-size", self.disk_size.to_string().into());
                flag("--memory", self.memory.to_string().into());
                flag("--cpus", self.cpus.to_string().into());
            }
        }
        flag("--disk", self.disk.clone().into_os_string());
        flag("--keys", self.keys.clone().into_os_string());
        if let Some(acc) = &asked.accel {
            flag("--accel", acc.into());
        }
        argv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accel::candidate_accel;
    use lb_common::platform::{Os, Platform};

    fn spec(system: &str) -> VmSpec {
        let layout = Layout {
            dir: PathBuf::from("/var/lib/linux-builder"),
            name: "linux-builder".to_owned(),
        };
        VmSpec {
            boot: Boot::Kernel {
                kernel: PathBuf::from("/nix/store/k/bzImage"),
                initrd: PathBuf::from("/nix/store/i/initrd"),
                append: default_append(system),
            },
            port: 31022,
            memory: 3072,
            cpus: 4,
            disk: layout.disk(),
            disk_size: 20480,
            keys: PathBuf::from("/var/lib/linux-builder/keys"),
            system: system.to_owned(),
            image_port: 31022,
            qemu_opts: Vec::new(),
            cert_file: None,
            layout,
        }
    }

    fn line(os: Os, arch: &str, system: &str) -> String {
        let p = Platform::new(os, arch);
        let profile = p.qemu(system);
        let accel = candidate_accel(&profile);
        spec(system)
            .qemu_command(&profile, &accel)
            .unwrap()
            .display()
            .replace(" -", "\n  -")
    }

    #[test]
    fn darwin_aarch64_hvf() {
        insta::assert_snapshot!(line(Os::MacOs, "aarch64", "aarch64-linux"), @r#"
            qemu-system-aarch64
              -name linux-builder
              -machine 'virt,gic-version=2'
              -accel hvf
              -accel tcg
              -cpu max
              -m 3072
              -smp 4
              -display none
              -monitor none
              -no-reboot
              -kernel /nix/store/k/bzImage
              -initrd /nix/store/i/initrd
              -append 'console=ttyAMA0 panic=-1'
              -drive 'file=/var/lib/linux-builder/linux-builder.qcow2,format=qcow2,if=virtio'
              -netdev 'user,id=n0,hostfwd=tcp:127.0.0.1:31022-:22'
              -device 'virtio-net-pci,netdev=n0'
              -virtfs 'local,path=/var/lib/linux-builder/keys,security_model=none,mount_tag=keys,readonly=on'
              -qmp 'unix:/var/lib/linux-builder/linux-builder.qmp,server=on,wait=off'
              -serial file:/var/lib/linux-builder/linux-builder.console.log
        "#);
    }

    #[test]
    fn darwin_x86_64_hvf() {
        insta::assert_snapshot!(line(Os::MacOs, "x86_64", "x86_64-linux"), @r#"
            qemu-system-x86_64
              -name linux-builder
              -machine q35
              -accel hvf
              -accel tcg
              -cpu max
              -m 3072
              -smp 4
              -display none
              -monitor none
              -no-reboot
              -kernel /nix/store/k/bzImage
              -initrd /nix/store/i/initrd
              -append 'console=ttyS0 panic=-1'
              -drive 'file=/var/lib/linux-builder/linux-builder.qcow2,format=qcow2,if=virtio'
              -netdev 'user,id=n0,hostfwd=tcp:127.0.0.1:31022-:22'
              -device 'virtio-net-pci,netdev=n0'
              -virtfs 'local,path=/var/lib/linux-builder/keys,security_model=none,mount_tag=keys,readonly=on'
              -qmp 'unix:/var/lib/linux-builder/linux-builder.qmp,server=on,wait=off'
              -serial file:/var/lib/linux-builder/linux-builder.console.log
        "#);
    }

    #[test]
    fn darwin_aarch64_emulating_x86_64_is_tcg() {
        let l = line(Os::MacOs, "aarch64", "x86_64-linux");
        assert!(l.contains("\n  -accel tcg\n"), "{l}");
        assert!(l.starts_with("qemu-system-x86_64\n"), "{l}");
    }

    #[test]
    fn commas_in_paths_are_doubled() {
        let mut s = spec("x86_64-linux");
        s.keys = PathBuf::from("/a,b/keys");
        let p = Platform::new(Os::Linux, "x86_64");
        let c = s.qemu_command(&p.qemu("x86_64-linux"), "tcg").unwrap();
        assert!(c.display().contains("path=/a,,b/keys,"), "{}", c.display());
    }

    #[test]
    fn runner_gets_net_opts_only_off_the_image_port() {
        let mut s = spec("x86_64-linux");
        s.boot = Boot::Runner(PathBuf::from("/nix/store/r/bin/run-nixos-vm"));
        let c = s.runner_command().unwrap();
        assert!(!c.display().contains("QEMU_NET_OPTS"), "{}", c.display());
        s.port = 31023;
        insta::assert_snapshot!(s.runner_command().unwrap().display(), @r#"
            KEYS=/var/lib/linux-builder/keys NIX_DISK_IMAGE=/var/lib/linux-builder/linux-builder.qcow2 TMPDIR=/var/lib/linux-builder/linux-builder.tmp USE_TMPDIR=1 QEMU_OPTS='-qmp unix:/var/lib/linux-builder/linux-builder.qmp,server=on,wait=off' QEMU_NET_OPTS='hostfwd=tcp:127.0.0.1:31023-:22' /nix/store/r/bin/run-nixos-vm
        "#);
    }
}
