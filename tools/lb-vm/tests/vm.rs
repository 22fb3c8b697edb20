//! lb-vm against real QEMU booting the test builder VM (tests/guest).
//! TCG boots take ~15 s on 2 cores, so the assertions are grouped into few
//! boots. The runner paths are in tests/runner.rs.

use std::time::Duration;

use predicates::prelude::*;

use lb_testkit::vm::guest_host_key;

mod common;
use common::{lb_vm, lb_vm_std, pid_alive, setup, status_json, Setup};

/// The guest booted with a bounded wait.
fn kernel_args(s: &Setup, port: u16) -> Vec<String> {
    let mut a = common::kernel_args(s, port);
    a.extend(["--timeout".into(), "180".into()]);
    a
}

/// Log in through the forward with the real ssh client, checking the
/// guest's fixed host key.
fn ssh_guest(s: &Setup, port: u16, command: &str) -> std::process::Output {
    let kh = s.sc.work().join("known_hosts");
    std::fs::write(&kh, format!("lbvm-test {}\n", guest_host_key())).unwrap();
    std::process::Command::new("ssh")
        .args(["-F", "/dev/null", "-p", &port.to_string()])
        .arg("-i")
        .arg(&s.key.private)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .args([
            "-o",
            "HostKeyAlias=lbvm-test",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "-o",
            "ConnectTimeout=10",
            "builder@127.0.0.1",
            command,
        ])
        .output()
        .unwrap()
}

/// Stops the VM even when an assertion fails midway.
struct StopOnDrop<'a>(&'a Setup, &'a str);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = lb_vm(self.0)
            .args(["--name", self.1, "stop", "--timeout", "5"])
            .output();
    }
}

#[test]
fn start_status_ssh_refusals_stop() {
    let s = setup();
    let port = lb_testkit::free_port();
    let _guard = StopOnDrop(&s, "linux-builder");
    lb_vm(&s)
        .arg("start")
        .args(kernel_args(&s, port))
        .assert()
        .success()
        .stdout(format!("127.0.0.1:{port}\n"));
    let w = s.sc.work();
    let pid: u64 = std::fs::read_to_string(w.join("linux-builder.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(pid_alive(pid));
    assert!(w.join("linux-builder.qmp").exists());
    assert!(w.join("linux-builder.qcow2").exists());

    let (code, v) = status_json(&s, "linux-builder");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["ready"], true, "{v}");
    assert_eq!(v["pid"], pid, "{v}");
    assert_eq!(v["port"], port, "{v}");
    assert!(
        ["kvm", "tcg"].contains(&v["accel"].as_str().unwrap()),
        "{v}"
    );

    // sshd answers through the forward, with the key from the keys dir.
    let out = ssh_guest(&s, port, "id -un; cat /var/keys/builder_ed25519.pub");
    assert!(
        out.status.success(),
        "ssh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("builder\n"), "{text}");
    assert!(text.contains(&s.key.public_line()), "{text}");

    // Start twice: refused, unless --if-not-running.
    lb_vm(&s)
        .arg("start")
        .args(kernel_args(&s, port))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("already running"));
    lb_vm(&s)
        .args(["start", "--if-not-running"])
        .args(kernel_args(&s, port))
        .assert()
        .success()
        .stdout(format!("127.0.0.1:{port}\n"));

    // Another builder on the same port: refused, naming the holder (QEMU).
    lb_vm(&s)
        .args(["--name", "other", "start"])
        .args(kernel_args(&s, port))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "port {port} on 127.0.0.1 is taken by pid {pid} (qemu-system-x86"
        )));
    assert!(!w.join("other.pid").exists());

    // `wait` on a ready VM returns at once.
    lb_vm(&s)
        .args(["wait", "--timeout", "10"])
        .assert()
        .success()
        .stdout(format!("127.0.0.1:{port}\n"));

    // Stop: the process, pid file and socket are gone; twice is fine.
    lb_vm(&s)
        .args(["stop", "--timeout", "20"])
        .assert()
        .success();
    assert!(!pid_alive(pid), "QEMU {pid} still running");
    assert!(!w.join("linux-builder.pid").exists());
    assert!(!w.join("linux-builder.qmp").exists());
    assert!(!w.join("linux-builder.state.json").exists());
    lb_vm(&s).args(["stop"]).assert().success();
    let (code, v) = status_json(&s, "linux-builder");
    assert_eq!((code, &v["running"]), (1, &serde_json::json!(false)));
}

/// `--foreground` (what launchd and systemd run): lb-vm records itself as
/// the VM and becomes QEMU, so the service manager supervises QEMU itself;
/// `stop` powers it down and the process exits.
#[test]
fn foreground_becomes_the_vm_and_stop_ends_it() {
    let s = setup();
    let port = lb_testkit::free_port();
    let _guard = StopOnDrop(&s, "fg");
    let mut args = vec![
        "--name".to_owned(),
        "fg".to_owned(),
        "start".to_owned(),
        "--foreground".to_owned(),
    ];
    args.extend(kernel_args(&s, port));
    let mut child = lb_vm_std(&s)
        .arg("-q")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    lb_testkit::wait_for_ssh_banner(port, Duration::from_secs(180)).unwrap();
    let (code, st) = status_json(&s, "fg");
    assert_eq!(code, 0, "{st}");
    assert_eq!(st["running"], true, "{st}");
    // The recorded pid is the process we started: it became QEMU.
    assert_eq!(st["pid"], u64::from(child.id()), "{st}");
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", child.id())).unwrap();
    assert!(String::from_utf8_lossy(&cmdline).starts_with("qemu-system-x86_64"));

    lb_vm(&s)
        .args(["--name", "fg", "stop", "--timeout", "20"])
        .assert()
        .success();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let exited = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if std::time::Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        exited.is_some(),
        "the foreground VM did not exit after stop"
    );
    assert!(!s.sc.work().join("fg.pid").exists());
}
