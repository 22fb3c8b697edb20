//! generate, and install's first step: a fresh pair in a keys directory.

use std::path::Path;

use lb_common::cmd::Cmd;
use lb_common::exit::Status;
use lb_common::fs::{Apply, Outcome};
use lb_common::plan::{self, Inspection, Needed, Step};
use lb_common::{ui, usage};

use crate::install::{install_commands, Ctx};
use crate::pair::{self, PairError, PairPaths};
use crate::GenerateArgs;

pub fn generate(ctx: &Ctx, a: &GenerateArgs) -> lb_common::Result<Status> {
    let mode = Apply::from(a.change);
    pair::check_dir(&a.dir)?;
    let paths = PairPaths::in_dir(&a.dir);
    let (has_private, has_public) = paths.present();
    if !a.force && (has_private || has_public) {
        let fix = format!(
            "pass --force to replace {} and {} with a fresh pair",
            paths.private.display(),
            paths.public.display()
        );
        // A valid pair already there is what was asked for.
        pair::load(&paths).map_err(|e| match e {
            PairError::Fs(e) => lb_common::Error::from(e),
            other => lb_common::failed!("{other}; refusing to overwrite it: {fix}"),
        })?;
        ui::note(&format!(
            "{} already holds a key pair; nothing changed ({fix})",
            a.dir.display()
        ));
        if mode == Apply::Write {
            ui::out(&paths.private.display().to_string())?;
        }
        return Ok(Status::Ok);
    }
    let step = GeneratePair {
        ctx,
        dir: &a.dir,
        paths: &paths,
        refuse: false,
        then_install: None,
    };
    Ok(plan::apply(mode, &step)?.status())
}

/// A fresh pair in a keys directory (install's step 1, and `generate`).
pub(crate) struct GeneratePair<'a> {
    pub(crate) ctx: &'a Ctx,
    /// The keys directory as the user named it.
    pub(crate) dir: &'a Path,
    pub(crate) paths: &'a PairPaths,
    /// `install --no-generate`: a missing half is bad input, not a cue.
    pub(crate) refuse: bool,
    /// For install: where the fresh pair goes next, and its group (the
    /// preview shows that install too).
    pub(crate) then_install: Option<(&'a PairPaths, &'a str)>,
}

impl Step for GeneratePair<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        let (has_private, has_public) = self.paths.present();
        let dir = self.dir;
        let Some((target, group)) = self.then_install else {
            return Ok(Inspection::Needed(Needed::commands(
                &generate_commands(self.paths, has_private, has_public),
                format!("would generate a new pair in {}", dir.display()),
            )));
        };
        if has_private && has_public {
            return Ok(Inspection::Done);
        }
        if self.refuse {
            let missing = if has_private {
                &self.paths.public
            } else {
                &self.paths.private
            };
            return Ok(Inspection::Conflict(usage!(
                "{}: missing; run `{}` to generate the pair first",
                missing.display(),
                self.ctx.suggest(&[Path::new("generate"), dir])
            )));
        }
        let mut commands = generate_commands(self.paths, has_private, has_public);
        commands.extend(install_commands(
            self.paths,
            target,
            group,
            [Outcome::Updated, Outcome::Updated],
        ));
        Ok(Inspection::Needed(Needed::commands(
            &commands,
            format!(
                "would generate a new pair in {} and install it",
                dir.display()
            ),
        )))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let fresh = pair::write_new(self.paths)?;
        let fingerprint = fresh.public.fingerprint(ssh_key::HashAlg::Sha256);
        if self.then_install.is_some() {
            ui::note(&format!(
                "generated a new pair in {} ({fingerprint})",
                self.dir.display()
            ));
        } else {
            ui::note(&format!(
                "generated {} and its .pub ({fingerprint})",
                self.paths.private.display()
            ));
            ui::out(&self.paths.private.display().to_string())?;
        }
        Ok(())
    }
}

/// Generation as the manual's script does it: the commands `-n` shows.
fn generate_commands(source: &PairPaths, has_private: bool, has_public: bool) -> Vec<Cmd> {
    let mut commands = Vec::new();
    for (present, path) in [(has_private, &source.private), (has_public, &source.public)] {
        if present {
            commands.push(Cmd::new("rm").arg("-f").arg(path));
        }
    }
    commands.push(
        Cmd::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", pair::COMMENT, "-f"])
            .arg(&source.private),
    );
    commands
}
