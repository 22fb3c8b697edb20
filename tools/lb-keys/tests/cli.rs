//! lb-keys's commands in scratch roots: install (and its idempotence,
//! modes, dry-run, privilege path), generate, check, pubkey, join-group,
//! uninstall, and every bad input the issue names. Real parts: ssh-keygen
//! reads what lb-keys writes, a real sshd accepts the installed key, strace
//! watches the modes files are created with, a tiny tmpfs fills up.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use assert_cmd::Command;
use base64::Engine as _;
use predicates::prelude::*;

/// A scratch root and a working directory holding `./keys`.
struct Scratch {
    root: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Self {
        Scratch {
            root: lb_testkit::scratch_root(),
            work: tempfile::Builder::new()
                .prefix("lb-keys-work.")
                .tempdir()
                .unwrap(),
        }
    }

    /// The real root path (canonical, as lb-keys prints it).
    fn root(&self) -> PathBuf {
        std::fs::canonicalize(self.root.path()).unwrap()
    }

    fn keys(&self) -> PathBuf {
        self.work.path().join("keys")
    }

    fn installed(&self) -> PathBuf {
        self.root().join("etc/nix/builder_ed25519")
    }

    fn installed_pub(&self) -> PathBuf {
        self.root().join("etc/nix/builder_ed25519.pub")
    }

    /// `lb-keys --root ROOT ARGS`, run in the working directory with a
    /// clean environment (no LB_* from the caller).
    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("lb-keys").unwrap();
        for var in [
            "LB_PLATFORM",
            "LB_ROOT",
            "LB_KEY",
            "LB_GROUP",
            "LB_KEYS_DIR",
            "LB_NO_SUDO",
            "SUDO_USER",
        ] {
            c.env_remove(var);
        }
        c.arg("--root")
            .arg(self.root.path())
            .current_dir(self.work.path());
        c
    }

    /// Install from ./keys, expecting success; returns stdout.
    fn install(&self) -> String {
        let out = self.cmd().args(["install", "./keys"]).assert().success();
        String::from_utf8(out.get_output().stdout.clone()).unwrap()
    }

    /// Replace the text `ROOT` and `WORK` stand for, for snapshots.
    fn redact(&self, s: &str) -> String {
        s.replace(&self.root().display().to_string(), "ROOT")
            .replace(&self.work.path().display().to_string(), "WORK")
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

fn nixbld_gid() -> u32 {
    nix::unistd::Group::from_name("nixbld")
        .unwrap()
        .expect("group nixbld exists on the test machine (tests/setup-host.sh)")
        .gid
        .as_raw()
}

fn stderr_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.get_output().stderr.clone()).unwrap()
}

fn stdout_of(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8(a.get_output().stdout.clone()).unwrap()
}

/// Every file below `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if std::fs::symlink_metadata(&p).unwrap().is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

fn snapshot_files(paths: &[PathBuf]) -> Vec<(Vec<u8>, SystemTime, u32)> {
    paths
        .iter()
        .map(|p| {
            let m = std::fs::metadata(p).unwrap();
            (
                std::fs::read(p).unwrap(),
                m.modified().unwrap(),
                m.ino() as u32,
            )
        })
        .collect()
}

#[test]
fn install_generates_then_installs_with_safe_modes_and_owner() {
    let s = Scratch::new();
    let out = s.install();
    assert_eq!(out, format!("{}\n", s.installed().display()));

    // Every file the install created, in the keys dir and the root.
    let mut created = files_under(&s.keys());
    created.extend(files_under(&s.root()));
    let names: Vec<String> = created
        .iter()
        .map(|p| s.redact(&p.display().to_string()))
        .collect();
    assert_eq!(
        names,
        [
            "WORK/keys/builder_ed25519",
            "WORK/keys/builder_ed25519.pub",
            "ROOT/etc/nix/builder_ed25519",
            "ROOT/etc/nix/builder_ed25519.pub",
        ]
    );
    for p in &created {
        let want = if p.extension().is_some_and(|e| e == "pub") {
            0o644
        } else {
            0o600
        };
        assert_eq!(mode(p), want, "{}", p.display());
    }
    // Root process: owner root, group nixbld, on the installed pair.
    for p in [s.installed(), s.installed_pub()] {
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!((m.uid(), m.gid()), (0, nixbld_gid()), "{}", p.display());
    }
    // The pair was copied, byte for byte.
    assert_eq!(
        std::fs::read(s.keys().join("builder_ed25519")).unwrap(),
        std::fs::read(s.installed()).unwrap()
    );
    let public = std::fs::read_to_string(s.installed_pub()).unwrap();
    assert!(public.starts_with("ssh-ed25519 AAAA"), "{public}");
    assert!(public.ends_with(" builder@localhost\n"), "{public}");
}

#[test]
fn second_install_changes_nothing_and_says_so() {
    let s = Scratch::new();
    s.install();
    let mut files = files_under(&s.keys());
    files.extend(files_under(&s.root()));
    let before = snapshot_files(&files);
    std::thread::sleep(std::time::Duration::from_millis(30));
    let a = s.cmd().args(["install", "./keys"]).assert().success();
    assert_eq!(stdout_of(&a), format!("{}\n", s.installed().display()));
    assert!(
        stderr_of(&a).contains("already installed; nothing changed"),
        "{}",
        stderr_of(&a)
    );
    // Same bytes, same mtimes, same inodes: nothing was rewritten.
    assert_eq!(snapshot_files(&files), before);
    let mut after = files_under(&s.keys());
    after.extend(files_under(&s.root()));
    assert_eq!(after, files);
    s.cmd()
        .args(["install", "--check", "./keys"])
        .assert()
        .code(0);
}

#[test]
fn ssh_keygen_reproduces_the_public_key() {
    let s = Scratch::new();
    s.install();
    for (private, public) in [
        (s.installed(), s.installed_pub()),
        (
            s.keys().join("builder_ed25519"),
            s.keys().join("builder_ed25519.pub"),
        ),
    ] {
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&private)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8(out.stdout).unwrap();
        let written = std::fs::read_to_string(&public).unwrap();
        // ssh-keygen -y prints the comment too since OpenSSH 8.x; compare key fields.
        let fields = |l: &str| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
        assert_eq!(fields(&derived), fields(&written));
        assert!(fields(&written).starts_with("ssh-ed25519 "));
    }
}

#[test]
fn installed_key_logs_into_a_real_sshd() {
    let s = Scratch::new();
    s.install();
    let line = std::fs::read_to_string(s.installed_pub()).unwrap();
    let sshd = lb_testkit::Sshd::start(Some(line.trim()));
    let config = sshd.ssh_config("lb-keys-test", &s.installed());
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["lb-keys-test", "echo", "logged-in-as", "$(id -un)"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ssh failed: {}\nsshd log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "logged-in-as builder\n"
    );

    // A different key (a fresh pair) is refused by the same server.
    let other = Scratch::new();
    other.install();
    let config = sshd.ssh_config("lb-keys-other", &other.installed());
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(&config)
        .args(["lb-keys-other", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "a foreign key was accepted");
}

#[test]
fn no_file_is_ever_created_readable_by_others() {
    // strace every file creation and mode change of a full install (pair
    // generated, both files installed): files start 0600 and only the
    // public keys are ever opened up to 0644.
    lb_testkit::require_program("strace", "strace");
    let s = Scratch::new();
    let log = s.work.path().join("strace.log");
    let bin = assert_cmd::cargo::cargo_bin("lb-keys");
    let status = std::process::Command::new("strace")
        .args([
            "-f",
            "-y",
            "-e",
            "trace=openat,open,creat,fchmod,chmod,fchmodat",
            "-o",
        ])
        .arg(&log)
        .arg(&bin)
        .arg("--root")
        .arg(s.root.path())
        .args(["install", "./keys"])
        .current_dir(s.work.path())
        .env_remove("LB_ROOT")
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let log = std::fs::read_to_string(&log).unwrap();
    let mut creations = 0;
    let mut opened_up = Vec::new();
    for l in log.lines() {
        if l.contains("O_CREAT") {
            creations += 1;
            assert!(l.contains(", 0600)"), "created with another mode: {l}");
        }
        if l.contains("chmod(") && !l.contains(", 0600)") {
            opened_up.push(l);
            assert!(
                l.contains("builder_ed25519.pub"),
                "non-public file chmodded: {l}"
            );
            assert!(l.contains(", 0644)"), "{l}");
        }
    }
    // Private key in ./keys, temp files for the other three.
    assert_eq!(creations, 4, "{log}");
    assert_eq!(opened_up.len(), 2, "{log}");
}

#[test]
fn dry_run_and_check_write_nothing() {
    let s = Scratch::new();
    let a = s.cmd().args(["install", "-n", "./keys"]).assert().success();
    insta::assert_snapshot!(s.redact(&stdout_of(&a)), @r"
    ssh-keygen -q -t ed25519 -N '' -C builder@localhost -f ./keys/builder_ed25519
    install -g nixbld -m 600 ./keys/builder_ed25519 ROOT/etc/nix/builder_ed25519
    install -g nixbld -m 644 ./keys/builder_ed25519.pub ROOT/etc/nix/builder_ed25519.pub
    ");
    s.cmd()
        .args(["install", "--check", "./keys"])
        .assert()
        .code(1)
        .stdout("");
    assert!(!s.keys().exists());
    assert!(files_under(&s.root()).is_empty());

    // Pair present, nothing installed: only the two installs; never key material.
    s.cmd().args(["generate", "./keys"]).assert().success();
    let a = s.cmd().args(["install", "-n", "./keys"]).assert().success();
    let out = stdout_of(&a);
    assert!(
        !out.contains("PRIVATE KEY") && !out.contains("AAAA"),
        "{out}"
    );
    insta::assert_snapshot!(s.redact(&out), @r"
    install -g nixbld -m 600 ./keys/builder_ed25519 ROOT/etc/nix/builder_ed25519
    install -g nixbld -m 644 ./keys/builder_ed25519.pub ROOT/etc/nix/builder_ed25519.pub
    ");
    assert!(files_under(&s.root()).is_empty());
}

#[test]
fn key_flag_moves_the_installed_path() {
    let s = Scratch::new();
    let a = s
        .cmd()
        .args(["--key", "/var/lib/nix/other_key", "install", "./keys"])
        .assert()
        .success();
    let private = s.root().join("var/lib/nix/other_key");
    assert_eq!(stdout_of(&a), format!("{}\n", private.display()));
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&s.root().join("var/lib/nix/other_key.pub")), 0o644);
    assert!(!s.installed().exists());
    s.cmd()
        .args(["--key", "/var/lib/nix/other_key", "check", "./keys"])
        .assert()
        .success();
}

#[test]
fn a_lone_half_in_keys_dir_means_a_fresh_pair() {
    let s = Scratch::new();
    s.install();
    let old = std::fs::read(s.installed_pub()).unwrap();
    std::fs::remove_file(s.keys().join("builder_ed25519")).unwrap();
    s.install();
    let new = std::fs::read(s.installed_pub()).unwrap();
    assert_ne!(old, new, "a new pair was generated and installed");
    assert_eq!(
        new,
        std::fs::read(s.keys().join("builder_ed25519.pub")).unwrap()
    );
    s.cmd().args(["check", "./keys"]).assert().success();
}

#[test]
fn keys_dir_that_is_a_file_is_bad_input() {
    let s = Scratch::new();
    std::fs::write(s.keys(), "not a dir").unwrap();
    for args in [
        &["install", "./keys"][..],
        &["generate", "./keys"],
        &["check", "./keys"],
    ] {
        s.cmd()
            .args(args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains("./keys: is not a directory"));
    }
    assert!(files_under(&s.root()).is_empty());
}

#[test]
fn bad_private_key_is_bad_input_and_nothing_is_installed() {
    let s = Scratch::new();
    s.cmd().args(["generate", "./keys"]).assert().success();
    std::fs::write(
        s.keys().join("builder_ed25519"),
        "-----BEGIN GARBAGE-----\n",
    )
    .unwrap();
    let a = s.cmd().args(["install", "./keys"]).assert().code(2);
    let err = stderr_of(&a);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("keys/builder_ed25519: not an OpenSSH private key"),
        "{err}"
    );
    assert!(err.contains("delete both"), "{err}");
    assert!(files_under(&s.root()).is_empty());
}

#[test]
fn encrypted_private_key_is_refused() {
    let s = Scratch::new();
    std::fs::create_dir(s.keys()).unwrap();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
        .arg(s.keys().join("builder_ed25519"))
        .status()
        .unwrap();
    assert!(status.success());
    s.cmd()
        .args(["install", "./keys"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("encrypted with a passphrase"));
    assert!(files_under(&s.root()).is_empty());
}

#[test]
fn private_key_not_matching_its_pub_is_bad_input() {
    let s = Scratch::new();
    s.cmd().args(["generate", "./keys"]).assert().success();
    let other = lb_testkit::keygen(s.work.path(), "other");
    std::fs::copy(&other.public, s.keys().join("builder_ed25519.pub")).unwrap();
    s.cmd()
        .args(["install", "./keys"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("does not match"));
    assert!(files_under(&s.root()).is_empty());
}

#[test]
fn symlink_at_the_install_target_is_refused() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.root().join("etc/nix")).unwrap();
    let victim = s.work.path().join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    for target in [s.installed(), s.installed_pub()] {
        let _ = std::fs::remove_file(s.installed());
        let _ = std::fs::remove_file(s.installed_pub());
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        let a = s.cmd().args(["install", "./keys"]).assert().code(1);
        assert!(stderr_of(&a).contains("is a symlink"), "{}", stderr_of(&a));
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
        assert_eq!(mode(&victim), 0o644);
        assert!(std::fs::symlink_metadata(&target)
            .unwrap()
            .file_type()
            .is_symlink());
        // Nothing of the pair was written beside the refused target.
        let other = if target == s.installed() {
            s.installed_pub()
        } else {
            s.installed()
        };
        assert!(!other.exists(), "{} was written", other.display());
    }
}

#[test]
fn a_refused_public_key_leaves_the_installed_pair_whole() {
    let s = Scratch::new();
    s.cmd().args(["install", "./keys"]).assert().success();
    let before = (
        std::fs::read(s.installed()).unwrap(),
        std::fs::read(s.installed_pub()).unwrap(),
    );
    // A new pair to install, and a symlink where its public key would go.
    std::fs::remove_dir_all(s.work.path().join("keys")).unwrap();
    std::fs::remove_file(s.installed_pub()).unwrap();
    std::os::unix::fs::symlink(s.work.path().join("victim"), s.installed_pub()).unwrap();
    s.cmd().args(["install", "./keys"]).assert().code(1);
    assert_eq!(
        std::fs::read(s.installed()).unwrap(),
        before.0,
        "the private key was replaced"
    );
    assert!(!s.work.path().join("victim").exists());
}

#[test]
fn missing_group_says_how_to_create_it() {
    let s = Scratch::new();
    let a = s
        .cmd()
        .args(["install", "--group", "lbnosuchgroup", "./keys"])
        .assert()
        .code(1);
    let err = stderr_of(&a);
    assert!(
        err.contains("group lbnosuchgroup: does not exist")
            && err.contains("sudo groupadd --system lbnosuchgroup")
            && err.contains("--group"),
        "{err}"
    );
    assert!(files_under(&s.root()).is_empty());
    s.cmd()
        .env("LB_PLATFORM", "macos")
        .args(["install", "--group", "lbnosuchgroup", "./keys"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "sudo dseditgroup -o create lbnosuchgroup",
        ));
    // --group names another, existing group.
    s.cmd()
        .args(["install", "--group", "root", "./keys"])
        .assert()
        .success();
    assert_eq!(std::fs::metadata(s.installed()).unwrap().gid(), 0);
}

/// A small tmpfs, unmounted when dropped.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("lb-keys-tmpfs.")
            .tempdir()
            .unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs (the test needs root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs { dir }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg(self.dir.path())
            .status();
    }
}

#[test]
fn full_disk_leaves_the_old_key_whole() {
    let fs = Tmpfs::mount("64k");
    let root = fs.dir.path();
    let work = tempfile::tempdir().unwrap();
    let run = |keys: &str| {
        let mut c = Command::cargo_bin("lb-keys").unwrap();
        c.env_remove("LB_ROOT")
            .env_remove("LB_GROUP")
            .arg("--root")
            .arg(root)
            .args(["install", keys])
            .current_dir(work.path());
        c
    };
    run("./old").assert().success();
    let private = root.join("etc/nix/builder_ed25519");
    let public = root.join("etc/nix/builder_ed25519.pub");
    let old = (
        std::fs::read(&private).unwrap(),
        std::fs::read(&public).unwrap(),
    );
    // A new pair outside the full disk, then fill the disk.
    Command::cargo_bin("lb-keys")
        .unwrap()
        .args(["generate", "./new"])
        .current_dir(work.path())
        .assert()
        .success();
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(root.join("filler")).unwrap();
        let block = [0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        while filler.write_all(&[0u8]).is_ok() {}
        let _ = filler.sync_all();
    }
    let a = run("./new").assert().code(1);
    let err = stderr_of(&a);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("etc/nix/builder_ed25519"), "{err}");
    assert_eq!(
        (
            std::fs::read(&private).unwrap(),
            std::fs::read(&public).unwrap()
        ),
        old,
        "the old pair is whole"
    );
    let names: Vec<_> = std::fs::read_dir(root.join("etc/nix"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(
        names,
        ["builder_ed25519", "builder_ed25519.pub"],
        "no temp file left"
    );
    assert_eq!(mode(&private), 0o600);
}

#[test]
fn generate_never_overwrites_without_force() {
    let s = Scratch::new();
    let a = s.cmd().args(["generate", "./keys"]).assert().success();
    let private = s.keys().join("builder_ed25519");
    assert_eq!(stdout_of(&a), "./keys/builder_ed25519\n");
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&s.keys().join("builder_ed25519.pub")), 0o644);
    let first = std::fs::read(&private).unwrap();

    // A valid pair is what was asked for: left alone, exit 0.
    s.cmd()
        .args(["generate", "./keys"])
        .assert()
        .success()
        .stderr(predicate::str::contains("already holds a key pair"));
    assert_eq!(std::fs::read(&private).unwrap(), first);

    // Anything else in the way is refused without --force.
    std::fs::write(&private, "precious\n").unwrap();
    s.cmd()
        .args(["generate", "./keys"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("--force"));
    assert_eq!(std::fs::read(&private).unwrap(), b"precious\n");
    s.cmd()
        .args(["generate", "--check", "./keys"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("refusing to overwrite"));
    s.cmd()
        .args(["generate", "--force", "--check", "./keys"])
        .assert()
        .code(1);
    let a = s
        .cmd()
        .args(["generate", "--force", "-n", "./keys"])
        .assert()
        .success();
    insta::assert_snapshot!(stdout_of(&a), @r"
    rm -f ./keys/builder_ed25519
    rm -f ./keys/builder_ed25519.pub
    ssh-keygen -q -t ed25519 -N '' -C builder@localhost -f ./keys/builder_ed25519
    ");
    assert_eq!(std::fs::read(&private).unwrap(), b"precious\n");
    s.cmd()
        .args(["generate", "--force", "./keys"])
        .assert()
        .success();
    assert_ne!(std::fs::read(&private).unwrap(), b"precious\n");
    assert_eq!(mode(&private), 0o600);
}

#[test]
fn check_reports_each_problem_with_its_fix() {
    let s = Scratch::new();
    s.cmd().args(["check"]).assert().code(1).stderr(
        predicate::str::contains("builder_ed25519: missing; run `sudo lb-keys --root")
            .and(predicate::str::contains("builder_ed25519.pub: missing")),
    );
    s.install();
    s.cmd()
        .args(["check", "./keys"])
        .assert()
        .success()
        .stderr(predicate::str::contains(
            "installed, mode 0600, group nixbld, matches ./keys",
        ));

    // Readable by others, wrong group.
    std::fs::set_permissions(s.installed(), PermissionsExt::from_mode(0o644)).unwrap();
    nix::unistd::chown(&s.installed(), None, Some(nix::unistd::Gid::from_raw(0))).unwrap();
    let a = s.cmd().args(["check", "./keys"]).assert().code(1);
    let err = s.redact(&stderr_of(&a));
    insta::assert_snapshot!(err, @r"
    lb-keys: error: ROOT/etc/nix/builder_ed25519: mode 0644: group or others can read or change it; want 0600; run `sudo chmod 600 ROOT/etc/nix/builder_ed25519`
    lb-keys: error: ROOT/etc/nix/builder_ed25519: group is root, want nixbld; run `sudo chgrp nixbld ROOT/etc/nix/builder_ed25519`
    ");
    // install repairs mode and group (same bytes: only metadata changes).
    s.install();
    s.cmd().args(["check", "./keys"]).assert().success();

    // The installed .pub is not the private key's own, and differs from ./keys.
    let other = lb_testkit::keygen(s.work.path(), "other");
    std::fs::copy(&other.public, s.installed_pub()).unwrap();
    let a = s.cmd().args(["check", "./keys"]).assert().code(1);
    let err = s.redact(&stderr_of(&a));
    insta::assert_snapshot!(err, @r"
    lb-keys: error: ROOT/etc/nix/builder_ed25519.pub: is not the public key of ROOT/etc/nix/builder_ed25519; run `sudo lb-keys --root ROOT install ./keys`
    lb-keys: error: ROOT/etc/nix/builder_ed25519.pub: differs from ./keys/builder_ed25519.pub (the key the VM accepts); run `sudo lb-keys --root ROOT install ./keys`
    ");
    s.install();

    // Installed pair consistent, but the keys directory holds another pair.
    let elsewhere = s.work.path().join("elsewhere");
    s.cmd().args(["generate", "./elsewhere"]).assert().success();
    s.cmd()
        .args(["check", "./elsewhere"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "differs from ./elsewhere/builder_ed25519.pub",
        ));
    assert!(elsewhere.is_dir());

    // A symlinked private key.
    std::fs::remove_file(s.installed()).unwrap();
    std::os::unix::fs::symlink(s.keys().join("builder_ed25519"), s.installed()).unwrap();
    s.cmd()
        .args(["check"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("is a symlink"));
}

#[test]
fn pubkey_prints_the_installed_key() {
    let s = Scratch::new();
    s.cmd()
        .args(["pubkey"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not installed; run `sudo lb-keys"));
    s.install();
    let line = std::fs::read_to_string(s.installed_pub()).unwrap();
    s.cmd()
        .args(["pubkey"])
        .assert()
        .success()
        .stdout(line.clone());
    let a = s.cmd().args(["pubkey", "--base64"]).assert().success();
    let b64 = stdout_of(&a);
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    assert_eq!(decoded, line);
    std::fs::write(s.installed_pub(), "garbage\n").unwrap();
    s.cmd()
        .args(["pubkey"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not an OpenSSH public key"));
}

#[test]
fn join_group_commands_per_platform() {
    let s = Scratch::new();
    s.cmd()
        .env("LB_PLATFORM", "macos")
        .args(["join-group", "-n", "alice"])
        .assert()
        .success()
        .stdout("dseditgroup -o edit -a alice -t user nixbld\n");
    s.cmd()
        .env("LB_PLATFORM", "linux")
        .args(["join-group", "-n", "alice"])
        .assert()
        .success()
        .stdout("gpasswd -a alice nixbld\n");
    // Under sudo the default user is SUDO_USER.
    s.cmd()
        .env("LB_PLATFORM", "macos")
        .env("SUDO_USER", "bob")
        .args(["join-group", "-n"])
        .assert()
        .success()
        .stdout("dseditgroup -o edit -a bob -t user nixbld\n");
    // Without sudo, the invoking user (the tests run as root).
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    s.cmd()
        .args(["join-group", "-n"])
        .assert()
        .success()
        .stdout(format!("gpasswd -a {me} nixbld\n"));
}

#[test]
fn join_group_is_idempotent_and_checks_its_input() {
    let s = Scratch::new();
    // nixbld1 is a member of nixbld on any Nix multi-user install.
    s.cmd()
        .args(["join-group", "nixbld1"])
        .assert()
        .success()
        .stdout("")
        .stderr(predicate::str::contains(
            "already in group nixbld; nothing changed",
        ));
    s.cmd()
        .args(["join-group", "--check", "builder"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "would add builder to group nixbld",
        ));
    s.cmd()
        .args(["join-group", "--group", "lbnosuchgroup", "builder"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("groupadd --system lbnosuchgroup"));
    s.cmd()
        .args(["join-group", "lb-no-such-user"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no such user"));
    s.cmd()
        .args(["join-group", "a;b"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not a user name"));
}

#[test]
fn uninstall_removes_the_pair_and_never_prints_it() {
    let s = Scratch::new();
    s.install();
    let a = s.cmd().args(["uninstall", "-n"]).assert().success();
    insta::assert_snapshot!(s.redact(&stdout_of(&a)), @r"
    rm -f ROOT/etc/nix/builder_ed25519
    rm -f ROOT/etc/nix/builder_ed25519.pub
    ");
    s.cmd().args(["uninstall", "--check"]).assert().code(1);
    assert!(s.installed().exists());
    s.cmd().args(["uninstall"]).assert().success();
    assert!(files_under(&s.root()).is_empty());
    assert!(
        s.keys().join("builder_ed25519").exists(),
        "keys dir left alone"
    );
    s.cmd()
        .args(["uninstall"])
        .assert()
        .success()
        .stderr(predicate::str::contains("not installed; nothing changed"));
    s.cmd().args(["uninstall", "--check"]).assert().code(0);
}

/// A scratch root the unprivileged `builder` account cannot write, and a
/// working directory it can.
fn unprivileged_scratch() -> Scratch {
    let s = Scratch::new();
    std::fs::create_dir_all(s.root().join("etc/nix")).unwrap();
    for d in [s.root.path(), s.work.path()] {
        std::fs::set_permissions(d, PermissionsExt::from_mode(0o755)).unwrap();
    }
    let builder = nix::unistd::User::from_name(lb_testkit::BUILDER_USER)
        .unwrap()
        .expect("a builder account (tests/setup-host.sh)");
    nix::unistd::chown(s.work.path(), Some(builder.uid), Some(builder.gid)).unwrap();
    s
}

/// `runuser -u builder -- lb-keys --root ROOT ARGS` in the working directory.
fn as_builder(s: &Scratch, args: &[&str]) -> std::process::Output {
    lb_testkit::require_program("runuser", "util-linux");
    std::process::Command::new("runuser")
        .args(["-u", lb_testkit::BUILDER_USER, "--"])
        .arg(assert_cmd::cargo::cargo_bin("lb-keys"))
        .arg("--root")
        .arg(s.root.path())
        .args(args)
        .current_dir(s.work.path())
        .env_remove("LB_ROOT")
        .env_remove("LB_NO_SUDO")
        .output()
        .unwrap()
}

#[test]
fn unprivileged_install_names_the_sudo_command_and_it_works() {
    let s = unprivileged_scratch();
    let out = as_builder(&s, &["install", "--no-sudo", "./keys"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty());
    // The pair was generated as the user; nothing installed.
    let k = s.keys().join("builder_ed25519");
    assert_eq!(
        std::fs::metadata(&k).unwrap().uid(),
        nix::unistd::User::from_name("builder")
            .unwrap()
            .unwrap()
            .uid
            .as_raw()
    );
    assert_eq!(mode(&k), 0o600);
    assert!(files_under(&s.root()).is_empty());
    let last = err.lines().last().unwrap();
    let command = last
        .split_once("needs root; run: ")
        .unwrap_or_else(|| panic!("{err}"))
        .1;
    let argv = shlex::split(command).unwrap();
    assert_eq!(&argv[..2], ["sudo", "--reset-timestamp"], "{command}");
    insta::assert_snapshot!(
        s.redact(&argv[3..].join(" ")),
        @"--root ROOT install --no-generate --no-sudo WORK/keys"
    );

    // What the user would run under sudo, run here as root, installs the pair.
    let status = std::process::Command::new(&argv[2])
        .args(&argv[3..])
        .env_remove("LB_ROOT")
        .status()
        .unwrap();
    assert!(status.success());
    let m = std::fs::metadata(s.installed()).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), mode(&s.installed())),
        (0, nixbld_gid(), 0o600)
    );
    assert_eq!(
        std::fs::read(s.installed_pub()).unwrap(),
        std::fs::read(s.keys().join("builder_ed25519.pub")).unwrap()
    );

    // Now up to date: the unprivileged run sees that without root.
    let out = as_builder(&s, &["install", "--no-sudo", "./keys"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", s.installed().display())
    );
    // check cannot read the root-owned key as builder, and says to use sudo.
    let out = as_builder(&s, &["check", "./keys"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read it as uid"), "{err}");
    assert!(err.contains("the Nix daemon runs as root"), "{err}");
}

#[test]
fn unprivileged_install_prints_the_sudo_command_before_running_it() {
    let s = unprivileged_scratch();
    let out = as_builder(&s, &["install", "./keys"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    // sudo is not usable for builder here: the step fails, exit 1, but the
    // command was printed first.
    assert_eq!(out.status.code(), Some(1), "{err}");
    let plus = err
        .lines()
        .position(|l| l.starts_with("lb-keys: + sudo --reset-timestamp "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(err
        .lines()
        .nth(plus)
        .unwrap()
        .contains("install --no-generate --no-sudo"));
    assert!(files_under(&s.root()).is_empty());
    let out = as_builder(&s, &["uninstall", "--no-sudo"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nothing installed: nothing to do"
    );
}

#[test]
fn help_explains_the_tool() {
    let s = Scratch::new();
    let a = s.cmd().arg("--help").assert().success();
    let help = stdout_of(&a);
    for word in [
        "install",
        "generate",
        "check",
        "pubkey",
        "join-group",
        "uninstall",
        "/etc/nix/builder_ed25519",
        "--root",
    ] {
        assert!(help.contains(word), "{word} missing from --help:\n{help}");
    }
    let a = s.cmd().args(["install", "--help"]).assert().success();
    let help = stdout_of(&a)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    for word in [
        "KEYS_DIR",
        "--no-sudo",
        "--group",
        "--dry-run",
        "--check",
        "sudo --reset-timestamp",
    ] {
        assert!(
            help.contains(word),
            "{word} missing from install --help:\n{help}"
        );
    }
}

#[test]
fn unprivileged_install_in_a_writable_root_needs_root_only_for_the_group() {
    let s = unprivileged_scratch();
    let builder = nix::unistd::User::from_name(lb_testkit::BUILDER_USER)
        .unwrap()
        .unwrap();
    nix::unistd::chown(&s.root().join("etc/nix"), Some(builder.uid), None).unwrap();
    // builder may write etc/nix but cannot give files group nixbld.
    let out = as_builder(&s, &["install", "--no-sudo", "./keys"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("needs root; run: sudo --reset-timestamp"),
        "{err}"
    );
    assert!(files_under(&s.root()).is_empty());
    // With its own group it installs without root, owner builder.
    let out = as_builder(
        &s,
        &["install", "--no-sudo", "--group", "builder", "./keys"],
    );
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let m = std::fs::metadata(s.installed()).unwrap();
    assert_eq!(
        (m.uid(), m.gid(), mode(&s.installed())),
        (builder.uid.as_raw(), builder.gid.as_raw(), 0o600)
    );
    let out = as_builder(&s, &["check", "--group", "builder", "./keys"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
