//! nix-darwin: when it manages nix.conf, the file is a symlink into
//! `/etc/static` (a store path) and any edit would be lost at the next
//! `darwin-rebuild switch`. lb-nixconf prints the matching configuration
//! instead (option names from nix-darwin's modules/nix/default.nix:
//! `nix.buildMachines`, `nix.distributedBuilds`, `nix.settings`).

use std::path::{Path, PathBuf};

use lb_common::conf::machines::Machine;

/// The link target when `path` is a symlink into nix-darwin's `/etc/static`.
#[must_use]
pub fn managed_target(path: &Path) -> Option<PathBuf> {
    let target = std::fs::read_link(path).ok()?;
    let s = target.to_string_lossy();
    (s.contains("/etc/static/") || s.starts_with("/etc/static")).then_some(target)
}

/// A Nix string literal.
fn nix_str(s: &str) -> String {
    let mut out = String::from("\"");
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '$' if chars.peek() == Some(&'{') => out.push_str("\\$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn nix_list(v: &[String]) -> String {
    if v.is_empty() {
        "[ ]".to_owned()
    } else {
        let items: Vec<String> = v.iter().map(|s| nix_str(s)).collect();
        format!("[ {} ]", items.join(" "))
    }
}

/// The nix-darwin settings equivalent to what `install` would write.
/// `ssh_key` is the key's path on the system (nix-darwin configures the
/// real `/`, never a scratch root).
#[must_use]
pub fn snippet(machine: &Machine, ssh_key: &str, trusted_users: &[String]) -> String {
    let mut s = String::new();
    s.push_str("nix.buildMachines = [\n  {\n");
    let mut field = |name: &str, value: String| {
        s.push_str("    ");
        s.push_str(name);
        s.push_str(" = ");
        s.push_str(&value);
        s.push_str(";\n");
    };
    field("hostName", nix_str(machine.host()));
    if let Some(user) = machine.user() {
        field("sshUser", nix_str(user));
    }
    field("sshKey", nix_str(ssh_key));
    if let Some(k) = &machine.public_host_key {
        field("publicHostKey", nix_str(k));
    }
    let protocol = machine
        .uri
        .split_once("://")
        .map_or("ssh", |(scheme, _)| scheme);
    field("protocol", nix_str(protocol));
    field("maxJobs", machine.max_jobs.to_string());
    field("speedFactor", format!("{}", machine.speed_factor));
    field("supportedFeatures", nix_list(&machine.supported_features));
    field("mandatoryFeatures", nix_list(&machine.mandatory_features));
    field("systems", nix_list(&machine.systems));
    s.push_str(
        "  }\n];\nnix.distributedBuilds = true;\nnix.settings.builders-use-substitutes = true;\n",
    );
    if !trusted_users.is_empty() {
        s.push_str("nix.settings.extra-trusted-users = ");
        s.push_str(&nix_list(trusted_users));
        s.push_str(";\n");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped() {
        assert_eq!(nix_str(r#"a"b\c${d}$e"#), r#""a\"b\\c\${d}$e""#);
    }

    #[test]
    fn static_links_only() {
        let tmp = tempfile::tempdir().unwrap();
        let l = tmp.path().join("nix.conf");
        std::os::unix::fs::symlink("/etc/static/nix/nix.conf", &l).unwrap();
        assert!(managed_target(&l).is_some());
        let l2 = tmp.path().join("other.conf");
        std::os::unix::fs::symlink("/somewhere/nix.conf", &l2).unwrap();
        assert!(managed_target(&l2).is_none());
        assert!(managed_target(&tmp.path().join("absent")).is_none());
    }
}
