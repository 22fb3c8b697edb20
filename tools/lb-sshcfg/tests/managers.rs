//! lb-sshcfg on a machine nix-darwin manages (lb_testkit::layouts).

use assert_cmd::Command;
use predicates::prelude::*;

/// lb-sshcfg, every LB_*/NIX_* of the caller cleared.
fn cmd(root: &std::path::Path) -> Command {
    let mut c = Command::from_std(lb_testkit::tool_command("lb-sshcfg"));
    c.arg("--root").arg(root);
    c
}

#[test]
fn nix_darwins_alias_file_is_left_to_it() {
    let dir = lb_testkit::scratch_root();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    lb_testkit::layouts::nix_darwin(&root);
    let conf = root.join("etc/ssh/ssh_config.d/100-linux-builder.conf");
    let out = cmd(&root).arg("install").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}: nix-darwin owns this file (a link to /etc/static/ssh/ssh_config.d/100-linux-builder.conf)",
            conf.display()
        )),
        "{err}"
    );
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap(), @r#"
    nix.linux-builder.enable = true;
    # or, for a builder you run yourself (lb-vm), instead:
    environment.etc."ssh/ssh_config.d/100-linux-builder.conf".text = ''
      Host linux-builder
        Hostname localhost
        User builder
        HostKeyAlias linux-builder
        Port 31022
        IdentityFile /etc/nix/builder_ed25519
    '';
    "#);
    // Untouched, and nothing else written.
    assert!(std::fs::symlink_metadata(&conf)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!root.join("etc/ssh/ssh_config").exists());
    cmd(&root)
        .arg("uninstall")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nix-darwin owns this file"));
    // A builder of another name has its own file: installed as usual.
    cmd(&root)
        .args(["install", "--name", "b2", "--port", "31023"])
        .assert()
        .success();
    assert!(root.join("etc/ssh/ssh_config.d/100-b2.conf").is_file());
}
