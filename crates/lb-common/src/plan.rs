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
//! under `-n` and never a secret's contents; a [`Files`] step carries the
//! files' new contents, decided once, and is the one writer of the "PATH
//! created / would be updated" messages for them. A check that only matters for real
//! (may this process write there?) is a step's [`Step::preflight`], made
//! before it looks. A step whose files are secret (a private key) previews the
//! commands that would install or remove them instead of a diff.

use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::fs::{self, Apply, FileSpec, Outcome};
use crate::status::{Error, Result, Status};
use crate::{privilege, ui};

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
    /// What `--check` says on stderr, one message each ("would install
    /// the pair to DIR").
    pub would: Vec<String>,
    /// Whether `-n` says [`Needed::would`] too, and where.
    pub dry_run_says: DryRunSays,
}

/// Whether `-n` says a step's [`Needed::would`] on stderr as `--check`
/// does, and whether before or after its preview on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum DryRunSays {
    /// Only the preview.
    #[default]
    Nothing,
    /// The messages first, introducing the preview ("would run:").
    Before,
    /// The preview, then the messages (changes to files, named after
    /// their diffs).
    After,
}

impl Needed {
    /// A change shown as `commands` under `-n` and said as `would` under
    /// `--check`.
    #[must_use]
    pub fn commands(commands: &[Cmd], would: impl Into<String>) -> Self {
        Needed {
            preview: commands.iter().map(Cmd::display).collect(),
            would: vec![would.into()],
            dry_run_says: DryRunSays::Nothing,
        }
    }

    /// `rm -f PATH` for each of `paths` (`rm -rf` for a directory, a
    /// symlink to one being a file): how `-n` shows the removal of files
    /// whose contents are not to be printed.
    #[must_use]
    pub fn removal(paths: &[&Path], would: impl Into<String>) -> Self {
        let rm: Vec<Cmd> = paths
            .iter()
            .map(|p| {
                let dir = p.symlink_metadata().is_ok_and(|m| m.is_dir());
                Cmd::new("rm").arg(if dir { "-rf" } else { "-f" }).arg(p)
            })
            .collect();
        Needed::commands(&rm, would)
    }
}

/// One change of a command: inspect first, then (for real) execute.
pub trait Step {
    /// For real only, before inspecting: what must hold for the change to
    /// be made at all (may this process write there?), so that a refusal
    /// comes first, naming the fix. Nothing by default.
    ///
    /// # Errors
    /// The change cannot be made by this process.
    fn preflight(&self) -> Result<()> {
        Ok(())
    }

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

/// Carry `step` out as `mode` says: for real, its [`Step::preflight`];
/// then inspect it, and print its preview (`-n`), say what it would do
/// (`--check`: each of [`Needed::would`], none for a step whose status
/// says it all), or execute it.
///
/// # Errors
/// The step's conflict, or what inspecting, printing or executing failed
/// with.
pub fn apply(mode: Apply, step: &dyn Step) -> Result<Applied> {
    if mode == Apply::Write {
        step.preflight()?;
    }
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
            let say = || needed.would.iter().for_each(|w| ui::note(w));
            if needed.dry_run_says == DryRunSays::Before {
                say();
            }
            for line in &needed.preview {
                ui::out(line)?;
            }
            if needed.dry_run_says == DryRunSays::After {
                say();
            }
            Ok(Applied::Shown)
        }
        Apply::Check => {
            needed.would.iter().for_each(|w| ui::note(w));
            Ok(Applied::WouldChange)
        }
        Apply::Write => {
            step.execute()?;
            Ok(Applied::Changed)
        }
    }
}

/// What a file is to become.
#[derive(Debug, Clone)]
pub enum Wanted {
    /// Exactly these bytes, with this mode and owner.
    Contents(Vec<u8>, FileSpec),
    /// No file there.
    Absent,
}

/// Whole files written or removed through [`crate::fs`] as one step, the
/// new contents decided before the step is applied: under `-n` their
/// diffs, under `--check` and `-n` `PATH would be created` (updated,
/// removed) for each file that changes, for real the writes and `PATH
/// created`. The files are changed in the order given.
#[derive(Debug, Clone, Default)]
pub struct Files {
    /// Each file with what it becomes.
    pub changes: Vec<(PathBuf, Wanted)>,
    /// For real, checked before anything is looked at: what the change
    /// is ("editing FILE") and the paths this process must be able to
    /// write ([`privilege::require_writable`]).
    pub writable: Option<(String, Vec<PathBuf>)>,
    /// Say nothing of the files (the caller says what was done): `-n`
    /// shows only the diffs, `--check` only the status.
    pub silent: bool,
}

impl Files {
    /// The step for `changes`, with no permission check of its own.
    #[must_use]
    pub fn new(changes: Vec<(PathBuf, Wanted)>) -> Self {
        Files {
            changes,
            writable: None,
            silent: false,
        }
    }

    /// [`Step::execute`], with `between` run after the writes and before
    /// the messages saying what they did (a warning that belongs there).
    ///
    /// # Errors
    /// A write or removal failed.
    pub fn execute_then(&self, between: impl FnOnce()) -> Result<()> {
        let done = self.write()?;
        between();
        for (path, outcome) in done {
            if outcome.changed() && !self.silent {
                ui::note(&format!("{} {}", path.display(), verb(outcome)));
            }
        }
        Ok(())
    }

    fn write(&self) -> Result<Vec<(PathBuf, Outcome)>> {
        let mut done = Vec::new();
        for (path, wanted) in &self.changes {
            let outcome = match wanted {
                Wanted::Contents(bytes, spec) => fs::write(path, bytes, spec, Apply::Write)?,
                Wanted::Absent => fs::remove(path, Apply::Write)?,
            };
            done.push((path.clone(), outcome));
        }
        Ok(done)
    }
}

/// For real only ([`Apply::Write`]): [`privilege::require_writable`], the
/// check [`Files::writable`] makes, for a command that must make it before
/// its own first look (its lock, its reads), so a refusal comes first.
///
/// # Errors
/// As [`privilege::require_writable`].
pub fn require_writable(mode: Apply, what: &str, paths: &[&Path]) -> Result<()> {
    if mode == Apply::Write {
        privilege::require_writable(what, paths)?;
    }
    Ok(())
}

impl Step for Files {
    fn preflight(&self) -> Result<()> {
        if let Some((what, paths)) = &self.writable {
            let paths: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
            privilege::require_writable(what, &paths)?;
        }
        Ok(())
    }

    fn inspect(&self) -> Result<Inspection> {
        let mut needed = Needed {
            dry_run_says: DryRunSays::After,
            ..Needed::default()
        };
        let mut changed = false;
        for (path, wanted) in &self.changes {
            let (outcome, shown) = match wanted {
                Wanted::Contents(bytes, spec) => fs::inspect_write(path, bytes, spec)?,
                Wanted::Absent => fs::inspect_remove(path)?,
            };
            if outcome.changed() {
                changed = true;
                // One preview line per diff line, each printed with its
                // newline again: the bytes `fs::update` prints under -n.
                needed.preview.extend(
                    shown
                        .split_inclusive('\n')
                        .map(|l| l.strip_suffix('\n').unwrap_or(l).to_owned()),
                );
                needed
                    .would
                    .push(format!("{} would be {}", path.display(), verb(outcome)));
            }
        }
        if self.silent {
            needed.would.clear();
        }
        Ok(if changed {
            Inspection::Needed(needed)
        } else {
            Inspection::Done
        })
    }

    fn execute(&self) -> Result<()> {
        self.execute_then(|| {})
    }

    /// Nothing to change: the writes still sweep what a killed writer
    /// left beside the files.
    fn tidy(&self) -> Result<()> {
        self.write().map(drop)
    }
}

fn verb(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Created => "created",
        Outcome::Removed => "removed",
        Outcome::Updated | Outcome::Unchanged => "updated",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::os::unix::fs::PermissionsExt;

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
        // A directory (the runner's TMPDIR) is removed whole; a link to one
        // is a file.
        let tmp = tempfile::tempdir().unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
        let n = Needed::removal(&[tmp.path(), &link], "w");
        assert_eq!(
            n.preview,
            [
                format!("rm -rf {}", tmp.path().display()),
                format!("rm -f {}", link.display())
            ]
        );
    }

    #[test]
    fn files_preview_is_the_writers_diff_and_only_write_writes() {
        let tmp = tempfile::tempdir().unwrap();
        let kept = tmp.path().join("kept");
        let gone = tmp.path().join("gone");
        std::fs::write(&kept, "a\r\nb").unwrap();
        std::fs::write(&gone, "x\n").unwrap();
        std::fs::set_permissions(&kept, std::fs::Permissions::from_mode(0o644)).unwrap();
        let step = Files::new(vec![
            (
                kept.clone(),
                Wanted::Contents(b"a\r\nc\n".to_vec(), FileSpec::mode(0o644)),
            ),
            (gone.clone(), Wanted::Absent),
        ]);
        let Inspection::Needed(n) = step.inspect().unwrap() else {
            panic!("a change is needed");
        };
        let shown: String = n.preview.iter().flat_map(|l| [l.as_str(), "\n"]).collect();
        assert_eq!(
            shown,
            fs::diff(&kept, b"a\r\nb", b"a\r\nc\n", false) + &fs::diff(&gone, b"x\n", b"", false)
        );
        assert_eq!(
            n.would,
            [
                format!("{} would be updated", kept.display()),
                format!("{} would be removed", gone.display())
            ]
        );
        // The statuses report_files gave: --check 1 with a change, -n 0.
        assert_eq!(apply(Apply::Check, &step).unwrap().status(), Status::Failed);
        assert_eq!(apply(Apply::DryRun, &step).unwrap().status(), Status::Ok);
        assert!(gone.exists());
        assert_eq!(apply(Apply::Write, &step).unwrap(), Applied::Changed);
        assert_eq!(std::fs::read(&kept).unwrap(), b"a\r\nc\n");
        assert!(!gone.exists());
        assert!(matches!(step.inspect().unwrap(), Inspection::Done));
        assert_eq!(apply(Apply::Check, &step).unwrap().status(), Status::Ok);
    }
}
