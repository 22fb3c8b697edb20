//! `--root DIR`: a prefix that stands in for `/`.
//!
//! Every system location (the defaults under `/etc/nix`, `/etc/ssh`, and
//! flags that name one, such as `--key`) goes through [`Root::system`], so a
//! scratch root holds a complete, working configuration: the paths written
//! *inside* files (an ssh alias's `IdentityFile`) carry the prefix too.
//! Paths a user names as inputs (a keys directory, a kernel, `@FILE`) are
//! used as given.
//!
//! A system path cannot leave the root:
//!
//! - `..` is resolved lexically, the way a process chrooted at the root
//!   sees it: `/..` is `/`, so `--key /../../../tmp/outside/k` names
//!   `ROOT/tmp/outside/k`, and that normalised path is also what goes into
//!   IdentityFile and the builders line;
//! - a symlinked *directory* on the way (`ROOT/etc/nix -> /elsewhere`) is
//!   followed only when it leads to a place inside the root; one that
//!   leads out (or nowhere) is refused. The real root (`--root /`, or no
//!   `--root`) is exempt: there every place is inside, and macOS's own
//!   `/etc -> /private/etc` must keep working. The last component is not
//!   judged here: a symlink *at* a target is the writer's business
//!   ([`crate::fs`] refuses to write through one).

use std::path::{Component, Path, PathBuf};

use crate::status::{Classify, Status};

/// A `--root` that cannot be used, or a system path that would leave it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // `cause` is shown in the message, not chained: one line says it once.
    /// The `--root` directory does not exist or cannot be resolved.
    #[error("--root {path}: {cause}; create it first or pass an existing directory")]
    Unusable {
        /// The `--root` value, as given.
        path: PathBuf,
        /// Why it cannot be made absolute (from `canonicalize`).
        cause: std::io::Error,
    },
    /// The `--root` value is not a directory.
    #[error("--root {0}: not a directory; pass a directory to use as /")]
    NotDir(PathBuf),
    /// A symlinked directory on a system path leads out of the root, or
    /// nowhere.
    #[error("{link}: a symlink leading {to}, outside --root {root}; replace it with a directory inside the root, or use the real root")]
    Escapes {
        /// The symlink, inside the root.
        link: PathBuf,
        /// "to /elsewhere" or "nowhere".
        to: String,
        /// The root's directory.
        root: PathBuf,
    },
}

impl Classify for Error {
    fn status(&self) -> Status {
        Status::Usage
    }
}

/// The prefix standing in for `/` (the real `/` when none was given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Root {
    dir: Option<PathBuf>,
}

impl Root {
    /// The real root: system paths are used as they are.
    #[must_use]
    pub fn real() -> Self {
        Root { dir: None }
    }

    /// A prefix. It must exist; it is made absolute so that paths written
    /// into files stay valid from any working directory.
    ///
    /// # Errors
    /// `dir` does not exist or cannot be resolved ([`Error::Unusable`]), or
    /// is not a directory ([`Error::NotDir`]).
    pub fn new(dir: Option<&Path>) -> Result<Self, Error> {
        let Some(dir) = dir else {
            return Ok(Self::real());
        };
        let abs = std::fs::canonicalize(dir).map_err(|cause| Error::Unusable {
            path: dir.to_path_buf(),
            cause,
        })?;
        if !abs.is_dir() {
            return Err(Error::NotDir(dir.to_path_buf()));
        }
        if abs == Path::new("/") {
            return Ok(Self::real());
        }
        Ok(Root { dir: Some(abs) })
    }

    /// Is this the machine's real `/`?
    #[must_use]
    pub fn is_real(&self) -> bool {
        self.dir.is_none()
    }

    /// The prefix directory, if any.
    #[must_use]
    pub fn prefix(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Map a system path into the root. Absolute paths get the prefix,
    /// after `..` is resolved against the root (see the module docs);
    /// relative ones are returned unchanged (they are the user's own).
    /// A symlinked directory inside the root that leads out of it is
    /// refused.
    ///
    /// # Errors
    /// A symlinked directory on the way leads out of the root or nowhere
    /// ([`Error::Escapes`]).
    pub fn system(&self, path: &Path) -> Result<PathBuf, Error> {
        match &self.dir {
            Some(dir) if path.is_absolute() => {
                let mapped = dir.join(normalise(path));
                Self::refuse_escape(dir, &mapped)?;
                Ok(mapped)
            }
            None if path.is_absolute() => Ok(Path::new("/").join(normalise(path))),
            _ => Ok(path.to_path_buf()),
        }
    }

    /// [`Root::system`] without the symlink check: the mapped path, for
    /// handing to a program that only reads it (`ssh -F`), where a
    /// refusal would only hide what that program itself reports.
    #[must_use]
    pub fn lexical(&self, path: &Path) -> PathBuf {
        match &self.dir {
            Some(dir) if path.is_absolute() => dir.join(normalise(path)),
            None if path.is_absolute() => Path::new("/").join(normalise(path)),
            _ => path.to_path_buf(),
        }
    }

    /// Follow every symlink among the directories of `mapped` below the
    /// root; each must lead to a place inside it.
    fn refuse_escape(dir: &Path, mapped: &Path) -> Result<(), Error> {
        let Ok(rel) = mapped.strip_prefix(dir) else {
            return Ok(());
        };
        let parts: Vec<Component> = rel.components().collect();
        let mut at = dir.to_path_buf();
        for (i, part) in parts.iter().enumerate() {
            at.push(part);
            let Ok(meta) = std::fs::symlink_metadata(&at) else {
                // Absent: nothing below it exists either.
                return Ok(());
            };
            if !meta.file_type().is_symlink() {
                continue;
            }
            let last = i + 1 == parts.len();
            match std::fs::canonicalize(&at) {
                Ok(target) if target.starts_with(dir) => {}
                // A symlink at the target itself, to a file: the writer's call.
                Ok(target) if last && !target.is_dir() => return Ok(()),
                Err(_) if last => return Ok(()),
                found => {
                    return Err(Error::Escapes {
                        link: at.clone(),
                        to: found.map_or_else(
                            |_| "nowhere".to_owned(),
                            |t| format!("to {}", t.display()),
                        ),
                        root: dir.to_path_buf(),
                    })
                }
            }
        }
        Ok(())
    }

    /// The inverse of [`Root::system`]: how a path inside the root looks
    /// from the system's point of view (for messages such as "install to
    /// /etc/nix/...").
    #[must_use]
    pub fn unroot(&self, path: &Path) -> PathBuf {
        match &self.dir {
            Some(dir) => path
                .strip_prefix(dir)
                .map_or_else(|_| path.to_path_buf(), |rel| Path::new("/").join(rel)),
            None => path.to_path_buf(),
        }
    }
}

/// `path` relative to `/`, with `.` dropped and `..` taken off the end
/// (never above the start: `/..` is `/`).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_root_leaves_paths_alone() {
        let r = Root::real();
        assert_eq!(
            r.system(Path::new("/etc/nix/nix.conf")).unwrap(),
            Path::new("/etc/nix/nix.conf")
        );
        assert!(r.is_real());
    }

    #[test]
    fn prefix_applies_to_absolute_paths_only() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Root::new(Some(tmp.path())).unwrap();
        let abs = std::fs::canonicalize(tmp.path()).unwrap();
        assert_eq!(
            r.system(Path::new("/etc/nix/nix.conf")).unwrap(),
            abs.join("etc/nix/nix.conf")
        );
        assert_eq!(r.system(Path::new("keys/x")).unwrap(), Path::new("keys/x"));
    }

    #[test]
    fn unroot_inverts_system() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Root::new(Some(tmp.path())).unwrap();
        let p = Path::new("/etc/ssh/ssh_config");
        assert_eq!(r.unroot(&r.system(p).unwrap()), p);
        assert_eq!(r.unroot(Path::new("/elsewhere")), Path::new("/elsewhere"));
    }

    #[test]
    fn dot_dot_cannot_climb_out_of_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Root::new(Some(tmp.path())).unwrap();
        let abs = std::fs::canonicalize(tmp.path()).unwrap();
        let p = r.system(Path::new("/../../../tmp/outside/k")).unwrap();
        assert_eq!(p, abs.join("tmp/outside/k"));
        assert_eq!(
            r.system(Path::new("/etc/./nix/../ssh/x")).unwrap(),
            abs.join("etc/ssh/x")
        );
        assert_eq!(
            Root::real().system(Path::new("/etc/../../k")).unwrap(),
            Path::new("/k")
        );
    }

    #[test]
    fn symlinked_directory_leading_out_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tempfile::tempdir().unwrap();
        let r = Root::new(Some(tmp.path())).unwrap();
        let abs = std::fs::canonicalize(tmp.path()).unwrap();
        std::fs::create_dir(abs.join("etc")).unwrap();
        std::os::unix::fs::symlink(elsewhere.path(), abs.join("etc/nix")).unwrap();
        for p in ["/etc/nix/nix.conf", "/etc/nix"] {
            let e = r.system(Path::new(p)).unwrap_err();
            assert!(matches!(e, Error::Escapes { .. }), "{e}");
            assert!(e.to_string().contains("outside --root"), "{e}");
        }
        // Dangling: refused too.
        std::fs::remove_file(abs.join("etc/nix")).unwrap();
        std::os::unix::fs::symlink("/nonexistent/x", abs.join("etc/nix")).unwrap();
        assert!(r.system(Path::new("/etc/nix/nix.conf")).is_err());
        // Inside the root (relative, as macOS's etc -> private/etc): followed.
        std::fs::remove_file(abs.join("etc/nix")).unwrap();
        std::fs::create_dir_all(abs.join("private/nix")).unwrap();
        std::os::unix::fs::symlink("../private/nix", abs.join("etc/nix")).unwrap();
        assert_eq!(
            r.system(Path::new("/etc/nix/nix.conf")).unwrap(),
            abs.join("etc/nix/nix.conf")
        );
        // A symlink at the last component, to a file outside: left to fs.
        let f = elsewhere.path().join("f");
        std::fs::write(&f, "").unwrap();
        std::os::unix::fs::symlink(&f, abs.join("private/nix/nix.conf")).unwrap();
        r.system(Path::new("/etc/nix/nix.conf")).unwrap();
        // The real root is never judged (macOS: /etc -> /private/etc).
        Root::real().system(Path::new("/etc/nix/nix.conf")).unwrap();
    }

    #[test]
    fn slash_is_the_real_root() {
        assert!(Root::new(Some(Path::new("/"))).unwrap().is_real());
    }

    #[test]
    fn missing_or_file_root_is_usage_error() {
        let tmp = tempfile::tempdir().unwrap();
        let e = Root::new(Some(&tmp.path().join("absent"))).unwrap_err();
        assert_eq!(e.status(), Status::Usage);
        assert!(e.to_string().contains("absent"));
        let f = tmp.path().join("f");
        std::fs::write(&f, "").unwrap();
        assert!(matches!(Root::new(Some(&f)), Err(Error::NotDir(_))));
    }
}
