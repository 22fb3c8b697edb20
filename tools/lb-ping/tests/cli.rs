//! lb-ping's command line in a scratch root: bad usage and bad
//! configuration exit 2 with one line naming the input.

use assert_cmd::Command;
use predicates::prelude::*;

fn lb_ping(root: &std::path::Path) -> Command {
    let mut c = Command::cargo_bin("lb-ping").unwrap();
    c.env_remove("NIX_CONF_DIR").arg("--root").arg(root);
    c
}

fn write_conf(root: &std::path::Path, text: &str) {
    std::fs::create_dir_all(root.join("etc/nix")).unwrap();
    std::fs::write(root.join("etc/nix/nix.conf"), text).unwrap();
}

#[test]
fn no_builder_configured_is_usage() {
    let root = lb_testkit::scratch_root();
    lb_ping(root.path()).assert().code(2).stdout("").stderr(
        predicate::str::contains("no ssh-ng:// builder in")
            .and(predicate::str::contains("lb-nixconf install")),
    );
}

#[test]
fn legacy_ssh_builders_are_skipped_with_a_warning() {
    let root = lb_testkit::scratch_root();
    write_conf(root.path(), "builders = ssh://builder@old x86_64-linux\n");
    lb_ping(root.path())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "skipping ssh://builder@old: lb-ping speaks ssh-ng:// only",
        ));
}

#[test]
fn other_schemes_and_bad_names_are_usage() {
    let root = lb_testkit::scratch_root();
    lb_ping(root.path())
        .arg("ssh://builder@x")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "ssh://builder@x: lb-ping speaks ssh-ng:// only",
        ));
    lb_ping(root.path()).arg("a b").assert().code(2);
    // A URI without a host, or with one ssh would read as an option.
    for uri in ["ssh-ng://", "ssh-ng://a@", "ssh-ng://-oProxyCommand=x"] {
        lb_ping(root.path())
            .arg(uri)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("no usable host"));
    }
}

#[test]
fn bad_host_key_in_the_builders_line_is_usage() {
    let root = lb_testkit::scratch_root();
    write_conf(
        root.path(),
        "builders = ssh-ng://lb x86_64-linux - 1 1 - - notbase64!!\n",
    );
    lb_ping(root.path()).assert().code(2).stderr(
        predicate::str::contains("nix.conf:1:").and(predicate::str::contains("notbase64!!")),
    );
}

#[test]
fn timeout_must_be_positive() {
    let root = lb_testkit::scratch_root();
    lb_ping(root.path())
        .args(["--timeout", "0", "x"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--timeout"));
}

#[test]
fn json_and_explain_conflict() {
    let root = lb_testkit::scratch_root();
    lb_ping(root.path())
        .args(["--json", "--explain", "x"])
        .assert()
        .code(2);
}

#[test]
fn help_names_every_flag() {
    let out = Command::cargo_bin("lb-ping")
        .unwrap()
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--timeout", "--json", "--explain", "--root", "NAME|URI"] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}
