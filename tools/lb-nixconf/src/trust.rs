//! Is the user who runs builds trusted by this machine's Nix? Copies from
//! the builder are unsigned: without trust they need `--no-check-sigs`,
//! which only a trusted user may give, and input-addressed builds sent
//! through the daemon are refused ("not privileged"). What nix.conf's
//! `trusted-users` says, and, for the real root, what the running daemon
//! answers itself (worker protocol 1.35+).

use std::os::unix::net::UnixStream;
use std::time::Duration;

use lb_common::conf::nixconf::NixConf;
use lb_common::daemon::{self, Trust};

/// The daemon's socket (Nix's default state directory).
pub const DAEMON_SOCKET: &str = "/nix/var/nix/daemon-socket/socket";

/// The user builds run as: `SUDO_USER` under sudo, else `USER`; `None`
/// for root itself (root is the daemon's own user).
#[must_use]
pub fn build_user() -> Option<String> {
    let user = std::env::var("SUDO_USER")
        .ok()
        .filter(|u| !u.is_empty() && u != "root")
        .or_else(|| std::env::var("USER").ok())
        .filter(|u| !u.is_empty());
    user.filter(|u| u != "root")
}

/// The groups of `user` (by the group database), for `@group` entries.
fn groups_of(user: &str) -> Vec<String> {
    let Ok(Some(u)) = nix::unistd::User::from_name(user) else {
        return Vec::new();
    };
    let Ok(name) = std::ffi::CString::new(user) else {
        return Vec::new();
    };
    nix::unistd::getgrouplist(&name, u.gid)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|g| nix::unistd::Group::from_gid(g).ok().flatten())
        .map(|g| g.name)
        .collect()
}

/// Does a `trusted-users` list let `user` in (names, `@group`, `*`)?
#[must_use]
pub fn listed(list: &str, user: &str, groups: &[String]) -> bool {
    list.split_whitespace().any(|e| {
        e == "*"
            || e == user
            || e.strip_prefix('@')
                .is_some_and(|g| groups.iter().any(|h| h == g))
    })
}

/// The problem with `user`'s trust in `conf`, if any. Nix's default
/// `trusted-users` is `root`.
#[must_use]
pub fn config_problem(
    conf: &NixConf,
    conf_file: &std::path::Path,
    user: &str,
    groups: &[String],
) -> Option<String> {
    let list = conf
        .effective("trusted-users")
        .unwrap_or_else(|| "root".to_owned());
    (!listed(&list, user, groups)).then(|| {
        format!(
            "{user} is not a trusted user of this machine's Nix (trusted-users = {list}, read from {}): copies from the builder \
             need --no-check-sigs, which only trusted users may pass, and builds it sends through the daemon are refused \
             (\"not privileged\"); run `lb-nixconf install --trust-user {user} --restart`",
            conf_file.display()
        )
    })
}

/// What the running daemon answers about trusting this process (`None`
/// when no daemon answers; `Unknown` from daemons before protocol 1.35).
#[must_use]
pub fn daemon_answer() -> Option<Trust> {
    let stream = UnixStream::connect(DAEMON_SOCKET).ok()?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    daemon::handshake(stream).ok().map(|c| c.info.trust)
}

/// Every trust problem for `user`, the user builds run as.
#[must_use]
pub fn problems(
    conf: &NixConf,
    conf_file: &std::path::Path,
    user: &str,
    real_root: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    if user == "root" {
        return out;
    }
    out.extend(config_problem(conf, conf_file, user, &groups_of(user)));
    // The daemon judges the process that connects: only meaningful when
    // that is the build user, not root under sudo.
    let me = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.name);
    if real_root && me.as_deref() == Some(user) && daemon_answer() == Some(Trust::No) {
        out.push(format!(
            "the running nix-daemon answers that it does not trust {user} (it may run with an older nix.conf): \
             run `lb-nixconf install --trust-user {user} --restart`"
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn trusted_users_entries() {
        let g = vec!["staff".to_owned()];
        assert!(listed("root alice", "alice", &g));
        assert!(listed("root @staff", "alice", &g));
        assert!(listed("*", "alice", &g));
        assert!(!listed("root @wheel", "alice", &g));
    }

    #[test]
    fn extra_trusted_users_count() {
        let p = Path::new("/etc/nix/nix.conf");
        let conf =
            NixConf::parse("trusted-users = root\nextra-trusted-users = alice\n", p).unwrap();
        assert_eq!(config_problem(&conf, p, "alice", &[]), None);
        let conf = NixConf::parse("", p).unwrap();
        let e = config_problem(&conf, p, "alice", &[]).unwrap();
        assert!(
            e.contains("trusted-users = root, read from /etc/nix/nix.conf"),
            "{e}"
        );
        assert!(e.contains("--trust-user alice"), "{e}");
    }
}
