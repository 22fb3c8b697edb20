//! A directory tree as it is on disk, to compare before and after a run
//! (an undo leaves the tree as it was; a second run rewrites nothing).

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(PathBuf),
    /// A socket, fifo or device.
    Other,
}

/// One entry: its kind, permission bits and (files) modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub kind: Kind,
    pub mode: u32,
    pub modified: Option<SystemTime>,
}

/// Every entry under a directory, by path relative to it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tree(pub BTreeMap<PathBuf, Entry>);

impl Tree {
    /// Everything under `dir` (not `dir` itself); files are read whole.
    /// Entries that vanish while it walks are left out.
    ///
    /// # Panics
    /// When `dir` cannot be read.
    #[must_use]
    pub fn of(dir: &Path) -> Tree {
        let mut out = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let entries = match std::fs::read_dir(&d) {
                Ok(entries) => entries,
                Err(e) if d == dir => panic!("read {}: {e}", d.display()),
                Err(_) => continue, // gone since it was listed
            };
            for e in entries.flatten() {
                let p = e.path();
                let Ok(m) = std::fs::symlink_metadata(&p) else {
                    continue;
                };
                let kind = if m.is_dir() {
                    stack.push(p.clone());
                    Kind::Dir
                } else if m.is_file() {
                    match std::fs::read(&p) {
                        Ok(bytes) => Kind::File(bytes),
                        Err(_) => continue,
                    }
                } else if m.file_type().is_symlink() {
                    Kind::Symlink(std::fs::read_link(&p).unwrap_or_default())
                } else {
                    Kind::Other
                };
                let modified = matches!(kind, Kind::File(_))
                    .then(|| m.modified().ok())
                    .flatten();
                let rel = p.strip_prefix(dir).expect("under dir").to_path_buf();
                out.insert(
                    rel,
                    Entry {
                        kind,
                        mode: m.permissions().mode() & 0o7777,
                        modified,
                    },
                );
            }
        }
        Tree(out)
    }

    /// This tree without its directories.
    #[must_use]
    pub fn files(&self) -> Tree {
        Tree(
            self.0
                .iter()
                .filter(|(_, e)| e.kind != Kind::Dir)
                .map(|(p, e)| (p.clone(), e.clone()))
                .collect(),
        )
    }

    /// The paths that only one tree has, or whose kind, contents or mode
    /// differ (modification times aside): empty when `other` is this tree
    /// restored.
    #[must_use]
    pub fn differences(&self, other: &Tree) -> Vec<String> {
        self.compare(other, |a, b| a.kind == b.kind && a.mode == b.mode)
    }

    /// As [`Tree::differences`], and the files written again (another
    /// modification time) even with the same bytes: empty when a run
    /// between the two left everything alone.
    #[must_use]
    pub fn rewritten(&self, other: &Tree) -> Vec<String> {
        self.compare(other, |a, b| a == b)
    }

    fn compare(&self, other: &Tree, same: impl Fn(&Entry, &Entry) -> bool) -> Vec<String> {
        let mut paths: Vec<&PathBuf> = self.0.keys().chain(other.0.keys()).collect();
        paths.sort();
        paths.dedup();
        paths
            .into_iter()
            .filter(|p| match (self.0.get(*p), other.0.get(*p)) {
                (Some(a), Some(b)) => !same(a, b),
                _ => true,
            })
            .map(|p| p.display().to_string())
            .collect()
    }

    /// The files' paths and bytes (for tests that look only at contents).
    #[must_use]
    pub fn contents(&self) -> BTreeMap<PathBuf, Vec<u8>> {
        self.0
            .iter()
            .filter_map(|(p, e)| match &e.kind {
                Kind::File(b) => Some((p.clone(), b.clone())),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_and_rewrites_are_told_apart() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("sub")).unwrap();
        std::fs::write(d.path().join("sub/a"), "one").unwrap();
        let before = Tree::of(d.path());
        assert_eq!(before.0.len(), 2);
        assert_eq!(before.files().0.len(), 1);
        assert!(before.rewritten(&Tree::of(d.path())).is_empty());

        // Same bytes written again: no difference, but a rewrite.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(d.path().join("sub/a"), "one").unwrap();
        let again = Tree::of(d.path());
        assert!(before.differences(&again).is_empty());
        assert_eq!(before.rewritten(&again), ["sub/a"]);

        std::fs::set_permissions(
            d.path().join("sub/a"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        std::fs::write(d.path().join("b"), "two").unwrap();
        assert_eq!(before.differences(&Tree::of(d.path())), ["b", "sub/a"]);
        assert_eq!(Tree::of(d.path()).contents()[Path::new("b")], b"two");
    }
}
