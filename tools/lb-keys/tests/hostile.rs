//! lb-keys under hostile and unlucky input (issue 19): a `--key` that
//! climbs out of `--root` (install and uninstall), a symlinked /etc/nix
//! leading out, the temp files and the mismatched pair a kill -9 leaves.

use std::path::Path;

use lb_testkit::Scenario;

fn scratch() -> Scenario {
    Scenario::new("lb-keys")
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn key_climbing_out_of_the_root_is_installed_and_removed_inside() {
    let s = scratch();
    let outside = tempfile::tempdir().unwrap();
    // A pair outside that must survive uninstall.
    std::fs::write(outside.path().join("k"), "victim private").unwrap();
    std::fs::write(outside.path().join("k.pub"), "victim public").unwrap();
    let key = format!("/../../../{}/k", outside.path().display());
    let o = s.run(["--key", &key, "install", "./keys"]).success();
    let inside = s
        .root()
        .join(outside.path().strip_prefix("/").unwrap())
        .join("k");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        format!("{}\n", inside.display())
    );
    assert!(inside.is_file());
    assert_eq!(names(outside.path()), ["k", "k.pub"]);
    assert_eq!(
        std::fs::read(outside.path().join("k")).unwrap(),
        b"victim private"
    );
    s.run(["--key", &key, "uninstall"]).success();
    assert!(!inside.exists());
    assert_eq!(names(outside.path()), ["k", "k.pub"]);
}

#[test]
fn etc_nix_symlinked_out_of_the_root_is_refused() {
    let s = scratch();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(s.root().join("etc")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), s.root().join("etc/nix")).unwrap();
    for args in [
        &["install", "./keys"][..],
        &["uninstall"][..],
        &["check"][..],
    ] {
        s.run(args).code(2).stderr_has("outside --root");
    }
    assert!(names(elsewhere.path()).is_empty());
}

#[test]
fn temp_copies_of_the_key_left_by_a_kill_are_swept() {
    let s = scratch();
    s.run(["install", "./keys"]).success();
    let dir = s.root().join("etc/nix");
    let stale = dir.join(".builder_ed25519.a1B2c3.tmp");
    let stale_pub = dir.join(".builder_ed25519.pub.Zz9y8X.tmp");
    // The next install sweeps them, though the pair needs no change.
    std::fs::write(&stale, "copy of the private key").unwrap();
    std::fs::write(&stale_pub, "copy").unwrap();
    s.run(["install", "./keys"]).success();
    assert_eq!(names(&dir), ["builder_ed25519", "builder_ed25519.pub"]);
    // And uninstall, also with the pair itself already gone.
    std::fs::write(&stale, "copy of the private key").unwrap();
    s.run(["uninstall"]).success();
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    std::fs::write(&stale, "copy of the private key").unwrap();
    s.run(["uninstall"]).success();
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

#[test]
fn a_mismatched_pair_is_reported_by_check_and_repaired_by_install() {
    let s = scratch();
    s.run(["install", "./keys"]).success();
    s.run(["generate", "./other"]).success();
    // What a kill between the two renames leaves: the other pair's public half.
    std::fs::copy(
        s.work().join("other/builder_ed25519.pub"),
        s.root().join("etc/nix/builder_ed25519.pub"),
    )
    .unwrap();
    s.run(["check"])
        .code(1)
        .stdout_has("is not the public key of");
    s.run(["install", "./keys"]).success();
    s.run(["check", "./keys"]).success();
    assert_eq!(
        std::fs::read(lb_common::builder::pub_path(
            &s.path("etc/nix/builder_ed25519")
        ))
        .unwrap(),
        std::fs::read(s.work().join("keys/builder_ed25519.pub")).unwrap()
    );
}
