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

/// `sudo --reset-timestamp [NAME=VALUE...] ARGS...`, with this process's
/// `LB_*` variables and `NIX_CONF_DIR` as sudo's `NAME=VALUE` words: sudo
/// resets the environment, and a setting given as a variable
/// (`LB_NAME=b2 lb-nixconf install`) must reach the command it re-runs.
#[must_use]
pub fn sudo(args: &[OsString]) -> Cmd {
    Cmd::new("sudo")
        .arg("--reset-timestamp")
        .args(carried_env(std::env::vars_os()))
        .args(args)
        .hint("install sudo, or run this step as root")
}

/// Of `vars`, the ones the tools read that sudo would drop, as sorted
/// `NAME=VALUE` words: every `LB_*` and `NIX_CONF_DIR`.
fn carried_env(vars: impl IntoIterator<Item = (OsString, OsString)>) -> Vec<OsString> {
    let mut carried: Vec<(OsString, OsString)> = vars
        .into_iter()
        .filter(|(k, _)| k.as_encoded_bytes().starts_with(b"LB_") || k == "NIX_CONF_DIR")
        .collect();
    carried.sort();
    carried
        .into_iter()
        .map(|(k, v)| {
            let mut word = k;
            word.push("=");
            word.push(v);
            word
        })
        .collect()
}

/// A step needs root, the process is not root, and the tool does not
/// escalate (`--no-sudo`, or a tool that stops rather than escalates).
#[derive(Debug, thiserror::Error)]
#[error("{what} needs root; run: {command}")]
pub struct NeedsRoot {
    /// The step, e.g. "installing the key".
    pub what: String,
    /// The command line to run instead, under sudo (see [`sudo`]).
    pub command: String,
}

impl crate::status::Classify for NeedsRoot {
    fn status(&self) -> crate::status::Status {
        crate::status::Status::Failed
    }
}

/// A place that root cannot write either: sudo would not help.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {path} is {why}; {fix}")]
pub struct CannotWrite {
    /// The step that would write, e.g. "installing the key".
    pub what: String,
    /// The file or directory that cannot be written.
    pub path: std::path::PathBuf,
    /// Why, e.g. "on a read-only file system".
    pub why: &'static str,
    /// What the user can do about it.
    pub fix: &'static str,
}

impl crate::status::Classify for CannotWrite {
    fn status(&self) -> crate::status::Status {
        crate::status::Status::Failed
    }
}

/// Why `access(path, W_OK)` failed, when root would fail too.
fn beyond_root(what: &str, path: &Path, errno: nix::errno::Errno) -> Option<CannotWrite> {
    let (why, fix) = match errno {
        nix::errno::Errno::EROFS => (
            "on a read-only file system",
            "remount it read-write, or choose another --root",
        ),
        nix::errno::Errno::EPERM => (
            "immutable or append-only",
            "clear the flag (`chattr -i` on Linux, `chflags noschg` on macOS) if the change is wanted",
        ),
        _ => return None,
    };
    Some(CannotWrite {
        what: what.to_owned(),
        path: path.to_path_buf(),
        why,
        fix,
    })
}

/// Unless this process can change every one of `paths` (a directory: create
/// and replace files in it; a file: replace it), fail naming the cause. Only
/// a permission that root has and this process lacks is [`NeedsRoot`],
/// naming this very command line under sudo (for tools that stop rather
/// than escalate: nothing is written half-way); a read-only file system or
/// an immutable file is [`CannotWrite`], also for root.
///
/// # Errors
/// [`CannotWrite`] or [`NeedsRoot`] (exit status 1), as above.
pub fn require_writable(what: &str, paths: &[&Path]) -> crate::Result<()> {
    use nix::unistd::{access, AccessFlags};
    let mut needs_root = false;
    for p in paths {
        // An existing file: only what stops root too (its own mode does
        // not matter, it is replaced by a rename in its directory).
        if std::fs::symlink_metadata(p).is_ok_and(|m| !m.is_dir()) {
            if let Err(errno) = access(*p, AccessFlags::W_OK) {
                if let Some(e) = beyond_root(what, p, errno) {
                    return Err(e.into());
                }
            }
            continue;
        }
        let existing = p.ancestors().find(|d| d.exists()).unwrap_or(Path::new("/"));
        match access(existing, AccessFlags::W_OK) {
            Ok(()) => {}
            Err(errno) => {
                if let Some(e) = beyond_root(what, existing, errno) {
                    return Err(e.into());
                }
                needs_root = true;
            }
        }
    }
    if !needs_root || is_root() {
        // As root, let the write itself report what stopped it.
        return Ok(());
    }
    let argv: Vec<OsString> = std::env::args_os().collect();
    Err(NeedsRoot {
        what: what.to_owned(),
        command: sudo(&argv).display(),
    }
    .into())
}

/// Re-run `args` (usually this program with the arguments of the one step)
/// under sudo, the terminal attached for the password prompt. With
/// `no_sudo`, return [`NeedsRoot`] naming the command instead.
///
/// # Errors
/// [`NeedsRoot`] with `no_sudo`; a [`crate::cmd::Error`] when sudo cannot
/// be started or the re-run fails (exit status 1).
pub fn escalate(what: &str, args: &[OsString], no_sudo: bool) -> crate::Result<()> {
    let cmd = sudo(args);
    if no_sudo {
        return Err(NeedsRoot {
            what: what.to_owned(),
            command: cmd.display(),
        }
        .into());
    }
    crate::ui::note(&format!("+ {}", cmd.display()));
    let status = cmd.run_attached()?;
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
    fn sudo_carries_lb_variables_and_nix_conf_dir() {
        let vars = [
            ("PATH", "/usr/bin"),
            ("LB_PORT", "2222"),
            ("NIX_CONF_DIR", "/etc/nix2"),
            ("LB_NAME", "b 2"),
            ("NIX_CONFIG", "access-tokens = x"),
            ("XLB_NAME", "no"),
        ]
        .map(|(k, v)| (OsString::from(k), OsString::from(v)));
        assert_eq!(
            carried_env(vars),
            ["LB_NAME=b 2", "LB_PORT=2222", "NIX_CONF_DIR=/etc/nix2"].map(OsString::from)
        );
    }

    #[test]
    fn no_sudo_names_the_command() {
        let e = escalate(
            "installing the key",
            &["lb-keys".into(), "install".into()],
            true,
        )
        .unwrap_err();
        // Whatever LB_* this process has (make test exports some) comes
        // between sudo's options and the command.
        let carried: Vec<String> = carried_env(std::env::vars_os())
            .iter()
            .map(|w| Cmd::new("x").arg(w).display()[2..].to_owned())
            .collect();
        let mut want = String::from("installing the key needs root; run: sudo --reset-timestamp ");
        for w in &carried {
            want.push_str(w);
            want.push(' ');
        }
        want.push_str("lb-keys install");
        assert_eq!(e.to_string(), want);
        assert_eq!(e.status(), crate::status::Status::Failed);
    }

    #[test]
    fn writable_checks_nearest_existing_ancestor() {
        let tmp = tempfile::tempdir().unwrap();
        assert!(can_write_in(&tmp.path().join("a/b/c")));
    }
}
