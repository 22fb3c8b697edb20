//! `lb-vm check`: what users of builder VMs hit, one line per problem
//! with its fix (the finding itself is [`crate::check`]).

use std::path::Path;

use lb_common::builder::BuilderArgs;
use lb_common::exit::Status;
use lb_common::report::CheckReport;

use crate::cli::{CheckArgs, DiskArgs};
use crate::state;
use crate::{check, on_demand, Ctx};

/// Print the problems; exit 1 if any.
pub(crate) fn run(ctx: &Ctx, a: &CheckArgs) -> lb_common::Result<Status> {
    CheckReport::new(
        &ctx.layout.name,
        problems(ctx, a)?,
        "runs and answers, no problems",
    )
    .print(a.json)
}

/// `check`'s problems for the builder `args` names in `workdir`, for
/// `lb-doctor`: one line each, with its fix.
pub fn for_doctor(
    global_root: Option<&Path>,
    args: &BuilderArgs,
    workdir: Option<&Path>,
    disk: &DiskArgs,
) -> lb_common::Result<Vec<String>> {
    let ctx = Ctx::new(global_root, args, workdir)?;
    problems(
        &ctx,
        &CheckArgs {
            disk: disk.clone(),
            json: false,
        },
    )
}

fn problems(ctx: &Ctx, a: &CheckArgs) -> lb_common::Result<Vec<String>> {
    let l = &ctx.layout;
    let running = if let Some(r) = on_demand::query(l) {
        check::Running {
            pid: Some(r.listener_pid),
            port: r.port,
            on_demand: true,
        }
    } else {
        let pid = state::running_pid(l);
        let port = state::read_state(l)
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
            disk: a.disk.disk.as_ref().map(std::path::absolute).transpose()?,
            disk_size: a.disk.disk_size,
        },
    )
}
