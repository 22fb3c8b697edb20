//! The key pair in a keys directory: generate it, read it back, check it.
//!
//! Pure of policy: the callers decide when to generate or install.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use lb_common::fs::{Apply, FileSpec};
use lb_common::{fs, usage};
use rand_core::OsRng;
use ssh_key::{Algorithm, LineEnding, PrivateKey, PublicKey};
use zeroize::Zeroizing;

/// The private key's file name in a keys directory (the public key adds `.pub`).
pub const KEY_NAME: &str = "builder_ed25519";

/// The comment `ssh-keygen -C builder@localhost` gives the nixpkgs builder's key.
pub const COMMENT: &str = "builder@localhost";

/// The two files of a pair in a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairPaths {
    pub private: PathBuf,
    pub public: PathBuf,
}

impl PairPaths {
    /// `DIR/builder_ed25519` and `DIR/builder_ed25519.pub`.
    #[must_use]
    pub fn in_dir(dir: &Path) -> Self {
        Self::of_private(&dir.join(KEY_NAME))
    }

    /// `KEY` and `KEY.pub`.
    #[must_use]
    pub fn of_private(private: &Path) -> Self {
        PairPaths {
            private: private.to_path_buf(),
            public: lb_common::builder::pub_path(private),
        }
    }

    /// Is each file there (a symlink counts: it is in the way)?
    #[must_use]
    pub fn present(&self) -> (bool, bool) {
        (is_present(&self.private), is_present(&self.public))
    }
}

/// Something (file, symlink, anything) exists at `path`.
#[must_use]
pub fn is_present(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

/// A pair as it is on disk: the bytes to install, and the parsed keys.
#[derive(Debug)]
pub struct Pair {
    /// The private key file's bytes (wiped from memory when dropped).
    pub private_bytes: Zeroizing<Vec<u8>>,
    /// The `.pub` file's bytes.
    pub public_bytes: Vec<u8>,
    /// The parsed public key.
    pub public: PublicKey,
}

/// A fresh ed25519 pair in OpenSSH format, commented `builder@localhost`,
/// as `ssh-keygen -t ed25519 -N "" -C builder@localhost` makes it.
pub fn generate() -> lb_common::Result<Pair> {
    let mut key = PrivateKey::random(&mut OsRng, Algorithm::Ed25519)
        .map_err(|e| lb_common::failed!("generating an ed25519 key: {e}"))?;
    key.set_comment(COMMENT);
    let private = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| lb_common::failed!("encoding the private key: {e}"))?;
    let public = key.public_key().clone();
    let line = public
        .to_openssh()
        .map_err(|e| lb_common::failed!("encoding the public key: {e}"))?;
    Ok(Pair {
        private_bytes: Zeroizing::new(private.as_bytes().to_vec()),
        public_bytes: format!("{line}\n").into_bytes(),
        public,
    })
}

/// A keys directory named by the user must be a directory if it exists.
pub fn check_dir(dir: &Path) -> lb_common::Result<()> {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(usage!(
            "{}: is not a directory; give the directory that holds (or is to hold) {KEY_NAME} and {KEY_NAME}.pub",
            dir.display()
        )),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        // A keys directory that cannot be looked at is bad input.
        Err(e) => Err(lb_common::Error::with_status(
            lb_common::exit::Status::Usage,
            fs::Error::io(dir, e),
        )),
    }
}

/// Replace whatever is at `paths` with a fresh pair: the private key is
/// created 0600 from its first byte (O_EXCL, so nothing planted there is
/// followed), the public key 0644.
pub fn write_new(paths: &PairPaths) -> lb_common::Result<Pair> {
    if let Some(dir) = paths.private.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::create_dirs(dir).map_err(|e| match e {
            fs::Error::Io { source, .. } => {
                lb_common::failed!("{}: {source}; create the directory first", dir.display())
            }
            other => other.into(),
        })?;
    }
    // The manual's script deletes both before ssh-keygen: a lone leftover
    // half of an old pair must not survive beside the new one.
    fs::remove(&paths.public, Apply::Write)?;
    fs::remove(&paths.private, Apply::Write)?;
    let pair = generate()?;
    fs::create_private(&paths.private, &pair.private_bytes)?;
    fs::write(
        &paths.public,
        &pair.public_bytes,
        &FileSpec::mode(0o644),
        Apply::Write,
    )?;
    Ok(pair)
}

/// Why a pair on disk cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("{0}: missing")]
    Missing(PathBuf),
    #[error("{path}: not an OpenSSH private key ({reason})")]
    BadPrivate { path: PathBuf, reason: String },
    #[error("{0}: encrypted with a passphrase; the Nix daemon cannot unlock it")]
    Encrypted(PathBuf),
    #[error("{path}: not an OpenSSH public key line ({reason})")]
    BadPublic { path: PathBuf, reason: String },
    #[error("{private}: does not match {public} (they are halves of different pairs)")]
    Mismatch { private: PathBuf, public: PathBuf },
    #[error(transparent)]
    Fs(#[from] fs::Error),
}

/// Key files that cannot be used are bad input (2); a file system refusal
/// (symlink, I/O) keeps its own status.
impl lb_common::exit::Classify for PairError {
    fn status(&self) -> lb_common::exit::Status {
        match self {
            PairError::Fs(e) => lb_common::exit::Classify::status(e),
            _ => lb_common::exit::Status::Usage,
        }
    }
}

/// A [`PairError`] with what to do about it; its status is the pair
/// error's.
#[derive(Debug, thiserror::Error)]
#[error("{error}; {fix}")]
pub struct Unusable {
    pub error: PairError,
    pub fix: String,
}

impl lb_common::exit::Classify for Unusable {
    fn status(&self) -> lb_common::exit::Status {
        lb_common::exit::Classify::status(&self.error)
    }
}

/// Parse a public key file's contents.
pub fn parse_public(path: &Path, bytes: &[u8]) -> Result<PublicKey, PairError> {
    let bad = |reason: String| PairError::BadPublic {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::str::from_utf8(bytes).map_err(|_| bad("not text".to_owned()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let line = lines.next().ok_or_else(|| bad("empty".to_owned()))?;
    if lines.next().is_some() {
        return Err(bad("more than one line".to_owned()));
    }
    PublicKey::from_openssh(line.trim()).map_err(|e| bad(e.to_string()))
}

/// Parse a private key file's contents; an encrypted key is refused.
pub fn parse_private(path: &Path, bytes: &[u8]) -> Result<PrivateKey, PairError> {
    let key = PrivateKey::from_openssh(bytes).map_err(|e| PairError::BadPrivate {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if key.is_encrypted() {
        return Err(PairError::Encrypted(path.to_path_buf()));
    }
    Ok(key)
}

/// Read and verify the pair at `paths`: both present, both well-formed,
/// the public key the private key's own. Symlinks are refused (the
/// installing process may be root; it must not be steered to other files).
pub fn load(paths: &PairPaths) -> Result<Pair, PairError> {
    let private_bytes = Zeroizing::new(
        fs::read_optional(&paths.private)?
            .ok_or_else(|| PairError::Missing(paths.private.clone()))?,
    );
    let public_bytes = fs::read_optional(&paths.public)?
        .ok_or_else(|| PairError::Missing(paths.public.clone()))?;
    let private = parse_private(&paths.private, &private_bytes)?;
    let public = parse_public(&paths.public, &public_bytes)?;
    if private.public_key().key_data() != public.key_data() {
        return Err(PairError::Mismatch {
            private: paths.private.clone(),
            public: paths.public.clone(),
        });
    }
    Ok(Pair {
        private_bytes,
        public_bytes,
        public,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_pair_parses_back_and_matches() {
        let pair = generate().unwrap();
        let text = String::from_utf8(pair.public_bytes.clone()).unwrap();
        assert!(text.starts_with("ssh-ed25519 AAAA"), "{text}");
        assert!(text.ends_with(" builder@localhost\n"), "{text}");
        let private = parse_private(Path::new("k"), &pair.private_bytes).unwrap();
        assert_eq!(private.public_key().key_data(), pair.public.key_data());
        assert_eq!(private.comment(), COMMENT);
        let head = std::str::from_utf8(&pair.private_bytes).unwrap();
        assert!(head.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
    }

    #[test]
    fn two_generated_pairs_differ() {
        assert_ne!(
            generate().unwrap().public_bytes,
            generate().unwrap().public_bytes
        );
    }

    #[test]
    fn write_new_replaces_a_lone_half_and_sets_modes() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let paths = PairPaths::in_dir(&tmp.path().join("keys"));
        std::fs::create_dir_all(tmp.path().join("keys")).unwrap();
        std::fs::write(&paths.public, "stale\n").unwrap();
        let pair = write_new(&paths).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&paths.private), 0o600);
        assert_eq!(mode(&paths.public), 0o644);
        let loaded = load(&paths).unwrap();
        assert_eq!(loaded.public_bytes, pair.public_bytes);
    }

    #[test]
    fn load_names_what_is_wrong() {
        let tmp = tempfile::tempdir().unwrap();
        let a = PairPaths::in_dir(&tmp.path().join("a"));
        let b = PairPaths::in_dir(&tmp.path().join("b"));
        write_new(&a).unwrap();
        write_new(&b).unwrap();
        std::fs::copy(&b.public, &a.public).unwrap();
        assert!(matches!(load(&a), Err(PairError::Mismatch { .. })));
        std::fs::write(&a.private, "garbage").unwrap();
        assert!(matches!(load(&a), Err(PairError::BadPrivate { .. })));
        std::fs::remove_file(&a.public).unwrap();
        assert!(matches!(load(&a), Err(PairError::Missing(p)) if p == a.public));
        std::fs::write(&b.public, "ssh-ed25519 AAAAnope x\n").unwrap();
        assert!(matches!(load(&b), Err(PairError::BadPublic { .. })));
    }
}
