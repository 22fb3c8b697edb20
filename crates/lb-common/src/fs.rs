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
//!
//! A writer killed between creating its temp file and the rename leaves
//! `.NAME.XXXXXX.tmp` beside the target (for a private key: a copy of
//! it). The next write or removal of NAME, under the same lock, deletes
//! such leftovers first ([`sweep_stale`]), also when the target itself
//! needs no change.
//!
//! Every read is bounded: [`read_optional`] and [`read_following`] take
//! regular files only (a FIFO would block forever, `/dev/zero` never
//! ends) of at most [`MAX_READ`] bytes.
//!
//! Locks are per directory and re-entrant within a thread: a tool that
//! holds the locks of every directory a multi-file change touches
//! ([`lock_dirs`]) can call the writers here, which then take no second
//! lock of their own.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use nix::unistd::{Gid, Uid};

use crate::status::{Classify, Status};

/// Why a file could not be read, written or removed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A symlink where a file is to be read or written without following
    /// one.
    #[error("{0}: is a symlink; refusing to write through it (remove it or point the tool at the real file)")]
    Symlink(PathBuf),
    /// A file that must be new ([`create_private`]) is already there.
    #[error("{0}: already exists; pass --force to replace it")]
    Exists(PathBuf),
    /// A directory where a file is expected.
    #[error("{0}: is a directory where a file is expected")]
    IsDir(PathBuf),
    /// A FIFO, device or socket where a regular file is expected.
    #[error("{path}: is a {kind}, not a regular file; point the tool at a regular file")]
    NotRegular {
        /// The file.
        path: PathBuf,
        /// What it is instead (`FIFO`, `character device`...).
        kind: &'static str,
    },
    /// A file larger than the reader accepts ([`MAX_READ`] unless told).
    #[error("{path}: larger than {limit} bytes, more than a file of this kind can sensibly hold; check that it is the right file")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// The most bytes accepted.
        limit: u64,
    },
    /// Any other failure of the operating system.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory it concerns.
        path: PathBuf,
        /// The underlying error.
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
        match self {
            // The input is wrong, not the operation.
            Error::NotRegular { .. } | Error::TooLarge { .. } => Status::Usage,
            _ => Status::Failed,
        }
    }
}

/// The most any file the tools read may hold (nix.conf and its includes,
/// machines files, ssh_config, keys): far above any real one, far below
/// what would hurt.
pub const MAX_READ: u64 = 16 << 20;

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

impl Apply {
    /// How a command whose stdout is JSON (`--json`) carries this out: a
    /// `-n` prints no diff or commands there, so it is judged as
    /// `--check` is. The command still exits as `-n` does.
    #[must_use]
    pub fn for_json(self, json: bool) -> Apply {
        if json && self == Apply::DryRun {
            Apply::Check
        } else {
            self
        }
    }
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
    /// The file did not exist and was written.
    Created,
    /// The file existed and its contents, mode or owner were replaced.
    Updated,
    /// The file (or link, or special file) was removed.
    Removed,
}

impl Outcome {
    /// True unless [`Outcome::Unchanged`]: something was (or would be)
    /// touched.
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
    /// `None` when this thread already held the lock (re-entry).
    lock: Option<Flock<File>>,
    id: (u64, u64),
}

thread_local! {
    /// Directories (device, inode) whose lock this thread holds.
    static HELD: RefCell<Vec<(u64, u64)>> = const { RefCell::new(Vec::new()) };
}

impl Drop for DirLock {
    fn drop(&mut self) {
        if self.lock.is_some() {
            HELD.with(|h| h.borrow_mut().retain(|x| *x != self.id));
        }
    }
}

/// Lock the directory that holds `target`, creating the directory (0755)
/// if `create` is set. Re-entrant: if this thread holds that directory's
/// lock already, the guard returned takes none. `None` when the directory
/// does not exist (and `create` is not set).
///
/// # Errors
/// [`Error::Io`] naming the directory when it cannot be created, opened or
/// locked.
pub fn lock_dir_of(target: &Path, create: bool) -> Result<Option<DirLock>, Error> {
    lock_dir(&parent(target), create)
}

fn lock_dir(dir: &Path, create: bool) -> Result<Option<DirLock>, Error> {
    if create {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let file = match File::open(dir) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(dir, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(dir, e))?;
    let id = (meta.dev(), meta.ino());
    if HELD.with(|h| h.borrow().contains(&id)) {
        return Ok(Some(DirLock { lock: None, id }));
    }
    let lock = Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, errno)| Error::io(dir, errno.into()))?;
    HELD.with(|h| h.borrow_mut().push(id));
    Ok(Some(DirLock {
        lock: Some(lock),
        id,
    }))
}

/// The locks of several directories, held together for one change that
/// spans them (lb-sshcfg's alias, known-hosts file and ssh_config).
#[derive(Debug)]
pub struct LockSet {
    _locks: Vec<DirLock>,
}

/// Lock every directory in `dirs` (created first when `create`), always in
/// the same (sorted) order, so two processes locking overlapping sets
/// cannot deadlock. The decision what to change and every write under
/// these directories then happen as one step.
///
/// # Errors
/// [`Error::Io`] naming the first directory that cannot be created, opened
/// or locked; the locks already taken are released.
pub fn lock_dirs(dirs: &[&Path], create: bool) -> Result<LockSet, Error> {
    let mut sorted: Vec<&Path> = dirs.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut locks = Vec::new();
    for d in sorted {
        if let Some(l) = lock_dir(d, create)? {
            locks.push(l);
        }
    }
    Ok(LockSet { _locks: locks })
}

/// Is `name` one of [`stage`]'s temp file names for the target `target`
/// (`.TARGET.XXXXXX.tmp`, six random letters or digits)?
fn is_stale_temp(name: &str, target: &str) -> bool {
    name.strip_prefix('.')
        .and_then(|r| r.strip_prefix(target))
        .and_then(|r| r.strip_prefix('.'))
        .and_then(|r| r.strip_suffix(".tmp"))
        .is_some_and(|mid| mid.len() == 6 && mid.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The temp files a killed writer of `path` left beside it.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be listed (an absent one is
/// none).
pub fn stale_temps(path: &Path) -> Result<Vec<PathBuf>, Error> {
    let dir = parent(path);
    let Some(target) = path.file_name().and_then(|n| n.to_str()) else {
        return Ok(Vec::new());
    };
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(&dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(&dir, e))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| is_stale_temp(n, target))
        {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// Delete the temp files a killed writer of `path` left beside it. Only
/// called with the directory's lock held: no live writer has one open.
/// Returns how many were removed.
///
/// # Errors
/// [`Error::Io`] when the directory cannot be listed or a temp file cannot
/// be removed.
pub fn sweep_stale(path: &Path) -> Result<usize, Error> {
    let mut removed = 0;
    for p in stale_temps(path)? {
        match std::fs::remove_file(&p) {
            Ok(()) => {
                removed += 1;
                crate::ui::verbose(&format!(
                    "removed {}, left by an interrupted write",
                    p.display()
                ));
            }
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&p, e)),
        }
    }
    Ok(removed)
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
///
/// # Errors
/// [`Error::Symlink`] when `path` is one.
pub fn refuse_symlink(path: &Path) -> Result<(), Error> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(Error::Symlink(path.to_path_buf()));
    }
    Ok(())
}

/// Read a file that may be absent. A symlink is refused (see module docs);
/// use [`read_following`] where following one is intended.
///
/// # Errors
/// A symlink ([`Error::Symlink`]), a directory ([`Error::IsDir`]), not a
/// regular file ([`Error::NotRegular`]), more than [`MAX_READ`] bytes
/// ([`Error::TooLarge`]), or unreadable ([`Error::Io`]).
pub fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => return Err(Error::Symlink(path.to_path_buf())),
        Ok(m) if m.is_dir() => return Err(Error::IsDir(path.to_path_buf())),
        Ok(_) => {}
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    }
    read_bounded(path, false, MAX_READ)
}

/// Read a file that may be absent, following symlinks.
///
/// # Errors
/// As for [`read_bounded`] with [`MAX_READ`].
pub fn read_following(path: &Path) -> Result<Option<Vec<u8>>, Error> {
    read_bounded(path, true, MAX_READ)
}

/// What a non-regular file is, for messages.
fn kind_of(t: std::fs::FileType) -> &'static str {
    if t.is_fifo() {
        "FIFO"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else {
        "special file"
    }
}

/// Read at most `limit` bytes of a regular file (`/dev/null` reads as
/// empty); `None` when absent. The file is opened non-blocking (a FIFO
/// must not hang the open), checked on the open descriptor, and read no
/// further than
/// `limit + 1` bytes (a file growing while read is caught too).
///
/// # Errors
/// A directory ([`Error::IsDir`]), not a regular file
/// ([`Error::NotRegular`]), more than `limit` bytes ([`Error::TooLarge`]),
/// a symlink when `follow` is not set ([`Error::Symlink`]), or unreadable
/// ([`Error::Io`]).
pub fn read_bounded(path: &Path, follow: bool, limit: u64) -> Result<Option<Vec<u8>>, Error> {
    let mut flags = nix::libc::O_NONBLOCK;
    if !follow {
        flags |= nix::libc::O_NOFOLLOW;
    }
    let file = match OpenOptions::new().read(true).custom_flags(flags).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if !follow && e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err(Error::Symlink(path.to_path_buf()))
        }
        Err(e) => return Err(Error::io(path, e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(path, e))?;
    if meta.is_dir() {
        return Err(Error::IsDir(path.to_path_buf()));
    }
    // `/dev/null` is the one device read, as empty: Nix's own machines
    // tests read `@/dev/null` as no machines, and users write it so.
    if meta.file_type().is_char_device() && path == Path::new("/dev/null") {
        return Ok(Some(Vec::new()));
    }
    if !meta.is_file() {
        return Err(Error::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.len() > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    let mut out = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit + 1)
        .read_to_end(&mut out)
        .map_err(|e| Error::io(path, e))?;
    if out.len() as u64 > limit {
        return Err(Error::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(Some(out))
}

fn matches_spec(meta: &std::fs::Metadata, spec: &FileSpec) -> bool {
    meta.permissions().mode() & 0o7777 == spec.mode
        && spec.uid.is_none_or(|u| u.as_raw() == meta.uid())
        && spec.gid.is_none_or(|g| g.as_raw() == meta.gid())
}

/// Make `path` hold exactly `contents` with `spec`'s mode and owner.
///
/// # Errors
/// A symlink or directory at `path` ([`Error::Symlink`], [`Error::IsDir`]),
/// an unreadable old file, or a failed write, sync or rename
/// ([`Error::Io`]); the old file is then left as it was.
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
///
/// # Errors
/// What [`write()`] fails with, converted to `E`, or the error of `edit`.
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
    if apply == Apply::Write {
        sweep_stale(path)?;
    }
    let old = read_optional(path)?;
    let contents = edit(old.as_deref())?;
    let outcome = outcome_of(path, old.as_deref(), &contents, spec)?;
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

/// What writing `contents` over `old` (the current contents of `path`,
/// `None` when absent) would do.
fn outcome_of(
    path: &Path,
    old: Option<&[u8]>,
    contents: &[u8],
    spec: &FileSpec,
) -> Result<Outcome, Error> {
    Ok(match old {
        None => Outcome::Created,
        Some(old) => {
            let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
            if old == contents && matches_spec(&meta, spec) {
                Outcome::Unchanged
            } else {
                Outcome::Updated
            }
        }
    })
}

/// What [`write()`] of `contents` would do to `path`, and the diff `-n`
/// shows for it (empty when unchanged); only looking, under the
/// directory's lock.
///
/// # Errors
/// What [`write()`] would fail with before changing anything: a symlink or
/// directory at `path`, an unreadable file.
pub fn inspect_write(
    path: &Path,
    contents: &[u8],
    spec: &FileSpec,
) -> Result<(Outcome, String), Error> {
    let _lock = lock_dir_of(path, false)?;
    let old = read_optional(path)?;
    let outcome = outcome_of(path, old.as_deref(), contents, spec)?;
    let shown = if outcome.changed() {
        diff(
            path,
            old.as_deref().unwrap_or_default(),
            contents,
            old.is_none(),
        )
    } else {
        String::new()
    };
    Ok((outcome, shown))
}

/// What [`remove`] would do to `path`, and what `-n` shows for it: the
/// diff to nothing of a file, `rm PATH` for a link or special file, empty
/// when absent; only looking.
///
/// # Errors
/// A directory at `path`; an unreadable file.
pub fn inspect_remove(path: &Path) -> Result<(Outcome, String), Error> {
    let _lock = lock_dir_of(path, false)?;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(Error::IsDir(path.to_path_buf())),
        Ok(m) if m.is_file() => {
            let old = read_optional(path)?.unwrap_or_default();
            Ok((Outcome::Removed, diff(path, &old, b"", false)))
        }
        Ok(_) => Ok((Outcome::Removed, format!("rm {}\n", path.display()))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok((Outcome::Unchanged, String::new())),
        Err(e) => Err(Error::io(path, e)),
    }
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
        nix::unistd::fchown(tmp.as_file(), spec.uid, spec.gid).map_err(|e| err(e.into()))?;
    }
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(spec.mode))
        .map_err(err)?;
    Ok(tmp)
}

/// One file of a set written together by [`write_set`].
#[derive(Debug, Clone, Copy)]
pub struct Planned<'a> {
    /// The file to write.
    pub path: &'a Path,
    /// What it should hold.
    pub contents: &'a [u8],
    /// Its wanted mode and owner.
    pub spec: FileSpec,
}

/// Write several files as one change (a key pair): every target is
/// inspected first (a symlink or directory at any of them refuses the
/// whole set), and every changed file is staged in full before the first
/// rename, so a refusal or a full disk leaves all of them as they were.
///
/// # Errors
/// What [`write()`] fails with, for any of the files.
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
    if apply == Apply::Write {
        for f in files {
            sweep_stale(f.path)?;
        }
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
///
/// # Errors
/// A directory at `path` ([`Error::IsDir`]), or a file that cannot be read
/// (dry-run) or removed ([`Error::Io`]).
pub fn remove(path: &Path, apply: Apply) -> Result<Outcome, Error> {
    let _lock = lock_dir_of(path, false)?;
    if apply == Apply::Write {
        sweep_stale(path)?;
    }
    let is_file = match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => return Err(Error::IsDir(path.to_path_buf())),
        // A symlink or a special file is removed as the entry itself.
        Ok(m) => m.is_file(),
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Outcome::Unchanged),
        Err(e) => return Err(Error::io(path, e)),
    };
    match apply {
        Apply::Check => {}
        Apply::DryRun => {
            if is_file {
                let old = read_optional(path)?.unwrap_or_default();
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
///
/// # Errors
/// [`Error::Exists`] when something is there; [`Error::Io`] when the file
/// cannot be created or written.
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

/// Create `dir` and its missing parents (0755, as `mkdir -p`), for a
/// directory a tool fills with files it writes through this module.
///
/// # Errors
/// [`Error::Io`] naming `dir` when it cannot be created.
pub fn create_dirs(dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))
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

/// A tool's own run-time files (directories, logs, sockets): see [`entries`].
pub mod entries;
pub use entries::{
    ensure_dir, keep_tail, open_log, remove_empty_dir, remove_entry, remove_tree, OpError,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_turns_a_dry_run_into_a_check_only() {
        assert_eq!(Apply::DryRun.for_json(true), Apply::Check);
        assert_eq!(Apply::DryRun.for_json(false), Apply::DryRun);
        assert_eq!(Apply::Write.for_json(true), Apply::Write);
        assert_eq!(Apply::Check.for_json(true), Apply::Check);
    }

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
    fn next_write_or_removal_sweeps_temp_files_of_a_killed_writer() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("builder_ed25519");
        write(&p, b"key", &FileSpec::mode(0o600), Apply::Write).unwrap();
        let stale = tmp.path().join(".builder_ed25519.Ab3x9Z.tmp");
        let other = tmp.path().join(".builder_ed25519.pub.Ab3x9Z.tmp");
        let unrelated = tmp.path().join(".builder_ed25519.notours.tmp");
        for f in [&stale, &other, &unrelated] {
            std::fs::write(f, "copy of key").unwrap();
        }
        // Unchanged target: the leftovers go all the same.
        assert_eq!(
            write(&p, b"key", &FileSpec::mode(0o600), Apply::Write).unwrap(),
            Outcome::Unchanged
        );
        assert!(!stale.exists());
        assert!(other.exists() && unrelated.exists());
        // Dry run and check touch nothing.
        std::fs::write(&stale, "x").unwrap();
        remove(&p, Apply::DryRun).unwrap();
        assert!(stale.exists());
        remove(&p, Apply::Write).unwrap();
        assert!(!stale.exists() && !p.exists());
        assert!(is_stale_temp(".k.AAAAAA.tmp", "k"));
        assert!(!is_stale_temp(".k.AAAAAAA.tmp", "k"));
        assert!(!is_stale_temp(".k.pub.AAAAAA.tmp", "k"));
    }

    #[test]
    fn reads_are_bounded_and_regular_files_only() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        // Would block for ever if opened blocking.
        let e = read_following(&fifo).unwrap_err();
        assert!(matches!(e, Error::NotRegular { kind: "FIFO", .. }), "{e}");
        assert_eq!(e.status(), Status::Usage);
        let e = read_following(Path::new("/dev/zero")).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let big = tmp.path().join("big");
        std::fs::write(&big, vec![b'x'; 2048]).unwrap();
        assert!(matches!(
            read_bounded(&big, true, 1024),
            Err(Error::TooLarge { limit: 1024, .. })
        ));
        assert_eq!(read_bounded(&big, true, 4096).unwrap().unwrap().len(), 2048);
        assert_eq!(read_following(&tmp.path().join("absent")).unwrap(), None);
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&big, &link).unwrap();
        assert!(matches!(read_optional(&link), Err(Error::Symlink(_))));
        assert!(read_following(&link).unwrap().is_some());
    }

    #[test]
    fn locks_are_reentrant_within_a_thread_only() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        let set = lock_dirs(&[&b, &a, &a], true).unwrap();
        // The writers take the same locks again without waiting on themselves.
        write(&a.join("f"), b"1", &FileSpec::mode(0o644), Apply::Write).unwrap();
        write(&b.join("f"), b"1", &FileSpec::mode(0o644), Apply::Write).unwrap();
        // Another thread must wait until the set is dropped.
        let (tx, rx) = std::sync::mpsc::channel();
        let a2 = a.clone();
        let t = std::thread::spawn(move || {
            let _l = lock_dir_of(&a2.join("f"), false).unwrap();
            tx.send(()).unwrap();
        });
        assert!(rx
            .recv_timeout(std::time::Duration::from_millis(200))
            .is_err());
        drop(set);
        rx.recv_timeout(std::time::Duration::from_secs(5)).unwrap();
        t.join().unwrap();
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
