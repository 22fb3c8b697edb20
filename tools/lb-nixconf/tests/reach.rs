//! `lb-nixconf check` on faults made for real in a scratch root: a
//! builders URI host that no ssh_config alias resolves (real `ssh -G`
//! and the real resolver), and a build user nix.conf does not trust.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

fn lb(root: &Path, args: &[&str]) -> Output {
    let mut c = Command::cargo_bin("lb-nixconf").unwrap();
    for v in [
        "LB_ROOT",
        "LB_NAME",
        "LB_HOST_KEY",
        "LB_SYSTEM",
        "LB_KEY",
        "NIX_CONF_DIR",
        "LB_TRUST_USER",
    ] {
        c.env_remove(v);
    }
    c.arg("--root")
        .arg(root)
        .env("LB_PLATFORM", "linux")
        .args(args)
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A scratch root with the builder's key in place (its checks are lb-keys's).
fn scratch() -> tempfile::TempDir {
    let root = lb_testkit::scratch_root();
    std::fs::create_dir_all(root.path().join("etc/nix")).unwrap();
    let key = root.path().join("etc/nix/builder_ed25519");
    std::fs::write(&key, "not really a key\n").unwrap();
    std::fs::set_permissions(&key, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    root
}

#[test]
fn a_builder_host_no_alias_resolves_is_named() {
    let root = scratch();
    let r = root.path();
    let name = "lb-unaliased";
    assert!(lb(r, &["--name", name, "install"]).status.success());
    // No ssh_config at all under the root.
    let s = stdout(&lb(r, &["--name", name, "check"]));
    assert!(
        s.contains(&format!("no ssh_config alias for {name} is read from"))
            && s.contains("lb-sshcfg install --name lb-unaliased"),
        "{s}"
    );
    // An ssh_config with other hosts only: still none.
    let cfg = r.join("etc/ssh/ssh_config");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(&cfg, "Host other\n  Hostname 127.0.0.1\n  Port 2222\n").unwrap();
    let out = lb(r, &["--name", name, "check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("no ssh_config alias for lb-unaliased"),
        "{}",
        stdout(&out)
    );
    // With the alias: resolved, nothing said.
    std::fs::write(
        &cfg,
        format!("Host {name}\n  Hostname 127.0.0.1\n  Port 31022\n"),
    )
    .unwrap();
    let s = stdout(&lb(r, &["--name", name, "check"]));
    assert!(!s.contains("alias"), "{s}");
}

#[test]
fn a_build_user_nix_conf_does_not_trust_is_named() {
    let root = scratch();
    let r = root.path();
    let cfg = r.join("etc/ssh/ssh_config");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg,
        "Host linux-builder\n  Hostname 127.0.0.1\n  Port 31022\n",
    )
    .unwrap();
    assert!(lb(r, &["install"]).status.success());
    let out = lb(r, &["check", "--trust-user", "alice"]);
    assert_eq!(out.status.code(), Some(1));
    let s = stdout(&out);
    assert!(
        s.contains(
            "alice is not a trusted user of this machine's Nix (trusted-users = root, read from"
        ),
        "{s}"
    );
    assert!(
        s.contains("lb-nixconf install --trust-user alice --restart"),
        "{s}"
    );
    assert!(lb(r, &["install", "--trust-user", "alice"])
        .status
        .success());
    let s = stdout(&lb(r, &["check", "--trust-user", "alice"]));
    assert!(!s.contains("trusted"), "{s}");
    // The environment variable the Makefile passes works the same.
    let mut c = Command::cargo_bin("lb-nixconf").unwrap();
    let out = c
        .env_remove("NIX_CONF_DIR")
        .env("LB_TRUST_USER", "bob")
        .env("LB_PLATFORM", "linux")
        .arg("--root")
        .arg(r)
        .arg("check")
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("bob is not a trusted user"),
        "{}",
        stdout(&out)
    );
}
