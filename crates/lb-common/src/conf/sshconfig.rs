//! The subset of ssh_config the tools write and inspect.
//!
//! ssh_config is read top to bottom and the *first* value of each keyword
//! wins; `Host`/`Match` start a block that lasts until the next one; an
//! `Include` inside a block applies only to that block. Keywords are
//! case-insensitive and may be separated from their argument by spaces or
//! `=`. (ssh_config(5))

use std::path::{Path, PathBuf};

use super::escape::{self, SshArg, Unrepresentable};

/// The alias that lets Nix reach a builder through `ssh-ng://USER@NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAlias {
    /// The alias: the `Host` pattern and the `HostKeyAlias` (`--name`).
    pub name: String,
    /// The host ssh really connects to (`--hostname`).
    pub hostname: String,
    /// The user to log in as (`--user`).
    pub user: String,
    /// The port to connect to.
    pub port: u16,
    /// The private key ssh offers (`--key`, `LB_KEY`).
    pub identity_file: PathBuf,
    /// A known-hosts file holding the builder's host key under NAME, so a
    /// plain `ssh NAME` verifies it without a prompt.
    pub known_hosts: Option<PathBuf>,
}

impl HostAlias {
    /// The `Host` block. `HostKeyAlias` equals NAME: Nix writes the host key
    /// under the URI's host (NAME) into its temporary known-hosts file, and
    /// ssh looks it up under HostKeyAlias. Every value goes through
    /// [`escape::ssh_config`]: one that ssh would read differently (a
    /// newline starting a `ProxyCommand`, a lone `"`) is refused.
    ///
    /// # Errors
    /// A value ssh would read differently, or a path that is not UTF-8
    /// ([`Unrepresentable`]).
    pub fn render(&self) -> Result<String, Unrepresentable> {
        let arg = |what: &str, v: &str, how| escape::ssh_config(what, v, how);
        let path = |what: &str, p: &Path, how| {
            escape::path_text(what, p).and_then(|t| escape::ssh_config(what, t, how))
        };
        let name = arg("--name", &self.name, SshArg::Literal)?;
        let mut s = format!(
            "Host {name}\n  Hostname {host}\n  User {user}\n  HostKeyAlias {name}\n  Port {port}\n  IdentityFile {key}\n",
            host = arg("--hostname", &self.hostname, SshArg::Literal)?,
            user = arg("--user", &self.user, SshArg::Literal)?,
            port = self.port,
            // IdentityFile expands %-tokens and ${VAR}.
            key = path("--key (LB_KEY)", &self.identity_file, SshArg::Tokens)?,
        );
        if let Some(kh) = &self.known_hosts {
            s.push_str("  GlobalKnownHostsFile ");
            // GlobalKnownHostsFile takes no tokens (ssh_config(5) TOKENS).
            s.push_str(&path("--root (LB_ROOT)", kh, SshArg::Literal)?);
            s.push('\n');
        }
        Ok(s)
    }
}

/// A known_hosts line for `name` (no port: HostKeyAlias replaces host and
/// port in the lookup).
#[must_use]
pub fn known_hosts_line(name: &str, key: &crate::builder::HostKey) -> String {
    format!("{name} {}\n", key.key_only())
}

/// One keyword line of an ssh_config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// Lower-cased keyword.
    pub keyword: String,
    /// The arguments, quotes removed.
    pub args: Vec<String>,
    /// 1-based line number.
    pub line: usize,
    /// Inside a `Host`/`Match` block (its line), or at the top level.
    pub block: Option<usize>,
}

/// Split an ssh_config into directives. Quoted arguments keep their
/// spaces; comments and blank lines are skipped.
#[must_use]
pub fn parse(text: &str) -> Vec<Directive> {
    let mut out = Vec::new();
    let mut block = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (kw, rest) = match line.find(|c: char| c.is_whitespace() || c == '=') {
            Some(i) => (
                &line[..i],
                line[i..].trim_start().trim_start_matches('=').trim_start(),
            ),
            None => (line, ""),
        };
        let keyword = kw.to_ascii_lowercase();
        let args = shlex::split(rest)
            .unwrap_or_else(|| rest.split_whitespace().map(str::to_owned).collect());
        if keyword == "host" || keyword == "match" {
            block = Some(n + 1);
        }
        out.push(Directive {
            keyword,
            args,
            line: n + 1,
            block: if matches!(kw.to_ascii_lowercase().as_str(), "host" | "match") {
                None
            } else {
                block
            },
        });
    }
    out
}

/// Does `text` (the main ssh_config in `etc_ssh`) include the files in
/// `ssh_config.d/` unconditionally? Relative Include paths are taken from
/// `etc_ssh`, as ssh does for the system file.
#[must_use]
pub fn includes_dropin_dir(text: &str, etc_ssh: &Path) -> bool {
    let dropin = etc_ssh.join("ssh_config.d");
    parse(text).iter().any(|d| {
        d.keyword == "include"
            && d.block.is_none()
            && d.args.iter().any(|a| {
                let p = if Path::new(a).is_absolute() {
                    PathBuf::from(a)
                } else {
                    etc_ssh.join(a)
                };
                p.parent() == Some(dropin.as_path())
                    && p.file_name().is_some_and(|f| f == "*.conf" || f == "*")
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_block() {
        let a = HostAlias {
            name: "linux-builder".into(),
            hostname: "localhost".into(),
            user: "builder".into(),
            port: 31022,
            identity_file: "/etc/nix/builder_ed25519".into(),
            known_hosts: Some("/etc/ssh/ssh_config.d/100-linux-builder.known_hosts".into()),
        };
        insta::assert_snapshot!(a.render().unwrap(), @r"
        Host linux-builder
          Hostname localhost
          User builder
          HostKeyAlias linux-builder
          Port 31022
          IdentityFile /etc/nix/builder_ed25519
          GlobalKnownHostsFile /etc/ssh/ssh_config.d/100-linux-builder.known_hosts
        ");
    }

    #[test]
    fn parse_keywords_blocks_and_equals() {
        let d = parse("# c\nInclude /etc/ssh/ssh_config.d/*.conf\n\nHost foo\n  Port=22\n  IdentityFile \"/a b/k\"\nMatch all\n");
        assert_eq!(d[0].keyword, "include");
        assert_eq!(d[0].block, None);
        assert_eq!(d[1].keyword, "host");
        assert_eq!(
            d[2],
            Directive {
                keyword: "port".into(),
                args: vec!["22".into()],
                line: 5,
                block: Some(4)
            }
        );
        assert_eq!(d[3].args, ["/a b/k"]);
        assert_eq!(d[4].keyword, "match");
    }

    #[test]
    fn include_detection() {
        let etc = Path::new("/r/etc/ssh");
        assert!(includes_dropin_dir(
            "Include /r/etc/ssh/ssh_config.d/*.conf\n",
            etc
        ));
        assert!(includes_dropin_dir(
            "include ssh_config.d/*.conf\nHost *\n",
            etc
        ));
        assert!(!includes_dropin_dir(
            "Host x\n  Include /r/etc/ssh/ssh_config.d/*.conf\n",
            etc
        ));
        assert!(!includes_dropin_dir("Host *\n", etc));
        // Debian's default names the real /etc, which a scratch root is not.
        assert!(!includes_dropin_dir(
            "Include /etc/ssh/ssh_config.d/*.conf\n",
            etc
        ));
    }

    #[test]
    fn values_are_escaped_or_refused() {
        let mut a = HostAlias {
            name: "lb".into(),
            hostname: "localhost".into(),
            user: "builder".into(),
            port: 22,
            identity_file: "/a%d b/k".into(),
            known_hosts: Some("/a%d b/kh".into()),
        };
        let text = a.render().unwrap();
        assert!(text.contains("  IdentityFile \"/a%%d b/k\"\n"), "{text}");
        assert!(
            text.contains("  GlobalKnownHostsFile \"/a%d b/kh\"\n"),
            "{text}"
        );
        a.identity_file = "/etc/nix/k\"\nProxyCommand sh -c \"touch /tmp/x\"\n#".into();
        let e = a.render().unwrap_err();
        assert!(e.to_string().starts_with("--key (LB_KEY) "), "{e}");
    }

    #[test]
    fn known_hosts_drops_comment() {
        let k = crate::builder::HostKey::parse(crate::builder::NIXPKGS_HOST_KEY).unwrap();
        assert_eq!(
            known_hosts_line("lb", &k),
            "lb ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJBWcxb/Blaqt1auOtE+F8QUWrUotiC5qBJ+UuEWdVCb\n"
        );
    }
}
