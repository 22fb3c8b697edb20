//! lb-nixconf on machines that nix-darwin or Determinate Nix manage, in
//! scratch roots laid out as theirs (lb_testkit::layouts).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = lb_testkit::scratch_root();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    (dir, root)
}

/// lb-nixconf for one system, every LB_*/NIX_* of the caller cleared.
fn cmd(root: &Path) -> Command {
    let mut c = Command::from_std(lb_testkit::tool_command("lb-nixconf"));
    c.arg("--root")
        .arg(root)
        .args(["--system", "aarch64-linux"]);
    c
}

#[test]
fn determinate_gets_the_block_in_nix_custom_conf() {
    let (_d, root) = scratch();
    lb_testkit::layouts::determinate(&root);
    let conf = root.join("etc/nix/nix.conf");
    let custom = root.join("etc/nix/nix.custom.conf");
    cmd(&root)
        .args(["install", "--trust-user", "alice"])
        .assert()
        .success()
        .stderr(predicate::str::contains(format!(
            "Determinate Nix owns {} (found {}/usr/local/bin/determinate-nixd)",
            conf.display(),
            root.display()
        )));
    // Determinate's own file is untouched; the block is in the include.
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        lb_testkit::layouts::DETERMINATE_NIX_CONF
    );
    let text = std::fs::read_to_string(&custom)
        .unwrap()
        .replace(&root.display().to_string(), "[ROOT]");
    insta::assert_snapshot!(text, @"
    # BEGIN lb-nixconf (managed by lb-nixconf; edits inside are replaced)
    builders = ssh-ng://builder@linux-builder aarch64-linux [ROOT]/etc/nix/builder_ed25519 4 - - - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=
    builders-use-substitutes = true
    extra-trusted-users = alice
    # END lb-nixconf
    ");
    // Nix reads it through nix.conf's include: show finds the builder there.
    cmd(&root)
        .arg("show")
        .assert()
        .success()
        .stdout(predicate::str::contains(format!(
            "source: {}:2",
            custom.display()
        )));
    // Idempotent, and remove takes it out of the same file.
    cmd(&root)
        .args(["install", "--check", "--trust-user", "alice"])
        .assert()
        .success();
    cmd(&root).arg("remove").assert().success();
    assert!(!std::fs::read_to_string(&custom)
        .unwrap_or_default()
        .contains("builders"));
    // Its daemon has its own label on a Mac.
    cmd(&root)
        .env("LB_PLATFORM", "aarch64-darwin")
        .args(["restart-daemon", "-n"])
        .assert()
        .success()
        .stdout("launchctl kickstart -k system/systems.determinate.nix-daemon\n");
}

#[test]
fn determinate_without_the_include_is_warned_about() {
    let (_d, root) = scratch();
    lb_testkit::layouts::determinate(&root);
    std::fs::write(
        root.join("etc/nix/nix.conf"),
        "build-users-group = nixbld\n",
    )
    .unwrap();
    cmd(&root)
        .arg("install")
        .assert()
        .success()
        .stderr(predicate::str::contains("does not include nix.custom.conf"));
}

#[test]
fn nix_darwin_owns_nix_conf_builder_first() {
    let (_d, root) = scratch();
    lb_testkit::layouts::nix_darwin(&root);
    let out = cmd(&root)
        .env("LB_PLATFORM", "aarch64-darwin")
        .args(["install", "--speed-factor", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{}/etc/nix/nix.conf: nix-darwin owns this file (a link to /etc/static/nix/nix.conf)",
            root.display()
        )),
        "{err}"
    );
    insta::assert_snapshot!(String::from_utf8(out.stdout).unwrap(), @r#"
    nix.linux-builder = {
      enable = true;
      speedFactor = 2;
    };
    # or, for a builder you run yourself (lb-vm), instead:
    nix.buildMachines = [
      {
        hostName = "linux-builder";
        sshUser = "builder";
        sshKey = "/etc/nix/builder_ed25519";
        publicHostKey = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=";
        protocol = "ssh-ng";
        maxJobs = 4;
        speedFactor = 2;
        supportedFeatures = [ ];
        mandatoryFeatures = [ ];
        systems = [ "aarch64-linux" ];
      }
    ];
    nix.distributedBuilds = true;
    nix.settings.builders-use-substitutes = true;
    "#);
    // --json: the same settings in `nix_darwin`, still exit 1, nothing written.
    let out = cmd(&root)
        .env("LB_PLATFORM", "aarch64-darwin")
        .args(["install", "--speed-factor", "2", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["result"], "managed by nix-darwin", "{v}");
    let snippet = v["nix_darwin"].as_str().unwrap();
    assert!(snippet.starts_with("nix.linux-builder = {"), "{snippet}");
    assert!(
        snippet.contains("nix.distributedBuilds = true;"),
        "{snippet}"
    );
    cmd(&root)
        .arg("remove")
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nix-darwin owns this file"));
}
