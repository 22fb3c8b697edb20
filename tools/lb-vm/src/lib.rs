//! lb-vm: boot, wait for, stop and report on the builder VM.
//!
//! The manual runs the builder in a terminal and stops it by typing
//! `shutdown now`; lb-vm runs it in the background instead and manages its
//! life.
//!
//! Reads: the kernel and initrd (`--kernel`, `--initrd`) or a nixpkgs VM
//! runner (`--runner`), the keys directory shared into the guest (`--keys`,
//! default `WORKDIR/keys`), and the builder's files in the working
//! directory.
//!
//! Writes, all in the working directory (`--workdir`, default `.`), named
//! after the builder (`--name`, default `linux-builder`) so several builders
//! can share one directory: `NAME.pid` (the VM's pid), `NAME.qmp` (QEMU's
//! control socket), `NAME.console.log` (the guest's serial console),
//! `NAME.qemu.log` (QEMU's own output), `NAME.qcow2` (the disk, unless
//! `--disk`), `NAME.state.json` (port, accelerator, start time and command
//! line, for `status`), `NAME.accel` (the KVM probe's cached verdict) and
//! `NAME.tmp/` (the runner's TMPDIR). `start --on-demand` (see
//! `on_demand`) adds `NAME.listener.pid`, `NAME.ctl` (its control socket)
//! and `NAME.on-demand.log`. `service --install` writes the launchd plist
//! or systemd unit under `--root`.
//!
//! Prints on stdout: `127.0.0.1:PORT` once ready (`start`, `wait`), the
//! status, the configuration or the service file; messages go to stderr.
//!
//! Exit status: 0 done (including "already running" with
//! `--if-not-running`, and stopping a stopped VM); 1 failed (QEMU died,
//! readiness timed out, port taken, already running) or a negative answer
//! (`status`: not running; `--check`: would change); 2 bad usage or input
//! (missing kernel, initrd or runner, memory below 256 MiB).

pub mod check;
mod examples;
mod on_demand;
mod port;
mod process;
mod qmp;
mod ready;
mod relay;
pub mod runner;
pub mod service;
pub mod supervisor;
pub mod vm;

use std::ffi::OsString;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Parser;
use lb_common::builder::{Builder, BuilderArgs};
use lb_common::cli::{Change, Global, HasGlobal};
use lb_common::cmd::Cmd;
use lb_common::exit::Status;
use lb_common::fs::{Apply, FileSpec};
use lb_common::paths::Root;
use lb_common::platform::{Platform, QemuProfile};
use lb_common::{ui, usage};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::ready::Readiness;
use crate::vm::{Boot, Layout, VmSpec};

/// Boot, wait for, stop and report on the builder VM.
#[derive(Debug, Parser)]
#[command(name = "lb-vm", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub builder: BuilderArgs,
    /// Directory holding the builder's pid file, control socket, console log and disk (files named NAME.*)
    #[arg(long, env = "LB_VM_WORKDIR", default_value = ".", global = true)]
    pub workdir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

impl HasGlobal for Cli {
    const EXAMPLES: lb_common::cli::Examples = examples::EXAMPLES;

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
}

#[derive(Debug, Clone, clap::Args)]
pub struct WaitArgs {
    /// Seconds to wait for the guest's sshd
    #[arg(long, value_name = "S", default_value_t = 300)]
    pub timeout: u64,
}

#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Print the status as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
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

/// What `start` records for `status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    pid: u32,
    port: u16,
    /// The accelerator, or `runner` when the runner chose.
    accel: String,
    /// Seconds since the epoch.
    started_at: u64,
    /// The command line, shell-quoted.
    command: String,
    /// The program started (QEMU or the runner), to recognise the pid.
    program: String,
    /// A runner's own baked-in forward (on all interfaces), when not `port`.
    #[serde(default)]
    image_port: Option<u16>,
}

struct Ctx {
    root: Root,
    builder: Builder,
    platform: Platform,
    layout: Layout,
}

/// Run the tool.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    let root = Root::new(cli.global.root.as_deref())?;
    let builder = cli.builder.resolve(&root)?;
    let platform = Platform::current()?;
    // The working directory is the user's own (like the manual's
    // workingDirectory), not a system location: used as given, never
    // placed under --root.
    let dir = std::path::absolute(&cli.workdir)
        .with_context(|| format!("--workdir {}", cli.workdir.display()))?;
    let layout = Layout {
        dir,
        name: builder.name.clone(),
    };
    let ctx = Ctx {
        root,
        builder,
        platform,
        layout,
    };
    match cli.command {
        Command::Start(a) => start(&ctx, &a),
        Command::Wait(a) => wait(&ctx, &a),
        Command::Status(a) => status(&ctx, &a),
        Command::Stop(a) => stop(&ctx, &a),
        Command::Check(a) => {
            let problems = check_problems(&ctx, &a)?;
            for p in &problems {
                ui::out(p)?;
            }
            if problems.is_empty() {
                ui::note(&format!(
                    "{}: runs and answers, no problems",
                    ctx.layout.name
                ));
                Ok(Status::Ok)
            } else {
                ui::note(&format!("{} problem(s)", problems.len()));
                Ok(Status::Failed)
            }
        }
        Command::Config(a) => config(&ctx, &a),
        Command::Service(a) => service(&ctx, &a),
    }
}

/// `check`'s problems for the builder `args` names in `workdir`, for
/// `lb-doctor`: one line each, with its fix.
pub fn problems(
    global_root: Option<&Path>,
    args: &BuilderArgs,
    workdir: &Path,
    a: &CheckArgs,
) -> anyhow::Result<Vec<String>> {
    let root = Root::new(global_root)?;
    let builder = args.resolve(&root)?;
    let dir =
        std::path::absolute(workdir).with_context(|| format!("--workdir {}", workdir.display()))?;
    let ctx = Ctx {
        root,
        layout: Layout {
            dir,
            name: builder.name.clone(),
        },
        builder,
        platform: Platform::current()?,
    };
    check_problems(&ctx, a)
}

fn check_problems(ctx: &Ctx, a: &CheckArgs) -> anyhow::Result<Vec<String>> {
    let l = &ctx.layout;
    let running = if let Some(r) = on_demand::query(l) {
        check::Running {
            pid: Some(r.listener_pid),
            port: r.port,
            on_demand: true,
        }
    } else {
        let pid = running_pid(l);
        let port = read_state(l)
            .filter(|_| pid.is_some())
            .map_or(ctx.builder.port, |s| s.port);
        check::Running {
            pid,
            port,
            on_demand: false,
        }
    };
    check::problems(
        &ctx.root,
        &ctx.builder,
        &ctx.platform,
        l,
        running,
        &check::Expect {
            disk: a.disk.as_ref().map(std::path::absolute).transpose()?,
            disk_size: a.disk_size,
        },
    )
}

fn input_file(flag: &str, path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    if !path.is_file() {
        return Err(usage!(
            "{flag} {}: no such file; give the path of {what}",
            path.display()
        ));
    }
    Ok(std::path::absolute(path)?)
}

/// Validate the VM flags into a spec.
fn spec(ctx: &Ctx, a: &VmArgs) -> anyhow::Result<VmSpec> {
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

fn profile(ctx: &Ctx) -> QemuProfile {
    ctx.platform.qemu(&ctx.builder.system)
}

/// The accelerator without running anything: `--accel`, the cached probe
/// verdict, or the best candidate. The bool says whether it is settled.
fn known_accel(ctx: &Ctx, a: &VmArgs, profile: &QemuProfile) -> (String, bool) {
    if let Some(acc) = &a.accel {
        return (acc.clone(), true);
    }
    let candidate = vm::candidate_accel(profile);
    if candidate != "kvm" {
        return (candidate, true);
    }
    // Bounded, regular files only (lb-common's reader): a FIFO planted in
    // the working directory must not hang `lb-vm start`.
    let cached = lb_common::fs::read_bounded(&ctx.layout.accel_cache(), true, 64)
        .ok()
        .flatten()
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned());
    match cached {
        Some(v) if ["kvm", "tcg"].contains(&v.as_str()) => (v, true),
        _ => (candidate, false),
    }
}

/// KVM only where a probe boot shows the guest kernel running: here
/// `/dev/kvm` exists but `-accel kvm` has hung or aborted. The verdict is
/// cached in the working directory.
fn choose_accel(ctx: &Ctx, a: &VmArgs, spec: &VmSpec, profile: &QemuProfile) -> String {
    let (accel, settled) = known_accel(ctx, a, profile);
    if settled {
        return accel;
    }
    let Boot::Kernel { kernel, initrd, .. } = &spec.boot else {
        return accel;
    };
    let works = probe_kvm(ctx, profile, kernel, initrd, &spec.system);
    let verdict = if works { "kvm" } else { "tcg" };
    ui::note(&format!(
        "KVM probe: {}; using {verdict} (cached in {})",
        if works {
            "works"
        } else {
            "no kernel output, KVM unusable"
        },
        ctx.layout.accel_cache().display()
    ));
    if let Err(e) = lb_common::fs::write(
        &ctx.layout.accel_cache(),
        verdict.as_bytes(),
        &FileSpec::mode(0o644),
        Apply::Write,
    ) {
        ui::warn(&format!("cannot cache the KVM verdict: {e}"));
    }
    verdict.to_owned()
}

fn probe_kvm(ctx: &Ctx, profile: &QemuProfile, kernel: &Path, initrd: &Path, system: &str) -> bool {
    let usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    if !usable {
        return false;
    }
    let log = ctx
        .layout
        .dir
        .join(format!("{}.kvm-probe.log", ctx.layout.name));
    let _ = std::fs::remove_file(&log);
    let console = vm::default_append(system);
    let cmd = Cmd::new(&profile.binary)
        .args(["-machine", &profile.machine, "-accel", "kvm", "-cpu", "max"])
        .args([
            "-m", "256", "-smp", "1", "-display", "none", "-monitor", "none",
        ])
        .args(["-no-reboot", "-nodefaults", "-kernel"])
        .arg(kernel)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", &console])
        .arg("-serial")
        .arg(format!("file:{}", log.display()));
    ui::verbose(&format!("probing KVM: {}", cmd.display()));
    let Ok(handle) = cmd
        .expression()
        .stdin_null()
        .stdout_null()
        .stderr_null()
        .unchecked()
        .start()
    else {
        return false;
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut works = false;
    while Instant::now() < deadline {
        // The kernel reaching userspace proves vCPUs run; a broken KVM
        // stalls before printing or aborts.
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("Run /init") || text.contains("Freeing unused kernel") {
            works = true;
            break;
        }
        if matches!(handle.try_wait(), Ok(Some(_)) | Err(_)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let _ = handle.kill();
    let _ = std::fs::remove_file(&log);
    works
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_pid(l: &Layout) -> Option<u32> {
    lb_common::fs::read_bounded(&l.pid(), true, 64)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok())
}

fn read_state(l: &Layout) -> Option<State> {
    lb_common::fs::read_bounded(&l.state(), true, 1 << 20)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The builder's process: `Some(pid)` when the pid file names a live
/// process that is its QEMU (or runner).
fn running_pid(l: &Layout) -> Option<u32> {
    let pid = read_pid(l)?;
    let program = read_state(l).map(|s| PathBuf::from(s.program));
    let qmp = l.qmp();
    let mut markers: Vec<&Path> = vec![&qmp];
    if let Some(p) = &program {
        markers.push(p);
    }
    process::is_our_vm(pid, &markers).then_some(pid)
}

/// Remove the runner's TMPDIR (its store image is hundreds of MB).
fn clean_tmp(l: &Layout) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(l.tmp()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", l.tmp().display()))
        }
        _ => Ok(()),
    }
}

/// Remove the pid file, control socket, state and TMPDIR of a VM that is gone.
fn clean_up(l: &Layout) -> anyhow::Result<()> {
    for f in [l.pid(), l.state()] {
        lb_common::fs::remove(&f, Apply::Write)?;
    }
    clean_tmp(l)?;
    // A unix socket is not a file lb_common::fs reads; it only needs unlinking.
    match std::fs::remove_file(l.qmp()) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", l.qmp().display()))
        }
        _ => Ok(()),
    }
}

/// Clean after a process that died behind our back; true if there was one.
fn clean_stale(l: &Layout) -> anyhow::Result<Option<u32>> {
    match read_pid(l) {
        Some(pid) if running_pid(l).is_none() => {
            ui::note(&format!(
                "{}: pid {pid} is not running any more; removed the stale pid file",
                l.pid().display()
            ));
            clean_up(l)?;
            Ok(Some(pid))
        }
        None if l.state().exists() || l.qmp().exists() => {
            clean_up(l)?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

fn address(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Signal the VM's process group when it leads one (so a runner script
/// and the QEMU it started go together), else the process.
fn signal_vm(pid: u32, sig: Signal) {
    let group = i32::try_from(pid)
        .ok()
        .and_then(|p| nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(p))).ok())
        .is_some_and(|g| i64::from(g.as_raw()) == i64::from(pid));
    if group {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), sig);
        }
    } else {
        process::signal(pid, sig);
    }
}

/// The last `n` lines of a log, looking at its last 64 KiB only (a guest
/// console log can grow without end).
fn tail(path: &Path, n: usize) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const WINDOW: u64 = 64 << 10;
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        if f.metadata().is_ok_and(|m| m.is_file())
            && f.seek(SeekFrom::Start(len.saturating_sub(WINDOW))).is_ok()
        {
            let _ = f.take(WINDOW).read_to_end(&mut bytes);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    // A guest's console carries escape sequences: shown, not obeyed.
    lb_common::cmd::last_lines(&text, n)
        .iter()
        .map(|l| lb_common::text::escape_controls(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The error for a failed boot: what QEMU and the guest said last.
fn boot_failure(l: &Layout, what: &str) -> anyhow::Error {
    let console = tail(&l.console(), 15);
    let qemu = tail(&l.qemu_log(), 10);
    // The error itself is one line; the evidence is printed before it.
    if !qemu.is_empty() {
        ui::error(&format!("QEMU said ({}):\n{qemu}", l.qemu_log().display()));
    }
    if !console.is_empty() {
        ui::error(&format!(
            "last console lines ({}):\n{console}",
            l.console().display()
        ));
    }
    anyhow::anyhow!(
        "{what}; nothing left running (console log: {})",
        l.console().display()
    )
}

fn spinner(msg: String) -> Option<indicatif::ProgressBar> {
    if !ui::progress_allowed() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    Some(pb)
}

/// Wait for the SSH banner until `timeout`, giving up early when `dead`
/// says the VM is gone (see `ready` for why probes overlap). A banner
/// counts only while our VM lives and owns the listener: another builder
/// or an sshd answering on the port must not pass as ours.
fn await_ready(
    port: u16,
    vm: u32,
    timeout: Duration,
    mut dead: impl FnMut() -> Option<String>,
) -> Readiness {
    let pb = spinner(format!("waiting for sshd on {}", address(port)));
    let result = ready::await_banner(port, timeout, &mut dead, |waited| {
        if let Some(pb) = &pb {
            pb.set_message(format!(
                "waiting for sshd on {} ({}s)",
                address(port),
                waited.as_secs()
            ));
        }
    });
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    match result {
        Readiness::Ready(_) if port::listener_is(port, vm) == Some(false) => {
            let who = process::port_owner(port).unwrap_or_default();
            Readiness::Died(format!(
                "an SSH server that is not this VM ({who}) answers on {}",
                address(port)
            ))
        }
        Readiness::Ready(_) => dead().map_or(result, Readiness::Died),
        other => other,
    }
}

/// Refuse (or accept) a running builder, a taken port, missing QEMU or
/// keys. `Some(status)` ends `start` early.
fn preflight(
    ctx: &Ctx,
    a: &StartArgs,
    spec: &VmSpec,
    profile: &QemuProfile,
) -> anyhow::Result<Option<Status>> {
    let l = &ctx.layout;
    let apply = Apply::from(a.change);
    if let Some(pid) = running_pid(l) {
        let port = read_state(l).map_or(spec.port, |s| s.port);
        if a.if_not_running || apply != Apply::Write {
            ui::note(&format!("{} is already running (pid {pid})", l.name));
            if apply == Apply::Write {
                ui::out(&address(port))?;
            }
            return Ok(Some(Status::Ok));
        }
        anyhow::bail!(
            "{} is already running (pid {pid}, {}); pass --if-not-running to accept that, or run `lb-vm stop` first",
            l.name,
            address(port)
        );
    }
    if apply == Apply::Write {
        clean_stale(l)?;
    }
    preflight_ports(spec)?;
    if let Boot::Runner(r) = &spec.boot {
        preflight_credentials(ctx, r, spec)?;
    }
    if matches!(spec.boot, Boot::Kernel { .. }) && !lb_common::cmd::exists(&profile.binary) {
        return Err(lb_common::cmd::Error::NotFound {
            program: profile.binary.clone(),
            hint: format!("install {}", profile.package),
        }
        .into());
    }
    if let Boot::Kernel { .. } = spec.boot {
        if !spec.keys.is_dir() {
            return Err(usage!(
                "--keys {}: no such directory; create it holding builder_ed25519.pub (the key the guest accepts), or pass --keys DIR",
                spec.keys.display()
            ));
        }
    }
    Ok(None)
}

/// nix-darwin's own builder runs from its plist (KeepAlive) on 31022:
/// say so, as its port and keys are the ones this builder may want.
fn note_nix_darwin_builder(ctx: &Ctx) {
    let Ok(dir) = lb_common::conf::nixconf::conf_dir(&ctx.root) else {
        return;
    };
    let conf = dir.join("nix.conf");
    if let Some(plist) = lb_common::managers::Managers::detect(&ctx.root, &conf)
        .nix_darwin
        .and_then(|d| d.linux_builder)
    {
        ui::note(&format!(
            "nix-darwin runs its own builder ({}, label {}, port 31022); this one is separate",
            plist.display(),
            lb_common::managers::NIX_DARWIN_BUILDER_LABEL
        ));
    }
}

/// Both ports free: ours (`--port`, on 127.0.0.1) and a runner's own
/// baked-in forward (on all interfaces), which a second runner-based
/// builder would find taken: refused here, before anything starts.
fn preflight_ports(spec: &VmSpec) -> anyhow::Result<()> {
    let runner = matches!(spec.boot, Boot::Runner(_));
    if runner {
        if let Some(t) = port::taken(spec.image_port, true) {
            anyhow::bail!(
                "port {} (the runner's own forward, built in, on all interfaces) is taken by {}: another builder from this runner, or another server; stop it (`lb-vm stop --name ...`), or build the runner with another virtualisation.darwin-builder.hostPort",
                spec.image_port,
                t.who()
            );
        }
    }
    if !runner || spec.port != spec.image_port {
        if let Some(t) = port::taken(spec.port, false) {
            anyhow::bail!(
                "port {} on 127.0.0.1 is taken by {}; stop it or choose another --port",
                spec.port,
                t.who()
            );
        }
    }
    Ok(())
}

/// create-builder asks `sudo --reset-timestamp` for its install-credentials
/// step when the keys differ; started by lb-vm it has no terminal, so that
/// prompt would hang until the timeout. Fail now with the command to run.
fn preflight_credentials(ctx: &Ctx, runner_path: &Path, spec: &VmSpec) -> anyhow::Result<()> {
    let baked = runner::read(runner_path);
    let Some(installed) = baked.installed_pub else {
        return Ok(());
    };
    // The runner's own path is absolute (/etc/nix/...): it is the real
    // system's unless it already lies inside --root.
    let installed = if ctx.root.prefix().is_some_and(|p| installed.starts_with(p)) {
        installed
    } else {
        ctx.root.system(&installed)?
    };
    if let Some(why) = runner::credentials_differ(&spec.keys, &installed) {
        let keys = spec.keys.display();
        let root = ctx
            .root
            .prefix()
            .map(|p| format!(" --root {}", p.display()))
            .unwrap_or_default();
        anyhow::bail!(
            "{why}, and sudo cannot ask for a password under lb-vm; install them first: `sudo lb-keys install {keys}{root}` (or run the runner once in a terminal: cd {} && KEYS={keys} {})",
            spec.layout.dir.display(),
            runner_path.display()
        );
    }
    Ok(())
}

fn start(ctx: &Ctx, a: &StartArgs) -> anyhow::Result<Status> {
    let l = &ctx.layout;
    note_nix_darwin_builder(ctx);
    let spec = spec(ctx, &a.vm)?;
    let apply = Apply::from(a.change);
    let profile = profile(ctx);
    if a.on_demand {
        return on_demand::start(ctx, a, &spec, &profile);
    }
    if let Some(status) = preflight(ctx, a, &spec, &profile)? {
        return Ok(status);
    }
    match apply {
        Apply::Check => {
            ui::note(&format!("{} is not running; start would boot it", l.name));
            return Ok(Status::Failed);
        }
        Apply::DryRun => {
            let (accel, _) = known_accel(ctx, &a.vm, &profile);
            if a.ephemeral {
                ui::out(&format!("rm -f {}", spec.disk.display()))?;
            }
            if matches!(spec.boot, Boot::Kernel { .. }) {
                ui::out(&disk_create_cmd(&spec).display())?;
            }
            ui::out(&spec.command(&profile, &accel).display())?;
            return Ok(Status::Ok);
        }
        Apply::Write => {}
    }
    std::fs::create_dir_all(&l.dir).with_context(|| format!("create {}", l.dir.display()))?;
    if a.ephemeral {
        match std::fs::remove_file(&spec.disk) {
            Ok(()) => ui::note(&format!("--ephemeral: removed {}", spec.disk.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("remove {}", spec.disk.display())),
        }
    }
    let accel = match spec.boot {
        Boot::Kernel { .. } => {
            ensure_disk(&spec)?;
            choose_accel(ctx, &a.vm, &spec, &profile)
        }
        Boot::Runner(_) => {
            // The runner's store image and certs from a run before.
            clean_tmp(l)?;
            std::fs::create_dir_all(l.tmp())
                .with_context(|| format!("create {}", l.tmp().display()))?;
            "runner".to_owned()
        }
    };
    let cmd = spec.command(&profile, &accel);
    for f in [l.console(), l.qemu_log()] {
        match std::fs::remove_file(&f) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("remove {}", f.display()))
            }
            _ => {}
        }
    }
    let _ = std::fs::remove_file(l.qmp());
    let state = |pid: u32| State {
        pid,
        port: spec.port,
        accel: accel.clone(),
        started_at: now(),
        command: cmd.display(),
        program: cmd.program().to_string_lossy().into_owned(),
        image_port: (spec.image_port != spec.port).then_some(spec.image_port),
    };
    if a.foreground {
        // Under launchd our stdout is the service log, which nothing else
        // rotates: keep it bounded at each (re)start.
        if let Ok(true) = supervisor::bound_log(Path::new("/dev/stdout"), 10 << 20, 1 << 20) {
            ui::note("the service log was over 10 MiB: kept its last 1 MiB");
        }
        return foreground(ctx, &spec, &cmd, &state(std::process::id()));
    }
    launch(l, &spec, &cmd, &state, a.timeout)
}

/// Spawn the VM in its own process group with its output in the QEMU
/// log, and record its pid and state; on failure nothing is left running.
fn spawn_vm(
    l: &Layout,
    cmd: &Cmd,
    state: &dyn Fn(u32) -> State,
) -> anyhow::Result<(duct::Handle, State)> {
    ui::verbose(&format!("running: {}", cmd.display()));
    let log = l.qemu_log();
    // Its own process group: a Ctrl-C meant for lb-vm must not reach the
    // VM, and `stop` can signal a runner and its QEMU together.
    let out = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
    let err = out
        .try_clone()
        .with_context(|| format!("open {}", log.display()))?;
    // Both streams to the log: a VM holding our caller's stderr pipe would
    // keep `lb-vm start 2>&1 | ...` (and test harnesses) waiting forever.
    let handle = cmd
        .expression()
        .stdin_null()
        .stdout_file(out)
        .stderr_file(err)
        .unchecked()
        .before_spawn(|c| {
            std::os::unix::process::CommandExt::process_group(c, 0);
            Ok(())
        })
        .start()
        .map_err(|e| cmd.spawn_error(e))?;
    let Some(&pid) = handle.pids().first() else {
        anyhow::bail!("{}: started but has no pid", cmd.display());
    };
    let st = state(pid);
    let recorded = write_json(&l.pid(), format!("{pid}\n").as_bytes())
        .and_then(|()| write_json(&l.state(), serde_json::to_string_pretty(&st)?.as_bytes()));
    if let Err(e) = recorded {
        signal_vm(pid, Signal::SIGKILL);
        let _ = handle.wait();
        return Err(e);
    }
    Ok((handle, st))
}

/// Spawn the VM detached, record it, and wait for its sshd; on failure
/// nothing is left running.
fn launch(
    l: &Layout,
    spec: &VmSpec,
    cmd: &Cmd,
    state: &dyn Fn(u32) -> State,
    timeout: u64,
) -> anyhow::Result<Status> {
    let (handle, st) = spawn_vm(l, cmd, state)?;
    let pid = st.pid;
    ui::note(&format!(
        "booting {} (pid {pid}, accel {}); console log {}",
        l.name,
        st.accel,
        l.console().display()
    ));
    let outcome = await_ready(
        spec.port,
        pid,
        Duration::from_secs(timeout),
        || match handle.try_wait() {
            Ok(Some(out)) => Some(format!("QEMU exited during boot ({})", out.status)),
            Ok(None) => None,
            Err(e) => Some(format!("QEMU failed: {e}")),
        },
    );
    match outcome {
        Readiness::Ready(greeting) => {
            ui::verbose(&format!(
                "sshd answered (its greeting took {:.2} s)",
                greeting.took.as_secs_f64()
            ));
            ui::out(&address(spec.port))?;
            Ok(Status::Ok)
        }
        Readiness::Died(why) => {
            clean_up(l)?;
            Err(boot_failure(l, &why))
        }
        Readiness::TimedOut => {
            signal_vm(pid, Signal::SIGTERM);
            if !process::wait_gone(pid, Duration::from_secs(5)) {
                signal_vm(pid, Signal::SIGKILL);
            }
            let _ = handle.wait();
            clean_up(l)?;
            Err(boot_failure(
                l,
                &format!(
                    "no SSH banner on {} after {}s (raise --timeout if the guest is just slow)",
                    address(spec.port),
                    timeout
                ),
            ))
        }
    }
}

fn write_json(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    lb_common::fs::write(path, bytes, &FileSpec::mode(0o644), Apply::Write)?;
    Ok(())
}

/// `--foreground`: record this process as the VM and become it, so the
/// service manager's signals reach QEMU directly.
fn foreground(ctx: &Ctx, spec: &VmSpec, cmd: &Cmd, state: &State) -> anyhow::Result<Status> {
    use std::os::unix::process::CommandExt as _;
    let l = &ctx.layout;
    write_json(&l.pid(), format!("{}\n", state.pid).as_bytes())?;
    write_json(&l.state(), serde_json::to_string_pretty(state)?.as_bytes())?;
    ui::note(&format!(
        "running {} in the foreground; it is ready when {} answers",
        l.name,
        address(spec.port)
    ));
    let mut std_cmd = std::process::Command::new(cmd.program());
    std_cmd.args(cmd.get_args());
    if let Boot::Runner(_) = spec.boot {
        std_cmd.current_dir(&l.dir);
        for (k, v) in spec.runner_env() {
            std_cmd.env(k, v);
        }
    }
    // exec only returns on failure.
    let err = std_cmd.exec();
    clean_up(l)?;
    Err(cmd.spawn_error(err).into())
}

fn disk_create_cmd(spec: &VmSpec) -> Cmd {
    Cmd::new("qemu-img")
        .hint("install qemu-utils (apt-get install qemu-utils) or qemu")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&spec.disk)
        .arg(format!("{}M", spec.disk_size))
}

/// Create the disk if absent, grow it if smaller than `--disk-size`.
fn ensure_disk(spec: &VmSpec) -> anyhow::Result<()> {
    let want = spec.disk_size * 1024 * 1024;
    if !spec.disk.exists() {
        disk_create_cmd(spec).run()?;
        ui::note(&format!(
            "created {} ({} MiB)",
            spec.disk.display(),
            spec.disk_size
        ));
        return Ok(());
    }
    let info = Cmd::new("qemu-img")
        .hint("install qemu-utils (apt-get install qemu-utils) or qemu")
        .args(["info", "--output=json", "-U"])
        .arg(&spec.disk)
        .run()?;
    let v: serde_json::Value = serde_json::from_slice(&info.stdout)
        .with_context(|| format!("qemu-img info {}: not JSON", spec.disk.display()))?;
    let have = v
        .get("virtual-size")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("qemu-img info {}: no virtual-size", spec.disk.display()))?;
    if have < want {
        Cmd::new("qemu-img")
            .args(["resize", "-q"])
            .arg(&spec.disk)
            .arg(format!("{}M", spec.disk_size))
            .run()?;
        ui::note(&format!(
            "grew {} from {} MiB to {} MiB",
            spec.disk.display(),
            have / (1024 * 1024),
            spec.disk_size
        ));
    } else if have > want {
        ui::verbose(&format!(
            "{} is {} MiB, larger than --disk-size; disks are never shrunk",
            spec.disk.display(),
            have / (1024 * 1024)
        ));
    }
    Ok(())
}

fn wait(ctx: &Ctx, a: &WaitArgs) -> anyhow::Result<Status> {
    let l = &ctx.layout;
    if let Some(r) = on_demand::query(l) {
        // The listener holds every connection until the guest's sshd
        // answers: the builder is ready to be used now.
        ui::out(&address(r.port))?;
        return Ok(Status::Ok);
    }
    let state = read_state(l);
    let port = state.as_ref().map_or(ctx.builder.port, |s| s.port);
    let pid = running_pid(l);
    if pid.is_none() {
        clean_stale(l)?;
        anyhow::bail!(
            "{} is not running (no live pid in {}); start it with `lb-vm start`",
            l.name,
            l.pid().display()
        );
    }
    let vm = pid.unwrap_or_default();
    let outcome = await_ready(port, vm, Duration::from_secs(a.timeout), || {
        pid.filter(|p| !process::alive(*p))
            .map(|p| format!("the VM (pid {p}) exited"))
    });
    match outcome {
        Readiness::Ready(_) => {
            ui::out(&address(port))?;
            Ok(Status::Ok)
        }
        Readiness::Died(why) => {
            clean_up(l)?;
            Err(boot_failure(l, &why))
        }
        Readiness::TimedOut => {
            anyhow::bail!(
                "no SSH banner on {} after {}s; the VM is still running (see {})",
                address(port),
                a.timeout,
                l.console().display()
            )
        }
    }
}

#[derive(Debug, Serialize)]
struct StatusReport {
    name: String,
    running: bool,
    ready: bool,
    pid: Option<u32>,
    port: u16,
    accel: Option<String>,
    uptime_secs: Option<u64>,
    console_log: PathBuf,
    workdir: PathBuf,
    /// The pid of a VM that had died behind lb-vm's back (its files were removed).
    stale_pid: Option<u32>,
    /// `always-on` (`start`) or `on-demand` (`start --on-demand`).
    mode: &'static str,
    /// Whether the VM itself runs (with `on-demand`, it may be off).
    vm_up: bool,
    /// Connections open through the on-demand listener.
    connections: Option<usize>,
    /// Seconds until the on-demand listener powers the idle VM off.
    power_off_in_secs: Option<u64>,
    /// The on-demand listener's own report.
    on_demand: Option<on_demand::Report>,
}

fn status(ctx: &Ctx, a: &StatusArgs) -> anyhow::Result<Status> {
    let l = &ctx.layout;
    let state = read_state(l);
    let pid = running_pid(l);
    let stale_pid = if pid.is_none() { clean_stale(l)? } else { None };
    let listener = on_demand::query(l);
    let port = listener.as_ref().map_or_else(
        || state.as_ref().map_or(ctx.builder.port, |s| s.port),
        |r| r.port,
    );
    let vm_up = pid.is_some();
    // On demand, the builder runs while its listener does, and is ready:
    // the listener holds connections until the guest's sshd answers.
    let running = vm_up || listener.is_some();
    let ready = listener.is_some() || (vm_up && process::ssh_banner(port).is_some());
    let r = StatusReport {
        name: l.name.clone(),
        running,
        ready: ready && (listener.is_some() || pid.is_some_and(|p| port::ours_answers(port, p))),
        pid,
        port,
        accel: state.as_ref().filter(|_| running).map(|s| s.accel.clone()),
        uptime_secs: state
            .as_ref()
            .filter(|_| running)
            .map(|s| now().saturating_sub(s.started_at)),
        console_log: l.console(),
        workdir: l.dir.clone(),
        stale_pid,
        mode: if listener.is_some() {
            "on-demand"
        } else {
            "always-on"
        },
        vm_up,
        connections: listener.as_ref().map(|r| r.connections),
        power_off_in_secs: listener.as_ref().and_then(|r| r.power_off_in_secs),
        on_demand: listener,
    };
    if a.json {
        ui::out(&serde_json::to_string_pretty(&r)?)?;
    } else {
        let opt = |v: Option<String>| v.unwrap_or_else(|| "-".to_owned());
        ui::out(&format!("name: {}", r.name))?;
        ui::out(&format!(
            "running: {}",
            if r.running { "yes" } else { "no" }
        ))?;
        ui::out(&format!("ready: {}", if r.ready { "yes" } else { "no" }))?;
        ui::out(&format!("mode: {}", r.mode))?;
        if let Some(od) = &r.on_demand {
            ui::out(&format!(
                "vm: {} (listener pid {}, {} boots, {} failed)",
                od.vm.as_str(),
                od.listener_pid,
                od.boots,
                od.boot_failures
            ))?;
            ui::out(&format!(
                "connections: {} ({} waiting for the VM)",
                od.connections, od.waiting
            ))?;
            ui::out(&format!(
                "power-off in: {}",
                opt(od.power_off_in_secs.map(|s| format!("{s}s")))
            ))?;
            if let Some(e) = &od.last_error {
                ui::out(&format!("last error: {e}"))?;
            }
        }
        ui::out(&format!("pid: {}", opt(r.pid.map(|p| p.to_string()))))?;
        ui::out(&format!("port: {}", r.port))?;
        ui::out(&format!("accel: {}", opt(r.accel.clone())))?;
        ui::out(&format!(
            "uptime: {}",
            opt(r.uptime_secs.map(|s| format!("{s}s")))
        ))?;
        ui::out(&format!("console log: {}", r.console_log.display()))?;
        if let Some(p) = stale_pid {
            ui::out(&format!("stale pid: {p} (had died; files removed)"))?;
        }
    }
    if !running {
        ui::note(&format!(
            "{} is down; start it with `lb-vm start --workdir {}` and the --kernel/--initrd or --runner it boots",
            l.name,
            l.dir.display()
        ));
    }
    Ok(if running { Status::Ok } else { Status::Failed })
}

fn stop(ctx: &Ctx, a: &StopArgs) -> anyhow::Result<Status> {
    let l = &ctx.layout;
    if let Some(status) = on_demand::stop(l, a)? {
        return Ok(status);
    }
    let apply = Apply::from(a.change);
    // launchd (KeepAlive) or systemd (Restart=) runs it: a kill would be
    // undone; a clean power-down exits 0, which neither restarts.
    let svc = supervisor::Service::for_os(ctx.platform.os, &ctx.root, &l.name, a.label.as_deref())?;
    let managed = svc.installed_for(&l.dir);
    let Some(pid) = running_pid(l) else {
        if apply == Apply::Write {
            clean_stale(l)?;
        }
        ui::note(&format!("{} is not running", l.name));
        return Ok(Status::Ok);
    };
    match apply {
        Apply::Check => return Ok(Status::Failed),
        Apply::DryRun => {
            ui::out(&format!("qmp {} system_powerdown", l.qmp().display()))?;
            if managed {
                ui::out(&format!(
                    "after {}s, if still running (its service would restart a killed VM):",
                    a.timeout
                ))?;
                supervisor::run_all(&svc.stop(), true)?;
            }
            ui::out(&format!(
                "after {}s: kill -TERM {pid}; after {}s: kill -KILL {pid}",
                a.timeout, a.timeout
            ))?;
            return Ok(Status::Ok);
        }
        Apply::Write => {}
    }
    let timeout = Duration::from_secs(a.timeout);
    let powered = match qmp::execute(&l.qmp(), "system_powerdown") {
        Ok(_) => {
            ui::note(&format!("asked {} (pid {pid}) to power down", l.name));
            process::wait_gone(pid, timeout)
        }
        Err(e) => {
            ui::warn(&format!("{e}; stopping it otherwise"));
            false
        }
    };
    let how = if powered {
        "powered down"
    } else {
        if managed {
            ui::note(&format!(
                "{} runs it and would restart a killed VM: stopping it there",
                svc.file.display()
            ));
            run_service_commands(ctx, apply, &svc.stop(), "stopping the service")?;
        }
        if process::wait_gone(pid, Duration::from_secs(5)) {
            "stopped by its service"
        } else {
            terminate(pid, timeout)
        }
    };
    if process::alive(pid) {
        anyhow::bail!("pid {pid} survived SIGKILL; it may be stuck in the kernel");
    }
    clean_up(l)?;
    ui::note(&format!("{} stopped ({how})", l.name));
    if managed {
        ui::note(&format!(
            "its service stays installed and starts it at boot; start it now: {}",
            svc.start_hint()
        ));
    }
    Ok(Status::Ok)
}

fn terminate(pid: u32, timeout: Duration) -> &'static str {
    ui::note(&format!("sending SIGTERM to pid {pid}"));
    signal_vm(pid, Signal::SIGTERM);
    if process::wait_gone(pid, timeout) {
        return "terminated";
    }
    ui::warn(&format!("pid {pid} ignored SIGTERM; sending SIGKILL"));
    signal_vm(pid, Signal::SIGKILL);
    let _ = process::wait_gone(pid, Duration::from_secs(5));
    "killed"
}

fn config(ctx: &Ctx, a: &ConfigArgs) -> anyhow::Result<Status> {
    let spec = spec(ctx, &a.vm)?;
    let profile = profile(ctx);
    let (accel, settled) = known_accel(ctx, &a.vm, &profile);
    let accel = if matches!(spec.boot, Boot::Runner(_)) {
        "runner".to_owned()
    } else {
        accel
    };
    let cmd = spec.command(&profile, &accel);
    let l = &ctx.layout;
    let (kernel, initrd, append, runner) = match &spec.boot {
        Boot::Kernel {
            kernel,
            initrd,
            append,
        } => (Some(kernel), Some(initrd), Some(append), None),
        Boot::Runner(r) => (None, None, None, Some(r)),
    };
    let env: serde_json::Map<String, serde_json::Value> = spec
        .runner_env()
        .into_iter()
        .filter(|_| runner.is_some())
        .map(|(k, v)| (k.to_owned(), v.to_string_lossy().into()))
        .collect();
    let v = serde_json::json!({
        "name": l.name,
        "workdir": l.dir,
        "pid_file": l.pid(),
        "qmp_socket": l.qmp(),
        "console_log": l.console(),
        "qemu_log": l.qemu_log(),
        "state_file": l.state(),
        "disk": spec.disk,
        "disk_size_mib": spec.disk_size,
        "memory_mib": spec.memory,
        "cpus": spec.cpus,
        "port": spec.port,
        "address": address(spec.port),
        "keys": spec.keys,
        "system": spec.system,
        "accel": accel,
        "accel_settled": settled,
        "kernel": kernel,
        "initrd": initrd,
        "append": append,
        "runner": runner,
        "env": env,
        "program": cmd.program().to_string_lossy(),
        "args": cmd.get_args().iter().map(|s| s.to_string_lossy().into_owned()).collect::<Vec<_>>(),
        "command": cmd.display(),
    });
    if a.json {
        ui::out(&serde_json::to_string_pretty(&v)?)?;
    } else if let serde_json::Value::Object(map) = &v {
        for (k, val) in map {
            if k == "args" || k == "env" {
                continue;
            }
            let text = match val {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Null => "-".to_owned(),
                other => other.to_string(),
            };
            ui::out(&format!("{k}: {text}"))?;
        }
    }
    if !settled {
        ui::note("accel: kvm is not probed yet; `start` probes it and falls back to tcg");
    }
    Ok(Status::Ok)
}

/// The PATH a service gets: launchd's default (/usr/bin:/bin:/usr/sbin:/sbin)
/// has no Nix profile and no Homebrew, where QEMU and ssh-keygen live.
const SERVICE_PATH: &str = "/nix/var/nix/profiles/default/bin:/run/current-system/sw/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// `lb-vm start --foreground ...` as the service runs it.
fn service_argv(ctx: &Ctx, a: &ServiceArgs, spec: &VmSpec) -> anyhow::Result<Vec<OsString>> {
    if a.on_demand {
        on_demand::check_port(spec)?;
    }
    let l = &ctx.layout;
    let exe = std::env::current_exe().context("find lb-vm's own path for the service")?;
    let mut argv: Vec<OsString> = vec![exe.into_os_string(), "start".into(), "--foreground".into()];
    if a.on_demand {
        argv.extend([
            "--on-demand".into(),
            "--idle".into(),
            humantime::format_duration(a.idle).to_string().into(),
        ]);
    }
    argv.extend::<[OsString; 8]>([
        "--name".into(),
        l.name.clone().into(),
        "--workdir".into(),
        l.dir.clone().into_os_string(),
        "--port".into(),
        spec.port.to_string().into(),
        "--system".into(),
        spec.system.clone().into(),
    ]);
    let opt = |flag: &str, v: Option<String>| -> Vec<OsString> {
        v.map(|v| vec![flag.into(), v.into()]).unwrap_or_default()
    };
    match &spec.boot {
        // A runner's memory, cores and disk are its own unless asked.
        Boot::Runner(r) => {
            argv.extend(["--runner".into(), r.clone().into_os_string()]);
            argv.extend(opt("--memory", a.vm.memory.map(|m| m.to_string())));
            argv.extend(opt("--cpus", a.vm.cpus.map(|m| m.to_string())));
            argv.extend(opt("--disk-size", a.vm.disk_size.map(|m| m.to_string())));
        }
        Boot::Kernel {
            kernel,
            initrd,
            append,
        } => {
            argv.extend([
                "--kernel".into(),
                kernel.clone().into_os_string(),
                "--initrd".into(),
                initrd.clone().into_os_string(),
                "--append".into(),
                append.into(),
                "--disk-size".into(),
                spec.disk_size.to_string().into(),
                "--memory".into(),
                spec.memory.to_string().into(),
                "--cpus".into(),
                spec.cpus.to_string().into(),
            ]);
        }
    }
    argv.extend([
        "--disk".into(),
        spec.disk.clone().into_os_string(),
        "--keys".into(),
        spec.keys.clone().into_os_string(),
    ]);
    if let Some(acc) = &a.vm.accel {
        argv.extend(["--accel".into(), acc.into()]);
    }
    Ok(argv)
}

fn service(ctx: &Ctx, a: &ServiceArgs) -> anyhow::Result<Status> {
    let l = &ctx.layout;
    let kind = if a.launchd {
        supervisor::Kind::Launchd
    } else {
        supervisor::Kind::Systemd
    };
    let svc = supervisor::Service::new(kind, &ctx.root, &l.name, a.label.as_deref())?;
    let apply = Apply::from(a.change);
    if a.uninstall {
        return uninstall_service(ctx, &svc, apply);
    }
    let spec = spec(ctx, &a.vm)?;
    let argv = service_argv(ctx, a, &spec)?;
    let mut env = vec![("PATH".to_owned(), SERVICE_PATH.to_owned())];
    // sudo and launchd drop the user's NIX_SSL_CERT_FILE; the runner needs
    // it to give the guest a CA bundle.
    if let Some(c) = runner::cert_file() {
        env.push(("NIX_SSL_CERT_FILE".to_owned(), c.display().to_string()));
    }
    let s = service::ServiceSpec {
        name: l.name.clone(),
        label: svc.id.clone(),
        argv: argv
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect(),
        workdir: l.dir.display().to_string(),
        tmpdir: l.tmp().display().to_string(),
        env,
        on_demand: a.on_demand,
    };
    let text = if a.launchd { s.plist()? } else { s.unit()? };
    if !a.install {
        let mut o = std::io::stdout().lock();
        o.write_all(text.as_bytes())?;
        o.flush()?;
        return Ok(Status::Ok);
    }
    svc.refuse_foreign()?;
    if apply == Apply::Write {
        // launchd does not create WorkingDirectory; the VM's files go there.
        std::fs::create_dir_all(&l.dir).with_context(|| format!("create {}", l.dir.display()))?;
    }
    let outcome = lb_common::fs::write(&svc.file, text.as_bytes(), &FileSpec::mode(0o644), apply)?;
    if apply == Apply::Check {
        return Ok(if outcome.changed() {
            Status::Failed
        } else {
            Status::Ok
        });
    }
    let loaded = ctx.root.is_real() && svc.loaded();
    if !outcome.changed() && loaded {
        ui::note(&format!(
            "{} is already up to date and loaded",
            svc.file.display()
        ));
        return Ok(Status::Ok);
    }
    let cmds = svc.load(loaded);
    run_service_commands(ctx, apply, &cmds, &format!("wrote {}", svc.file.display()))?;
    Ok(Status::Ok)
}

/// Run launchctl/systemctl commands: printed under `-n`; for a scratch
/// `--root` only named (the machine's service manager knows nothing of
/// files there).
fn run_service_commands(
    ctx: &Ctx,
    apply: Apply,
    cmds: &[Vec<String>],
    done: &str,
) -> anyhow::Result<()> {
    if cmds.is_empty() {
        ui::note(done);
        return Ok(());
    }
    let shown: Vec<String> = cmds.iter().map(|c| Cmd::from_argv(c).display()).collect();
    match apply {
        Apply::DryRun => supervisor::run_all(cmds, true),
        Apply::Check => Ok(()),
        Apply::Write if !ctx.root.is_real() => {
            ui::note(&format!(
                "{done}; --root is a scratch root, so not running: {}",
                shown.join(" && ")
            ));
            Ok(())
        }
        Apply::Write => {
            supervisor::run_all(cmds, false)?;
            ui::note(&format!("{done}; ran: {}", shown.join(" && ")));
            Ok(())
        }
    }
}

fn uninstall_service(ctx: &Ctx, svc: &supervisor::Service, apply: Apply) -> anyhow::Result<Status> {
    let l = &ctx.layout;
    if std::fs::symlink_metadata(&svc.file).is_err() {
        ui::note(&format!("{} is not installed", svc.file.display()));
        return Ok(Status::Ok);
    }
    svc.refuse_foreign()?;
    if !svc.installed_for(&l.dir) {
        anyhow::bail!(
            "{}: not lb-vm's service for {} in {}; remove it by hand if it is yours",
            svc.file.display(),
            l.name,
            l.dir.display()
        );
    }
    if apply == Apply::Check {
        return Ok(Status::Failed);
    }
    let loaded = ctx.root.is_real() && svc.loaded();
    if loaded || apply == Apply::DryRun || !ctx.root.is_real() {
        run_service_commands(ctx, apply, &svc.unload(), "unloading")?;
    }
    lb_common::fs::remove(&svc.file, apply)?;
    run_service_commands(
        ctx,
        apply,
        &svc.after_removal(),
        &format!("removed {}", svc.file.display()),
    )?;
    Ok(Status::Ok)
}
