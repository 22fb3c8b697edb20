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
//! Writes, all in the working directory (`--workdir`, default
//! `/var/lib/linux-builder` under `--root`), named
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
//!
//! The pieces: `cli` (the flags, and their checks into a [`vm::VmSpec`]),
//! `vm` (the spec, its files, its command line and the flags that name it
//! again), `accel` (the accelerator and the KVM probe), `state` (the pid
//! and state files), `boot` (spawn, readiness, disk), `cmd::*` (one file
//! per command), `report` (the text/JSON printer), `on_demand` (the
//! listener), `service` and `supervisor` (launchd and systemd).

mod accel;
mod boot;
pub mod check;
mod cli;
mod cmd;
mod examples;
mod on_demand;
mod port;
mod process;
mod qmp;
mod ready;
mod relay;
mod report;
pub mod runner;
pub mod service;
mod state;
pub mod supervisor;
pub mod vm;

use std::path::Path;

use lb_common::builder::{Builder, BuilderArgs};
use lb_common::exit::Status;
use lb_common::paths::Root;
use lb_common::platform::Platform;
use lb_common::Context as _;

pub use crate::cli::{
    command, CheckArgs, Cli, Command, ConfigArgs, DiskArgs, ServiceArgs, StartArgs, StatusArgs,
    StopArgs, VmArgs, WaitArgs,
};
pub use crate::cmd::check::for_doctor as problems;
use crate::vm::Layout;

/// What every command works on: the root, the builder, this machine, and
/// the builder's files.
struct Ctx {
    root: Root,
    builder: Builder,
    platform: Platform,
    layout: Layout,
}

impl Ctx {
    /// Resolve the builder flags and the working directory, on this
    /// machine's platform.
    fn new(
        global_root: Option<&Path>,
        args: &BuilderArgs,
        workdir: Option<&Path>,
    ) -> lb_common::Result<Self> {
        Self::on(global_root, args, workdir, || Ok(Platform::current()?))
    }

    fn on(
        global_root: Option<&Path>,
        args: &BuilderArgs,
        workdir: Option<&Path>,
        platform: impl FnOnce() -> lb_common::Result<Platform>,
    ) -> lb_common::Result<Self> {
        let root = Root::new(global_root)?;
        let builder = args.resolve(&root)?;
        let platform = platform()?;
        let dir = workdir_of(&root, workdir)?;
        let layout = Layout {
            dir,
            name: builder.name.clone(),
        };
        Ok(Ctx {
            root,
            builder,
            platform,
            layout,
        })
    }
}

/// Where nix-darwin's linux-builder keeps its files, and lb-vm's default
/// working directory (under `--root`).
pub const DEFAULT_WORKDIR: &str = "/var/lib/linux-builder";

/// The working directory: `--workdir` as given (made absolute: it is the
/// user's own, like the manual's workingDirectory, never placed under
/// `--root`), else [`DEFAULT_WORKDIR`] under `--root`, so every command
/// finds the builder wherever it is run from.
///
/// # Errors
/// The current directory cannot be read, or the default leaves `--root`.
pub fn workdir_of(root: &Root, given: Option<&Path>) -> lb_common::Result<std::path::PathBuf> {
    match given {
        Some(w) => {
            Ok(std::path::absolute(w).with_context(|| format!("--workdir {}", w.display()))?)
        }
        None => Ok(root.system(Path::new(DEFAULT_WORKDIR))?),
    }
}

/// Run the tool.
///
/// # Errors
/// Bad input (status 2) and failures (status 1), each one line.
pub fn run(cli: Cli) -> lb_common::Result<Status> {
    let ctx = Ctx::new(
        cli.global.root.as_deref(),
        &cli.builder,
        cli.workdir.as_deref(),
    )?;
    match cli.command {
        Command::Start(a) => cmd::start::start(&ctx, &a),
        Command::Wait(a) => cmd::wait::wait(&ctx, &a),
        Command::Status(a) => cmd::status::status(&ctx, &a),
        Command::Stop(a) => cmd::stop::stop(&ctx, &a),
        Command::Check(a) => cmd::check::run(&ctx, &a),
        Command::Config(a) => cmd::config::config(&ctx, &a),
        Command::Service(a) => cmd::service::service(&ctx, &a),
        Command::Remove(a) => cmd::remove::remove(&ctx, &a),
    }
}
