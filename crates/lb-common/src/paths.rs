//! `--root DIR`: a prefix that stands in for `/`.
//!
//! Every system location (the defaults under `/etc/nix`, `/etc/ssh`, and
//! flags that name one, such as `--key`) goes through [`Root::system`], so a
//! scratch root holds a complete, working configuration: the paths written
//! *inside* files (an ssh alias's `IdentityFile`) carry the prefix too.
//! Paths a user names as inputs (a keys directory, a kernel, `@FILE`) are
//! used as given.

use std::path::{Component, Path, PathBuf};

use crate::exit::{Classify, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // `cause` is shown in the message, not chained: one line says it once.
    #[error("--root {path}: {cause}; create it first or pass an existing directory")]
    Unusable {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("--root {0}: not a directory; pass a directory to use as /")]
    NotDir(PathBuf),
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

    /// Map a system path into the root. Absolute paths get the prefix;
    /// relative ones are returned unchanged (they are the user's own).
    #[must_use]
    pub fn system(&self, path: &Path) -> PathBuf {
        match &self.dir {
            Some(dir) if path.is_absolute() => {
                let rel: PathBuf = path
                    .components()
                    .filter(|c| !matches!(c, Component::RootDir | Component::Prefix(_)))
                    .collect();
                dir.join(rel)
            }
            _ => path.to_path_buf(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_root_leaves_paths_alone() {
        let r = Root::real();
        assert_eq!(
            r.system(Path::new("/etc/nix/nix.conf")),
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
            r.system(Path::new("/etc/nix/nix.conf")),
            abs.join("etc/nix/nix.conf")
        );
        assert_eq!(r.system(Path::new("keys/x")), Path::new("keys/x"));
    }

    #[test]
    fn unroot_inverts_system() {
        let tmp = tempfile::tempdir().unwrap();
        let r = Root::new(Some(tmp.path())).unwrap();
        let p = Path::new("/etc/ssh/ssh_config");
        assert_eq!(r.unroot(&r.system(p)), p);
        assert_eq!(r.unroot(Path::new("/elsewhere")), Path::new("/elsewhere"));
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
