//! `check`: what ssh will really do for NAME, compared with what the
//! builder needs. Each problem is one line naming the file (and line)
//! concerned and what to do.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use lb_common::builder::{Builder, HostKey};
use lb_common::conf::sshconfig::{includes_dropin_dir, parse};
use lb_common::conf::Location;
use lb_common::fs::read_following;
use lb_common::paths::Root;
use lb_common::ssh::{self, Resolved};

use crate::layout::Layout;

/// Includes nested deeper than this are not followed (ssh's own limit is 16).
const MAX_INCLUDE_DEPTH: usize = 16;

/// Every problem found, one line each; empty when the alias works.
pub fn problems(root: &Root, builder: &Builder, layout: &Layout) -> lb_common::Result<Vec<String>> {
    let mut out = Vec::new();
    let name = &builder.name;
    match read_following(&layout.main)? {
        None => out.push(format!(
            "{}: absent, so ssh never reads {}; run `lb-sshcfg install`",
            layout.main.display(),
            layout.dropin.display()
        )),
        Some(text) if !includes_dropin_dir(&String::from_utf8_lossy(&text), &layout.etc_ssh) => {
            out.push(format!(
                "{}: no `Include {}/*.conf` before its first Host block, so ssh never reads the alias; run `lb-sshcfg install`",
                layout.main.display(),
                layout.dropin.display()
            ));
        }
        Some(_) => {}
    }
    if read_following(&layout.conf)?.is_none() {
        out.push(format!(
            "{}: absent; run `lb-sshcfg install --name {name}`",
            layout.conf.display()
        ));
    }
    let resolved = match ssh::resolve(root, name, None) {
        Ok(r) => r,
        Err(e) => {
            out.push(format!("cannot resolve {name} as ssh does: {e}"));
            return Ok(out);
        }
    };
    let first = first_settings(&layout.main, &layout.etc_ssh, name)?;
    let sshopts = std::env::var("NIX_SSHOPTS").ok();
    let opts = ssh::nix_sshopts(sshopts.as_deref());
    let origin = |keyword: &str| match first.get(keyword) {
        _ if ssh::chooses_config(&opts) => format!(
            "NIX_SSHOPTS={:?} makes ssh read its own -F file, not {}",
            sshopts.as_deref().unwrap_or_default(),
            layout.main.display()
        ),
        _ if ssh::sshopts_set(&opts, keyword) => format!(
            "set by NIX_SSHOPTS={:?}, which Nix passes to ssh",
            sshopts.as_deref().unwrap_or_default()
        ),
        Some(at) => format!("set at {at}"),
        None => "ssh's default or a file outside this configuration".to_owned(),
    };
    if resolved.hostname != builder.hostname
        && resolved.hostname.eq_ignore_ascii_case(name)
        && !first.contains_key("hostname")
    {
        out.push(format!(
            "{name}: not resolved: no Host block ssh reads sets its Hostname (ssh would look up {name} in DNS); run `lb-sshcfg install`"
        ));
        return Ok(out);
    }
    let mut differs = |what: &str, keyword: &str, got: &str, want: &str| {
        if got != want {
            out.push(format!(
                "{what}: ssh uses {got} for {name}, expected {want} ({}; ssh takes the first value it reads: remove or narrow that line, or run `lb-sshcfg install` if it is in the alias file)",
                origin(keyword)
            ));
        }
    };
    differs(
        "Hostname",
        "hostname",
        &resolved.hostname,
        &builder.hostname,
    );
    differs(
        "Port",
        "port",
        &resolved.port.to_string(),
        &builder.port.to_string(),
    );
    differs("User", "user", &resolved.user, &builder.user);
    match resolved.host_key_alias.as_deref() {
        Some(a) if a == name.as_str() => {}
        other => out.push(format!(
            "HostKeyAlias: ssh uses {} for {name}, expected {name} ({}): Nix stores the host key under the URI's host ({}), so ssh fails with \"Host key verification failed\"",
            other.unwrap_or("none"),
            origin("hostkeyalias"),
            builder.uri()
        )),
    }
    if !resolved.identity_files.contains(&builder.key) {
        out.push(format!(
            "IdentityFile: ssh does not use {} for {name} (it uses {}; {})",
            builder.key.display(),
            join(&resolved.identity_files),
            origin("identityfile")
        ));
    }
    if !builder.key.is_file() {
        out.push(format!(
            "IdentityFile {}: absent; install the builder's key (`lb-keys install`) or pass --key",
            builder.key.display()
        ));
    }
    out.extend(crate::reach::problems(&resolved, builder));
    if let Some(p) = known_hosts_problem(&resolved, builder) {
        out.push(p);
    }
    Ok(out)
}

fn join(paths: &[PathBuf]) -> String {
    if paths.is_empty() {
        return "none".to_owned();
    }
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Does a known-hosts file ssh reads hold `--host-key` under NAME?
fn known_hosts_problem(resolved: &Resolved, builder: &Builder) -> Option<String> {
    let files: Vec<&PathBuf> = resolved
        .global_known_hosts_files
        .iter()
        .chain(&resolved.user_known_hosts_files)
        .collect();
    let mut others = Vec::new();
    for file in &files {
        let text = match read_following(file) {
            Ok(Some(t)) => String::from_utf8_lossy(&t).into_owned(),
            // ssh skips a known-hosts file it cannot read; so do we.
            Ok(None) | Err(_) => continue,
        };
        for (n, line) in text.lines().enumerate() {
            let Some((hosts, key)) = line.trim().split_once(char::is_whitespace) else {
                continue;
            };
            // Hashed (|1|...) and marker (@revoked) lines are not ours.
            if hosts.starts_with(['#', '|', '@']) || !names_host(hosts, &builder.name) {
                continue;
            }
            match HostKey::parse(key.trim()) {
                Ok(k) if k.same_key(builder.host_key.public_key()) => return None,
                Ok(k) => others.push(format!(
                    "{}:{} has {}",
                    file.display(),
                    n + 1,
                    k.fingerprint()
                )),
                Err(_) => others.push(format!("{}:{} is not a key", file.display(), n + 1)),
            }
        }
    }
    let name = &builder.name;
    let want = builder.host_key.fingerprint();
    Some(if others.is_empty() {
        format!(
            "known hosts: no entry for {name} with the host key {want} in {}; ssh will refuse the builder; run `lb-sshcfg install`",
            join(&files.into_iter().cloned().collect::<Vec<_>>())
        )
    } else {
        format!(
            "known hosts: the entry for {name} disagrees with --host-key {want}: {}; run `lb-sshcfg install` or pass the right --host-key",
            others.join("; ")
        )
    })
}

/// Does a known_hosts host list (`a,b,[c]:22`) name `host` exactly?
fn names_host(list: &str, host: &str) -> bool {
    list.split(',').any(|h| h.eq_ignore_ascii_case(host))
}

/// Where ssh first reads each keyword for `host`: a walk through the
/// config file and its Includes in ssh's order, following `Host` and
/// `Match all` blocks. Other `Match` criteria are taken as not matching.
fn first_settings(
    main: &Path,
    etc_ssh: &Path,
    host: &str,
) -> lb_common::Result<BTreeMap<String, Location>> {
    let mut out = BTreeMap::new();
    walk(main, etc_ssh, &host.to_ascii_lowercase(), true, 0, &mut out)?;
    Ok(out)
}

fn walk(
    file: &Path,
    etc_ssh: &Path,
    host: &str,
    inherited: bool,
    depth: usize,
    out: &mut BTreeMap<String, Location>,
) -> lb_common::Result<()> {
    if depth > MAX_INCLUDE_DEPTH {
        return Ok(());
    }
    let Some(bytes) = read_following(file)? else {
        return Ok(());
    };
    let mut active = inherited;
    for d in parse(&String::from_utf8_lossy(&bytes)) {
        match d.keyword.as_str() {
            "host" => active = host_line_matches(&d.args, host),
            "match" => active = d.args.len() == 1 && d.args[0].eq_ignore_ascii_case("all"),
            "include" if active => {
                for arg in &d.args {
                    for f in expand_include(arg, etc_ssh) {
                        walk(&f, etc_ssh, host, active, depth + 1, out)?;
                    }
                }
            }
            _ if active => {
                out.entry(d.keyword.clone()).or_insert(Location {
                    file: file.to_path_buf(),
                    line: d.line,
                });
            }
            _ => {}
        }
    }
    Ok(())
}

/// A `Host` line matches when a pattern matches and no negated one does.
fn host_line_matches(patterns: &[String], host: &str) -> bool {
    let mut hit = false;
    for p in patterns {
        let p = p.to_ascii_lowercase();
        if let Some(neg) = p.strip_prefix('!') {
            if glob(neg.as_bytes(), host.as_bytes()) {
                return false;
            }
        } else if glob(p.as_bytes(), host.as_bytes()) {
            hit = true;
        }
    }
    hit
}

/// ssh's pattern match: `*` any run, `?` one character.
fn glob(pat: &[u8], s: &[u8]) -> bool {
    match pat.split_first() {
        None => s.is_empty(),
        Some((b'*', rest)) => (0..=s.len()).any(|i| glob(rest, &s[i..])),
        Some((b'?', rest)) => !s.is_empty() && glob(rest, &s[1..]),
        Some((c, rest)) => s.first() == Some(c) && glob(rest, &s[1..]),
    }
}

/// The files an `Include` argument names, in the sorted order ssh reads
/// them. Wildcards are supported in the file name only (what config
/// files use in practice); `~` paths (the user's) are not followed.
fn expand_include(arg: &str, etc_ssh: &Path) -> Vec<PathBuf> {
    if arg.starts_with('~') {
        return Vec::new();
    }
    let path = if Path::new(arg).is_absolute() {
        PathBuf::from(arg)
    } else {
        etc_ssh.join(arg)
    };
    let (Some(dir), Some(pattern)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let pattern = pattern.to_string_lossy();
    if !pattern.contains(['*', '?']) {
        return vec![path.clone()];
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| glob(pattern.as_bytes(), e.file_name().as_encoded_bytes()))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_and_host_lines() {
        assert!(glob(b"*", b"linux-builder"));
        assert!(glob(b"linux-*", b"linux-builder"));
        assert!(glob(b"l?nux-builder", b"linux-builder"));
        assert!(!glob(b"linux-builder-vm", b"linux-builder"));
        assert!(!glob(b"*.conf", b"100-a.known_hosts"));
        let p = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        assert!(host_line_matches(&p(&["a", "LINUX-*"]), "linux-builder"));
        assert!(!host_line_matches(
            &p(&["*", "!linux-builder"]),
            "linux-builder"
        ));
        assert!(!host_line_matches(&p(&["!x"]), "linux-builder"));
    }

    #[test]
    fn first_value_is_found_through_includes() {
        let tmp = tempfile::tempdir().unwrap();
        let etc = tmp.path();
        std::fs::create_dir(etc.join("ssh_config.d")).unwrap();
        std::fs::write(
            etc.join("ssh_config"),
            "Include ssh_config.d/*.conf\nHost *\n  Port 22\n  User nobody\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("ssh_config.d/050-early.conf"),
            "Host lb\n  Port 2222\n",
        )
        .unwrap();
        std::fs::write(
            etc.join("ssh_config.d/100-lb.conf"),
            "Host lb\n  Port 31022\n  User builder\n",
        )
        .unwrap();
        std::fs::write(etc.join("ssh_config.d/100-lb.known_hosts"), "Port 1\n").unwrap();
        let first = first_settings(&etc.join("ssh_config"), etc, "lb").unwrap();
        assert_eq!(first["port"].file, etc.join("ssh_config.d/050-early.conf"));
        assert_eq!(first["user"].file, etc.join("ssh_config.d/100-lb.conf"));
        assert_eq!(first["user"].line, 3);
        let other = first_settings(&etc.join("ssh_config"), etc, "x").unwrap();
        assert_eq!(other["port"].file, etc.join("ssh_config"));
        assert_eq!(other["port"].line, 3);
    }

    #[test]
    fn known_hosts_lists() {
        assert!(names_host("a,lb", "lb"));
        assert!(names_host("LB", "lb"));
        assert!(!names_host("[lb]:22", "lb"));
    }
}
