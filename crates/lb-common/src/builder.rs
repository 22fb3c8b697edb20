//! The builder's identity: one struct every tool uses, and the flags (with
//! `LB_*` environment variables) that set it, identical in every tool.
//!
//! Defaults follow the nixpkgs `darwin.linux-builder` (see docs/reference.md:
//! nixos/modules/profiles/nix-builder-vm.nix and nix-darwin's
//! modules/nix/linux-builder.nix).

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine as _;

use crate::paths::Root;
use crate::status::{Classify, Status};

/// The nixpkgs builder VM's fixed, published host key
/// (nixos/modules/profiles/keys/ssh_host_ed25519_key.pub).
pub const NIXPKGS_HOST_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJBWcxb/Blaqt1auOtE+F8QUWrUotiC5qBJ+UuEWdVCb root@nixos";

/// Where the daemon's private key for the builder is installed.
pub const DEFAULT_KEY: &str = "/etc/nix/builder_ed25519";
/// The builder's default name (`--name`): its ssh alias and HostKeyAlias.
pub const DEFAULT_NAME: &str = "linux-builder";
/// The default user Nix logs into the builder as (`--user`).
pub const DEFAULT_USER: &str = "builder";
/// The default host the builder's sshd is reached at (`--hostname`).
pub const DEFAULT_HOSTNAME: &str = "localhost";
/// The default port the builder's sshd is reached at (`--port`).
pub const DEFAULT_PORT: u16 = 31022;
/// The default number of builds Nix may run on the builder at once
/// (`--max-jobs`).
pub const DEFAULT_MAX_JOBS: u32 = 4;

/// A builder flag with a value that cannot be used. Each names the flag,
/// the value (abbreviated) and what to give instead.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--name` is not a plain ssh_config host token.
    #[error("--name \"{0}\": use letters, digits, '.', '_' and '-' only, starting with a letter or digit (ssh_config reads other characters as patterns)")]
    Name(String),
    /// `--user` is empty, starts with `-`, or has characters other than
    /// letters, digits, `.`, `_` and `-`.
    #[error("--user \"{0}\": use letters, digits, '.', '_' and '-' only")]
    User(String),
    /// `--hostname` is empty or has characters a host name or IP address
    /// does not.
    #[error("--hostname \"{0}\": give a host name or IP address (letters, digits, '.', '-', '_', ':', '[]'; no spaces or '%')")]
    Hostname(String),
    /// `--system` is not of the form `ARCH-OS`.
    #[error("--system \"{0}\": give a Nix system such as x86_64-linux or aarch64-linux")]
    System(String),
    /// `--host-key` (or the `@FILE` it names) holds no single valid
    /// OpenSSH public key.
    #[error(
        "--host-key {input}: {reason}; give `ssh-ed25519 AAAA...`, its base64 form, or @FILE.pub"
    )]
    HostKey {
        /// The value given, abbreviated.
        input: String,
        /// Why it is not a key.
        reason: String,
    },
    /// `--host-key @FILE` names a file that does not exist.
    #[error("--host-key @{}: no such file; give the builder's public host key file (its ssh_host_ed25519_key.pub) or the key itself", .0.display())]
    HostKeyMissing(PathBuf),
    /// `--host-key @FILE` names a file that cannot be read (a directory or
    /// special file, over 64 KiB, or an I/O error).
    #[error("--host-key @FILE: {0}")]
    HostKeyRead(String),
    /// `--key` cannot be placed inside `--root` (a symlinked directory on
    /// its path leads out of the root).
    #[error(transparent)]
    Root(#[from] crate::paths::Error),
}

impl Classify for Error {
    fn status(&self) -> Status {
        Status::Usage
    }
}

/// A verified SSH public host key.
#[derive(Clone, PartialEq, Eq)]
pub struct HostKey {
    /// `ALGORITHM BASE64 [COMMENT]`, as in a `.pub` file, without newline.
    line: String,
    key: ssh_key::PublicKey,
}

impl fmt::Debug for HostKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("HostKey").field(&self.line).finish()
    }
}

impl HostKey {
    /// Parse any of the three forms users meet: the OpenSSH line
    /// (`ssh-ed25519 AAAA... comment`), the base64 of that line as the
    /// builders format carries it, or `@FILE` naming a `.pub` file.
    ///
    /// # Errors
    /// The input is no valid key ([`Error::HostKey`]), or `@FILE` is
    /// missing ([`Error::HostKeyMissing`]) or unreadable
    /// ([`Error::HostKeyRead`]).
    pub fn parse(input: &str) -> Result<Self, Error> {
        let input = input.trim();
        if let Some(path) = input.strip_prefix('@') {
            // A `.pub` line is a few hundred bytes; a FIFO or a device is refused.
            let bytes = crate::fs::read_bounded(Path::new(path), true, 64 << 10)
                .map_err(|e| Error::HostKeyRead(e.to_string()))?
                .ok_or_else(|| Error::HostKeyMissing(PathBuf::from(path)))?;
            let text = String::from_utf8_lossy(&bytes);
            return Self::from_openssh(&text).map_err(|reason| Error::HostKey {
                input: abbreviate(input),
                reason,
            });
        }
        let bad = |reason: String| Error::HostKey {
            input: abbreviate(input),
            reason,
        };
        if input.contains(' ') {
            return Self::from_openssh(input).map_err(bad);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(input)
            .map_err(|e| {
                bad(format!(
                    "not an OpenSSH key line and not valid base64 ({e})"
                ))
            })?;
        let text = String::from_utf8(decoded)
            .map_err(|_| bad("base64 does not decode to text".to_owned()))?;
        Self::from_openssh(&text).map_err(|r| bad(format!("base64 decodes to no public key ({r})")))
    }

    fn from_openssh(text: &str) -> Result<Self, String> {
        let line = text.trim();
        if line.lines().count() != 1 {
            return Err("expected exactly one key line".to_owned());
        }
        let key = ssh_key::PublicKey::from_openssh(line).map_err(|e| e.to_string())?;
        Ok(HostKey {
            line: line.to_owned(),
            key,
        })
    }

    /// The `.pub` line, without newline.
    #[must_use]
    pub fn openssh(&self) -> &str {
        &self.line
    }

    /// The algorithm and key data without the comment, as known_hosts wants it.
    #[must_use]
    pub fn key_only(&self) -> String {
        self.line
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Base64 of the line *with* its trailing newline: the form the builders
    /// format (field 8) and `base64-ssh-public-host-key` carry.
    #[must_use]
    pub fn machines_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(format!("{}\n", self.line))
    }

    /// The parsed key.
    #[must_use]
    pub fn public_key(&self) -> &ssh_key::PublicKey {
        &self.key
    }

    /// `SHA256:...`, as ssh prints it.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(ssh_key::HashAlg::Sha256).to_string()
    }

    /// Does this key equal `other` in algorithm and key data (comments aside)?
    #[must_use]
    pub fn same_key(&self, other: &ssh_key::PublicKey) -> bool {
        self.key.key_data() == other.key_data()
    }
}

fn abbreviate(s: &str) -> String {
    crate::text::excerpt_n(s, 40)
}

/// The identity flags, flattened into every tool (shown under their own
/// help heading, apart from each command's options).
#[derive(Debug, Clone, clap::Args)]
pub struct BuilderArgs {
    /// The builder's name: ssh alias, HostKeyAlias, and the host part of its URI
    #[arg(long, env = "LB_NAME", default_value = DEFAULT_NAME, global = true)]
    pub name: String,
    /// The user Nix logs into the builder as
    #[arg(long, env = "LB_USER", default_value = DEFAULT_USER, global = true)]
    pub user: String,
    /// The host the builder's sshd is reached at
    #[arg(long, env = "LB_HOSTNAME", default_value = DEFAULT_HOSTNAME, global = true)]
    pub hostname: String,
    /// The port the builder's sshd is reached at
    #[arg(long, env = "LB_PORT", default_value_t = DEFAULT_PORT, global = true,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub port: u16,
    /// The private key the Nix daemon logs in with (under --root)
    #[arg(long, env = "LB_KEY", default_value = DEFAULT_KEY, value_name = "PATH", global = true)]
    pub key: PathBuf,
    /// The builder's SSH host key: `ssh-ed25519 AAAA...`, base64 of that, or @FILE [default: the nixpkgs builder's]
    #[arg(long, env = "LB_HOST_KEY", value_name = "KEY", global = true)]
    pub host_key: Option<String>,
    /// The builder's Nix system [default: this machine's arch + "-linux"]
    #[arg(long, env = "LB_SYSTEM", global = true)]
    pub system: Option<String>,
    /// Builds Nix may run on the builder at once
    #[arg(long, env = "LB_MAX_JOBS", default_value_t = DEFAULT_MAX_JOBS, global = true)]
    pub max_jobs: u32,
}

impl Default for BuilderArgs {
    fn default() -> Self {
        BuilderArgs {
            name: DEFAULT_NAME.to_owned(),
            user: DEFAULT_USER.to_owned(),
            hostname: DEFAULT_HOSTNAME.to_owned(),
            port: DEFAULT_PORT,
            key: PathBuf::from(DEFAULT_KEY),
            host_key: None,
            system: None,
            max_jobs: DEFAULT_MAX_JOBS,
        }
    }
}

/// A builder, validated, with its paths inside the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    /// The builder's name: ssh alias, HostKeyAlias, and the host part of
    /// its URI (`--name`).
    pub name: String,
    /// The user Nix logs into the builder as (`--user`).
    pub user: String,
    /// The host the builder's sshd is reached at (`--hostname`).
    pub hostname: String,
    /// The port the builder's sshd is reached at (`--port`).
    pub port: u16,
    /// The private key, mapped into `--root`.
    pub key: PathBuf,
    /// The builder's SSH host key (`--host-key`, else
    /// [`NIXPKGS_HOST_KEY`]).
    pub host_key: HostKey,
    /// The builder's Nix system (`--system`, else [`default_system`]).
    pub system: String,
    /// Builds Nix may run on the builder at once (`--max-jobs`).
    pub max_jobs: u32,
}

impl BuilderArgs {
    /// Validate the flags and place the key inside `root`.
    ///
    /// # Errors
    /// A flag's value is unusable ([`Error::Name`], [`Error::User`],
    /// [`Error::Hostname`], [`Error::System`], or a host-key error from
    /// [`HostKey::parse`]), or the key's path leaves the root
    /// ([`Error::Root`]).
    pub fn resolve(&self, root: &Root) -> Result<Builder, Error> {
        validate_name(&self.name)?;
        if !is_word(&self.user) {
            return Err(Error::User(abbreviate(&self.user)));
        }
        if self.hostname.is_empty()
            || !self
                .hostname
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".-_:[]".contains(c))
        {
            return Err(Error::Hostname(abbreviate(&self.hostname)));
        }
        let system = match &self.system {
            Some(s) => {
                validate_system(s)?;
                s.clone()
            }
            None => default_system(),
        };
        let host_key = HostKey::parse(self.host_key.as_deref().unwrap_or(NIXPKGS_HOST_KEY))?;
        Ok(Builder {
            name: self.name.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            port: self.port,
            key: root.system(&self.key)?,
            host_key,
            system,
            max_jobs: self.max_jobs,
        })
    }
}

impl Builder {
    /// `ssh-ng://USER@NAME`: the URI Nix uses, through the ssh alias.
    #[must_use]
    pub fn uri(&self) -> String {
        format!("ssh-ng://{}@{}", self.user, self.name)
    }

    /// The public key beside the private one (`KEY.pub`).
    #[must_use]
    pub fn public_key_path(&self) -> PathBuf {
        pub_path(&self.key)
    }
}

fn is_word(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('-')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// A builder name must be a plain ssh_config host token: no whitespace,
/// no pattern characters (`*?!,`), no quotes.
///
/// # Errors
/// The name is not such a token ([`Error::Name`]).
pub fn validate_name(name: &str) -> Result<(), Error> {
    if is_word(name)
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
    {
        Ok(())
    } else {
        Err(Error::Name(abbreviate(name)))
    }
}

/// `ARCH-OS`, e.g. `x86_64-linux`.
///
/// # Errors
/// `s` is not of that form ([`Error::System`]).
pub fn validate_system(s: &str) -> Result<(), Error> {
    let ok = s.split_once('-').is_some_and(|(arch, os)| {
        let part =
            |p: &str| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        part(arch) && part(os)
    });
    if ok {
        Ok(())
    } else {
        Err(Error::System(abbreviate(s)))
    }
}

/// This machine's architecture with `-linux`: the system a builder VM on
/// it runs natively.
#[must_use]
pub fn default_system() -> String {
    // `LB_PLATFORM=aarch64-darwin` stands for that machine here too.
    let arch = crate::platform::Platform::current()
        .map_or_else(|_| std::env::consts::ARCH.to_owned(), |p| p.arch);
    format!("{arch}-linux")
}

/// Read a private key's expected public counterpart path (`X` -> `X.pub`).
#[must_use]
pub fn pub_path(private: &Path) -> PathBuf {
    let mut p = private.as_os_str().to_owned();
    p.push(".pub");
    PathBuf::from(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manual's builders line carries exactly this.
    const MANUAL_BASE64: &str = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=";

    #[test]
    fn default_host_key_matches_manual_base64() {
        let k = HostKey::parse(NIXPKGS_HOST_KEY).unwrap();
        assert_eq!(k.machines_base64(), MANUAL_BASE64);
    }

    #[test]
    fn all_three_forms_parse_to_the_same_key() {
        let a = HostKey::parse(NIXPKGS_HOST_KEY).unwrap();
        let b = HostKey::parse(MANUAL_BASE64).unwrap();
        assert_eq!(a, b);
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("host.pub");
        std::fs::write(&f, format!("{NIXPKGS_HOST_KEY}\n")).unwrap();
        let c = HostKey::parse(&format!("@{}", f.display())).unwrap();
        assert_eq!(a, c);
        assert_eq!(
            a.key_only(),
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJBWcxb/Blaqt1auOtE+F8QUWrUotiC5qBJ+UuEWdVCb"
        );
        assert!(a.fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn bad_host_keys_are_usage_errors() {
        for bad in [
            "",
            "not base64!",
            "aGVsbG8gd29ybGQK",
            "ssh-ed25519 AAAAnotakey",
            "@/nonexistent/x.pub",
        ] {
            let e = HostKey::parse(bad).unwrap_err();
            assert_eq!(e.status(), Status::Usage, "{bad}");
            assert!(e.to_string().starts_with("--host-key"), "{e}");
        }
    }

    #[test]
    fn names_reject_what_ssh_config_misreads() {
        for ok in ["linux-builder", "b2", "vm.local", "a_b"] {
            validate_name(ok).unwrap();
        }
        for bad in [
            "", "a b", "a*", "a?", "!a", "a,b", "-a", "a\"b", "a=b", "a#b", ".x",
        ] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn hostnames_refuse_ssh_tokens_and_spaces() {
        let root = Root::real();
        for bad in ["a%h", "a b", ""] {
            let args = BuilderArgs {
                hostname: bad.into(),
                ..BuilderArgs::default()
            };
            assert!(
                matches!(args.resolve(&root), Err(Error::Hostname(_))),
                "{bad:?}"
            );
        }
        let args = BuilderArgs {
            hostname: "[::1]".into(),
            ..BuilderArgs::default()
        };
        assert!(args.resolve(&root).is_ok());
    }

    #[test]
    fn systems() {
        validate_system("x86_64-linux").unwrap();
        validate_system("aarch64-linux").unwrap();
        for bad in ["linux", "x86_64-", "-linux", "x86 64-linux", "a-b-c"] {
            assert!(validate_system(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_resolve_inside_root() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(Some(tmp.path())).unwrap();
        let b = BuilderArgs::default().resolve(&root).unwrap();
        assert!(b.key.ends_with("etc/nix/builder_ed25519"));
        assert!(b.key.starts_with(root.prefix().unwrap()));
        assert_eq!(b.uri(), "ssh-ng://builder@linux-builder");
        assert_eq!(b.port, 31022);
        assert_eq!(b.max_jobs, 4);
        assert!(b.system.ends_with("-linux"));
        assert_eq!(b.public_key_path(), pub_path(&b.key));
    }
}
