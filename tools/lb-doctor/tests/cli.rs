//! lb-doctor's command line on an empty scratch root: every step is
//! listed, each failing with its fix; the JSON holds the same; bad usage
//! exits 2.

use lb_testkit::{Outcome, Scenario};

fn scratch() -> Scenario {
    Scenario::new("lb-doctor")
}

/// `lb-doctor --root ROOT --workdir ROOT ARGS`.
fn doctor(s: &Scenario, args: &[&str]) -> Outcome {
    let mut c = s.command();
    c.arg("--workdir").arg(s.root()).args(args);
    s.outcome(&mut c)
}

#[test]
fn an_empty_root_fails_every_step_with_a_fix() {
    let s = scratch();
    let out = doctor(&s, &["--json"]).code(1);
    let v: serde_json::Value = serde_json::from_str(&out.stdout()).unwrap();
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
    let text = doctor(&s, &[]).stdout();
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
    let s = scratch();
    doctor(&s, &["--no-vm"]).stdout_has("VM            skipped --no-vm");
}

#[test]
fn bad_usage_exits_2() {
    let s = scratch();
    doctor(&s, &["--timeout", "0"]).code(2);
    doctor(&s, &["--name", "a b"]).code(2);
    doctor(&s, &["--bogus"]).code(2);
}
