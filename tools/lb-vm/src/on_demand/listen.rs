//! `lb-vm start --on-demand`: the refusals, the dry run, and the detached
//! listener (this command again with `--foreground`).

use std::cell::Cell;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use lb_common::cmd::{Cmd, Sink};
use lb_common::exit::Status;
use lb_common::fs::Apply;
use lb_common::plan::{self, Applied, DryRunSays, Inspection, Needed, Step};
use lb_common::platform::QemuProfile;
use lb_common::Context as _;
use lb_common::{ui, usage};

use super::{clean_stale, query};
use crate::boot::address;
use crate::cli::StartArgs;
use crate::vm::{Boot, Layout, VmSpec};
use crate::{accel, Ctx};

/// `lb-vm start --on-demand`: refuse what cannot work, then listen here
/// (`--foreground`) or in a detached copy of this command.
pub fn start(
    ctx: &Ctx,
    a: &StartArgs,
    spec: &VmSpec,
    profile: &QemuProfile,
) -> lb_common::Result<Status> {
    let l = &ctx.layout;
    let apply = Apply::from(a.change);
    if a.idle < Duration::from_secs(1) {
        return Err(usage!(
            "--idle {}: give at least 1s (for example 5m, 3h; default 180m)",
            humantime::format_duration(a.idle)
        ));
    }
    if let Some(r) = query(l) {
        if a.if_not_running || apply != Apply::Write {
            ui::note(&format!(
                "{} is already listening on demand (pid {}, VM {})",
                l.name,
                r.listener_pid,
                r.vm.as_str()
            ));
            if apply == Apply::Write {
                crate::boot::print_ready(&l.name, r.port, r.vm_pid, a.json)?;
            }
            return Ok(Status::Ok);
        }
        lb_common::bail!(
            "{} is already listening on demand on {} (pid {}); pass --if-not-running to accept that, or run `lb-vm stop` first",
            l.name,
            address(r.port),
            r.listener_pid
        );
    }
    check_port(spec)?;
    if let Some(status) = crate::cmd::start::preflight(ctx, a, spec, profile)? {
        return Ok(status);
    }
    let step = Listen {
        ctx,
        a,
        spec,
        profile,
        served: Cell::new(Status::Ok),
    };
    Ok(match plan::apply(apply, &step)? {
        Applied::Changed => step.served.get(),
        other => other.status(),
    })
}

/// Listen on demand: here (`--foreground`, until told to stop) or in a
/// detached copy of this command.
struct Listen<'a> {
    ctx: &'a Ctx,
    a: &'a StartArgs,
    spec: &'a VmSpec,
    profile: &'a QemuProfile,
    /// The status the listener (or the detached start) ended with.
    served: Cell<Status>,
}

impl Step for Listen<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        let Listen {
            ctx,
            a,
            spec,
            profile,
            ..
        } = *self;
        let l = &ctx.layout;
        let (accel, _) = accel::known(l, &a.vm, profile);
        let accel = if matches!(spec.boot, Boot::Runner(_)) {
            "runner".to_owned()
        } else {
            accel
        };
        let mut guest = spec.clone();
        guest.port = private_port(spec.image_port);
        Ok(Inspection::Needed(Needed {
            preview: vec![
                format!(
                    "listen on {} (on demand; power off after {} idle)",
                    address(spec.port),
                    humantime::format_duration(a.idle)
                ),
                format!(
                    "on the first connection (guest port chosen free at each boot): {}",
                    guest.command(profile, &accel).display()
                ),
            ],
            would: vec![format!(
                "{} is not listening; start would listen on {} on demand",
                l.name,
                address(spec.port)
            )],
            dry_run_says: DryRunSays::Nothing,
        }))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let l = &self.ctx.layout;
        clean_stale(l);
        self.served.set(if self.a.foreground {
            super::serve::serve(self.ctx, self.a, self.spec, self.profile)?
        } else {
            detach(l, self.spec.port, self.a.json)?
        });
        Ok(())
    }
}

/// A runner's QEMU binds its baked-in forward itself: the listener needs
/// another port.
pub fn check_port(spec: &VmSpec) -> lb_common::Result<()> {
    if matches!(spec.boot, Boot::Runner(_)) && spec.port == spec.image_port {
        return Err(usage!(
            "--port {}: a nixpkgs runner forwards {} to its guest itself (baked in), so an on-demand listener cannot hold it; give the builder another --port (e.g. 31023), and the same --port to lb-sshcfg and lb-nixconf",
            spec.port,
            spec.image_port
        ));
    }
    Ok(())
}

/// Run this same command again with `--foreground`, detached (its own
/// process group, output in the listener log), and return once it answers
/// on its control socket.
fn detach(l: &Layout, port: u16, json: bool) -> lb_common::Result<Status> {
    lb_common::fs::ensure_dir(&l.dir)?;
    let exe = std::env::current_exe().context("find lb-vm's own path")?;
    let log_path = l.listener_log();
    let log = lb_common::fs::open_log(&log_path, true)?;
    let child = Cmd::new(&exe)
        .args(std::env::args_os().skip(1))
        .arg("--foreground")
        .spawn(Sink::File(log), true)
        .with_context(|| format!("start {} --foreground", exe.display()))?;
    // The KVM probe (first start in a working directory) takes up to 20 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if query(l).is_some_and(|r| r.listener_pid == child.pid()) {
            ui::note(&format!(
                "{} listens on {} on demand (pid {}; log {})",
                l.name,
                address(port),
                child.pid(),
                log_path.display()
            ));
            crate::boot::print_ready(&l.name, port, None, json)?;
            return Ok(Status::Ok);
        }
        if let Some(st) = child.try_wait()? {
            lb_common::bail!(
                "the on-demand listener exited ({st}): {}",
                crate::boot::tail(&log_path, 3).replace('\n', " / ")
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            lb_common::bail!(
                "the on-demand listener did not answer on {} within 60 s (log {})",
                l.control().display(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on now, for the guest's forward (never
/// `avoid`, the runner's baked-in one).
pub(super) fn private_port(avoid: u16) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or(0, |a| a.port());
        if port != 0 && port != avoid {
            return port;
        }
    }
}
