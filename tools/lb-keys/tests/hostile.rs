//! lb-keys under hostile and unlucky input (issue 19): a `--key` that
//! climbs out of `--root` (install and uninstall), a symlinked /etc/nix
//! leading out, the temp files and the mismatched pair a kill -9 leaves.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Scratch {
    _root: tempfile::TempDir,
    root: PathBuf,
    work: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        let dir = lb_testkit::scratch_root();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        Scratch {
            _root: dir,
            root,
            work: tempfile::tempdir().unwrap(),
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("lb-keys"));
        for v in [
            "LB_PLATFORM",
            "LB_ROOT",
            "LB_KEY",
            "LB_GROUP",
            "LB_KEYS_DIR",
            "LB_NO_SUDO",
            "SUDO_USER",
        ] {
            c.env_remove(v);
        }
        c.arg("--root")
            .arg(&self.root)
            .args(args)
            .current_dir(self.work.path());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    fn installed(&self) -> PathBuf {
        self.root.join("etc/nix/builder_ed25519")
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
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
    let s = Scratch::new();
    let outside = tempfile::tempdir().unwrap();
    // A pair outside that must survive uninstall.
    std::fs::write(outside.path().join("k"), "victim private").unwrap();
    std::fs::write(outside.path().join("k.pub"), "victim public").unwrap();
    let key = format!("/../../../{}/k", outside.path().display());
    let o = s.run(&["--key", &key, "install", "./keys"]);
    ok(&o);
    let inside = s
        .root
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
    ok(&s.run(&["--key", &key, "uninstall"]));
    assert!(!inside.exists());
    assert_eq!(names(outside.path()), ["k", "k.pub"]);
}

#[test]
fn etc_nix_symlinked_out_of_the_root_is_refused() {
    let s = Scratch::new();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir(s.root.join("etc")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), s.root.join("etc/nix")).unwrap();
    for args in [
        &["install", "./keys"][..],
        &["uninstall"][..],
        &["check"][..],
    ] {
        let o = s.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("outside --root"), "{}", stderr(&o));
    }
    assert!(names(elsewhere.path()).is_empty());
}

#[test]
fn temp_copies_of_the_key_left_by_a_kill_are_swept() {
    let s = Scratch::new();
    ok(&s.run(&["install", "./keys"]));
    let dir = s.root.join("etc/nix");
    let stale = dir.join(".builder_ed25519.a1B2c3.tmp");
    let stale_pub = dir.join(".builder_ed25519.pub.Zz9y8X.tmp");
    // The next install sweeps them, though the pair needs no change.
    std::fs::write(&stale, "copy of the private key").unwrap();
    std::fs::write(&stale_pub, "copy").unwrap();
    ok(&s.run(&["install", "./keys"]));
    assert_eq!(names(&dir), ["builder_ed25519", "builder_ed25519.pub"]);
    // And uninstall, also with the pair itself already gone.
    std::fs::write(&stale, "copy of the private key").unwrap();
    ok(&s.run(&["uninstall"]));
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
    std::fs::write(&stale, "copy of the private key").unwrap();
    ok(&s.run(&["uninstall"]));
    assert!(names(&dir).is_empty(), "{:?}", names(&dir));
}

#[test]
fn a_mismatched_pair_is_reported_by_check_and_repaired_by_install() {
    let s = Scratch::new();
    ok(&s.run(&["install", "./keys"]));
    ok(&s.run(&["generate", "./other"]));
    // What a kill between the two renames leaves: the other pair's public half.
    std::fs::copy(
        s.work.path().join("other/builder_ed25519.pub"),
        s.root.join("etc/nix/builder_ed25519.pub"),
    )
    .unwrap();
    let o = s.run(&["check"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("is not the public key of"),
        "{}",
        stderr(&o)
    );
    ok(&s.run(&["install", "./keys"]));
    ok(&s.run(&["check", "./keys"]));
    assert_eq!(
        std::fs::read(lb_common::builder::pub_path(&s.installed())).unwrap(),
        std::fs::read(s.work.path().join("keys/builder_ed25519.pub")).unwrap()
    );
}
