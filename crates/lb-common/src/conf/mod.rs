//! Parsers and renderers for the files the tools read and write.
//!
//! - [`nixconf`]: nix.conf as Nix's `src/libutil/config.cc` reads it, with
//!   `include` / `!include`;
//! - [`machines`]: the builders / machines format of
//!   `src/libstore/machines.cc`;
//! - [`sshconfig`]: the subset of ssh_config the tools write and inspect;
//! - [`block`]: managed blocks, the only part a tool edits in a file it
//!   does not own.

pub mod block;
pub mod escape;
pub mod machines;
pub mod nixconf;
pub mod sshconfig;

use std::path::{Path, PathBuf};

use crate::status::{Classify, Status};

/// Where in which file a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file (or setting, such as `NIX_CONFIG`) the text came from.
    pub file: PathBuf,
    /// 1-based; 0 when the text did not come from a file line.
    pub line: usize,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}", self.file.display(), self.line)
        }
    }
}

/// Why a configuration file could not be read, parsed or edited.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A line that does not parse. `text` is a bounded, escaped excerpt of
    /// the line ([`crate::text::excerpt`]), never the whole of it.
    #[error("{at}: {reason}: \"{text}\"; fix or remove the line")]
    Syntax {
        /// Where the line is: file and line.
        at: Location,
        /// A bounded, escaped excerpt of the line.
        text: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An `include` (not `!include`) whose file does not exist.
    #[error("{at}: included file {include} not found; create it, or use `!include` for an optional file")]
    IncludeMissing {
        /// Where the `include` line is.
        at: Location,
        /// The missing file, as resolved.
        include: PathBuf,
    },
    /// An `include` or `@FILE` that reaches a file already being read.
    #[error("{at}: include loop: {} includes itself again", include.display())]
    IncludeLoop {
        /// Where the including line is.
        at: Location,
        /// The file included again.
        include: PathBuf,
    },
    /// A file that could not be read as text: not UTF-8, or not found.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The file could not be read as one (a FIFO, a device, too large, a
    /// directory): bad input.
    #[error("{0}")]
    File(crate::fs::Error),
    /// A path under `--root` that leads out of it.
    #[error("{0}")]
    Root(#[from] crate::paths::Error),
    /// A builders / machines entry Nix would refuse. `entry` is a bounded,
    /// escaped excerpt.
    #[error("{at}: bad machine entry \"{entry}\": {reason}")]
    Machine {
        /// Where the entry is: file (or setting) and line.
        at: Location,
        /// A bounded, escaped excerpt of the entry.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Managed-block markers that do not pair up: a second BEGIN, an END
    /// without BEGIN, a BEGIN without END.
    #[error("{at}: {reason}; fix the markers by hand or remove the block")]
    Block {
        /// Where the offending marker is; line 0 when an END is missing.
        at: Location,
        /// Which marker is wrong, and for which tag.
        reason: String,
    },
}

impl Classify for Error {
    fn status(&self) -> Status {
        Status::Usage
    }
}

/// A configuration file as text, following symlinks (Nix does); `None`
/// when absent. Bounded and regular files only ([`crate::fs::read_following`]):
/// `include /dev/zero` or a FIFO is refused, never read for ever.
///
/// # Errors
///
/// A file that is not a bounded regular file or cannot be read
/// ([`Error::File`]), or one that is not UTF-8 ([`Error::Read`]).
pub fn read_text(path: &std::path::Path) -> Result<Option<String>, Error> {
    let Some(bytes) = crate::fs::read_following(path).map_err(Error::File)? else {
        return Ok(None);
    };
    String::from_utf8(bytes).map(Some).map_err(|_| Error::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// The user's configuration files, in Nix's order (the first has the last
/// word): `$NIX_USER_CONF_FILES` (`:`-separated, used as given, like
/// `$NIX_CONF_DIR`), else `nix/nix.conf` in `$XDG_CONFIG_HOME` (default
/// `$HOME/.config`) and each of `$XDG_CONFIG_DIRS` (default `/etc/xdg`),
/// those inside `--root` (a scratch root never sees the real user's files).
///
/// # Errors
///
/// A path that leaves `--root`.
pub fn user_conf_files(root: &crate::paths::Root) -> Result<Vec<PathBuf>, crate::paths::Error> {
    let split = |v: std::ffi::OsString| -> Vec<PathBuf> {
        std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect()
    };
    if let Some(files) = std::env::var_os("NIX_USER_CONF_FILES") {
        return Ok(split(files));
    }
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    let home = var("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")));
    let dirs = var("XDG_CONFIG_DIRS").map_or_else(|| vec![PathBuf::from("/etc/xdg")], split);
    home.into_iter()
        .chain(dirs)
        .filter(|d| d.is_absolute())
        .map(|d| root.system(&d.join("nix/nix.conf")))
        .collect()
}

/// The builders Nix would use, and where they were set.
#[derive(Debug, Clone)]
pub struct Builders {
    /// The builders, in the order they are listed (`@FILE` entries expanded).
    pub machines: Vec<machines::Machine>,
    /// The `builders` assignment in effect; `None` means Nix's default
    /// (`@CONF_DIR/machines`).
    pub setting: Option<nixconf::Assignment>,
    /// Every `builders` assignment, in order (more than one is suspicious).
    pub assignments: Vec<nixconf::Assignment>,
    /// The main nix.conf (in `$NIX_CONF_DIR` or `ROOT/etc/nix`), present or
    /// not.
    pub conf_file: PathBuf,
}

/// Read the effective builders the way a `nix` command of this user does
/// (`nix config show builders`): nix.conf in `$NIX_CONF_DIR` or
/// `ROOT/etc/nix` with its includes, then the user's files
/// ([`user_conf_files`]), then `$NIX_CONFIG`; the last `builders`
/// assignment, and `@FILE` entries (the default `@CONF_DIR/machines`).
///
/// # Errors
///
/// A file that cannot be read or parsed, an include loop, a path that
/// leaves `--root`, or a malformed machine entry.
pub fn load_builders(root: &crate::paths::Root) -> Result<Builders, Error> {
    let dir = nixconf::conf_dir(root)?;
    let conf_file = dir.join("nix.conf");
    let mut conf = nixconf::NixConf::load(&conf_file)?;
    // Nix applies the user's files last to first: the first one wins.
    for file in user_conf_files(root)?.iter().rev() {
        let user = nixconf::NixConf::load(file)?;
        conf.assignments.extend(user.assignments);
        conf.files.extend(user.files);
    }
    if let Some(text) = std::env::var_os("NIX_CONFIG").filter(|t| !t.is_empty()) {
        let env = nixconf::NixConf::parse(&text.to_string_lossy(), Path::new("NIX_CONFIG"))?;
        conf.assignments.extend(env.assignments);
    }
    let assignments: Vec<_> = conf.all("builders").cloned().collect();
    let setting = assignments.last().cloned();
    let this_system = crate::platform::Platform::current()
        .map_or_else(|_| crate::builder::default_system(), |p| p.nix_system());
    let (text, at) = match &setting {
        Some(a) => (a.value.clone(), a.at.clone()),
        None => (
            format!("@{}", dir.join("machines").display()),
            Location {
                file: conf_file.clone(),
                line: 0,
            },
        ),
    };
    let machines = machines::parse(&text, &this_system, &at, &machines::resolve_as_given)?;
    Ok(Builders {
        machines,
        setting,
        assignments,
        conf_file,
    })
}
