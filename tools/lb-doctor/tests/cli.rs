//! lb-doctor's command line on an empty scratch root: every step is
//! listed, each failing with its fix; the JSON holds the same; bad usage
//! exits 2.

use assert_cmd::Command;

fn doctor(root: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::cargo_bin("lb-doctor")
        .unwrap()
        .env_remove("NIX_CONF_DIR")
        .env_remove("LB_TRUST_USER")
        .arg("--root")
        .arg(root)
        .arg("--workdir")
        .arg(root)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn an_empty_root_fails_every_step_with_a_fix() {
    let root = lb_testkit::scratch_root();
    let out = doctor(root.path(), &["--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["healthy"], false);
    let steps: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "keys",
            "alias",
            "nix.conf",
            "daemon",
            "VM",
            "ping",
            "builder disk",
            "trust"
        ]
    );
    let text = String::from_utf8_lossy(&doctor(root.path(), &[]).stdout).into_owned();
    for s in v["steps"].as_array().unwrap() {
        for p in s["problems"].as_array().unwrap() {
            assert!(text.contains(p["message"].as_str().unwrap()), "{text}");
        }
    }
    assert!(text.contains("keys          FAILED"), "{text}");
    assert!(text.contains("lb-keys"), "{text}");
    assert!(text.contains("run lb-nixconf install"), "{text}");
    assert!(text.contains("VM            FAILED"), "{text}");
}

#[test]
fn no_vm_skips_the_vm_step() {
    let root = lb_testkit::scratch_root();
    let out = doctor(root.path(), &["--no-vm"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("VM            skipped --no-vm"), "{text}");
}

#[test]
fn bad_usage_exits_2() {
    let root = lb_testkit::scratch_root();
    assert_eq!(
        doctor(root.path(), &["--timeout", "0"]).status.code(),
        Some(2)
    );
    assert_eq!(
        doctor(root.path(), &["--name", "a b"]).status.code(),
        Some(2)
    );
    assert_eq!(doctor(root.path(), &["--bogus"]).status.code(), Some(2));
}
