//! lb-nixconf under hostile and unlucky input (issue 19): values that
//! would break the builders line, paths that climb out of `--root`, a
//! symlinked /etc/nix leading out, reads that never end, an 8 MB line,
//! two runs racing on nix.conf, and a nix.conf root cannot change.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let dir = lb_testkit::scratch_root();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        Scratch { _dir: dir, root }
    }

    fn conf(&self) -> PathBuf {
        self.root.join("etc/nix/nix.conf")
    }

    fn write_conf(&self, text: &[u8]) {
        std::fs::create_dir_all(self.root.join("etc/nix")).unwrap();
        std::fs::write(self.conf(), text).unwrap();
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(assert_cmd::cargo::cargo_bin("lb-nixconf"));
        for v in [
            "LB_ROOT",
            "LB_NAME",
            "LB_USER",
            "LB_HOSTNAME",
            "LB_PORT",
            "LB_KEY",
            "LB_HOST_KEY",
            "LB_SYSTEM",
            "LB_MAX_JOBS",
            "LB_PLATFORM",
            "NIX_CONF_DIR",
        ] {
            c.env_remove(v);
        }
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    /// Run with a deadline: a hang is a failure, not a stuck suite.
    fn run(&self, args: &[&str]) -> Output {
        let mut child = self
            .cmd(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let start = Instant::now();
        while child.try_wait().unwrap().is_none() {
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("lb-nixconf {args:?} did not finish within 20 s");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        child.wait_with_output().unwrap()
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn one_line_error(o: &Output, status: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(status), "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("lb-nixconf: error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

#[test]
fn values_that_break_the_builders_line_are_refused_writing_nothing() {
    let s = Scratch::new();
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
        let o = s.run(args);
        one_line_error(&o, 2, needle);
        assert!(!s.conf().exists(), "{args:?} wrote nix.conf");
    }
}

#[test]
fn key_climbing_out_of_the_root_stays_inside() {
    let s = Scratch::new();
    let outside = tempfile::tempdir().unwrap();
    let key = format!("/../../../{}/k", outside.path().display());
    let o = s.run(&["install", "--key", &key]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = std::fs::read_to_string(s.conf()).unwrap();
    let inside = s
        .root
        .join(outside.path().strip_prefix("/").unwrap())
        .join("k");
    assert!(text.contains(&format!(" {} ", inside.display())), "{text}");
    assert!(!text.contains(".."), "{text}");
}

#[test]
fn etc_nix_symlinked_out_of_the_root_is_refused() {
    let s = Scratch::new();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::write(elsewhere.path().join("nix.conf"), "max-jobs = 1\n").unwrap();
    std::fs::create_dir(s.root.join("etc")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path(), s.root.join("etc/nix")).unwrap();
    for args in [&["install"][..], &["remove"][..], &["show"][..]] {
        let o = s.run(args);
        one_line_error(&o, 2, "outside --root");
    }
    assert_eq!(
        std::fs::read_to_string(elsewhere.path().join("nix.conf")).unwrap(),
        "max-jobs = 1\n"
    );
}

#[test]
fn reads_that_never_end_are_refused_at_once() {
    let s = Scratch::new();
    let needle = "/dev/zero: is a character device";
    s.write_conf(b"include /dev/zero\n");
    for args in [&["show"][..], &["install"][..], &["check"][..]] {
        one_line_error(&s.run(args), 2, needle);
    }
    // `@FILE` is read by what looks at the effective builders.
    s.write_conf(b"builders = @/dev/zero\n");
    for args in [&["show"][..], &["check"][..]] {
        one_line_error(&s.run(args), 2, needle);
    }
    // nix.conf itself a FIFO (no writer: a blocking open would hang).
    std::fs::remove_file(s.conf()).unwrap();
    nix::unistd::mkfifo(&s.conf(), nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
    for args in [&["show"][..], &["install"][..], &["remove"][..]] {
        let o = s.run(args);
        one_line_error(&o, 2, "is a FIFO, not a regular file");
    }
}

#[test]
fn an_8_mb_line_is_quoted_as_a_short_escaped_excerpt() {
    let s = Scratch::new();
    let mut text = b"\x1b]0;title\x07".to_vec();
    text.extend(std::iter::repeat_n(b'x', 8 << 20));
    s.write_conf(&text);
    let o = s.run(&["show"]);
    one_line_error(&o, 2, "nix.conf:1:");
    let err = stderr(&o);
    assert!(err.len() < 400, "{} bytes of error", err.len());
    assert!(
        !err.contains('\x1b') && err.contains("\\e]0;title\\x07"),
        "{err}"
    );
    // The first line of a file named by `include`: the same excerpt.
    let secret = s.root.join("etc/nix/secret");
    std::fs::write(&secret, format!("{}\n", "s".repeat(4096))).unwrap();
    s.write_conf(b"include secret\n");
    let o = s.run(&["show"]);
    one_line_error(&o, 2, &format!("{}:1:", secret.display()));
    assert!(stderr(&o).len() < 400, "{}", stderr(&o));
}

#[test]
fn full_disk_names_its_cause_once() {
    assert!(
        lb_common::privilege::is_root(),
        "this test runs as root (make test)"
    );
    let s = Scratch::new();
    let mount = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=64k", "tmpfs"])
        .arg(&s.root)
        .status()
        .unwrap();
    assert!(mount.success());
    let _guard = Unmount(s.root.clone());
    s.write_conf(b"max-jobs = 1\n");
    {
        use std::io::Write;
        let mut filler = std::fs::File::create(s.root.join("filler")).unwrap();
        while filler.write_all(&[0u8; 4096]).is_ok() {}
        while filler.write_all(&[0u8]).is_ok() {}
    }
    let o = s.run(&["install"]);
    let err = stderr(&o);
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
    let s = Scratch::new();
    s.write_conf(b"max-jobs = 1\n");
    let st = Command::new("chattr")
        .arg("+i")
        .arg(s.conf())
        .status()
        .unwrap();
    assert!(st.success());
    let o = s.run(&["install"]);
    let _ = Command::new("chattr").arg("-i").arg(s.conf()).status();
    one_line_error(&o, 1, "immutable");
    assert!(!stderr(&o).contains("needs root"), "{}", stderr(&o));
}

#[test]
fn installs_and_removes_of_two_builders_race_without_losing_one() {
    let s = Scratch::new();
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
                s.cmd(&["-q", verb, "--name", name])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let o = c.wait_with_output().unwrap();
            assert!(o.status.success(), "round {round}: {}", stderr(&o));
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
