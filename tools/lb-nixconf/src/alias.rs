//! A builders URI host must be something ssh can reach: an ssh_config
//! alias the daemon's ssh reads (Nix before 2.31 cannot put a port into
//! the URI), or a name that resolves. Otherwise Nix fails with "cannot
//! open connection" and nothing says why.

use std::net::ToSocketAddrs;

use lb_common::conf::machines::Machine;
use lb_common::paths::Root;
use lb_common::ssh;

/// The problem with `m`'s host, if it is an ssh builder no alias resolves.
#[must_use]
pub fn problem(root: &Root, m: &Machine) -> Option<String> {
    let uri = m.effective_uri();
    if !(uri.starts_with("ssh-ng://") || uri.starts_with("ssh://")) {
        return None;
    }
    let host = m.host();
    if host.is_empty() || host.starts_with('-') {
        return None;
    }
    // Under a scratch root ssh reads ROOT/etc/ssh/ssh_config only: absent,
    // no alias is read at all.
    let aliased = match ssh::config_file(root) {
        Some(f) if !f.exists() => false,
        _ => {
            let r = ssh::resolve(root, host, m.user()).ok()?;
            !r.hostname.eq_ignore_ascii_case(host) || r.port != 22
        }
    };
    if aliased
        || (host, 22)
            .to_socket_addrs()
            .is_ok_and(|mut a| a.next().is_some())
    {
        return None;
    }
    let config = ssh::config_file(root).map_or_else(
        || "/etc/ssh/ssh_config".to_owned(),
        |p| p.display().to_string(),
    );
    Some(format!(
        "{}: {}: no ssh_config alias for {host} is read from {config} and the name does not resolve, so Nix cannot reach it \
         (\"cannot open connection\"); run `lb-sshcfg install --name {host}` (with the builder's --port), or fix the name",
        m.at, m.uri
    ))
}
