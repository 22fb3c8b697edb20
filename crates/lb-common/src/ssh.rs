//! SSH as the tools see it: alias resolution the way `ssh` itself does it
//! (`ssh -G`). The ssh2 session to a builder arrives with lb-ping.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::cmd::Cmd;
use crate::paths::Root;

/// What `ssh -G` reports for a host: the values ssh would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub host_key_alias: Option<String>,
    pub identity_files: Vec<PathBuf>,
    pub user_known_hosts_files: Vec<PathBuf>,
    pub global_known_hosts_files: Vec<PathBuf>,
    /// Every option ssh reported, lower-case keyword to values.
    pub options: BTreeMap<String, Vec<String>>,
}

/// The ssh_config a tool must read: `ROOT/etc/ssh/ssh_config` under a
/// scratch root (passed with `-F`), else ssh's own defaults.
#[must_use]
pub fn config_file(root: &Root) -> Option<PathBuf> {
    (!root.is_real()).then(|| root.system(Path::new("/etc/ssh/ssh_config")))
}

/// The `ssh -G` command for `host` (optionally as `user`).
#[must_use]
pub fn resolve_command(root: &Root, host: &str, user: Option<&str>) -> Cmd {
    let mut cmd = Cmd::new("ssh").hint("install OpenSSH's client (apt-get install openssh-client)");
    if let Some(f) = config_file(root) {
        cmd = cmd.arg("-F").arg(f);
    }
    if let Some(u) = user {
        cmd = cmd.arg("-l").arg(u);
    }
    cmd.arg("-G").arg(host)
}

/// Resolve `host` as ssh would.
pub fn resolve(root: &Root, host: &str, user: Option<&str>) -> Result<Resolved, crate::cmd::Error> {
    let out = resolve_command(root, host, user).run()?;
    Ok(parse_dash_g(&out.stdout_text()))
}

/// Parse `ssh -G` output (`keyword value` lines, keywords lower-case).
#[must_use]
pub fn parse_dash_g(text: &str) -> Resolved {
    let mut options: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            options.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    let one = |k: &str| options.get(k).and_then(|v| v.first()).cloned();
    let paths = |k: &str| {
        options
            .get(k)
            .map(|v| {
                v.iter()
                    .flat_map(|s| s.split_whitespace())
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    Resolved {
        hostname: one("hostname").unwrap_or_default(),
        port: one("port").and_then(|p| p.parse().ok()).unwrap_or(22),
        user: one("user").unwrap_or_default(),
        host_key_alias: one("hostkeyalias").filter(|a| a != "none"),
        identity_files: paths("identityfile"),
        user_known_hosts_files: paths("userknownhostsfile"),
        global_known_hosts_files: paths("globalknownhostsfile"),
        options,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_dash_g() {
        let r = parse_dash_g(
            "user builder\nhostname localhost\nport 31022\nhostkeyalias linux-builder\n\
             identityfile /etc/nix/builder_ed25519\nidentityfile ~/.ssh/id_rsa\n\
             userknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2\n",
        );
        assert_eq!(r.port, 31022);
        assert_eq!(r.host_key_alias.as_deref(), Some("linux-builder"));
        assert_eq!(r.identity_files.len(), 2);
        assert_eq!(r.user_known_hosts_files.len(), 2);
    }

    #[test]
    fn real_ssh_resolves_a_scratch_config() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(Some(tmp.path())).unwrap();
        let cfg = root.system(Path::new("/etc/ssh/ssh_config"));
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(
            &cfg,
            "Host lb\n  Hostname 127.0.0.1\n  Port 31555\n  User builder\n  HostKeyAlias lb\n",
        )
        .unwrap();
        let r = resolve(&root, "lb", None).unwrap();
        assert_eq!(
            (r.hostname.as_str(), r.port, r.user.as_str()),
            ("127.0.0.1", 31555, "builder")
        );
        assert_eq!(r.host_key_alias.as_deref(), Some("lb"));
        let r = resolve(&root, "lb", Some("other")).unwrap();
        assert_eq!(r.user, "other");
    }
}
