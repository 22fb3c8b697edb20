//! `lb-vm remove`: the stopped builder's files in the working directory
//! (its disk, logs, state, sockets and the runner's TMPDIR), and the
//! working directory itself once nothing else is in it. The undo of
//! `start`; a running builder is refused.

use std::path::{Path, PathBuf};

use lb_common::exit::Status;
use lb_common::fs::{self, Apply};
use lb_common::plan::{self, Applied, Inspection, Needed, Step};
use lb_common::ui;

use crate::cli::RemoveArgs;
use crate::vm::Layout;
use crate::{on_demand, state, Ctx};

pub(crate) fn remove(ctx: &Ctx, a: &RemoveArgs) -> lb_common::Result<Status> {
    let l = &ctx.layout;
    if let Some(pid) = state::running_pid(l) {
        lb_common::bail!(
            "{} is running (pid {pid}); stop it first: `lb-vm stop --workdir {}`",
            l.name,
            l.dir.display()
        );
    }
    if let Some(r) = on_demand::query(l) {
        lb_common::bail!(
            "{} is listening on demand (pid {}); stop it first: `lb-vm stop --workdir {}`",
            l.name,
            r.listener_pid,
            l.dir.display()
        );
    }
    let done = plan::apply(Apply::from(a.change), &RemoveFiles { layout: l })?;
    if done == Applied::Unchanged {
        ui::note(&format!(
            "no file of {} in {}; nothing changed",
            l.name,
            l.dir.display()
        ));
    }
    Ok(done.status())
}

/// Every file a builder named NAME may leave in its working directory.
fn files(l: &Layout) -> Vec<PathBuf> {
    vec![
        l.disk(),
        l.pid(),
        l.state(),
        l.qmp(),
        l.console(),
        l.qemu_log(),
        l.accel_cache(),
        l.listener_pid(),
        l.control(),
        l.listener_log(),
    ]
}

struct RemoveFiles<'a> {
    layout: &'a Layout,
}

impl RemoveFiles<'_> {
    fn present(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = files(self.layout)
            .into_iter()
            .filter(|p| p.symlink_metadata().is_ok())
            .collect();
        let tmp = self.layout.tmp();
        if tmp.symlink_metadata().is_ok() {
            found.push(tmp);
        }
        found
    }
}

impl Step for RemoveFiles<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        let found = self.present();
        if found.is_empty() {
            return Ok(Inspection::Done);
        }
        let paths: Vec<&Path> = found.iter().map(PathBuf::as_path).collect();
        Ok(Inspection::Needed(Needed::removal(
            &paths,
            format!(
                "would remove {} file(s) of {} from {}",
                found.len(),
                self.layout.name,
                self.layout.dir.display()
            ),
        )))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let l = self.layout;
        let found = self.present();
        for p in &found {
            if *p == l.tmp() {
                fs::remove_tree(p)?;
            } else {
                fs::remove_entry(p)?;
            }
        }
        ui::note(&format!(
            "removed {} file(s) of {} from {}",
            found.len(),
            l.name,
            l.dir.display()
        ));
        if fs::remove_empty_dir(&l.dir)? {
            ui::note(&format!("removed the empty {}", l.dir.display()));
        }
        Ok(())
    }
}
