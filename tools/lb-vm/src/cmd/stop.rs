//! `lb-vm stop`: the ACPI power button over QMP, then (through its
//! service, when launchd or systemd would restart a killed VM) SIGTERM,
//! then SIGKILL; the on-demand listener is asked to stop instead.

use std::time::Duration;

use lb_common::cmd::Cmd;
use lb_common::exit::Status;
use lb_common::fs::Apply;
use lb_common::plan::{self, Inspection, Needed, Step};
use lb_common::ui;
use nix::sys::signal::Signal;

use crate::boot::signal_vm;
use crate::cli::StopArgs;
use crate::cmd::service::run_service_commands;
use crate::state;
use crate::{on_demand, process, qmp, supervisor, Ctx};

pub(crate) fn stop(ctx: &Ctx, a: &StopArgs) -> lb_common::Result<Status> {
    let l = &ctx.layout;
    if let Some(status) = on_demand::stop(l, a)? {
        return Ok(status);
    }
    let apply = Apply::from(a.change);
    // launchd (KeepAlive) or systemd (Restart=) runs it: a kill would be
    // undone; a clean power-down exits 0, which neither restarts.
    let svc = supervisor::Service::for_os(ctx.platform.os, &ctx.root, &l.name, a.label.as_deref())?;
    let managed = svc.installed_for(&l.dir);
    let Some(pid) = state::running_pid(l) else {
        if apply == Apply::Write {
            state::clean_stale(l)?;
        }
        ui::note(&format!("{} is not running", l.name));
        return Ok(Status::Ok);
    };
    let step = Stop {
        ctx,
        a,
        svc: &svc,
        managed,
        pid,
    };
    // --check: a running VM would be stopped (status 1, nothing said).
    Ok(plan::apply(apply, &step)?.status())
}

/// Power the running VM `pid` down, then (through its service when one
/// manages it) terminate and kill it.
struct Stop<'a> {
    ctx: &'a Ctx,
    a: &'a StopArgs,
    svc: &'a supervisor::Service,
    managed: bool,
    pid: u32,
}

impl Step for Stop<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        let (a, pid) = (self.a, self.pid);
        let mut preview = vec![format!(
            "qmp {} system_powerdown",
            self.ctx.layout.qmp().display()
        )];
        if self.managed {
            preview.push(format!(
                "after {}s, if still running (its service would restart a killed VM):",
                a.timeout
            ));
            preview.extend(self.svc.stop().iter().map(|c| Cmd::from_argv(c).display()));
        }
        preview.push(format!(
            "after {}s: kill -TERM {pid}; after {}s: kill -KILL {pid}",
            a.timeout, a.timeout
        ));
        Ok(Inspection::Needed(Needed {
            preview,
            ..Needed::default()
        }))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let Stop {
            ctx,
            a,
            svc,
            managed,
            pid,
        } = *self;
        power_down(ctx, a, svc, managed, pid)
    }
}

fn power_down(
    ctx: &Ctx,
    a: &StopArgs,
    svc: &supervisor::Service,
    managed: bool,
    pid: u32,
) -> lb_common::Result<()> {
    let l = &ctx.layout;
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
            run_service_commands(ctx, Apply::Write, &svc.stop(), "stopping the service")?;
        }
        if process::wait_gone(pid, Duration::from_secs(5)) {
            "stopped by its service"
        } else {
            terminate(pid, timeout)
        }
    };
    if process::alive(pid) {
        lb_common::bail!("pid {pid} survived SIGKILL; it may be stuck in the kernel");
    }
    state::clean_up(l)?;
    ui::note(&format!("{} stopped ({how})", l.name));
    if managed {
        ui::note(&format!(
            "its service stays installed and starts it at boot; start it now: {}",
            svc.start_hint()
        ));
    }
    Ok(())
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
