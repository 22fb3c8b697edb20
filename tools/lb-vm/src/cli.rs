//! The command line: clap's definitions, and the checks that turn the VM
//! flags into a [`VmSpec`] (bad input is a one-line usage error, status 2).

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use lb_common::builder::BuilderArgs;
use lb_common::cli::{Change, Global, HasGlobal};
use lb_common::platform::QemuProfile;
use lb_common::usage;

use crate::vm::{self, Boot, VmSpec};
use crate::{runner, Ctx};

/// Boot, wait for, stop and report on the builder VM.
#[derive(Debug, Parser)]
#[command(name = "lb-vm", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub builder: BuilderArgs,
    /// Directory holding the builder's pid file, control socket, console log and disk (files named NAME.*) [default: /var/lib/linux-builder, under --root]
    #[arg(long, env = "LB_VM_WORKDIR", value_name = "DIR", global = true)]
    pub workdir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

impl HasGlobal for Cli {
    const EXAMPLES: lb_common::cli::Examples = crate::examples::EXAMPLES;
    const BUILDER_FLAGS: lb_common::cli::BuilderFlags = &[
        ("start", &["name", "port", "system"]),
        ("wait", &["name", "port"]),
        ("status", &["name", "port"]),
        ("stop", &["name"]),
        ("check", &["name", "port", "host_key"]),
        ("config", &["name", "port", "system"]),
        ("service", &["name", "port", "system"]),
        ("remove", &["name"]),
    ];

    fn global(&self) -> &Global {
        &self.global
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Boot the builder VM and return once its sshd answers, printing 127.0.0.1:PORT (--on-demand: listen, boot on the first connection)
    Start(StartArgs),
    /// Wait until the running builder's sshd answers, printing 127.0.0.1:PORT
    Wait(WaitArgs),
    /// Say whether the builder runs: pid, port, accelerator, uptime, ready (exit 1 if not running)
    Status(StatusArgs),
    /// Shut the builder down cleanly (ACPI power button), then SIGTERM, then SIGKILL
    Stop(StopArgs),
    /// Find what users of builder VMs hit (down, crashed, disk size, TMPDIR, exposed port, alias port); one line per problem, exit 1 if any
    Check(CheckArgs),
    /// Print the effective settings and the exact command that boots the VM
    Config(ConfigArgs),
    /// Print or install a launchd/systemd service that keeps the builder running
    Service(ServiceArgs),
    /// Remove the stopped builder's files (disk, logs, state) from WORKDIR, and WORKDIR once empty
    Remove(RemoveArgs),
}

/// What to boot and with what resources.
#[derive(Debug, Clone, clap::Args)]
pub struct VmArgs {
    /// A nixpkgs VM runner (run-nixos-vm or create-builder) to run instead of a kernel
    #[arg(long, value_name = "PATH", env = "LB_VM_RUNNER",
          conflicts_with_all = ["kernel", "initrd", "append"])]
    pub runner: Option<PathBuf>,
    /// The guest kernel to boot (with --initrd)
    #[arg(long, value_name = "PATH", env = "LB_VM_KERNEL")]
    pub kernel: Option<PathBuf>,
    /// The guest initrd to boot (with --kernel)
    #[arg(long, value_name = "PATH", env = "LB_VM_INITRD")]
    pub initrd: Option<PathBuf>,
    /// The kernel command line [default: console=ttyS0 panic=-1, ttyAMA0 on aarch64]
    #[arg(long, value_name = "ARGS")]
    pub append: Option<String>,
    /// The qcow2 disk image [default: WORKDIR/NAME.qcow2]
    #[arg(long, value_name = "IMG")]
    pub disk: Option<PathBuf>,
    /// Guest memory in MiB, at least 256 [default: 3072, or what the runner bakes in; given, it reaches a runner's QEMU through QEMU_OPTS]
    #[arg(long, value_name = "MIB", env = "LB_VM_MEMORY")]
    pub memory: Option<u32>,
    /// Guest CPUs [default: this host's cores (at most 8 under HVF on Apple Silicon), or what the runner bakes in]
    #[arg(long, value_name = "N", env = "LB_VM_CPUS", value_parser = clap::value_parser!(u32).range(1..))]
    pub cpus: Option<u32>,
    /// Disk size in MiB: the image is created this size, or grown to it if smaller [default: 20480; a runner's is baked in and cannot be changed here]
    #[arg(long, value_name = "MIB")]
    pub disk_size: Option<u64>,
    /// Directory shared read-only into the guest as /var/keys (holds builder_ed25519.pub) [default: WORKDIR/keys]
    #[arg(long, value_name = "DIR", env = "LB_VM_KEYS")]
    pub keys: Option<PathBuf>,
    /// QEMU accelerator [default: hvf on macOS; kvm on Linux if a probe boot works, else tcg]
    #[arg(long, value_parser = ["hvf", "kvm", "tcg"], env = "LB_VM_ACCEL")]
    pub accel: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    #[command(flatten)]
    pub vm: VmArgs,
    #[command(flatten)]
    pub change: Change,
    /// Stay attached: become the VM process (for launchd and systemd)
    #[arg(long)]
    pub foreground: bool,
    /// Succeed (exit 0) when this builder is already running
    #[arg(long)]
    pub if_not_running: bool,
    /// Start from a fresh disk: delete the disk image first
    #[arg(long)]
    pub ephemeral: bool,
    /// Seconds to wait for the guest's sshd
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub timeout: u64,
    /// Listen on the port and boot the VM on the first connection (held until sshd answers)
    #[arg(long)]
    pub on_demand: bool,
    /// With --on-demand: power the VM off after this long with no connection (5m, 3h)
    #[arg(long, value_name = "DURATION", default_value = "180m",
          value_parser = humantime::parse_duration, env = "LB_VM_IDLE")]
    pub idle: Duration,
    /// Print {"name", "address", "port", "pid"} as one JSON object once it answers
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Seconds to wait for the guest's sshd
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub timeout: u64,
    /// Print {"name", "address", "port", "pid"} as one JSON object
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON
    #[arg(long)]
    pub json: bool,
}

/// The disk `check` (and lb-doctor) compares with the configured size.
#[derive(Debug, Clone, clap::Args)]
pub struct DiskArgs {
    /// The disk image to compare with --disk-size [default: WORKDIR/NAME.qcow2]
    #[arg(long, value_name = "IMG")]
    pub disk: Option<PathBuf>,
    /// The configured disk size in MiB (the nixpkgs builder's diskSize)
    #[arg(
        long,
        value_name = "MIB",
        env = "LB_VM_DISK_SIZE",
        default_value_t = 20480
    )]
    pub disk_size: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub disk: DiskArgs,
    /// Print the findings as one JSON object: {"name", "ok", "problems", "summary"}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub change: Change,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StopArgs {
    #[command(flatten)]
    pub change: Change,
    /// Seconds to wait after the power button, and again after SIGTERM, before SIGKILL
    #[arg(long, value_name = "S", default_value_t = 30)]
    pub timeout: u64,
    /// The launchd label of the builder's service, if it is not org.lb-vm.NAME
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArgs {
    #[command(flatten)]
    pub vm: VmArgs,
    /// Print the settings as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("kind").required(true).args(["launchd", "systemd"])))]
pub struct ServiceArgs {
    #[command(flatten)]
    pub vm: VmArgs,
    #[command(flatten)]
    pub change: Change,
    /// A launchd daemon (macOS), label org.lb-vm.NAME (see --label)
    #[arg(long)]
    pub launchd: bool,
    /// A systemd unit (Linux), NAME.service
    #[arg(long)]
    pub systemd: bool,
    /// Write it to /Library/LaunchDaemons or /etc/systemd/system (under --root) and (re)load it, instead of printing it
    #[arg(long, conflicts_with = "uninstall")]
    pub install: bool,
    /// Unload the service and remove its file
    #[arg(long)]
    pub uninstall: bool,
    /// The launchd label [default: org.lb-vm.NAME; nix-darwin's own builder is org.nixos.linux-builder]
    #[arg(long, value_name = "LABEL")]
    pub label: Option<String>,
    /// The service listens and boots the VM on the first connection (`start --on-demand`)
    #[arg(long)]
    pub on_demand: bool,
    /// With --on-demand: power the VM off after this long with no connection (5m, 3h)
    #[arg(long, value_name = "DURATION", default_value = "180m",
          value_parser = humantime::parse_duration, env = "LB_VM_IDLE")]
    pub idle: Duration,
}

/// The clap definition, for man pages and completions.
#[must_use]
pub fn command() -> clap::Command {
    lb_common::cli::command::<Cli>()
}

fn input_file(flag: &str, path: &Path, what: &str) -> lb_common::Result<PathBuf> {
    if !path.is_file() {
        return Err(usage!(
            "{flag} {}: no such file; give the path of {what}",
            path.display()
        ));
    }
    Ok(std::path::absolute(path)?)
}

/// Validate the VM flags into a spec.
pub(crate) fn spec(ctx: &Ctx, a: &VmArgs) -> lb_common::Result<VmSpec> {
    let system = ctx.builder.system.clone();
    let boot = match (&a.runner, &a.kernel, &a.initrd) {
        (Some(r), _, _) => Boot::Runner(input_file(
            "--runner",
            r,
            "a nixpkgs VM runner (run-nixos-vm or create-builder)",
        )?),
        (None, Some(k), Some(i)) => Boot::Kernel {
            kernel: input_file("--kernel", k, "the guest kernel")?,
            initrd: input_file("--initrd", i, "the guest initrd")?,
            append: a
                .append
                .clone()
                .unwrap_or_else(|| vm::default_append(&system)),
        },
        (None, Some(_), None) => {
            return Err(usage!("--kernel needs --initrd: give --initrd PATH too"))
        }
        (None, None, Some(_)) => {
            return Err(usage!("--initrd needs --kernel: give --kernel PATH too"))
        }
        (None, None, None) => {
            return Err(usage!(
                "nothing to boot: give --kernel PATH and --initrd PATH, or --runner PATH"
            ))
        }
    };
    if let Some(m) = a.memory.filter(|m| *m < 256) {
        return Err(usage!(
            "--memory {m}: below 256 MiB the builder cannot run; give at least 256 (default 3072)"
        ));
    }
    if let Some(d) = a.disk_size.filter(|d| *d < 1024) {
        return Err(usage!(
            "--disk-size {d}: give at least 1024 MiB (default 20480)"
        ));
    }
    let max_cpus = profile(ctx).max_cpus;
    if let (Some(c), Some(max)) = (a.cpus, max_cpus) {
        if c > max {
            return Err(usage!(
                "--cpus {c}: QEMU's virt machine with gic-version=2 (what HVF needs on Apple Silicon) takes at most {max} vCPUs; give --cpus {max} or fewer"
            ));
        }
    }
    let l = &ctx.layout;
    let disk = match &a.disk {
        Some(d) => std::path::absolute(d)?,
        None => l.disk(),
    };
    let keys = match &a.keys {
        Some(k) => std::path::absolute(k)?,
        None => l.dir.join("keys"),
    };
    let port = ctx.builder.port;
    let (memory, cpus, disk_size, image_port, qemu_opts, cert_file) = match &boot {
        Boot::Runner(r) => {
            let baked = runner::read(r);
            let settled = runner::settle(&baked, a.memory, a.cpus, a.disk_size)?;
            (
                settled.memory,
                settled.cpus,
                settled.disk_mib,
                baked.port_or_default(),
                settled.qemu_opts,
                runner::cert_file(),
            )
        }
        Boot::Kernel { .. } => {
            let host = std::thread::available_parallelism()
                .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1));
            let cpus = a
                .cpus
                .unwrap_or_else(|| max_cpus.map_or(host, |m| host.min(m)));
            (
                a.memory.unwrap_or(3072),
                cpus,
                a.disk_size.unwrap_or(20480),
                port,
                Vec::new(),
                None,
            )
        }
    };
    Ok(VmSpec {
        layout: l.clone(),
        boot,
        port,
        memory,
        cpus,
        disk,
        disk_size,
        keys,
        system,
        image_port,
        qemu_opts,
        cert_file,
    })
}

pub(crate) fn profile(ctx: &Ctx) -> QemuProfile {
    ctx.platform.qemu(&ctx.builder.system)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::Asked;
    use lb_common::platform::{Os, Platform};

    /// `lb-vm ARGS` parsed, with its context on a Linux x86_64 host.
    fn parse<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> (Ctx, VmArgs) {
        let line =
            std::iter::once(std::ffi::OsStr::new("lb-vm")).chain(args.iter().map(AsRef::as_ref));
        let cli = Cli::try_parse_from(line).unwrap();
        let ctx = Ctx::on(
            cli.global.root.as_deref(),
            &cli.builder,
            cli.workdir.as_deref(),
            || Ok(Platform::new(Os::Linux, "x86_64")),
        )
        .unwrap();
        let Command::Start(a) = cli.command else {
            panic!("not start")
        };
        (ctx, a.vm)
    }

    /// `start` with the flags a spec serialises to.
    fn reparse(flags: &[std::ffi::OsString]) -> VmSpec {
        let mut args = vec![std::ffi::OsString::from("start")];
        args.extend(flags.iter().cloned());
        let (ctx, vm) = parse(&args);
        spec(&ctx, &vm).unwrap()
    }

    fn shown(flags: &[std::ffi::OsString], dir: &Path) -> String {
        flags
            .iter()
            .map(|f| {
                f.to_string_lossy()
                    .replace(&*dir.to_string_lossy(), "[DIR]")
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_kernel_spec_survives_its_flags() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("bzImage"), "k").unwrap();
        std::fs::write(d.join("initrd"), "i").unwrap();
        let p = |f: &str| d.join(f).display().to_string();
        let (ctx, vm) = parse(&[
            "--workdir",
            &d.display().to_string(),
            "start",
            "--name",
            "b1",
            "--port",
            "31055",
            "--system",
            "x86_64-linux",
            "--kernel",
            &p("bzImage"),
            "--initrd",
            &p("initrd"),
            "--memory",
            "1024",
            "--cpus",
            "2",
        ]);
        let s = spec(&ctx, &vm).unwrap();
        let flags = s.flags(&Asked::default());
        insta::assert_snapshot!(shown(&flags, d), @"--name b1 --workdir [DIR] --port 31055 --system x86_64-linux --kernel [DIR]/bzImage --initrd [DIR]/initrd --append console=ttyS0 panic=-1 --disk-size 20480 --memory 1024 --cpus 2 --disk [DIR]/b1.qcow2 --keys [DIR]/keys");
        assert_eq!(reparse(&flags), s);
        // An accelerator asked for is carried; one not asked is probed again.
        let asked = Asked {
            accel: Some("tcg".to_owned()),
            ..Asked::default()
        };
        assert!(shown(&s.flags(&asked), d).ends_with(" --accel tcg"));
    }

    #[test]
    fn a_runner_keeps_its_own_resources_unless_asked() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let runner = d.join("run-nixos-vm");
        std::fs::write(
            &runner,
            "#!/bin/sh\nexec qemu-kvm -m 2048 -smp 4 -netdev user,id=n,hostfwd=tcp::31022-:22\n",
        )
        .unwrap();
        let (ctx, vm) = parse(&[
            "--workdir".as_ref(),
            d.as_os_str(),
            "start".as_ref(),
            "--port".as_ref(),
            "31023".as_ref(),
            "--system".as_ref(),
            "x86_64-linux".as_ref(),
            "--runner".as_ref(),
            runner.as_os_str(),
            "--memory".as_ref(),
            "4096".as_ref(),
        ]);
        let s = spec(&ctx, &vm).unwrap();
        assert_eq!((s.memory, s.cpus, s.image_port), (4096, 4, 31022));
        let asked = Asked {
            memory: vm.memory,
            cpus: vm.cpus,
            disk_size: vm.disk_size,
            accel: vm.accel.clone(),
        };
        let flags = s.flags(&asked);
        insta::assert_snapshot!(shown(&flags, d), @"--name linux-builder --workdir [DIR] --port 31023 --system x86_64-linux --runner [DIR]/run-nixos-vm --memory 4096 --disk [DIR]/linux-builder.qcow2 --keys [DIR]/keys");
        assert_eq!(reparse(&flags), s);
    }

    #[test]
    fn bad_vm_flags_are_usage_errors_naming_the_flag() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().display().to_string();
        let k = tmp.path().join("k");
        std::fs::write(&k, "k").unwrap();
        let k = k.display().to_string();
        for (args, want) in [
            (vec!["start"], "nothing to boot"),
            (vec!["start", "--kernel", &k], "--kernel needs --initrd"),
            (vec!["start", "--initrd", &k], "--initrd needs --kernel"),
            (
                vec!["start", "--kernel", "/no/such", "--initrd", &k],
                "--kernel /no/such: no such file",
            ),
            (
                vec!["start", "--kernel", &k, "--initrd", &k, "--memory", "255"],
                "--memory 255: below 256 MiB",
            ),
            (
                vec![
                    "start",
                    "--kernel",
                    &k,
                    "--initrd",
                    &k,
                    "--disk-size",
                    "1000",
                ],
                "--disk-size 1000: give at least 1024 MiB",
            ),
        ] {
            let mut argv = vec!["--workdir", &d];
            argv.extend(args);
            let (ctx, vm) = parse(&argv);
            let e = spec(&ctx, &vm).unwrap_err();
            assert!(e.to_string().starts_with(want), "{e}");
            assert_eq!(
                lb_common::exit::status_of(&e),
                lb_common::exit::Status::Usage
            );
        }
    }
}
