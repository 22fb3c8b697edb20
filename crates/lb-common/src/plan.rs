//! Plan, then apply: how a mutating command is carried out.
//!
//! Each change a command makes is a [`Step`] (nix-installer's actions):
//! it first inspects, only looking, and says what it found as an
//! [`Inspection`]: already [`Done`](Inspection::Done), a change
//! [`Needed`](Inspection::Needed) (with the diff or the commands `-n`
//! shows and the words `--check` says), or a
//! [`Conflict`](Inspection::Conflict) that no change of ours resolves (a
//! typed error). One shared [`apply`] then tells `-n/--dry-run`, `--check`
//! and the real change apart, so no command matches on [`Apply`] itself.
//!
//! Edits of whole files go through [`crate::fs`], which shows their diffs
//! under `-n` and never a secret's contents; [`report_files`] is the one
//! writer of the "created / would be updated / unchanged" messages for
//! them. A step whose files are secret (a private key) previews the
//! commands that would install or remove them instead of a diff.

use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::fs::{Apply, Outcome};
use crate::status::{Error, Result, Status};
use crate::ui;

/// What a step found when it looked.
#[derive(Debug)]
pub enum Inspection {
    /// Already as wanted: nothing to do.
    Done,
    /// A change is needed.
    Needed(Needed),
    /// The step cannot be carried out as things are; the error says why
    /// and what to do.
    Conflict(Error),
}

/// A change a step would make, as the read-only modes show it.
#[derive(Debug, Clone, Default)]
pub struct Needed {
    /// The lines `-n` prints on stdout: a diff, or the commands that would
    /// run (never a secret's contents).
    pub preview: Vec<String>,
    /// What `--check` says on stderr ("would install the pair to DIR").
    pub would: String,
}

impl Needed {
    /// A change shown as `commands` under `-n` and said as `would` under
    /// `--check`.
    #[must_use]
    pub fn commands(commands: &[Cmd], would: impl Into<String>) -> Self {
        Needed {
            preview: commands.iter().map(Cmd::display).collect(),
            would: would.into(),
        }
    }

    /// `rm -f PATH` for each of `paths`: how `-n` shows the removal of
    /// files whose contents are not to be printed.
    #[must_use]
    pub fn removal(paths: &[&Path], would: impl Into<String>) -> Self {
        let rm: Vec<Cmd> = paths
            .iter()
            .map(|p| Cmd::new("rm").arg("-f").arg(p))
            .collect();
        Needed::commands(&rm, would)
    }
}

/// One change of a command: inspect first, then (for real) execute.
pub trait Step {
    /// Look at what is there; change nothing.
    ///
    /// # Errors
    /// Reading what is there failed (an I/O error, a malformed file).
    fn inspect(&self) -> Result<Inspection>;

    /// Make the change [`Step::inspect`] said is needed, saying on stderr
    /// what was done.
    ///
    /// # Errors
    /// The change failed; what the error says.
    fn execute(&self) -> Result<()>;

    /// For real, when [`Step::inspect`] found nothing to do: housekeeping
    /// that is not a change (the writer's sweep of temp files a killed
    /// writer left). None by default.
    ///
    /// # Errors
    /// The housekeeping failed.
    fn tidy(&self) -> Result<()> {
        Ok(())
    }
}

/// What [`apply`] did with a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Nothing was needed.
    Unchanged,
    /// `-n`: the change was shown.
    Shown,
    /// `--check`: a change is needed.
    WouldChange,
    /// The change was made.
    Changed,
}

impl Applied {
    /// The exit status this stands for: 1 when `--check` found a change
    /// needed, else 0.
    #[must_use]
    pub fn status(self) -> Status {
        if self == Applied::WouldChange {
            Status::Failed
        } else {
            Status::Ok
        }
    }

    /// True when the command is finished (nothing more to do in a
    /// read-only mode: the change was shown or judged).
    #[must_use]
    pub fn read_only(self) -> bool {
        matches!(self, Applied::Shown | Applied::WouldChange)
    }
}

/// Carry `step` out as `mode` says: inspect it, then print its preview
/// (`-n`), say what it would do (`--check`), or execute it.
///
/// # Errors
/// The step's conflict, or what inspecting, printing or executing failed
/// with.
pub fn apply(mode: Apply, step: &dyn Step) -> Result<Applied> {
    let needed = match step.inspect()? {
        Inspection::Done => {
            if mode == Apply::Write {
                step.tidy()?;
            }
            return Ok(Applied::Unchanged);
        }
        Inspection::Conflict(e) => return Err(e),
        Inspection::Needed(n) => n,
    };
    match mode {
        Apply::DryRun => {
            for line in &needed.preview {
                ui::out(line)?;
            }
            Ok(Applied::Shown)
        }
        Apply::Check => {
            ui::note(&needed.would);
            Ok(Applied::WouldChange)
        }
        Apply::Write => {
            step.execute()?;
            Ok(Applied::Changed)
        }
    }
}

/// Say what writing `outcomes` through [`crate::fs`] did (or, under `-n`
/// and `--check`, would do): `PATH created`, `PATH would be updated`, or
/// `nothing` when no file changed. The status is 1 when `--check` found a
/// change needed.
#[must_use]
pub fn report_files(outcomes: &[(PathBuf, Outcome)], mode: Apply, nothing: &str) -> Status {
    let changed: Vec<_> = outcomes.iter().filter(|(_, o)| o.changed()).collect();
    if changed.is_empty() {
        ui::note(nothing);
        return Status::Ok;
    }
    let would = if mode == Apply::Write {
        ""
    } else {
        "would be "
    };
    for (path, outcome) in &changed {
        let verb = match outcome {
            Outcome::Created => "created",
            Outcome::Removed => "removed",
            Outcome::Updated | Outcome::Unchanged => "updated",
        };
        ui::note(&format!("{} {would}{verb}", path.display()));
    }
    if mode == Apply::Check {
        Status::Failed
    } else {
        Status::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    struct Counter {
        found: fn() -> Inspection,
        ran: Cell<u32>,
    }

    impl Step for Counter {
        fn inspect(&self) -> Result<Inspection> {
            Ok((self.found)())
        }
        fn execute(&self) -> Result<()> {
            self.ran.set(self.ran.get() + 1);
            Ok(())
        }
    }

    fn needed() -> Inspection {
        Inspection::Needed(Needed::removal(&[Path::new("/k")], "would remove /k"))
    }

    #[test]
    fn only_write_executes_and_check_says_one() {
        let s = Counter {
            found: needed,
            ran: Cell::new(0),
        };
        assert_eq!(apply(Apply::DryRun, &s).unwrap(), Applied::Shown);
        assert_eq!(apply(Apply::Check, &s).unwrap().status(), Status::Failed);
        assert_eq!(s.ran.get(), 0);
        assert_eq!(apply(Apply::Write, &s).unwrap(), Applied::Changed);
        assert_eq!(s.ran.get(), 1);
        assert_eq!(Applied::Changed.status(), Status::Ok);
    }

    #[test]
    fn done_and_conflict_never_execute() {
        let done = Counter {
            found: || Inspection::Done,
            ran: Cell::new(0),
        };
        assert_eq!(apply(Apply::Write, &done).unwrap(), Applied::Unchanged);
        let conflict = Counter {
            found: || Inspection::Conflict(crate::usage!("in the way")),
            ran: Cell::new(0),
        };
        let e = apply(Apply::Write, &conflict).unwrap_err();
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (Status::Usage, "in the way")
        );
        assert_eq!(done.ran.get() + conflict.ran.get(), 0);
    }

    #[test]
    fn removal_previews_commands_not_contents() {
        let n = Needed::removal(&[Path::new("/etc/nix/k"), Path::new("/a b")], "w");
        assert_eq!(n.preview, ["rm -f /etc/nix/k", "rm -f '/a b'"]);
    }

    #[test]
    fn file_report_status() {
        let o = [(PathBuf::from("/x"), Outcome::Updated)];
        assert_eq!(report_files(&o, Apply::Check, "-"), Status::Failed);
        assert_eq!(report_files(&o, Apply::DryRun, "-"), Status::Ok);
        let same = [(PathBuf::from("/x"), Outcome::Unchanged)];
        assert_eq!(report_files(&same, Apply::Check, "-"), Status::Ok);
    }
}
