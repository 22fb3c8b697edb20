//! lb-keys's commands in scratch roots: install (and its idempotence,
//! modes, dry-run, privilege path), generate, check, pubkey, join-group,
//! uninstall, and every bad input the issue names. Real parts: ssh-keygen
//! reads what lb-keys writes, a real sshd accepts the installed key, strace
//! watches the modes files are created with, a tiny tmpfs fills up.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use lb_testkit::{clean_command, tool_command, Outcome, Scenario};

/// lb-keys in a scratch root, run from a work directory holding `./keys`.
fn scratch() -> Scenario {
    Scenario::new("lb-keys")
}

/// Where lb-keys keeps the pair, in a scenario.
trait KeysScenario {
    fn keys(&self) -> PathBuf;
    fn installed(&self) -> PathBuf;
    fn installed_pub(&self) -> PathBuf;
    /// Install from ./keys, expecting success; returns stdout.
    fn install(&self) -> String;
}

impl KeysScenario for Scenario {
    fn keys(&self) -> PathBuf {
        self.work().join("keys")
    }

    fn installed(&self) -> PathBuf {
        self.path("etc/nix/builder_ed25519")
    }

    fn installed_pub(&self) -> PathBuf {
        self.path("etc/nix/builder_ed25519.pub")
    }

    fn install(&self) -> String {
        self.run(["install", "./keys"]).success().stdout()
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
    let s = scratch();
    let out = s.install();
    assert_eq!(out, format!("{}\n", s.installed().display()));

    // Every file the install created, in the keys dir and the root.
    let mut created = files_under(&s.keys());
    created.extend(files_under(s.root()));
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
    let s = scratch();
    s.install();
    let mut files = files_under(&s.keys());
    files.extend(files_under(s.root()));
    let before = snapshot_files(&files);
    std::thread::sleep(std::time::Duration::from_millis(30));
    let a = s.run(["install", "./keys"]).success();
    assert_eq!(a.stdout(), format!("{}\n", s.installed().display()));
    assert!(
        a.stderr().contains("already installed; nothing changed"),
        "{}",
        a.stderr()
    );
    // Same bytes, same mtimes, same inodes: nothing was rewritten.
    assert_eq!(snapshot_files(&files), before);
    let mut after = files_under(&s.keys());
    after.extend(files_under(s.root()));
    assert_eq!(after, files);
    s.run(["install", "--check", "./keys"]).code(0);
}

#[test]
fn ssh_keygen_reproduces_the_public_key() {
    let s = scratch();
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
    let s = scratch();
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
    let other = scratch();
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
    let s = scratch();
    let log = s.work().join("strace.log");
    let bin = assert_cmd::cargo::cargo_bin("lb-keys");
    let status = clean_command("strace")
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
        .arg(s.root())
        .args(["install", "./keys"])
        .current_dir(s.work())
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
    let s = scratch();
    let a = s.run(["install", "-n", "./keys"]).success();
    insta::assert_snapshot!(s.redact(&a.stdout()), @r"
    ssh-keygen -q -t ed25519 -N '' -C builder@localhost -f ./keys/builder_ed25519
    install -g nixbld -m 600 ./keys/builder_ed25519 ROOT/etc/nix/builder_ed25519
    install -g nixbld -m 644 ./keys/builder_ed25519.pub ROOT/etc/nix/builder_ed25519.pub
    ");
    s.run(["install", "--check", "./keys"])
        .code(1)
        .stdout_empty();
    assert!(!s.keys().exists());
    assert!(files_under(s.root()).is_empty());

    // Pair present, nothing installed: only the two installs; never key material.
    s.run(["generate", "./keys"]).success();
    let a = s.run(["install", "-n", "./keys"]).success();
    let out = a.stdout();
    assert!(
        !out.contains("PRIVATE KEY") && !out.contains("AAAA"),
        "{out}"
    );
    insta::assert_snapshot!(s.redact(&out), @r"
    install -g nixbld -m 600 ./keys/builder_ed25519 ROOT/etc/nix/builder_ed25519
    install -g nixbld -m 644 ./keys/builder_ed25519.pub ROOT/etc/nix/builder_ed25519.pub
    ");
    assert!(files_under(s.root()).is_empty());
}

#[test]
fn key_flag_moves_the_installed_path() {
    let s = scratch();
    let a = s
        .run(["--key", "/var/lib/nix/other_key", "install", "./keys"])
        .success();
    let private = s.root().join("var/lib/nix/other_key");
    assert_eq!(a.stdout(), format!("{}\n", private.display()));
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&s.root().join("var/lib/nix/other_key.pub")), 0o644);
    assert!(!s.installed().exists());
    s.run(["--key", "/var/lib/nix/other_key", "check", "./keys"])
        .success();
}

#[test]
fn a_lone_half_in_keys_dir_means_a_fresh_pair() {
    let s = scratch();
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
    s.run(["check", "./keys"]).success();
}

#[test]
fn keys_dir_that_is_a_file_is_bad_input() {
    let s = scratch();
    std::fs::write(s.keys(), "not a dir").unwrap();
    for args in [
        &["install", "./keys"][..],
        &["generate", "./keys"],
        &["check", "./keys"],
    ] {
        s.run(args).code(2).stderr_has("./keys: is not a directory");
    }
    assert!(files_under(s.root()).is_empty());
}

#[test]
fn bad_private_key_is_bad_input_and_nothing_is_installed() {
    let s = scratch();
    s.run(["generate", "./keys"]).success();
    std::fs::write(
        s.keys().join("builder_ed25519"),
        "-----BEGIN GARBAGE-----\n",
    )
    .unwrap();
    let a = s.run(["install", "./keys"]).code(2);
    let err = a.stderr();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("keys/builder_ed25519: not an OpenSSH private key"),
        "{err}"
    );
    assert!(err.contains("delete both"), "{err}");
    assert!(files_under(s.root()).is_empty());
}

#[test]
fn encrypted_private_key_is_refused() {
    let s = scratch();
    std::fs::create_dir(s.keys()).unwrap();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
        .arg(s.keys().join("builder_ed25519"))
        .status()
        .unwrap();
    assert!(status.success());
    s.run(["install", "./keys"])
        .code(2)
        .stderr_has("encrypted with a passphrase");
    assert!(files_under(s.root()).is_empty());
}

#[test]
fn private_key_not_matching_its_pub_is_bad_input() {
    let s = scratch();
    s.run(["generate", "./keys"]).success();
    let other = lb_testkit::keygen(s.work(), "other");
    std::fs::copy(&other.public, s.keys().join("builder_ed25519.pub")).unwrap();
    s.run(["install", "./keys"])
        .code(2)
        .stderr_has("does not match");
    assert!(files_under(s.root()).is_empty());
}

#[test]
fn symlink_at_the_install_target_is_refused() {
    let s = scratch();
    std::fs::create_dir_all(s.root().join("etc/nix")).unwrap();
    let victim = s.work().join("victim");
    std::fs::write(&victim, "keep me\n").unwrap();
    for target in [s.installed(), s.installed_pub()] {
        let _ = std::fs::remove_file(s.installed());
        let _ = std::fs::remove_file(s.installed_pub());
        std::os::unix::fs::symlink(&victim, &target).unwrap();
        let a = s.run(["install", "./keys"]).code(1);
        assert!(a.stderr().contains("is a symlink"), "{}", a.stderr());
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
    let s = scratch();
    s.run(["install", "./keys"]).success();
    let before = (
        std::fs::read(s.installed()).unwrap(),
        std::fs::read(s.installed_pub()).unwrap(),
    );
    // A new pair to install, and a symlink where its public key would go.
    std::fs::remove_dir_all(s.work().join("keys")).unwrap();
    std::fs::remove_file(s.installed_pub()).unwrap();
    std::os::unix::fs::symlink(s.work().join("victim"), s.installed_pub()).unwrap();
    s.run(["install", "./keys"]).code(1);
    assert_eq!(
        std::fs::read(s.installed()).unwrap(),
        before.0,
        "the private key was replaced"
    );
    assert!(!s.work().join("victim").exists());
}

#[test]
fn missing_group_says_how_to_create_it() {
    let s = scratch();
    let a = s
        .run(["install", "--group", "lbnosuchgroup", "./keys"])
        .code(1);
    let err = a.stderr();
    assert!(
        err.contains("group lbnosuchgroup: does not exist")
            && err.contains("sudo groupadd --system lbnosuchgroup")
            && err.contains("--group"),
        "{err}"
    );
    assert!(files_under(s.root()).is_empty());
    s.run_env(
        [("LB_PLATFORM", "macos")],
        ["install", "--group", "lbnosuchgroup", "./keys"],
    )
    .code(1)
    .stderr_has("sudo dseditgroup -o create lbnosuchgroup");
    // --group names another, existing group.
    s.run(["install", "--group", "root", "./keys"]).success();
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
        let mut c = tool_command("lb-keys");
        c.arg("--root")
            .arg(root)
            .args(["install", keys])
            .current_dir(work.path());
        Outcome::of("lb-keys", &mut c)
    };
    run("./old").success();
    let private = root.join("etc/nix/builder_ed25519");
    let public = root.join("etc/nix/builder_ed25519.pub");
    let old = (
        std::fs::read(&private).unwrap(),
        std::fs::read(&public).unwrap(),
    );
    // A new pair outside the full disk, then fill the disk.
    Outcome::of(
        "lb-keys",
        tool_command("lb-keys")
            .args(["generate", "./new"])
            .current_dir(work.path()),
    )
    .success();
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(root.join("filler")).unwrap();
        let block = [0u8; 4096];
        while filler.write_all(&block).is_ok() {}
        while filler.write_all(&[0u8]).is_ok() {}
        let _ = filler.sync_all();
    }
    let a = run("./new").code(1);
    let err = a.stderr();
    assert!(err.contains("No space left on device"), "{err}");
    // Said once, not once per error in the chain (issue 19).
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
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
    let s = scratch();
    let a = s.run(["generate", "./keys"]).success();
    let private = s.keys().join("builder_ed25519");
    assert_eq!(a.stdout(), "./keys/builder_ed25519\n");
    assert_eq!(mode(&private), 0o600);
    assert_eq!(mode(&s.keys().join("builder_ed25519.pub")), 0o644);
    let first = std::fs::read(&private).unwrap();

    // A valid pair is what was asked for: left alone, exit 0.
    s.run(["generate", "./keys"])
        .success()
        .stderr_has("already holds a key pair");
    assert_eq!(std::fs::read(&private).unwrap(), first);

    // Anything else in the way is refused without --force.
    std::fs::write(&private, "precious\n").unwrap();
    s.run(["generate", "./keys"]).code(1).stderr_has("--force");
    assert_eq!(std::fs::read(&private).unwrap(), b"precious\n");
    s.run(["generate", "--check", "./keys"])
        .code(1)
        .stderr_has("refusing to overwrite");
    s.run(["generate", "--force", "--check", "./keys"]).code(1);
    let a = s.run(["generate", "--force", "-n", "./keys"]).success();
    insta::assert_snapshot!(a.stdout(), @r"
    rm -f ./keys/builder_ed25519
    rm -f ./keys/builder_ed25519.pub
    ssh-keygen -q -t ed25519 -N '' -C builder@localhost -f ./keys/builder_ed25519
    ");
    assert_eq!(std::fs::read(&private).unwrap(), b"precious\n");
    s.run(["generate", "--force", "./keys"]).success();
    assert_ne!(std::fs::read(&private).unwrap(), b"precious\n");
    assert_eq!(mode(&private), 0o600);
}

#[test]
fn check_reports_each_problem_with_its_fix() {
    let s = scratch();
    // One line per problem on stdout, the count on stderr.
    s.run(["check"])
        .code(1)
        .stdout_has("builder_ed25519: missing; run `sudo lb-keys --root")
        .stdout_has("builder_ed25519.pub: missing")
        .stderr_is("lb-keys: linux-builder: 2 problem(s)\n");
    s.install();
    s.run(["check", "./keys"])
        .success()
        .stderr_has("installed, mode 0600, group nixbld, matches ./keys");

    // Readable by others, wrong group.
    std::fs::set_permissions(s.installed(), PermissionsExt::from_mode(0o644)).unwrap();
    nix::unistd::chown(&s.installed(), None, Some(nix::unistd::Gid::from_raw(0))).unwrap();
    let a = s.run(["check", "./keys"]).code(1);
    let out = s.redact(&a.stdout());
    insta::assert_snapshot!(out, @r"
    ROOT/etc/nix/builder_ed25519: mode 0644: group or others can read or change it; want 0600; run `sudo chmod 600 ROOT/etc/nix/builder_ed25519`
    ROOT/etc/nix/builder_ed25519: group is root, want nixbld; run `sudo chgrp nixbld ROOT/etc/nix/builder_ed25519`
    ");
    // The same as JSON.
    let a = s.run(["check", "--json", "./keys"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&a.stdout()).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["name"], "linux-builder");
    assert_eq!(v["problems"].as_array().unwrap().len(), 2);
    assert_eq!(v["summary"], "2 problem(s)");
    // install repairs mode and group (same bytes: only metadata changes).
    s.install();
    s.run(["check", "./keys"]).success();

    // The installed .pub is not the private key's own, and differs from ./keys.
    let other = lb_testkit::keygen(s.work(), "other");
    std::fs::copy(&other.public, s.installed_pub()).unwrap();
    let a = s.run(["check", "./keys"]).code(1);
    let out = s.redact(&a.stdout());
    insta::assert_snapshot!(out, @r"
    ROOT/etc/nix/builder_ed25519.pub: is not the public key of ROOT/etc/nix/builder_ed25519; run `sudo lb-keys --root ROOT install ./keys`
    ROOT/etc/nix/builder_ed25519.pub: differs from ./keys/builder_ed25519.pub (the key the VM accepts); run `sudo lb-keys --root ROOT install ./keys`
    ");
    s.install();

    // Installed pair consistent, but the keys directory holds another pair.
    let elsewhere = s.work().join("elsewhere");
    s.run(["generate", "./elsewhere"]).success();
    s.run(["check", "./elsewhere"])
        .code(1)
        .stdout_has("differs from ./elsewhere/builder_ed25519.pub");
    assert!(elsewhere.is_dir());

    // A symlinked private key.
    std::fs::remove_file(s.installed()).unwrap();
    std::os::unix::fs::symlink(s.keys().join("builder_ed25519"), s.installed()).unwrap();
    s.run(["check"]).code(1).stdout_has("is a symlink");
}

#[test]
fn pubkey_prints_the_installed_key() {
    let s = scratch();
    s.run(["pubkey"])
        .code(1)
        .stderr_has("not installed; run `sudo lb-keys");
    s.install();
    let line = std::fs::read_to_string(s.installed_pub()).unwrap();
    s.run(["pubkey"]).success().stdout_is(&line);
    let a = s.run(["pubkey", "--base64"]).success();
    let b64 = a.stdout();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    let decoded = String::from_utf8(decoded).unwrap();
    assert_eq!(decoded, line);
    std::fs::write(s.installed_pub(), "garbage\n").unwrap();
    s.run(["pubkey"])
        .code(2)
        .stderr_has("not an OpenSSH public key");
}

/// `lb-keys --root / ARGS` (with `env`): join-group and leave-group on
/// this machine's own groups. Only read-only runs (-n, --check, nothing to
/// change, refusals) use it: the tests never change the machine's groups.
fn on_machine(s: &Scenario, env: &[(&str, &str)], args: &[&str]) -> Outcome {
    let mut c = s.bare();
    c.args(["--root", "/"]).args(args).envs(env.iter().copied());
    s.outcome(&mut c)
}

#[test]
fn join_group_commands_per_platform() {
    let s = scratch();
    on_machine(
        &s,
        &[("LB_PLATFORM", "macos")],
        &["join-group", "-n", "alice"],
    )
    .success()
    .stdout_is("dseditgroup -o edit -a alice -t user nixbld\n");
    on_machine(
        &s,
        &[("LB_PLATFORM", "linux")],
        &["join-group", "-n", "alice"],
    )
    .success()
    .stdout_is("gpasswd -a alice nixbld\n");
    // Under sudo the default user is SUDO_USER.
    on_machine(
        &s,
        &[("LB_PLATFORM", "macos"), ("SUDO_USER", "bob")],
        &["join-group", "-n"],
    )
    .success()
    .stdout_is("dseditgroup -o edit -a bob -t user nixbld\n");
    // Without sudo, the invoking user (the tests run as root).
    let me = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    on_machine(&s, &[], &["join-group", "-n"])
        .success()
        .stdout_is(&format!("gpasswd -a {me} nixbld\n"));
}

#[test]
fn join_group_is_idempotent_and_checks_its_input() {
    let s = scratch();
    // nixbld1 is a member of nixbld on any Nix multi-user install.
    on_machine(&s, &[], &["join-group", "nixbld1"])
        .success()
        .stdout_empty()
        .stderr_has("already in group nixbld; nothing changed");
    on_machine(&s, &[], &["join-group", "--check", "builder"])
        .code(1)
        .stderr_has("would add builder to group nixbld");
    on_machine(
        &s,
        &[],
        &["join-group", "--group", "lbnosuchgroup", "builder"],
    )
    .code(1)
    .stderr_has("groupadd --system lbnosuchgroup");
    on_machine(&s, &[], &["join-group", "lb-no-such-user"])
        .code(2)
        .stderr_has("no such user");
    on_machine(&s, &[], &["join-group", "a;b"])
        .code(2)
        .stderr_has("not a user name");
    // leave-group, the reverse: nothing to do for a user not in the group,
    // the platform's command otherwise.
    on_machine(&s, &[], &["leave-group", "builder"])
        .success()
        .stderr_has("builder is not in group nixbld; nothing changed");
    // setup-host puts the harness's builder account in nix-users.
    let leave = ["leave-group", "-n", "--group", "nix-users", "builder"];
    on_machine(&s, &[("LB_PLATFORM", "linux")], &leave)
        .success()
        .stdout_is("gpasswd -d builder nix-users\n");
    on_machine(&s, &[("LB_PLATFORM", "macos")], &leave)
        .success()
        .stdout_is("dseditgroup -o edit -d builder -t user nix-users\n");
    // nixbld is the build users' primary group: refused, not half-done.
    on_machine(&s, &[], &["leave-group", "nixbld1"])
        .code(1)
        .stderr_has("primary group");
}

#[test]
fn join_and_leave_group_edit_the_scratch_roots_group_file() {
    let s = scratch();
    let before = "root:x:0:\nnixbld:x:30000:nixbld1\n";
    let group = s.write("etc/group", before);
    s.run(["join-group", "-n", "alice"])
        .success()
        .stdout_is(&format!(
            "--- {}\n-nixbld:x:30000:nixbld1\n+nixbld:x:30000:nixbld1,alice\n",
            group.display()
        ));
    s.run(["join-group", "--check", "alice"]).code(1);
    assert_eq!(std::fs::read_to_string(&group).unwrap(), before);
    s.run(["join-group", "alice"])
        .success()
        .stderr_has("added alice to group nixbld");
    assert_eq!(
        std::fs::read_to_string(&group).unwrap(),
        "root:x:0:\nnixbld:x:30000:nixbld1,alice\n"
    );
    s.run(["join-group", "alice"])
        .success()
        .stderr_has("already in group nixbld");
    s.run(["leave-group", "alice"])
        .success()
        .stderr_has("removed alice from group nixbld");
    assert_eq!(std::fs::read_to_string(&group).unwrap(), before);
    s.run(["leave-group", "alice"])
        .success()
        .stderr_has("not in group nixbld");
    s.run(["join-group", "--group", "lbnosuch", "alice"])
        .code(1)
        .stderr_has("group lbnosuch: not in");
}

#[test]
fn uninstall_removes_the_pair_and_never_prints_it() {
    let s = scratch();
    s.install();
    let a = s.run(["uninstall", "-n"]).success();
    insta::assert_snapshot!(s.redact(&a.stdout()), @r"
    rm -f ROOT/etc/nix/builder_ed25519
    rm -f ROOT/etc/nix/builder_ed25519.pub
    ");
    s.run(["uninstall", "--check"]).code(1);
    assert!(s.installed().exists());
    s.run(["uninstall"]).success();
    assert!(files_under(s.root()).is_empty());
    assert!(
        s.keys().join("builder_ed25519").exists(),
        "keys dir left alone"
    );
    s.run(["uninstall"])
        .success()
        .stderr_has("not installed; nothing changed");
    s.run(["uninstall", "--check"]).code(0);
}

/// A scratch root the unprivileged `builder` account cannot write, and a
/// working directory it can.
fn unprivileged_scratch() -> Scenario {
    let s = scratch();
    std::fs::create_dir_all(s.root().join("etc/nix")).unwrap();
    for d in [s.root(), s.work()] {
        std::fs::set_permissions(d, PermissionsExt::from_mode(0o755)).unwrap();
    }
    let builder = nix::unistd::User::from_name(lb_testkit::BUILDER_USER)
        .unwrap()
        .expect("a builder account (tests/setup-host.sh)");
    nix::unistd::chown(s.work(), Some(builder.uid), Some(builder.gid)).unwrap();
    s
}

/// `runuser -u builder -- lb-keys --root ROOT ARGS` in the working directory.
fn as_builder(s: &Scenario, args: &[&str]) -> std::process::Output {
    lb_testkit::require_program("runuser", "util-linux");
    clean_command("runuser")
        .args(["-u", lb_testkit::BUILDER_USER, "--"])
        .arg(assert_cmd::cargo::cargo_bin("lb-keys"))
        .arg("--root")
        .arg(s.root())
        .args(args)
        .current_dir(s.work())
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
    assert!(files_under(s.root()).is_empty());
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
    let status = clean_command(&argv[2]).args(&argv[3..]).status().unwrap();
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
    let found = String::from_utf8_lossy(&out.stdout);
    assert!(found.contains("cannot read it as uid"), "{found}");
    assert!(found.contains("the Nix daemon runs as root"), "{found}");
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
    assert!(files_under(s.root()).is_empty());
    let out = as_builder(&s, &["uninstall", "--no-sudo"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "nothing installed: nothing to do"
    );
}

#[test]
fn help_explains_the_tool() {
    let s = scratch();
    let a = s.run(["--help"]).success();
    let help = a.stdout();
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
    let a = s.run(["install", "--help"]).success();
    let help = a.stdout().split_whitespace().collect::<Vec<_>>().join(" ");
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
    assert!(files_under(s.root()).is_empty());
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
