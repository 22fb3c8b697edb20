//! `lb-ping --health` against real parts: the harness sshd, whose
//! `builder` account runs the host's Nix with a nix.conf of the test's
//! choosing (sshd's `SetEnv NIX_CONF_DIR=...`), so each fault is real: a
//! builder that does not trust its user, a store below its `min-free`, an
//! entry claiming a system or feature the builder's Nix lacks.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use lb_common::builder::HostKey;
use lb_testkit::{keygen, scratch_root, KeyPair, Sshd};

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::os::unix::fs::PermissionsExt::from_mode(mode)).unwrap();
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A builder whose Nix reads `nix_conf`, and a scratch root with one
/// builders entry for it with `systems` and `features`.
struct Builder {
    _keys: tempfile::TempDir,
    conf: tempfile::TempDir,
    sshd: Sshd,
    root: tempfile::TempDir,
}

impl Builder {
    fn new(nix_conf: &str, systems: &str, features: &str) -> Self {
        lb_testkit::ensure_nix_daemon();
        let keys = tempfile::tempdir().unwrap();
        chmod(keys.path(), 0o755);
        let key: KeyPair = keygen(keys.path(), "client");
        let conf = tempfile::tempdir().unwrap();
        chmod(conf.path(), 0o755);
        std::fs::write(conf.path().join("nix.conf"), nix_conf).unwrap();
        let sshd = Sshd::start_with(
            Some(&key.public_line()),
            &format!("SetEnv NIX_CONF_DIR={}", conf.path().display()),
        );
        let root = scratch_root();
        let r = root.path();
        std::fs::create_dir_all(r.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(r.join("etc/nix")).unwrap();
        std::fs::write(
            r.join("etc/ssh/ssh_config"),
            format!(
                "Host lb-health\n  Hostname 127.0.0.1\n  Port {}\n  User builder\n  HostKeyAlias lb-health\n",
                sshd.port
            ),
        )
        .unwrap();
        let hk = HostKey::parse(&sshd.host_key.public_line())
            .unwrap()
            .machines_base64();
        std::fs::write(
            r.join("etc/nix/nix.conf"),
            format!(
                "builders = ssh-ng://lb-health {systems} {} 1 1 {features} - {hk}\n",
                key.private.display()
            ),
        )
        .unwrap();
        Builder {
            _keys: keys,
            conf,
            sshd,
            root,
        }
    }

    fn ping(&self, args: &[&str]) -> Output {
        Command::cargo_bin("lb-ping")
            .unwrap()
            .env_remove("NIX_CONF_DIR")
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .timeout(Duration::from_secs(60))
            .output()
            .unwrap()
    }

    fn json(&self) -> (Output, serde_json::Value) {
        let out = self.ping(&["--health", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\nstderr: {}\nsshd: {}",
                text(&out.stdout),
                text(&out.stderr),
                self.sshd.log()
            )
        });
        (out, v[0].clone())
    }
}

const TRUSTED: &str = "trusted-users = root builder\nsubstituters =\n";

#[test]
fn a_healthy_builder_passes_every_finding() {
    let b = Builder::new(TRUSTED, "x86_64-linux", "-");
    let (out, r) = b.json();
    assert!(out.status.success(), "{r:#}\n{}", text(&out.stderr));
    let h = &r["health"];
    assert_eq!(h["user"], "builder");
    assert_eq!(h["system"], "x86_64-linux");
    assert!(h["store_free_bytes"].as_u64().unwrap() > 0, "{h:#}");
    let stages: Vec<&str> = r["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages.last(), Some(&"health"));
    for f in h["findings"].as_array().unwrap() {
        assert_eq!(f["ok"], true, "{f:#}");
    }
    // Without --health the ping does not run the probe.
    let out = b.ping(&["--json"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(v[0]["health"].is_null());
}

#[test]
fn an_untrusting_builder_is_named_with_its_trusted_users() {
    let b = Builder::new("trusted-users = root\n", "x86_64-linux", "-");
    let (out, r) = b.json();
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["failed_stage"], "health");
    assert_eq!(r["cause"], "not-trusted");
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains("builder is not in the builder's trusted-users (its trusted-users = root)"),
        "{e}"
    );
    let out = b.ping(&["--health", "--explain"]);
    let e = text(&out.stdout);
    assert!(
        e.contains("fix:   on the builder: add builder to `trusted-users`"),
        "{e}"
    );
}

#[test]
fn a_store_below_min_free_is_named() {
    // More than any disk here has free: the store is "full" for this Nix.
    let b = Builder::new(
        &format!("{TRUSTED}min-free = 107374182400000\n"),
        "x86_64-linux",
        "-",
    );
    let (out, r) = b.json();
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["cause"], "disk-low", "{r:#}");
    let e = r["error"].as_str().unwrap();
    assert!(e.contains("(min-free 100000.0 GiB)"), "{e}");
    assert!(e.contains("nearly full"), "{e}");
    assert_eq!(r["health"]["min_free_bytes"], 100_000u64 << 30);
}

#[test]
fn a_system_the_builder_does_not_build_is_named() {
    let b = Builder::new(TRUSTED, "aarch64-linux", "-");
    let (out, r) = b.json();
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["cause"], "system-mismatch");
    let e = r["error"].as_str().unwrap();
    assert!(e.contains("but the builder's Nix is x86_64-linux"), "{e}");
    assert!(e.contains("Required system 'aarch64-linux'"), "{e}");
}

#[test]
fn a_feature_the_builder_lacks_is_named() {
    let b = Builder::new(
        &format!("{TRUSTED}system-features = benchmark\n"),
        "x86_64-linux",
        "kvm,benchmark",
    );
    let (out, r) = b.json();
    assert_eq!(out.status.code(), Some(1), "{r:#}");
    assert_eq!(r["cause"], "feature-missing");
    let e = r["error"].as_str().unwrap();
    assert!(
        e.contains("says it supports kvm, but the builder's system-features are benchmark"),
        "{e}"
    );
    drop(b.conf);
}
