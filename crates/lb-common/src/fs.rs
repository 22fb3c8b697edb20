//! The only place files are written.
//!
//! A write goes: lock the directory, look at what is there (refusing a
//! symlink: a root process must not write through one), compare content,
//! mode and owner with what is wanted (equal: nothing is touched, mtime
//! included), else write a temp file created 0600 in the same directory,
//! fsync, chown/chmod, rename over the target and fsync the directory. A
//! crash or a full disk leaves either the old file or the new one, whole.
//!
//! [`Apply::DryRun`] prints a unified diff on stdout and writes nothing;
//! [`Apply::Check`] only reports what would happen.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid};

use crate::exit::{Classify, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: is a symlink; refusing to write through it (remove it or point the tool at the real file)")]
    Symlink(PathBuf),
    #[error("{0}: already exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("{0}: is a directory where a file is expected")]
    IsDir(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// Wrap an I/O error with the path it concerns.
    #[must_use]
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl Classify for Error {
    fn status(&self) -> Status {
        Status::Failed
    }
}

/// How a change is carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apply {
    /// Write for real.
    Write,
    /// Print a unified diff of the change on stdout; write nothing.
    DryRun,
    /// Write nothing, print nothing; the outcome says what would happen.
    Check,
}

impl From<crate::cli::Change> for Apply {
    fn from(c: crate::cli::Change) -> Self {
        if c.dry_run {
            Apply::DryRun
        } else if c.check {
            Apply::Check
        } else {
            Apply::Write
        }
    }
}

/// What a write or removal did (or, in dry-run and check, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Already as wanted: nothing touched.
    Unchanged,
    Created,
    Updated,
    Removed,
}

impl Outcome {
    #[must_use]
    pub fn changed(self) -> bool {
        self != Outcome::Unchanged
    }
}

/// The wanted mode and ownership of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileSpec {
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    /// Owner to set; `None` keeps the writer's own.
    pub uid: Option<Uid>,
    /// Group to set; `None` keeps the default.
    pub gid: Option<Gid>,
}

impl FileSpec {
    /// A file with this mode and default ownership.
    #[must_use]
    pub fn mode(mode: u32) -> Self {
        FileSpec {
            mode,
            uid: None,
            gid: None,
        }
    }
}

/// An exclusive advisory lock on a directory, serialising writers of the
/// files in it (read-modify-write of nix.conf by two tools at once).
#[derive(Debug)]
pub struct DirLock {
    _lock: Flock<File>,
}

/// Lock the directory that holds `target`, creating the directory (0755)
/// if `create` is set.
pub fn lock_dir_of(target: &Path, create: bool) -> Result<Option<DirLock>, Error> {
    let dir = parent(target);
    if create {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
    }
    let file = match File::open(&dir) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::io(&dir, errno.into()))?;
    Ok(Some(DirLock { _lock: lock }))
}

/// The directory holding `path` (`.` for a bare file name).
#[must_use]
pub fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The permission bits of an existing file, or `default` for one that is
/// not there yet: an edit keeps the mode the user chose.
#[must_use]
pub fn existing_mode(path: &Path, default: u32) -> u32 {
    std::fs::symlink_metadata(path).map_or(default, |m| m.permissions().mode() & 0o7777)
}

/// Refuse a symlink at `path` before any work starts (the writers refuse
/// one too, but a tool may want to stop before its first write).
pub fn refuse_symlink(path: &Path) -> Result<(), Error> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Symlink(path.to_path_buf()));
    }
    Ok(())
}

/// Read a file that may be absent. A symlink is refused (see module docs);
/// use [`read_following`] where following one is intended.
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(Error::Symlink(path.to_path_buf())),
        Ok(m) if m.is_dir() => return Err(Error::IsDir(path.to_path_buf())),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    }
    std::fs::read(path)
        .map(Some)
        .map_err(|e| Error::io(path, e))
}

/// Read a file that may be absent, following symlinks.
pub fn read_following(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(path, e)),
    }
}

fn matches_spec(meta: &std::fs::Metadata, spec: &FileSpec) -> bool {
    meta.permissions().mode() & 0o7777 == spec.mode
        && spec.uid.is_none_or(|u| u.as_raw() == meta.uid())
        && spec.gid.is_none_or(|g| g.as_raw() == meta.gid())
}

/// Make `path` hold exactly `contents` with `spec`'s mode and owner.
pub fn write(
    path: &Path,
    contents: &[u8],
    spec: &FileSpec,
    apply: Apply,
) -> Result<Outcome, Error> {
    update(path, spec, apply, |_| Ok::<_, Error>(contents.to_vec()))
}

/// Read-modify-write under the directory lock: `edit` gets the current
/// contents (`None` when absent) and returns the wanted contents. Errors
/// from `edit` come back unchanged and nothing is written.
pub fn update<E>(
    path: &Path,
    spec: &FileSpec,
    apply: Apply,
    edit: impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, E>,
) -> Result<Outcome, E>
where
    E: From<Error>,
{
    let _lock = lock_dir_of(path, apply == Apply::Write)?;
    let old = read_optional(path)?;
    let contents = edit(old.as_deref())?;
    let outcome = match &old {
        None => Outcome::Created,
        Some(old) => {
            let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
            if *old == contents && matches_spec(&meta, spec) {
                Outcome::Unchanged
            } else {
                Outcome::Updated
            }
        }
    };
    match apply {
        Apply::Check => {}
        Apply::DryRun => {
            if outcome.changed() {
                print_diff(
                    path,
                    old.as_deref().unwrap_or_default(),
                    &contents,
                    old.is_none(),
                )
                .map_err(|e| Error::io(Path::new("<stdout>"), e))?;
            }
        }
        Apply::Write => {
            if outcome.changed() {
                replace(path, &contents, spec)?;
            }
        }
    }
    Ok(outcome)
}

/// The atomic replacement itself.
fn replace(path: &Path, contents: &[u8], spec: &FileSpec) -> Result<(), Error> {
    let tmp = stage(path, contents, spec)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    sync_dir(&parent(path))
}

/// A complete new version of `path` in a temp file beside it: written,
/// synced, owned and moded, waiting only for the rename.
fn stage(path: &Path, contents: &[u8], spec: &FileSpec) -> Result<tempfile::NamedTempFile, Error> {
    let dir = parent(path);
    let name = path
        .file_name()
        .map_or_else(|| "file".into(), |n| n.to_string_lossy().into_owned());
    // tempfile creates the file with O_EXCL and mode 0600: a private key is
    // never readable by others, not even for an instant.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(|e| Error::io(&dir, e))?;
    let err = |e| Error::io(path, e);
    tmp.write_all(contents).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    if spec.uid.is_some() || spec.gid.is_some() {
        nix::unistd::fchown(
            std::os::fd::AsRawFd::as_raw_fd(tmp.as_file()),
            spec.uid,
            spec.gid,
        )
        .map_err(|e| err(e.into()))?;
    }
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(spec.mode))
        .map_err(err)?;
    Ok(tmp)
}

/// One file of a set written together by [`write_set`].
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    pub path: &'a Path,
    pub contents: &'a [u8],
    pub spec: FileSpec,
}

/// Write several files as one change (a key pair): every target is
/// inspected first (a symlink or directory at any of them refuses the
/// whole set), and every changed file is staged in full before the first
/// rename, so a refusal or a full disk leaves all of them as they were.
pub fn write_set(files: &[Planned<'_>], apply: Apply) -> Result<Vec<Outcome>, Error> {
    let mut dirs: Vec<PathBuf> = files.iter().map(|f| parent(f.path)).collect();
    dirs.sort();
    dirs.dedup();
    let mut locks = Vec::new();
    for d in &dirs {
        // One lock per directory: a second flock on the same directory from
        // this process would wait for itself.
        locks.push(lock_dir_of(&d.join("x"), apply == Apply::Write)?);
    }
    let mut outcomes = Vec::new();
    let mut olds = Vec::new();
    for f in files {
        let old = read_optional(f.path)?;
        outcomes.push(match &old {
            None => Outcome::Created,
            Some(o) => {
                let meta = std::fs::metadata(f.path).map_err(|e| Error::io(f.path, e))?;
                if o.as_slice() == f.contents && matches_spec(&meta, &f.spec) {
                    Outcome::Unchanged
                } else {
                    Outcome::Updated
                }
            }
        });
        olds.push(old);
    }
    match apply {
        Apply::Check => {}
        Apply::DryRun => {
            for ((f, old), outcome) in files.iter().zip(&olds).zip(&outcomes) {
                if outcome.changed() {
                    print_diff(
                        f.path,
                        old.as_deref().unwrap_or_default(),
                        f.contents,
                        old.is_none(),
                    )
                    .map_err(|e| Error::io(Path::new("<stdout>"), e))?;
                }
            }
        }
        Apply::Write => {
            let mut staged = Vec::new();
            for (f, outcome) in files.iter().zip(&outcomes) {
                if outcome.changed() {
                    staged.push((f.path, stage(f.path, f.contents, &f.spec)?));
                }
            }
            for (path, tmp) in staged {
                tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
            }
            for d in &dirs {
                sync_dir(d)?;
            }
        }
    }
    drop(locks);
    Ok(outcomes)
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir, e))
}

/// Remove `path` if present. A symlink there is removed as the link itself.
pub fn remove(path: &Path, apply: Apply) -> Result<Outcome, Error> {
    let _lock = lock_dir_of(path, false)?;
    let old = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Err(Error::IsDir(path.to_path_buf())),
        Ok(m) if m.file_type().is_symlink() => None,
        Ok(_) => Some(std::fs::read(path).map_err(|e| Error::io(path, e))?),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Outcome::Unchanged),
        Err(e) => return Err(Error::io(path, e)),
    };
    match apply {
        Apply::Check => {}
        Apply::DryRun => {
            if let Some(old) = old {
                print_diff(path, &old, b"", false).map_err(|e| Error::io(path, e))?;
            } else {
                crate::ui::out(&format!("rm {}", path.display()))
                    .map_err(|e| Error::io(path, e))?;
            }
        }
        Apply::Write => {
            std::fs::remove_file(path).map_err(|e| Error::io(path, e))?;
            sync_dir(&parent(path))?;
        }
    }
    Ok(Outcome::Removed)
}

/// Create a new file with mode 0600 from its first byte, failing if
/// anything (file or symlink) is already there.
pub fn create_private(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => Error::Exists(path.to_path_buf()),
            _ => Error::io(path, e),
        })?;
    f.write_all(contents)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// The unified diff of a change, as dry-run shows it.
#[must_use]
pub fn diff(path: &Path, old: &[u8], new: &[u8], created: bool) -> String {
    let old = String::from_utf8_lossy(old);
    let new = String::from_utf8_lossy(new);
    let a = if created {
        "/dev/null".to_owned()
    } else {
        format!("a{}", path.display())
    };
    let b = if new.is_empty() && !created {
        "/dev/null".to_owned()
    } else {
        format!("b{}", path.display())
    };
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .header(&a, &b)
        .to_string()
}

fn print_diff(path: &Path, old: &[u8], new: &[u8], created: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(diff(path, old, new, created).as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode_of(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn creates_then_leaves_equal_file_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("sub/dir/f.conf");
        let spec = FileSpec::mode(0o644);
        assert_eq!(
            write(&p, b"a\n", &spec, Apply::Write).unwrap(),
            Outcome::Created
        );
        assert_eq!(std::fs::read(&p).unwrap(), b"a\n");
        assert_eq!(mode_of(&p), 0o644);
        let before = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(
            write(&p, b"a\n", &spec, Apply::Write).unwrap(),
            Outcome::Unchanged
        );
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), before);
    }

    #[test]
    fn mode_difference_alone_is_a_change() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("k");
        write(&p, b"x", &FileSpec::mode(0o644), Apply::Write).unwrap();
        assert_eq!(
            write(&p, b"x", &FileSpec::mode(0o600), Apply::Write).unwrap(),
            Outcome::Updated
        );
        assert_eq!(mode_of(&p), 0o600);
    }

    #[test]
    fn refuses_symlink_target_and_leaves_it() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        std::fs::write(&victim, "keep").unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = write(&link, b"evil", &FileSpec::mode(0o644), Apply::Write).unwrap_err();
        assert!(matches!(e, Error::Symlink(_)), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn dry_run_and_check_write_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("new/f");
        assert_eq!(
            write(&p, b"x", &FileSpec::mode(0o644), Apply::DryRun).unwrap(),
            Outcome::Created
        );
        assert_eq!(
            write(&p, b"x", &FileSpec::mode(0o644), Apply::Check).unwrap(),
            Outcome::Created
        );
        assert!(!tmp.path().join("new").exists());
    }

    #[test]
    fn no_temp_files_left_behind() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        write(&p, b"1", &FileSpec::mode(0o600), Apply::Write).unwrap();
        write(&p, b"2", &FileSpec::mode(0o600), Apply::Write).unwrap();
        let names: Vec<_> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn private_file_is_exclusive_and_0600() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("key");
        create_private(&p, b"secret").unwrap();
        assert_eq!(mode_of(&p), 0o600);
        assert!(matches!(
            create_private(&p, b"again"),
            Err(Error::Exists(_))
        ));
        assert_eq!(std::fs::read(&p).unwrap(), b"secret");
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &link).unwrap();
        assert!(create_private(&link, b"x").is_err());
        assert!(!tmp.path().join("elsewhere").exists());
    }

    #[test]
    fn remove_is_idempotent() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        std::fs::write(&p, "x").unwrap();
        assert_eq!(remove(&p, Apply::Check).unwrap(), Outcome::Removed);
        assert!(p.exists());
        assert_eq!(remove(&p, Apply::Write).unwrap(), Outcome::Removed);
        assert_eq!(remove(&p, Apply::Write).unwrap(), Outcome::Unchanged);
    }

    #[test]
    fn write_set_refuses_whole_set_on_one_bad_target() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("key");
        let b = tmp.path().join("key.pub");
        std::fs::write(&a, "old private").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), &b).unwrap();
        let set = [
            Planned {
                path: &a,
                contents: b"new private",
                spec: FileSpec::mode(0o600),
            },
            Planned {
                path: &b,
                contents: b"new public",
                spec: FileSpec::mode(0o644),
            },
        ];
        assert!(matches!(
            write_set(&set, Apply::Write),
            Err(Error::Symlink(_))
        ));
        assert_eq!(std::fs::read(&a).unwrap(), b"old private");
        assert!(!tmp.path().join("elsewhere").exists());

        std::fs::remove_file(&b).unwrap();
        let out = write_set(&set, Apply::Write).unwrap();
        assert_eq!(out, [Outcome::Updated, Outcome::Created]);
        assert_eq!(std::fs::read(&b).unwrap(), b"new public");
        assert_eq!(mode_of(&b), 0o644);
        assert_eq!(
            write_set(&set, Apply::Write).unwrap(),
            [Outcome::Unchanged, Outcome::Unchanged]
        );
    }

    #[test]
    fn existing_mode_and_symlink_refusal() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("f");
        assert_eq!(existing_mode(&f, 0o644), 0o644);
        std::fs::write(&f, "").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(existing_mode(&f, 0o644), 0o640);
        refuse_symlink(&f).unwrap();
        let l = tmp.path().join("l");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        assert!(matches!(refuse_symlink(&l), Err(Error::Symlink(_))));
        assert_eq!(parent(Path::new("bare")), Path::new("."));
    }

    #[test]
    fn diff_is_unified() {
        let d = diff(Path::new("/etc/x"), b"a\nb\n", b"a\nc\n", false);
        assert!(d.contains("--- a/etc/x\n+++ b/etc/x\n"), "{d}");
        assert!(d.contains("-b\n+c\n"), "{d}");
        let d = diff(Path::new("/etc/y"), b"", b"new\n", true);
        assert!(d.starts_with("--- /dev/null\n+++ b/etc/y\n"), "{d}");
    }

    #[test]
    fn lock_serialises_writers() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("counter");
        std::fs::write(&p, "0").unwrap();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let p = p.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let _l = lock_dir_of(&p, false).unwrap();
                        let n: u32 = std::fs::read_to_string(&p).unwrap().parse().unwrap();
                        // Write without the public API (which would lock again).
                        replace(&p, (n + 1).to_string().as_bytes(), &FileSpec::mode(0o644))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "80");
    }
}
