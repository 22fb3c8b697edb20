//! `check` resolves the alias with the options Nix passes to ssh
//! (`NIX_SSHOPTS`): an option there that changes what ssh uses is a
//! problem named as coming from NIX_SSHOPTS.

use assert_cmd::Command;

fn lb(root: &std::path::Path, sshopts: Option<&str>) -> Command {
    let mut c = Command::cargo_bin("lb-sshcfg").unwrap();
    for (k, _) in std::env::vars() {
        if k.starts_with("LB_") || k.starts_with("NIX_") {
            c.env_remove(k);
        }
    }
    if let Some(o) = sshopts {
        c.env("NIX_SSHOPTS", o);
    }
    c.arg("--root").arg(root);
    c
}

#[test]
fn check_sees_the_port_nix_sshopts_gives_ssh() {
    lb_testkit::require_program("ssh", "openssh-client");
    let dir = lb_testkit::scratch_root();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    lb(&root, None).args(["-q", "install"]).assert().success();
    let port_problem = |o: &std::process::Output| {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .find(|l| l.starts_with("Port:"))
            .map(str::to_owned)
    };
    let plain = lb(&root, None).arg("check").output().unwrap();
    assert_eq!(port_problem(&plain), None, "{plain:?}");
    let o = lb(&root, Some("-o BatchMode=yes -o Port=2222"))
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let line = port_problem(&o).expect("a Port problem");
    assert!(line.contains("ssh uses 2222"), "{line}");
    assert!(line.contains("set by NIX_SSHOPTS="), "{line}");
    // Its own -F: ssh reads that file, not the root's, so the alias is gone.
    let o = lb(&root, Some("-F /dev/null"))
        .arg("check")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("Port: ssh uses 22 for linux-builder")
            && out.contains("makes ssh read its own -F file"),
        "{out}"
    );
}
