//! The harness's real parts work: sshd with the real ssh client, the nix
//! daemon over ssh-ng, and the test builder VM.

use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use lb_testkit::{ensure_nix_daemon, keygen, scratch_root, Sshd, Vm, NIX_TEST_OPTIONS};

#[test]
fn ssh_logs_into_harness_sshd_with_strict_host_key_checking() {
    let tmp = scratch_root();
    let key = keygen(tmp.path(), "id");
    let sshd = Sshd::start(Some(&key.public_line()));
    let cfg = sshd.ssh_config("lb-smoke", &key.private);
    let out = Command::new("ssh")
        .args(["-F"])
        .arg(&cfg)
        .args(["lb-smoke", "id", "-un"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "builder");
}

#[test]
fn harness_sshd_refuses_unauthorized_key() {
    let tmp = scratch_root();
    let key = keygen(tmp.path(), "id");
    let sshd = Sshd::start(None);
    let cfg = sshd.ssh_config("lb-smoke", &key.private);
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&cfg)
        .args(["lb-smoke", "true"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("Permission denied"));
}

#[test]
fn nix_store_ping_over_harness_sshd() {
    ensure_nix_daemon();
    let tmp = scratch_root();
    let key = keygen(tmp.path(), "id");
    let sshd = Sshd::start(Some(&key.public_line()));
    let cfg = sshd.ssh_config("lb-smoke", &key.private);
    let host_key = base64::engine::general_purpose::STANDARD
        .encode(format!("{}\n", sshd.host_key.public_line()));
    let out = Command::new("nix")
        .args(NIX_TEST_OPTIONS)
        .args(["store", "ping", "--store"])
        .arg(format!(
            "ssh-ng://builder@lb-smoke?base64-ssh-public-host-key={host_key}"
        ))
        .env("NIX_SSHOPTS", format!("-F {}", cfg.display()))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{}", sshd.log());
    assert!(
        stderr.contains("Version:") || String::from_utf8_lossy(&out.stdout).contains("Version:"),
        "{stderr}"
    );
}

#[test]
fn test_builder_vm_boots_and_answers_ssh() {
    let vm = Vm::shared();
    let banner = lb_testkit::wait_for_ssh_banner(vm.port, Duration::from_secs(5)).unwrap();
    assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner}");
    eprintln!(
        "test VM: accel {}, boot to sshd {:?}",
        vm.accel, vm.boot_time
    );
    // And it really is our guest: log in with the shared key, host key checked.
    let cfg = vm.ssh_config("lb-smoke-vm");
    let out = Command::new("ssh")
        .arg("-F")
        .arg(&cfg)
        .args(["lb-smoke-vm", "uname", "-n"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
}
