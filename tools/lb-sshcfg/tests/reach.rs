//! `lb-sshcfg check` on faults made for real: a Hostname that resolves to
//! IPv6 loopback only or not at all, and (as the unprivileged `builder`
//! account, via runuser) a known-hosts file this user cannot read and a
//! host key known to this user only, not to root.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;
use lb_testkit::scratch_root;

const NAME: &str = "lb-reach";

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

fn sshcfg(root: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("lb-sshcfg")
        .unwrap()
        .env_remove("LB_HOSTNAME")
        .arg("--root")
        .arg(root)
        .args(["--name", NAME])
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn a_hostname_on_ipv6_loopback_only_is_named() {
    let root = scratch_root();
    let out = sshcfg(root.path(), &["--hostname", "::1", "install"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = sshcfg(root.path(), &["--hostname", "::1", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let s = stdout(&out);
    assert!(
        s.contains("Hostname ::1 of lb-reach resolves to ::1 only, but QEMU forwards the builder's port on 127.0.0.1 only"),
        "{s}"
    );
    assert!(s.contains("--hostname 127.0.0.1"), "{s}");
}

#[test]
fn an_unresolvable_hostname_is_named() {
    let root = scratch_root();
    let host = "no-such-lb-host.invalid";
    assert!(sshcfg(root.path(), &["--hostname", host, "install"])
        .status
        .success());
    let out = sshcfg(root.path(), &["--hostname", host, "check"]);
    assert_eq!(out.status.code(), Some(1));
    let s = stdout(&out);
    assert!(
        s.contains(&format!("Hostname {host} of lb-reach does not resolve")),
        "{s}"
    );
}

#[test]
fn ipv4_loopback_is_fine() {
    let root = scratch_root();
    assert!(sshcfg(root.path(), &["--hostname", "127.0.0.1", "install"])
        .status
        .success());
    let out = sshcfg(root.path(), &["--hostname", "127.0.0.1", "check"]);
    let s = stdout(&out);
    assert!(!s.contains("Hostname 127.0.0.1"), "{s}");
}

/// `lb-sshcfg check` as the unprivileged `builder` account, HOME `home`.
fn check_as_builder(root: &Path, home: &Path) -> Output {
    lb_testkit::require_program("runuser", "util-linux");
    let bin = assert_cmd::cargo::cargo_bin("lb-sshcfg");
    std::process::Command::new("runuser")
        .args(["-u", lb_testkit::BUILDER_USER, "--", "env"])
        .arg(format!("HOME={}", home.display()))
        .arg(bin)
        .arg("--root")
        .arg(root)
        .args(["--name", NAME, "--hostname", "127.0.0.1", "check"])
        .output()
        .unwrap()
}

#[test]
fn what_root_reads_is_told_apart_from_what_this_user_reads() {
    let root = scratch_root();
    chmod(root.path(), 0o755);
    assert!(sshcfg(root.path(), &["--hostname", "127.0.0.1", "install"])
        .status
        .success());
    let kh = root
        .path()
        .join(format!("etc/ssh/ssh_config.d/100-{NAME}.known_hosts"));
    let entry = std::fs::read_to_string(&kh).unwrap();
    let home = tempfile::tempdir().unwrap();
    chmod(home.path(), 0o755);

    // The known-hosts file is root's alone: the user cannot see the key.
    chmod(&kh, 0o600);
    let out = check_as_builder(root.path(), home.path());
    assert_eq!(out.status.code(), Some(1));
    let s = stdout(&out);
    assert!(
        s.contains(&format!(
            "known hosts {} (root:root 0600): builder cannot read it",
            kh.display()
        )),
        "{s}"
    );
    assert!(s.contains("the Nix daemon runs as root and can"), "{s}");

    // The key only in the user's own known_hosts: fine for them, not for
    // root. (ssh takes `~` from the passwd entry, so the user's file is
    // named by a block only this local user matches, not by HOME.)
    chmod(&kh, 0o644);
    std::fs::write(&kh, "").unwrap();
    let mine = home.path().join("known_hosts");
    std::fs::write(&mine, &entry).unwrap();
    let cfg = root.path().join("etc/ssh/ssh_config");
    let text = format!(
        "{}Match localuser {}\n  UserKnownHostsFile {}\n",
        std::fs::read_to_string(&cfg).unwrap(),
        lb_testkit::BUILDER_USER,
        mine.display()
    );
    std::fs::write(&cfg, text).unwrap();
    let out = check_as_builder(root.path(), home.path());
    assert_eq!(out.status.code(), Some(1));
    let s = stdout(&out);
    assert!(
        s.contains(&format!(
            "is only in builder's {}, which the Nix daemon (root) never reads",
            mine.display()
        )),
        "{s}"
    );
    assert!(s.contains("NixOS/nix issue 2030"), "{s}");
    // Root sees no entry at all, and says so.
    let s = stdout(&sshcfg(root.path(), &["--hostname", "127.0.0.1", "check"]));
    assert!(s.contains("known hosts: no entry for lb-reach"), "{s}");
    assert!(!s.contains("only in"), "{s}");

    // In the file root reads: neither line.
    std::fs::write(&kh, &entry).unwrap();
    let s = stdout(&check_as_builder(root.path(), home.path()));
    assert!(
        !s.contains("only in builder's") && !s.contains("cannot read it"),
        "{s}"
    );
}
