//! kill -9 at random moments (issue 19): every mutating command of
//! lb-keys, lb-sshcfg and lb-nixconf is killed a few hundred times in all,
//! each time at a random point of its run, in a scratch root. After each
//! kill:
//!
//! - every target is old or new: byte for byte what was there before the
//!   run, or what a complete run leaves;
//! - the next run of the same command leaves no temp file
//!   (`.NAME.XXXXXX.tmp`) anywhere in the root;
//! - an installed key pair whose halves came from different installs is
//!   reported by `lb-keys check` (and the next install repairs it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lb_testkit::scratch_root;

fn bin_dir() -> PathBuf {
    lb_testkit::tool_bin_dir()
}

/// A small xorshift: random enough for kill times, no dependency.
struct Rng(u64);

impl Rng {
    /// Seeded from the clock, or from `CRASH_SEED` to replay a failure.
    fn new() -> Self {
        let seed = std::env::var("CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("crash test seed {seed} (replay with CRASH_SEED={seed})");
        Rng(seed | 1)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

type Snapshot = BTreeMap<PathBuf, Vec<u8>>;

/// The files under `root` and their bytes.
fn snapshot(root: &Path) -> Snapshot {
    lb_testkit::tree::Tree::of(root).contents()
}

fn is_temp(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "tmp")
        && p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'))
}

struct Bench {
    bin: PathBuf,
    root: tempfile::TempDir,
    work: tempfile::TempDir,
    rng: Rng,
    runs: usize,
    kills_that_left_temp_files: usize,
    mismatched_pairs: usize,
}

impl Bench {
    fn new() -> Self {
        let work = tempfile::tempdir().unwrap();
        Bench {
            bin: bin_dir(),
            root: scratch_root(),
            work,
            rng: Rng::new(),
            runs: 0,
            kills_that_left_temp_files: 0,
            mismatched_pairs: 0,
        }
    }

    fn cmd(&self, argv: &[&str]) -> Command {
        let mut c = lb_testkit::clean_command(self.bin.join(argv[0]));
        c.arg("--root")
            .arg(self.root.path())
            .arg("-q")
            .args(&argv[1..])
            .current_dir(self.work.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        c
    }

    /// Run to completion, expecting success; how long it took.
    fn complete(&self, argv: &[&str]) -> Duration {
        let t = Instant::now();
        let o = self.cmd(argv).output().unwrap();
        assert!(
            o.status.success(),
            "{argv:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        t.elapsed()
    }

    /// Start `argv`, SIGKILL it after a random part of `typical`.
    fn kill_somewhere(&mut self, argv: &[&str], typical: Duration) {
        let us = self.rng.below(typical.as_micros() as u64 * 6 / 5 + 1);
        let mut child = self.cmd(argv).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(us));
        let _ = child.kill();
        let _ = child.wait();
        self.runs += 1;
    }

    /// One kill of `argv` from the state `setup` leaves, with every check.
    fn round(&mut self, setup: &[&[&str]], argv: &[&str], typical: Duration) {
        for s in setup {
            self.complete(s);
        }
        let root = self.root.path().to_path_buf();
        let before = snapshot(&root);
        self.kill_somewhere(argv, typical);
        let mid = snapshot(&root);
        if mid.keys().any(|p| is_temp(p)) {
            self.kills_that_left_temp_files += 1;
        }
        self.check_pair(&mid);
        // The next run of the writer finishes the job and sweeps.
        self.complete(argv);
        let after = snapshot(&root);
        let temps: Vec<_> = after.keys().filter(|p| is_temp(p)).collect();
        assert!(temps.is_empty(), "after {argv:?} ran again: {temps:?}");
        let mut all: Vec<&PathBuf> = before
            .keys()
            .chain(mid.keys())
            .chain(after.keys())
            .collect();
        all.sort();
        all.dedup();
        for p in all.into_iter().filter(|p| !is_temp(p)) {
            let m = mid.get(p);
            assert!(
                m == before.get(p) || m == after.get(p),
                "{argv:?} killed: {} is neither old nor new",
                p.display()
            );
        }
    }

    /// A pair whose halves differ must be what `lb-keys check` reports.
    fn check_pair(&mut self, mid: &Snapshot) {
        let private = mid.get(Path::new("etc/nix/builder_ed25519"));
        let public = mid.get(Path::new("etc/nix/builder_ed25519.pub"));
        let (Some(private), Some(public)) = (private, public) else {
            return;
        };
        let halves = |dir: &str| {
            (
                std::fs::read(self.work.path().join(dir).join("builder_ed25519")).unwrap(),
                std::fs::read(self.work.path().join(dir).join("builder_ed25519.pub")).unwrap(),
            )
        };
        let (a, b) = (halves("a"), halves("b"));
        let mixed = (*private == a.0 && *public == b.1) || (*private == b.0 && *public == a.1);
        if !mixed {
            return;
        }
        self.mismatched_pairs += 1;
        // A check prints its problems on stdout, its summary on stderr.
        let o = self
            .cmd(&["lb-keys", "check"])
            .stdout(Stdio::piped())
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{out}{err}");
        assert!(out.contains("is not the public key of"), "{out}{err}");
    }
}

#[test]
fn kill_9_at_random_moments_leaves_old_or_new_and_no_temp_file() {
    let started = Instant::now();
    let mut b = Bench::new();
    b.complete(&["lb-keys", "generate", "./a"]);
    b.complete(&["lb-keys", "generate", "./b"]);
    std::fs::create_dir_all(b.root.path().join("etc/nix")).unwrap();
    std::fs::write(b.root.path().join("etc/nix/nix.conf"), "max-jobs = 0\n").unwrap();

    let keys_a: &[&str] = &["lb-keys", "install", "./a"];
    let keys_b: &[&str] = &["lb-keys", "install", "./b"];
    let keys_off: &[&str] = &["lb-keys", "uninstall"];
    let ssh_1: &[&str] = &["lb-sshcfg", "install", "--port", "31022"];
    let ssh_2: &[&str] = &["lb-sshcfg", "install", "--port", "31023"];
    let ssh_off: &[&str] = &["lb-sshcfg", "uninstall"];
    let nix_1: &[&str] = &["lb-nixconf", "install", "--port", "31022"];
    let nix_2: &[&str] = &["lb-nixconf", "install", "--max-jobs", "2"];
    let nix_off: &[&str] = &["lb-nixconf", "remove"];

    // How long a complete run takes: kills fall anywhere within it.
    let t_keys = b.complete(keys_a).max(b.complete(keys_b));
    let t_ssh = b.complete(ssh_1).max(b.complete(ssh_off));
    let t_nix = b.complete(nix_1).max(b.complete(nix_off));

    for i in 0..80 {
        // Alternate the pair, so a kill between the renames mixes them.
        let (from, to) = if i % 2 == 0 {
            (keys_a, keys_b)
        } else {
            (keys_b, keys_a)
        };
        b.round(&[from], to, t_keys);
    }
    for _ in 0..30 {
        b.round(&[keys_a], keys_off, t_keys);
    }
    for i in 0..60 {
        let (from, to) = if i % 2 == 0 {
            (ssh_1, ssh_2)
        } else {
            (ssh_2, ssh_1)
        };
        b.round(&[from], to, t_ssh);
    }
    for _ in 0..30 {
        b.round(&[ssh_1], ssh_off, t_ssh);
    }
    for i in 0..50 {
        let (from, to) = if i % 2 == 0 {
            (nix_1, nix_2)
        } else {
            (nix_2, nix_1)
        };
        b.round(&[from], to, t_nix);
    }
    for _ in 0..30 {
        b.round(&[nix_1], nix_off, t_nix);
    }
    eprintln!(
        "{} kills in {:.1} s: {} left temp files (all swept by the next run), {} left a mismatched pair (reported by check)",
        b.runs,
        started.elapsed().as_secs_f64(),
        b.kills_that_left_temp_files,
        b.mismatched_pairs
    );
    assert!(b.runs >= 280);

    // Kills mix a pair only now and then: mix one by hand, so the check
    // of a mixed pair runs every time.
    let before = b.mismatched_pairs;
    let nix = b.root.path().join("etc/nix");
    std::fs::create_dir_all(&nix).unwrap();
    for (half, from) in [("builder_ed25519", "a"), ("builder_ed25519.pub", "b")] {
        std::fs::copy(b.work.path().join(from).join(half), nix.join(half)).unwrap();
    }
    b.check_pair(&snapshot(b.root.path()));
    assert_eq!(
        b.mismatched_pairs,
        before + 1,
        "the hand-mixed pair was not seen"
    );
}
