//! A tool's own run-time files: directories, logs, sockets and images it
//! creates and deletes as it runs (lb-vm's working directory), as opposed
//! to configuration, which goes through [`crate::fs::write()`] and
//! [`crate::fs::remove()`] with their lock, diff and dry-run. Here a call does
//! what it says at once, and its error names what it did and where.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

use crate::status::{Classify, Status};

/// A run-time file operation that failed: `remove /w/x.qmp: Permission denied`.
#[derive(Debug, thiserror::Error)]
#[error("{op} {}: {source}", path.display())]
pub struct OpError {
    /// What was being done: `create`, `open`, `remove`.
    pub op: &'static str,
    /// The file, directory or socket it concerned.
    pub path: PathBuf,
    /// Why it failed.
    pub source: std::io::Error,
}

impl Classify for OpError {
    fn status(&self) -> Status {
        Status::Failed
    }
}

fn op<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> OpError + 'a {
    move |source| OpError {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Create `dir` and its missing parents (default mode, umask applied).
///
/// # Errors
/// `create DIR: ...` when it cannot be created.
pub fn ensure_dir(dir: &Path) -> Result<(), OpError> {
    std::fs::create_dir_all(dir).map_err(op("create", dir))
}

/// Remove the entry at `path` (a regular file, a unix socket, a symlink
/// as the link itself) if it is there. True when something was removed.
///
/// # Errors
/// `remove PATH: ...` for anything but its absence (a directory there
/// included).
pub fn remove_entry(path: &Path) -> Result<bool, OpError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(op("remove", path)(e)),
    }
}

/// Remove the directory `dir` if it is there and empty. True when it was
/// removed; false when absent or not empty (left as it is).
///
/// # Errors
/// `remove DIR: ...` for anything but its absence or its contents.
pub fn remove_empty_dir(dir: &Path) -> Result<bool, OpError> {
    match std::fs::remove_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::DirectoryNotEmpty) => {
            Ok(false)
        }
        Err(e) => Err(op("remove", dir)(e)),
    }
}

/// Remove the directory tree at `path` if it is there. True when
/// something was removed.
///
/// # Errors
/// `remove PATH: ...` for anything but its absence.
pub fn remove_tree(path: &Path) -> Result<bool, OpError> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
        Err(e) => Err(op("remove", path)(e)),
    }
}

/// Open a log for a child's output: emptied first (`create`, one log per
/// run), or appended to.
///
/// # Errors
/// `create PATH: ...` or `open PATH: ...` when it cannot be opened.
pub fn open_log(path: &Path, append: bool) -> Result<File, OpError> {
    if append {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(op("open", path))
    } else {
        File::create(path).map_err(op("create", path))
    }
}

/// Bound a log that grows without rotation (one launchd opened as our
/// stdout): over `max` bytes, it is cut to its last `keep` bytes, from
/// the first line start in them, after a line `[WHO: log cut to its last
/// N bytes]`. True when cut.
///
/// # Errors
/// When it cannot be read or rewritten (an absent log included).
pub fn keep_tail(path: &Path, max: u64, keep: u64, who: &str) -> std::io::Result<bool> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() || meta.len() <= max {
        return Ok(false);
    }
    let mut f = OpenOptions::new().read(true).write(true).open(path)?;
    f.seek(SeekFrom::Start(meta.len() - keep))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    // Start at a line.
    let cut = tail.iter().position(|b| *b == b'\n').map_or(0, |i| i + 1);
    f.set_len(0)?;
    f.seek(SeekFrom::Start(0))?;
    writeln!(f, "[{who}: log cut to its last {} bytes]", tail.len() - cut)?;
    f.write_all(&tail[cut..])?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_and_remove_say_what_they_did() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        ensure_dir(&dir).unwrap();
        assert!(dir.is_dir());
        let f = dir.join("x.log");
        std::fs::write(&f, "x").unwrap();
        assert!(remove_entry(&f).unwrap());
        assert!(!remove_entry(&f).unwrap(), "absent is fine");
        assert!(remove_tree(&tmp.path().join("a")).unwrap());
        assert!(!remove_tree(&tmp.path().join("a")).unwrap());
        let e = remove_entry(tmp.path()).unwrap_err();
        assert_eq!(e.op, "remove");
        assert!(
            e.to_string()
                .starts_with(&format!("remove {}: ", tmp.path().display())),
            "{e}"
        );
        assert_eq!(e.status(), Status::Failed);
    }

    #[test]
    fn a_socket_is_removed_as_an_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let s = tmp.path().join("x.ctl");
        let _l = std::os::unix::net::UnixListener::bind(&s).unwrap();
        assert!(remove_entry(&s).unwrap());
        assert!(std::fs::symlink_metadata(&s).is_err());
    }

    #[test]
    fn logs_are_emptied_or_appended() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("q.log");
        std::fs::write(&p, "old\n").unwrap();
        writeln!(open_log(&p, true).unwrap(), "more").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old\nmore\n");
        writeln!(open_log(&p, false).unwrap(), "new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new\n");
        let e = open_log(&tmp.path().join("no/such"), false).unwrap_err();
        assert!(e.to_string().starts_with("create "), "{e}");
    }

    #[test]
    fn log_is_bounded() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("svc.log");
        assert!(keep_tail(&log, 10, 5, "lb-vm").is_err(), "absent");
        std::fs::write(&log, "short\n").unwrap();
        assert!(!keep_tail(&log, 100, 10, "lb-vm").unwrap());
        let text = "line\n".repeat(100);
        std::fs::write(&log, &text).unwrap();
        assert!(keep_tail(&log, 100, 30, "lb-vm").unwrap());
        let after = std::fs::read_to_string(&log).unwrap();
        assert!(after.starts_with("[lb-vm: log cut to its last "), "{after}");
        assert!(after.ends_with("line\nline\n"), "{after}");
        assert!(after.len() < 80, "{after}");
    }
}
