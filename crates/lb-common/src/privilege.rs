//! Root, asked for explicitly.
//!
//! A tool never escalates silently: where a step needs root and the process
//! is not root, the tool re-runs only that step under
//! `sudo --reset-timestamp` (as the nixpkgs builder's script does), printing
//! the command first; with `--no-sudo` it stops with exit 1 and the command
//! to run.

use std::ffi::OsString;
use std::path::Path;

use crate::cmd::Cmd;

/// Is the process root?
#[must_use]
pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Can this process create or replace files in `dir` (the nearest existing
/// ancestor when `dir` does not exist yet)?
#[must_use]
pub fn can_write_in(dir: &Path) -> bool {
    let existing = dir
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"));
    nix::unistd::access(existing, nix::unistd::AccessFlags::W_OK).is_ok()
}

/// `sudo --reset-timestamp ARGS...`.
#[must_use]
pub fn sudo(args: &[OsString]) -> Cmd {
    Cmd::new("sudo")
        .arg("--reset-timestamp")
        .args(args)
        .hint("install sudo, or run this step as root")
}

#[derive(Debug, thiserror::Error)]
#[error("{what} needs root; run: {command}")]
pub struct NeedsRoot {
    pub what: String,
    pub command: String,
}

impl crate::exit::Classify for NeedsRoot {
    fn status(&self) -> crate::exit::Status {
        crate::exit::Status::Failed
    }
}

/// Unless this process can write in every one of `dirs`, fail with
/// [`NeedsRoot`] naming this very command line under sudo (for tools that
/// stop rather than escalate: nothing is written half-way).
pub fn require_writable(what: &str, dirs: &[&Path]) -> Result<(), NeedsRoot> {
    if dirs.iter().all(|d| can_write_in(d)) {
        return Ok(());
    }
    let argv: Vec<OsString> = std::env::args_os().collect();
    Err(NeedsRoot {
        what: what.to_owned(),
        command: sudo(&argv).display(),
    })
}

/// Re-run `args` (usually this program with the arguments of the one step)
/// under sudo, the terminal attached for the password prompt. With
/// `no_sudo`, return [`NeedsRoot`] naming the command instead.
pub fn escalate(what: &str, args: &[OsString], no_sudo: bool) -> anyhow::Result<()> {
    let cmd = sudo(args);
    if no_sudo {
        return Err(NeedsRoot {
            what: what.to_owned(),
            command: cmd.display(),
        }
        .into());
    }
    crate::ui::note(&format!("+ {}", cmd.display()));
    let status = cmd
        .expression()
        .unchecked()
        .run()
        .map_err(|e| cmd.spawn_error(e))?
        .status;
    if status.success() {
        Ok(())
    } else {
        Err(crate::cmd::Error::Failed {
            command: cmd.display(),
            status: status.to_string(),
            stderr: String::new(),
        }
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_sudo_names_the_command() {
        let e = escalate(
            "installing the key",
            &["lb-keys".into(), "install".into()],
            true,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "installing the key needs root; run: sudo --reset-timestamp lb-keys install"
        );
        assert_eq!(crate::exit::status_of(&e), crate::exit::Status::Failed);
    }

    #[test]
    fn writable_checks_nearest_existing_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(can_write_in(&tmp.path().join("a/b/c")));
    }
}
