//! `lb-vm wait`: until the running builder's sshd answers, printing
//! `127.0.0.1:PORT`.

use std::time::Duration;

use lb_common::exit::Status;

use crate::boot::{address, await_ready, boot_failure, print_ready};
use crate::cli::WaitArgs;
use crate::ready::Readiness;
use crate::state;
use crate::{on_demand, process, Ctx};

pub(crate) fn wait(ctx: &Ctx, a: &WaitArgs) -> lb_common::Result<Status> {
    let l = &ctx.layout;
    if let Some(r) = on_demand::query(l) {
        // The listener holds every connection until the guest's sshd
        // answers: the builder is ready to be used now.
        print_ready(&l.name, r.port, r.vm_pid, a.json)?;
        return Ok(Status::Ok);
    }
    let state = state::read_state(l);
    let port = state.as_ref().map_or(ctx.builder.port, |s| s.port);
    let pid = state::running_pid(l);
    if pid.is_none() {
        state::clean_stale(l)?;
        lb_common::bail!(
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
            print_ready(&l.name, port, Some(vm), a.json)?;
            Ok(Status::Ok)
        }
        Readiness::Died(why) => {
            state::clean_up(l)?;
            Err(boot_failure(l, &why))
        }
        Readiness::TimedOut => {
            lb_common::bail!(
                "no SSH banner on {} after {}s; the VM is still running (see {})",
                address(port),
                a.timeout,
                l.console().display()
            )
        }
    }
}
