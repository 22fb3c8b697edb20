//! `lb-vm start`: refuse what cannot work, then boot the VM detached and
//! wait for its sshd, or (`--foreground`) become it; `--on-demand` hands
//! over to [`crate::on_demand`].

use std::path::Path;
use std::time::Duration;

use lb_common::cmd::Cmd;
use lb_common::exit::Status;
use lb_common::fs::Apply;
use lb_common::plan::{self, DryRunSays, Inspection, Needed, Step};
use lb_common::platform::QemuProfile;
use lb_common::{ui, usage};
use nix::sys::signal::Signal;

use crate::boot::{self, address, await_ready, boot_failure, signal_vm};
use crate::cli::{self, StartArgs};
use crate::ready::Readiness;
use crate::state::{self, State};
use crate::vm::{Boot, Layout, VmSpec};
use crate::{accel, on_demand, port, process, runner, supervisor, Ctx};

/// Refuse (or accept) a running builder, a taken port, missing QEMU or
/// keys. `Some(status)` ends `start` early.
pub(crate) fn preflight(
    ctx: &Ctx,
    a: &StartArgs,
    spec: &VmSpec,
    profile: &QemuProfile,
) -> lb_common::Result<Option<Status>> {
    let l = &ctx.layout;
    let apply = Apply::from(a.change);
    if let Some(pid) = state::running_pid(l) {
        let port = state::read_state(l).map_or(spec.port, |s| s.port);
        if a.if_not_running || apply != Apply::Write {
            ui::note(&format!("{} is already running (pid {pid})", l.name));
            if apply == Apply::Write {
                boot::print_ready(&l.name, port, Some(pid), a.json)?;
            }
            return Ok(Some(Status::Ok));
        }
        lb_common::bail!(
            "{} is already running (pid {pid}, {}); pass --if-not-running to accept that, or run `lb-vm stop` first",
            l.name,
            address(port)
        );
    }
    if apply == Apply::Write {
        state::clean_stale(l)?;
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
fn preflight_ports(spec: &VmSpec) -> lb_common::Result<()> {
    let runner = matches!(spec.boot, Boot::Runner(_));
    if runner {
        if let Some(t) = port::taken(spec.image_port, true) {
            lb_common::bail!(
                "port {} (the runner's own forward, built in, on all interfaces) is taken by {}: another builder from this runner, or another server; stop it (`lb-vm stop --name ...`), or build the runner with another virtualisation.darwin-builder.hostPort",
                spec.image_port,
                t.who()
            );
        }
    }
    if !runner || spec.port != spec.image_port {
        if let Some(t) = port::taken(spec.port, false) {
            lb_common::bail!(
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
fn preflight_credentials(ctx: &Ctx, runner_path: &Path, spec: &VmSpec) -> lb_common::Result<()> {
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
        lb_common::bail!(
            "{why}, and sudo cannot ask for a password under lb-vm; install them first: `sudo lb-keys install {keys}{root}` (or run the runner once in a terminal: cd {} && KEYS={keys} {})",
            spec.layout.dir.display(),
            runner_path.display()
        );
    }
    Ok(())
}

pub(crate) fn start(ctx: &Ctx, a: &StartArgs) -> lb_common::Result<Status> {
    note_nix_darwin_builder(ctx);
    let spec = cli::spec(ctx, &a.vm)?;
    let apply = Apply::from(a.change);
    let profile = cli::profile(ctx);
    if a.on_demand {
        return on_demand::start(ctx, a, &spec, &profile);
    }
    if let Some(status) = preflight(ctx, a, &spec, &profile)? {
        return Ok(status);
    }
    let booted = plan::apply(
        apply,
        &BootVm {
            ctx,
            a,
            spec: &spec,
            profile: &profile,
        },
    )?;
    Ok(booted.status())
}

/// Booting the builder, which is not running (preflight said so): `-n`
/// shows the commands (the disk, QEMU), `--check` says it would boot it.
struct BootVm<'a> {
    ctx: &'a Ctx,
    a: &'a StartArgs,
    spec: &'a VmSpec,
    profile: &'a QemuProfile,
}

impl Step for BootVm<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        let (l, spec) = (&self.ctx.layout, self.spec);
        let (accel, _) = accel::known(l, &self.a.vm, self.profile);
        let mut preview = Vec::new();
        if self.a.ephemeral {
            preview.push(format!("rm -f {}", spec.disk.display()));
        }
        if matches!(spec.boot, Boot::Kernel { .. }) {
            preview.push(boot::disk_create_cmd(spec).display());
        }
        preview.push(spec.command(self.profile, &accel).display());
        Ok(Inspection::Needed(Needed {
            preview,
            would: vec![format!("{} is not running; start would boot it", l.name)],
            dry_run_says: DryRunSays::Nothing,
        }))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let (ctx, a, spec, profile) = (self.ctx, self.a, self.spec, self.profile);
        let l = &ctx.layout;
        lb_common::fs::ensure_dir(&l.dir)?;
        if a.ephemeral && lb_common::fs::remove_entry(&spec.disk)? {
            ui::note(&format!("--ephemeral: removed {}", spec.disk.display()));
        }
        let accel = match spec.boot {
            Boot::Kernel { .. } => {
                boot::ensure_disk(spec)?;
                accel::choose(l, &a.vm, spec, profile)
            }
            Boot::Runner(_) => {
                // The runner's store image and certs from a run before.
                state::clean_tmp(l)?;
                lb_common::fs::ensure_dir(&l.tmp())?;
                "runner".to_owned()
            }
        };
        let cmd = spec.command(profile, &accel);
        for f in [l.console(), l.qemu_log()] {
            lb_common::fs::remove_entry(&f)?;
        }
        let _ = lb_common::fs::remove_entry(&l.qmp());
        let state = State::new(spec, &accel, &cmd);
        if a.foreground {
            // Under launchd our stdout is the service log, which nothing else
            // rotates: keep it bounded at each (re)start.
            if let Ok(true) = supervisor::bound_log(Path::new("/dev/stdout"), 10 << 20, 1 << 20) {
                ui::note("the service log was over 10 MiB: kept its last 1 MiB");
            }
            return foreground(ctx, spec, &cmd, &state).map(|_| ());
        }
        launch(l, spec, &cmd, &state, a.timeout, a.json).map(|_| ())
    }
}

/// Spawn the VM detached, record it, and wait for its sshd; on failure
/// nothing is left running.
fn launch(
    l: &Layout,
    spec: &VmSpec,
    cmd: &Cmd,
    state: &State,
    timeout: u64,
    json: bool,
) -> lb_common::Result<Status> {
    let child = boot::spawn_vm(l, cmd, state)?;
    let pid = child.pid();
    ui::note(&format!(
        "booting {} (pid {pid}, accel {}); console log {}",
        l.name,
        state.accel,
        l.console().display()
    ));
    let outcome = await_ready(spec.port, pid, Duration::from_secs(timeout), || match child
        .try_wait()
    {
        Ok(Some(status)) => Some(format!("QEMU exited during boot ({status})")),
        Ok(None) => None,
        Err(e) => Some(format!("QEMU failed: {e}")),
    });
    match outcome {
        Readiness::Ready(greeting) => {
            ui::verbose(&format!(
                "sshd answered (its greeting took {:.2} s)",
                greeting.took.as_secs_f64()
            ));
            boot::print_ready(&l.name, spec.port, Some(pid), json)?;
            Ok(Status::Ok)
        }
        Readiness::Died(why) => {
            state::clean_up(l)?;
            Err(boot_failure(l, &why))
        }
        Readiness::TimedOut => {
            signal_vm(pid, Signal::SIGTERM);
            if !process::wait_gone(pid, Duration::from_secs(5)) {
                signal_vm(pid, Signal::SIGKILL);
            }
            let _ = child.wait();
            state::clean_up(l)?;
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

/// `--foreground`: record this process as the VM and become it, so the
/// service manager's signals reach QEMU directly.
fn foreground(ctx: &Ctx, spec: &VmSpec, cmd: &Cmd, state: &State) -> lb_common::Result<Status> {
    let l = &ctx.layout;
    state::record(l, std::process::id(), state)?;
    ui::note(&format!(
        "running {} in the foreground; it is ready when {} answers",
        l.name,
        address(spec.port)
    ));
    // A runner's command carries its directory and environment. exec
    // only returns on failure.
    let err = cmd.replace_process();
    state::clean_up(l)?;
    Err(err.into())
}
