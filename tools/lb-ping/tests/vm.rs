//! lb-ping against the test builder VM (tests/guest: Debian's Nix 2.8.0
//! behind the guest's sshd, protocol 1.34), through a scratch root's
//! ssh_config alias and builders line, as a configured Mac would have it.

use assert_cmd::Command;
use lb_common::builder::HostKey;
use lb_testkit::Vm;

#[test]
fn the_test_builder_vm_answers_2_8_0_on_1_34() {
    let vm = Vm::shared();
    let root = lb_testkit::scratch_root();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/ssh")).unwrap();
    std::fs::create_dir_all(r.join("etc/nix")).unwrap();
    std::fs::write(
        r.join("etc/ssh/ssh_config"),
        format!(
            "Host lb-vm-test\n  Hostname 127.0.0.1\n  Port {}\n  User builder\n  HostKeyAlias lb-vm-test\n",
            vm.port
        ),
    )
    .unwrap();
    let host_key = HostKey::parse(&vm.host_key).unwrap().machines_base64();
    std::fs::write(
        r.join("etc/nix/nix.conf"),
        format!(
            "builders = ssh-ng://lb-vm-test x86_64-linux {} 1 1 - - {host_key}\n",
            vm.key.private.display()
        ),
    )
    .unwrap();
    // TCG guests are slow: a generous timeout, the answer is what counts.
    let out = Command::cargo_bin("lb-ping")
        .unwrap()
        .env_remove("NIX_CONF_DIR")
        .arg("--root")
        .arg(r)
        .args(["--json", "--timeout", "60"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}\nconsole:\n{}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports[0]["nix_version"], "2.8.0", "{text}");
    assert_eq!(reports[0]["protocol"], "1.34", "{text}");
    assert_eq!(reports[0]["trusted"], "unknown", "{text}");
}
