//! lb-ping against real parts: the harness sshd whose `builder` account
//! runs the host's `nix-daemon --stdio`, one failure per stage.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use lb_common::builder::HostKey;
use lb_testkit::{keygen, scratch_root, KeyPair, Sshd};

/// A scratch root with an ssh_config alias per (alias, port) and a
/// builders line per (uri, key, host key).
struct Setup {
    root: tempfile::TempDir,
    ssh_config: String,
    builders: Vec<String>,
}

impl Setup {
    fn new() -> Self {
        let root = scratch_root();
        // Readable by the `builder` account for the runuser test.
        chmod(root.path(), 0o755);
        Setup {
            root,
            ssh_config: String::new(),
            builders: Vec::new(),
        }
    }

    fn alias(&mut self, alias: &str, port: u16, extra: &str) -> &mut Self {
        let _ = write!(
            self.ssh_config,
            "Host {alias}\n  Hostname 127.0.0.1\n  Port {port}\n  User builder\n  HostKeyAlias {alias}\n{extra}"
        );
        self
    }

    /// A builders entry; `host_key` None leaves field 8 empty.
    fn builder(&mut self, uri: &str, key: &Path, host_key: Option<&str>) -> &mut Self {
        let hk = host_key.map_or_else(
            || "-".to_owned(),
            |k| HostKey::parse(k).unwrap().machines_base64(),
        );
        self.builders
            .push(format!("{uri} x86_64-linux {} 1 1 - - {hk}", key.display()));
        self
    }

    fn write(&self) -> &Path {
        let root = self.root.path();
        std::fs::create_dir_all(root.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(root.join("etc/nix")).unwrap();
        chmod(&root.join("etc"), 0o755);
        chmod(&root.join("etc/ssh"), 0o755);
        chmod(&root.join("etc/nix"), 0o755);
        std::fs::write(root.join("etc/ssh/ssh_config"), &self.ssh_config).unwrap();
        std::fs::write(
            root.join("etc/nix/nix.conf"),
            format!("builders = {}\n", self.builders.join(" ; ")),
        )
        .unwrap();
        root
    }
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

fn lb_ping(root: &Path, args: &[&str]) -> Output {
    Command::cargo_bin("lb-ping")
        .unwrap()
        .env_remove("NIX_CONF_DIR")
        .arg("--root")
        .arg(root)
        .args(args)
        .timeout(Duration::from_secs(60))
        .output()
        .unwrap()
}

fn json(out: &Output) -> Vec<serde_json::Value> {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The host's Nix version, as `nix --version` says it.
fn host_nix_version() -> String {
    let out = std::process::Command::new("nix")
        .arg("--version")
        .output()
        .unwrap();
    text(&out.stdout)
        .split_whitespace()
        .last()
        .unwrap()
        .to_owned()
}

/// An sshd that lets `key` in, and a scratch root configured for it.
fn one_builder(key: &KeyPair, sshd: &Sshd, uri: &str) -> Setup {
    let mut s = Setup::new();
    s.alias("lb-test", sshd.port, "").builder(
        uri,
        &key.private,
        Some(&sshd.host_key.public_line()),
    );
    s.write();
    s
}

fn keys() -> (tempfile::TempDir, KeyPair) {
    let dir = tempfile::tempdir().unwrap();
    chmod(dir.path(), 0o755);
    let key = keygen(dir.path(), "client");
    (dir, key)
}

fn failed_stage(r: &serde_json::Value) -> (&str, &str) {
    (
        r["failed_stage"].as_str().unwrap_or("none"),
        r["cause"].as_str().unwrap_or("none"),
    )
}

#[test]
fn answers_with_the_host_nix_version_and_protocol() {
    lb_testkit::ensure_nix_daemon();
    let (_d, key) = keys();
    let sshd = Sshd::start(Some(&key.public_line()));
    let s = one_builder(&key, &sshd, "ssh-ng://lb-test");

    let out = lb_ping(s.root.path(), &[]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out.stderr),
        sshd.log()
    );
    let line = text(&out.stdout);
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields[..5],
        [
            "ssh-ng://lb-test",
            "ok",
            &host_nix_version(),
            "1.34",
            "unknown"
        ]
    );
    assert!(fields[5].ends_with("ms"), "{line}");

    let out = lb_ping(s.root.path(), &["--json", "lb-test"]);
    assert!(out.status.success());
    let r = &json(&out)[0];
    assert_eq!(r["ok"], true);
    assert_eq!(r["nix_version"], host_nix_version().as_str());
    assert_eq!(r["protocol"], "1.34");
    assert_eq!(r["address"], format!("127.0.0.1:{}", sshd.port).as_str());
    assert_eq!(r["user"], "builder");
    let stages: Vec<&str> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        stages,
        [
            "resolve",
            "connect",
            "ssh-handshake",
            "host-key",
            "auth",
            "exec",
            "daemon-handshake",
            "is-valid-path"
        ]
    );

    let out = lb_ping(s.root.path(), &["--explain"]);
    let e = text(&out.stdout);
    assert!(e.contains("lb-test resolves to builder@127.0.0.1:"), "{e}");
    assert!(e.contains("is-valid-path"), "{e}");
}

#[test]
fn known_hosts_entry_is_used_when_the_builder_has_no_host_key() {
    lb_testkit::ensure_nix_daemon();
    let (_d, key) = keys();
    let sshd = Sshd::start(Some(&key.public_line()));
    let mut s = Setup::new();
    let kh = sshd.known_hosts("lb-test");
    s.alias(
        "lb-test",
        sshd.port,
        &format!(
            "  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n",
            kh.display()
        ),
    )
    .builder("ssh-ng://lb-test", &key.private, None);
    s.write();
    let out = lb_ping(s.root.path(), &["--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // The same with no known_hosts entry: refused, never accepted.
    let empty = s.root.path().join("empty_known_hosts");
    std::fs::write(&empty, "").unwrap();
    let mut s2 = Setup::new();
    s2.alias(
        "lb-test",
        sshd.port,
        &format!(
            "  UserKnownHostsFile {}\n  GlobalKnownHostsFile /dev/null\n",
            empty.display()
        ),
    )
    .builder("ssh-ng://lb-test", &key.private, None);
    s2.write();
    let out = lb_ping(s2.root.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        failed_stage(&json(&out)[0]),
        ("host-key", "host-key-unknown")
    );
}

#[test]
fn nothing_listening_fails_at_connect() {
    let (_d, key) = keys();
    let port = lb_testkit::free_port();
    let mut s = Setup::new();
    s.alias("lb-dead", port, "").builder(
        "ssh-ng://lb-dead",
        &key.private,
        Some(lb_common::builder::NIXPKGS_HOST_KEY),
    );
    s.write();
    let out = lb_ping(s.root.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(failed_stage(&json(&out)[0]), ("connect", "refused"));
    let out = lb_ping(s.root.path(), &[]);
    assert!(text(&out.stdout).starts_with("ssh-ng://lb-dead connect - - unknown "));
    assert!(text(&out.stderr).contains(&format!("127.0.0.1:{port}: cannot connect")));
    let out = lb_ping(s.root.path(), &["--explain"]);
    assert!(
        text(&out.stdout).contains("fix:   lb-vm status"),
        "{}",
        text(&out.stdout)
    );
}

#[test]
fn wrong_host_key_fails_at_host_key_with_both_fingerprints() {
    let (d, key) = keys();
    let sshd = Sshd::start(Some(&key.public_line()));
    let other = keygen(d.path(), "other_host");
    let mut s = Setup::new();
    s.alias("lb-test", sshd.port, "").builder(
        "ssh-ng://lb-test",
        &key.private,
        Some(&other.public_line()),
    );
    s.write();
    let out = lb_ping(s.root.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        failed_stage(&json(&out)[0]),
        ("host-key", "host-key-mismatch")
    );
    let out = lb_ping(s.root.path(), &["--explain"]);
    let e = text(&out.stdout);
    let fp = |k: &KeyPair| HostKey::parse(&k.public_line()).unwrap().fingerprint();
    assert!(
        e.contains(&fp(&other)) && e.contains(&fp(&sshd.host_key)),
        "{e}"
    );
    assert!(
        e.contains("lb-nixconf install --host-key 'ssh-ed25519 "),
        "{e}"
    );
}

#[test]
fn key_not_authorized_fails_at_auth() {
    let (d, key) = keys();
    let stranger = keygen(d.path(), "stranger");
    let sshd = Sshd::start(Some(&stranger.public_line()));
    let s = one_builder(&key, &sshd, "ssh-ng://lb-test");
    let out = lb_ping(s.root.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(failed_stage(&json(&out)[0]), ("auth", "auth-refused"));
    let out = lb_ping(s.root.path(), &["--explain"]);
    assert!(text(&out.stdout).contains("lb-keys check"));
}

#[test]
fn unreadable_key_fails_at_auth_and_says_sudo() {
    let (_d, key) = keys();
    let sshd = Sshd::start(Some(&key.public_line()));
    let s = one_builder(&key, &sshd, "ssh-ng://lb-test");
    chmod(&key.private, 0o600); // root's only, as /etc/nix/builder_ed25519
    let bin = assert_cmd::cargo::cargo_bin("lb-ping");
    let out = std::process::Command::new("runuser")
        .args(["-u", "builder", "--"])
        .arg(&bin)
        .arg("--root")
        .arg(s.root.path())
        .args(["--json"])
        .env_remove("NIX_CONF_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let r = &json(&out)[0];
    assert_eq!(failed_stage(r), ("auth", "key-unreadable"));
    assert!(
        r["error"].as_str().unwrap().contains("Permission denied"),
        "{r}"
    );
}

#[test]
fn missing_remote_program_fails_at_exec() {
    let (_d, key) = keys();
    let sshd = Sshd::start(Some(&key.public_line()));
    let s = one_builder(&key, &sshd, "ssh-ng://lb-test?remote-program=/nonexistent");
    let out = lb_ping(s.root.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let r = &json(&out)[0];
    assert_eq!(failed_stage(r), ("exec", "program-missing"));
    assert!(
        r["error"]
            .as_str()
            .unwrap()
            .contains("/nonexistent --stdio"),
        "{r}"
    );
}

#[test]
fn garbage_after_ssh_fails_at_daemon_handshake() {
    let (_d, key) = keys();
    let sshd = Sshd::start_with(
        Some(&key.public_line()),
        "ForceCommand head -c 100000 /dev/urandom",
    );
    let s = one_builder(&key, &sshd, "ssh-ng://lb-test");
    let out = lb_ping(s.root.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let r = &json(&out)[0];
    assert_eq!(failed_stage(r), ("daemon-handshake", "not-a-daemon"));
}

#[test]
fn stalled_daemon_times_out_within_the_timeout() {
    let (_d, key) = keys();
    let sshd = Sshd::start_with(Some(&key.public_line()), "ForceCommand sleep 60");
    let s = one_builder(&key, &sshd, "ssh-ng://lb-test");
    let t = Instant::now();
    let out = lb_ping(s.root.path(), &["--json", "--timeout", "2"]);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(1));
    let r = &json(&out)[0];
    assert_eq!(failed_stage(r), ("daemon-handshake", "timeout"));
    // The timeout covers the whole exchange; allow for process start.
    assert!(took < Duration::from_secs(8), "took {took:?}");
    assert!(r["total_ms"].as_f64().unwrap() >= 1500.0, "{r}");
}

#[test]
fn several_builders_take_about_the_slowest() {
    lb_testkit::ensure_nix_daemon();
    let (_d, key) = keys();
    let good = Sshd::start(Some(&key.public_line()));
    let slow_a = Sshd::start_with(Some(&key.public_line()), "ForceCommand sleep 60");
    let slow_b = Sshd::start_with(Some(&key.public_line()), "ForceCommand sleep 60");
    let dead = lb_testkit::free_port();
    let mut s = Setup::new();
    for (alias, sshd) in [
        ("lb-good", &good),
        ("lb-slow-a", &slow_a),
        ("lb-slow-b", &slow_b),
    ] {
        s.alias(alias, sshd.port, "").builder(
            &format!("ssh-ng://{alias}"),
            &key.private,
            Some(&sshd.host_key.public_line()),
        );
    }
    s.alias("lb-dead", dead, "").builder(
        "ssh-ng://lb-dead",
        &key.private,
        Some(lb_common::builder::NIXPKGS_HOST_KEY),
    );
    s.write();
    let timeout = 3.0;
    let t = Instant::now();
    let out = lb_ping(s.root.path(), &["--json", "--timeout", "3"]);
    let took = t.elapsed().as_secs_f64();
    assert_eq!(out.status.code(), Some(1));
    let rs = json(&out);
    let got: Vec<(&str, (&str, &str))> = rs
        .iter()
        .map(|r| (r["uri"].as_str().unwrap(), failed_stage(r)))
        .collect();
    assert_eq!(
        got,
        [
            ("ssh-ng://lb-good", ("none", "none")),
            ("ssh-ng://lb-slow-a", ("daemon-handshake", "timeout")),
            ("ssh-ng://lb-slow-b", ("daemon-handshake", "timeout")),
            ("ssh-ng://lb-dead", ("connect", "refused")),
        ]
    );
    // In sequence the two stalls alone would take 2 x timeout.
    assert!(
        took < 2.0 * timeout,
        "took {took:.1}s: {}",
        text(&out.stdout)
    );
}

/// A "daemon" that sends `bytes` and then waits: the builder's sshd runs
/// `cat FILE` in place of `nix-daemon --stdio`. (It also proves that data
/// arriving ahead of the client's requests is kept: ssh2's `flush` used to
/// discard it.)
fn hostile_daemon(bytes: &[u8]) -> (tempfile::TempDir, KeyPair, Sshd) {
    let (dir, key) = keys();
    let script = dir.path().join("reply");
    std::fs::write(&script, bytes).unwrap();
    chmod(&script, 0o644);
    let sshd = Sshd::start_with(
        Some(&key.public_line()),
        // All of it at once, in one packet (a real daemon answers step by
        // step); then wait for the client to hang up.
        &format!("ForceCommand cat {}; cat >/dev/null", script.display()),
    );
    (dir, key, sshd)
}

#[test]
fn peer_text_is_escaped_in_text_output_and_kept_in_json() {
    use lb_common::daemon::script::{self, string, u64 as w};
    // A version with a terminal title sequence and a forged result line.
    let forged = "2.8.0\x1b]0;pwned\x07\nssh-ng://forged ok 9.9 1.38 trusted 1ms";
    let mut reply = script::handshake(0x123, forged, 1);
    // The answer to lb-ping's IsValidPath probe: LAST, then "not valid".
    reply.extend(w(script::LAST));
    reply.extend(w(0));
    let (_d, key, sshd) = hostile_daemon(&reply);
    let s = one_builder(&key, &sshd, "ssh-ng://lb-test");
    let out = lb_ping(s.root.path(), &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}{}",
        text(&out.stderr),
        sshd.log()
    );
    assert_eq!(stdout.lines().count(), 1, "a forged line: {stdout:?}");
    assert!(
        !stdout.contains('\x1b') && !stdout.contains('\x07'),
        "{stdout:?}"
    );
    assert!(
        stdout.contains("2.8.0\\e]0;pwned\\x07\\nssh-ng://forged"),
        "{stdout:?}"
    );
    let explain = text(&lb_ping(s.root.path(), &["--explain"]).stdout);
    assert!(
        !explain.contains('\x1b') && !explain.contains("\nssh-ng://forged"),
        "{explain:?}"
    );
    // JSON carries the text as sent, escaped by the JSON encoder.
    let r = &json(&lb_ping(s.root.path(), &["--json"]))[0];
    assert_eq!(r["nix_version"].as_str(), Some(forged));

    // An error message from the peer, on stderr and in --explain.
    let mut bytes = script::handshake(0x122, "2.8.0", 0);
    bytes.truncate(bytes.len() - 8);
    bytes.extend(w(script::ERROR));
    bytes.extend(string("Error"));
    bytes.extend(w(0));
    bytes.extend(string("Error"));
    bytes.extend(string("denied\x1b[2J\x1b[1;1Hall good\nlb-ping: ok"));
    bytes.extend(w(0));
    bytes.extend(w(0));
    let (_d2, key2, sshd2) = hostile_daemon(&bytes);
    let s2 = one_builder(&key2, &sshd2, "ssh-ng://lb-test");
    for args in [&[][..], &["--explain"][..]] {
        let out = lb_ping(s2.root.path(), args);
        assert_eq!(out.status.code(), Some(1));
        for stream in [text(&out.stdout), text(&out.stderr)] {
            assert!(!stream.contains('\x1b'), "{stream:?}");
            assert!(!stream.contains("\nlb-ping: ok"), "{stream:?}");
        }
        assert!(
            text(&out.stderr).contains("denied\\e[2J\\e[1;1Hall good\\nlb-ping: ok"),
            "{}",
            text(&out.stderr)
        );
    }
}
