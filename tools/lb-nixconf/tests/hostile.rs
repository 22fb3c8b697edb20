//! lb-nixconf under hostile and unlucky input (issue 19): values that
//! would break the builders line, paths that climb out of `--root`, a
//! symlinked /etc/nix leading out, reads that never end, an 8 MB line,
//! two runs racing on nix.conf, and a nix.conf root cannot change.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use lb_testkit::{Outcome, Scenario};

fn scratch() -> Scenario {
    Scenario::new("lb-nixconf")
}

/// nix.conf in a scenario, and runs with a deadline: a hang is a failure,
/// not a stuck suite.
trait NixConfScenario {
    fn conf(&self) -> PathBuf;
    fn write_conf(&self, text: &[u8]);
    fn nixconf(&self, args: &[&str]) -> Outcome;
}

impl NixConfScenario for Scenario {
    fn conf(&self) -> PathBuf {
        self.path("etc/nix/nix.conf")
    }

    fn write_conf(&self, text: &[u8]) {
        self.write("etc/nix/nix.conf", text);
    }

    fn nixconf(&self, args: &[&str]) -> Outcome {
        self.run_within(Duration::from_secs(20), args)
    }
}

#[test]
fn values_that_break_the_builders_line_are_refused_writing_nothing() {
    let s = scratch();
    for (args, needle) in [
        (&["install", "--key", "/etc/nix/a b"][..], "--key (LB_KEY)"),
        (&["install", "--key", "/etc/nix/a;b"][..], "--key (LB_KEY)"),
        (
            &["install", "--key", "/etc/nix/k\nbuilders = evil"][..],
            "a newline",
        ),
        (&["install", "--trust-user", "alice#"][..], "--trust-user"),
        (&["install", "--trust-user", "a\nb"][..], "--trust-user"),
        (&["install", "--features", "kvm;x"][..], "--features"),
    ] {
        s.nixconf(args).one_line_error(2, needle);
        assert!(!s.conf().exists(), "{args:?} wrote nix.conf");
    }
}

#[test]
fn key_climbing_out_of_the_root_stays_inside() {
    let s = scratch();
    let outside = tempfile::tempdir().unwrap();
    let key = format!("/../../../{}/k", outside.path().display());
    s.nixconf(&["install", "--key", &key]).success();
    let text = std::fs::read_to_string(s.conf()).unwrap();
    let inside = s
        .root()
        .join(outside.path().strip_prefix("/").unwrap())
        .join("k");
    assert!(text.contains(&format!(" {} ", inside.display())), "{text}");
    assert!(!text.contains(".."), "{text}");
}

#[test]
fn etc_nix_symlinked_out_of_the_root_is_refused() {
    let s = scratch();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("nix.conf"), "max-jobs = 1\n").unwrap();
    std::fs::create_dir(s.root().join("etc")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), s.root().join("etc/nix")).unwrap();
    for args in [&["install"][..], &["remove"][..], &["show"][..]] {
        s.nixconf(args).one_line_error(2, "outside --root");
    }
    assert_eq!(
        std::fs::read_to_string(elsewhere.path().join("nix.conf")).unwrap(),
        "max-jobs = 1\n"
    );
}

#[test]
fn reads_that_never_end_are_refused_at_once() {
    let s = scratch();
    let needle = "/dev/zero: is a character device";
    s.write_conf(b"include /dev/zero\n");
    for args in [&["show"][..], &["install"][..], &["check"][..]] {
        s.nixconf(args).one_line_error(2, needle);
    }
    // `@FILE` is read by what looks at the effective builders.
    s.write_conf(b"builders = @/dev/zero\n");
    for args in [&["show"][..], &["check"][..]] {
        s.nixconf(args).one_line_error(2, needle);
    }
    // nix.conf itself a FIFO (no writer: a blocking open would hang).
    std::fs::remove_file(s.conf()).unwrap();
    nix::unistd::mkfifo(&s.conf(), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for args in [&["show"][..], &["install"][..], &["remove"][..]] {
        s.nixconf(args)
            .one_line_error(2, "is a FIFO, not a regular file");
    }
}

#[test]
fn an_8_mb_line_is_quoted_as_a_short_escaped_excerpt() {
    let s = scratch();
    let mut text = b"\x1b]0;title\x07".to_vec();
    text.extend(std::iter::repeat_n(b'x', 8 << 20));
    s.write_conf(&text);
    let o = s.nixconf(&["show"]).one_line_error(2, "nix.conf:1:");
    let err = o.stderr();
    assert!(err.len() < 400, "{} bytes of error", err.len());
    assert!(
        !err.contains('\x1b') && err.contains("\\e]0;title\\x07"),
        "{err}"
    );
    // The first line of a file named by `include`: the same excerpt.
    let secret = s.root().join("etc/nix/secret");
    std::fs::write(&secret, format!("{}\n", "s".repeat(4096))).unwrap();
    s.write_conf(b"include secret\n");
    let o = s
        .nixconf(&["show"])
        .one_line_error(2, &format!("{}:1:", secret.display()));
    assert!(o.stderr().len() < 400, "{}", o.stderr());
}

#[test]
fn full_disk_names_its_cause_once() {
    assert!(
        lb_common::privilege::is_root(),
        "this test runs as root (make test)"
    );
    let s = scratch();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(s.root())
        .status()
        .unwrap();
    assert!(mount.success());
    let _guard = Unmount(s.root().to_owned());
    s.write_conf(b"max-jobs = 1\n");
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(s.root().join("filler")).unwrap();
        while filler.write_all(&[0u8; 4096]).is_ok() {}
        while filler.write_all(&[0u8]).is_ok() {}
    }
    let o = s.nixconf(&["install"]);
    let err = o.stderr();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert_eq!(err.matches("No space left on device").count(), 1, "{err}");
    assert_eq!(err.matches("(os error 28)").count(), 1, "{err}");
    assert_eq!(std::fs::read_to_string(s.conf()).unwrap(), "max-jobs = 1\n");
}

#[test]
fn immutable_nix_conf_as_root_is_named_not_sudo() {
    assert!(
        lb_common::privilege::is_root(),
        "this test runs as root (make test)"
    );
    let s = scratch();
    s.write_conf(b"max-jobs = 1\n");
    let st = Command::new("chattr")
        .arg("+i")
        .arg(s.conf())
        .status()
        .unwrap();
    assert!(st.success());
    let o = s.nixconf(&["install"]);
    let _ = Command::new("chattr").arg("-i").arg(s.conf()).status();
    o.one_line_error(1, "immutable").stderr_lacks("needs root");
}

#[test]
fn installs_and_removes_of_two_builders_race_without_losing_one() {
    let s = scratch();
    s.write_conf(b"max-jobs = 0\n");
    for round in 0..100 {
        // Disjoint names: whatever the order, a ends present and b absent
        // (or the reverse); a lost update shows as the wrong set.
        let (install, remove) = if round % 2 == 0 {
            ("a", "b")
        } else {
            ("b", "a")
        };
        let children: Vec<_> = [("install", install), ("remove", remove)]
            .iter()
            .map(|(verb, name)| {
                s.command()
                    .args(["-q", verb, "--name", name])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(
                o.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        let text = std::fs::read_to_string(s.conf()).unwrap();
        assert!(text.starts_with("max-jobs = 0\n"), "round {round}: {text}");
        assert_eq!(
            text.matches(&format!("@{install} ")).count(),
            1,
            "round {round}: {text}"
        );
        assert_eq!(
            text.matches(&format!("@{remove} ")).count(),
            0,
            "round {round}: {text}"
        );
    }
}

struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
