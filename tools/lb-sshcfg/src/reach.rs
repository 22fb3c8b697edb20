//! What `check` adds to the alias's own settings: whether the alias's
//! Hostname reaches the loopback forward at all, and whether root (the Nix
//! daemon) sees what this user sees.
//!
//! - `localhost` resolving to `::1` first, or only, or not at all, while
//!   QEMU forwards on 127.0.0.1 only (nix-darwin issue 913: "failed to
//!   start SSH connection");
//! - the builder's host key known to this user (their own known-hosts
//!   file) but not in a file root reads (NixOS/nix issue 2030);
//! - a known-hosts file or the key that this user cannot read: it may be
//!   fine for root, so say so rather than report it missing (nix-rosetta-
//!   builder issues 16 and 25).

use std::io::ErrorKind;
use std::net::{IpAddr, ToSocketAddrs};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use lb_common::builder::{Builder, HostKey};
use lb_common::fs::read_following;
use lb_common::privilege::is_root;
use lb_common::ssh::Resolved;

/// The problem with `hostname` resolving to `addrs` (in the order ssh
/// tries them) for a forward on 127.0.0.1, or `None`.
#[must_use]
pub fn address_problem(
    name: &str,
    hostname: &str,
    resolved: Result<&[IpAddr], String>,
) -> Option<String> {
    let fix = format!("set the Hostname to the forward's address: `lb-sshcfg install --name {name} --hostname 127.0.0.1`");
    let addrs = match resolved {
        Err(e) => {
            return Some(format!(
                "Hostname {hostname} of {name} does not resolve ({e}): ssh cannot reach the builder; {fix}"
            ))
        }
        Ok(a) => a,
    };
    let Some(first) = addrs.first() else {
        return Some(format!(
            "Hostname {hostname} of {name} resolves to no address; {fix}"
        ));
    };
    let loopback = addrs.iter().all(IpAddr::is_loopback);
    if !loopback {
        // A remote builder: its own concern.
        return None;
    }
    let v4 = addrs.iter().any(IpAddr::is_ipv4);
    if !v4 {
        return Some(format!(
            "Hostname {hostname} of {name} resolves to {} only, but QEMU forwards the builder's port on 127.0.0.1 only: \
             ssh finds nothing there (nix-darwin issue 913: \"failed to start SSH connection\"); {fix}",
            list(addrs)
        ));
    }
    if first.is_ipv6() {
        return Some(format!(
            "Hostname {hostname} of {name} resolves to {} first, but QEMU forwards the builder's port on 127.0.0.1 only: \
             each connection tries {first} first and can fail there (nix-darwin issue 913); {fix}",
            list(addrs)
        ));
    }
    None
}

fn list(addrs: &[IpAddr]) -> String {
    addrs
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Resolve `hostname` the way ssh does (getaddrinfo, any family), keeping
/// the order and dropping repeats.
fn lookup(hostname: &str, port: u16) -> Result<Vec<IpAddr>, String> {
    let host = hostname.trim_start_matches('[').trim_end_matches(']');
    let mut out: Vec<IpAddr> = Vec::new();
    for a in (host, port).to_socket_addrs().map_err(|e| e.to_string())? {
        if !out.contains(&a.ip()) {
            out.push(a.ip());
        }
    }
    Ok(out)
}

/// Does a known-hosts text hold `key` under `name`?
fn holds(text: &str, name: &str, key: &HostKey) -> bool {
    text.lines().any(|line| {
        let Some((hosts, k)) = line.trim().split_once(char::is_whitespace) else {
            return false;
        };
        !hosts.starts_with(['#', '|', '@'])
            && hosts.split(',').any(|h| h.eq_ignore_ascii_case(name))
            && HostKey::parse(k.trim()).is_ok_and(|k| k.same_key(key.public_key()))
    })
}

fn user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", nix::unistd::geteuid()), |u| u.name)
}

/// `FILE (owner:group MODE)`, for messages about who may read it.
fn described(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => {
            let owner = nix::unistd::User::from_uid(m.uid().into())
                .ok()
                .flatten()
                .map_or_else(|| m.uid().to_string(), |u| u.name);
            let group = nix::unistd::Group::from_gid(m.gid().into())
                .ok()
                .flatten()
                .map_or_else(|| m.gid().to_string(), |g| g.name);
            format!(
                "{} ({owner}:{group} {:04o})",
                path.display(),
                m.mode() & 0o7777
            )
        }
        Err(_) => path.display().to_string(),
    }
}

/// Every problem of this module, one line each.
#[must_use]
pub fn problems(resolved: &Resolved, builder: &Builder) -> Vec<String> {
    let mut out = Vec::new();
    let name = &builder.name;
    let addrs = lookup(&resolved.hostname, resolved.port);
    out.extend(address_problem(
        name,
        &resolved.hostname,
        addrs.as_deref().map_err(Clone::clone),
    ));
    if is_root() {
        return out;
    }
    let me = user_name();
    // What root reads too: the global files (the alias's own among them).
    let global: Vec<PathBuf> = resolved.global_known_hosts_files.clone();
    let mut unreadable = Vec::new();
    let mut in_global = false;
    for f in &global {
        match std::fs::read(f) {
            Ok(t) => in_global |= holds(&String::from_utf8_lossy(&t), name, &builder.host_key),
            Err(e) if e.kind() == ErrorKind::PermissionDenied => unreadable.push(f.clone()),
            Err(_) => {}
        }
    }
    for f in &unreadable {
        out.push(format!(
            "known hosts {}: {me} cannot read it, so this check cannot see the builder's host key there; \
             the Nix daemon runs as root and can: check as root (`sudo lb-sshcfg check --name {name}`), \
             or let others read it: `sudo chmod 644 {}`",
            described(f),
            f.display()
        ));
    }
    if !in_global && unreadable.is_empty() {
        let mine = resolved
            .user_known_hosts_files
            .iter()
            .map(|f| lb_common::ssh::expand_tilde(f))
            .find(|f| {
                read_following(f)
                    .ok()
                    .flatten()
                    .is_some_and(|t| holds(&String::from_utf8_lossy(&t), name, &builder.host_key))
            });
        if let Some(f) = mine {
            out.push(format!(
                "known hosts: {name}'s host key {} is only in {me}'s {}, which the Nix daemon (root) never reads: \
                 `ssh {name}` works for {me} but the daemon's fails with \"Host key verification failed\" (NixOS/nix issue 2030); \
                 put it where root reads it: `sudo lb-sshcfg install --name {name}`",
                builder.host_key.fingerprint(),
                f.display()
            ));
        }
    }
    if let Err(e) = std::fs::File::open(&builder.key) {
        if e.kind() == ErrorKind::PermissionDenied {
            out.push(format!(
                "IdentityFile {}: {me} cannot read it; that is as it should be (the Nix daemon runs as root and reads it), \
                 but ssh as {me} cannot use it: test as root (`sudo ssh {name} true`, `sudo lb-ping`)",
                described(&builder.key)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn localhost_orders_as_recorded_on_macs_and_linux() {
        // Debian's /etc/hosts: 127.0.0.1 localhost.
        assert_eq!(
            address_problem("lb", "localhost", Ok(&[ip("127.0.0.1")])),
            None
        );
        // macOS's /etc/hosts lists ::1 localhost too; getaddrinfo may put it first.
        let p = address_problem("lb", "localhost", Ok(&[ip("::1"), ip("127.0.0.1")])).unwrap();
        assert!(
            p.contains("::1, 127.0.0.1 first") && p.contains("913"),
            "{p}"
        );
        let p = address_problem("lb", "ip6-localhost", Ok(&[ip("::1")])).unwrap();
        assert!(p.contains("resolves to ::1 only"), "{p}");
        let p = address_problem("lb", "nowhere", Err("failed to lookup address".into())).unwrap();
        assert!(
            p.contains("does not resolve") && p.contains("--hostname 127.0.0.1"),
            "{p}"
        );
        // A remote builder is not judged by the loopback forward.
        assert_eq!(
            address_problem("lb", "b.example", Ok(&[ip("2001:db8::1")])),
            None
        );
    }

    #[test]
    fn known_hosts_lines() {
        let k = HostKey::parse(lb_common::builder::NIXPKGS_HOST_KEY).unwrap();
        let line = lb_common::conf::sshconfig::known_hosts_line("lb", &k);
        assert!(holds(&line, "lb", &k));
        assert!(holds(
            &format!("# x\nother,LB {}\n", k.key_only()),
            "lb",
            &k
        ));
        assert!(!holds(&line, "other", &k));
    }
}
