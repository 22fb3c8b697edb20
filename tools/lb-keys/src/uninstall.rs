//! uninstall: the installed pair, and what an interrupted install left.

use std::path::{Path, PathBuf};

use lb_common::exit::Status;
use lb_common::fs::{self, Apply, Outcome};
use lb_common::plan::{self, Applied, Inspection, Needed, Step};
use lb_common::{privilege, ui};

use crate::install::Ctx;
use crate::pair::{self, PairPaths};
use crate::UninstallArgs;

pub fn uninstall(ctx: &Ctx, a: &UninstallArgs) -> lb_common::Result<Status> {
    let target = ctx.installed();
    let done = plan::apply(
        Apply::from(a.change),
        &RemovePair {
            ctx,
            a,
            target: &target,
        },
    )?;
    if done == Applied::Unchanged {
        ui::note(&format!(
            "{} is not installed; nothing changed",
            target.private.display()
        ));
    }
    Ok(done.status())
}

/// `uninstall`: the installed pair and the copies of the key an
/// interrupted install left (`.builder_ed25519.XXXXXX.tmp`).
struct RemovePair<'a> {
    ctx: &'a Ctx,
    a: &'a UninstallArgs,
    target: &'a PairPaths,
}

impl Step for RemovePair<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        let t = self.target;
        let mut found: Vec<PathBuf> = [&t.private, &t.public]
            .into_iter()
            .filter(|p| pair::is_present(p))
            .cloned()
            .collect();
        found.extend(fs::stale_temps(&t.private)?);
        found.extend(fs::stale_temps(&t.public)?);
        if found.is_empty() {
            return Ok(Inspection::Done);
        }
        let paths: Vec<&Path> = found.iter().map(PathBuf::as_path).collect();
        let names: Vec<String> = found.iter().map(|p| p.display().to_string()).collect();
        // `rm -f` lines under -n: a diff would print the private key.
        Ok(Inspection::Needed(Needed::removal(
            &paths,
            format!("would remove {}", names.join(" and ")),
        )))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let target = self.target;
        let dir = fs::parent(&target.private);
        if !privilege::can_write_in(&dir) && !privilege::is_root() {
            let argv = self
                .ctx
                .rerun_argv(&["uninstall".into(), "--no-sudo".into()])?;
            return privilege::escalate(
                &format!("removing the key from {}", dir.display()),
                &argv,
                self.a.sudo.no_sudo,
            );
        }
        // The secret first; each removal sweeps its leftovers too.
        let _lock = fs::lock_dir_of(&target.private, false)?;
        for p in [&target.private, &target.public] {
            let swept = fs::sweep_stale(p)?;
            if swept > 0 {
                ui::note(&format!(
                    "removed {swept} temp file(s) an interrupted write of {} left",
                    p.display()
                ));
            }
            if fs::remove(p, Apply::Write)? == Outcome::Removed {
                ui::note(&format!("removed {}", p.display()));
            }
        }
        Ok(())
    }
}
