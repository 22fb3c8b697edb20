//! `lb-vm check`, each fault made for real where it can exist here (a
//! disk image of another size made by qemu-img, a forward listening on
//! every interface, an ssh alias on another port, a VM that is down), and
//! on recorded inputs where it cannot (macOS's TMPDIR cleaning, QEMU crash
//! logs from Apple hardware).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Output};

use lb_testkit::{workspace_dir, Outcome, Scenario};

const NAME: &str = "lb-chk";

fn scratch() -> Scenario {
    Scenario::new("lb-vm")
}

/// `lb-vm --root ROOT --workdir WORK --name lb-chk ARGS`.
fn lb_vm(s: &Scenario, work: &Path, args: &[&str]) -> Outcome {
    let mut c = s.command();
    c.arg("--workdir")
        .arg(work)
        .arg("--name")
        .arg(NAME)
        .args(args);
    s.outcome(&mut c)
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn has(out: &Output, needle: &str) -> bool {
    lines(out).iter().any(|l| l.contains(needle))
}

/// A working directory outside /tmp (for the macOS TMPDIR check).
fn work_outside_tmp() -> tempfile::TempDir {
    let base = workspace_dir().join("target/lb-testkit");
    std::fs::create_dir_all(&base).unwrap();
    tempfile::Builder::new()
        .prefix("vm-check.")
        .tempdir_in(base)
        .unwrap()
}

#[test]
fn a_down_vm_is_named_with_the_start_command() {
    let s = scratch();
    let work = work_outside_tmp();
    let out = lb_vm(&s, work.path(), &["check"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        has(&out, &format!("{NAME} is not running")),
        "{:?}",
        lines(&out)
    );
    assert!(has(&out, "lb-vm start --workdir"), "{:?}", lines(&out));
}

#[test]
fn a_disk_image_of_another_size_is_named_with_qemu_img() {
    lb_testkit::require_program("qemu-img", "qemu-utils");
    let s = scratch();
    let work = work_outside_tmp();
    let disk = work.path().join(format!("{NAME}.qcow2"));
    let st = std::process::Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&disk)
        .arg("1024M")
        .status()
        .unwrap();
    assert!(st.success());
    let out = lb_vm(&s, work.path(), &["check", "--disk-size", "2048"]);
    assert!(
        has(&out, "is 1024 MiB but the configured size is 2048 MiB"),
        "{:?}",
        lines(&out)
    );
    assert!(
        has(&out, "lb-vm start --disk-size 2048"),
        "{:?}",
        lines(&out)
    );
    let out = lb_vm(&s, work.path(), &["check", "--disk-size", "1024"]);
    assert!(!has(&out, "MiB"), "{:?}", lines(&out));
    // --disk names another image.
    let other = work.path().join("other.qcow2");
    std::fs::rename(&disk, &other).unwrap();
    let out = lb_vm(
        &s,
        work.path(),
        &[
            "check",
            "--disk",
            other.to_str().unwrap(),
            "--disk-size",
            "4096",
        ],
    );
    assert!(has(&out, "other.qcow2 is 1024 MiB"), "{:?}", lines(&out));
}

#[test]
fn tmpdir_under_tmp_is_named_on_macos_only() {
    let s = scratch();
    let in_tmp = tempfile::Builder::new().prefix("lb-w.").tempdir().unwrap();
    assert!(in_tmp.path().starts_with("/tmp"));
    let mac = |work: &Path| {
        let mut c = s.command();
        c.env("LB_PLATFORM", "macos")
            .arg("--workdir")
            .arg(work)
            .args(["--name", NAME, "check"]);
        s.outcome(&mut c)
    };
    let out = mac(in_tmp.path());
    assert!(has(&out, "TMPDIR"), "{:?}", lines(&out));
    assert!(
        has(&out, "is under /tmp, which macOS cleans after three days"),
        "{:?}",
        lines(&out)
    );
    // Linux does not clean /tmp under a running VM.
    let out = lb_vm(&s, in_tmp.path(), &["check"]);
    assert!(!has(&out, "TMPDIR"), "{:?}", lines(&out));
    let outside = work_outside_tmp();
    let out = mac(outside.path());
    assert!(!has(&out, "TMPDIR"), "{:?}", lines(&out));
    // A launchd plist (recorded shape) whose TMPDIR is under /tmp.
    let plist = s.path(&format!("Library/LaunchDaemons/org.lb-vm.{NAME}.plist"));
    std::fs::create_dir_all(plist.parent().unwrap()).unwrap();
    std::fs::write(
        &plist,
        "<plist><dict><key>EnvironmentVariables</key><dict>\n<key>TMPDIR</key>\n<string>/tmp/lb-builder</string>\n</dict></dict></plist>\n",
    )
    .unwrap();
    let out = mac(outside.path());
    assert!(
        has(&out, "TMPDIR /tmp/lb-builder is under /tmp"),
        "{:?}",
        lines(&out)
    );
}

#[test]
fn a_known_crash_in_the_qemu_log_is_named_with_its_workaround() {
    let s = scratch();
    let work = work_outside_tmp();
    let log = work.path().join(format!("{NAME}.qemu.log"));
    // As nixpkgs issue 528299 and nix-darwin issue 1292 report them.
    std::fs::write(
        &log,
        "ERROR:../target/arm/hvf/sysreg.c.inc:149:hvf_arch_init_vcpu:\n  assertion failed: (HV_SYS_REG_SMCR_EL1 == KVMID_TO_HVF(KVMID_AA64_SYS_REG64(3, 0, 1, 2, 6)))\nBail out!\n",
    )
    .unwrap();
    let out = lb_vm(&s, work.path(), &["check"]);
    assert!(
        has(
            &out,
            "its last start died: QEMU 11 aborts at vCPU start under HVF"
        ),
        "{:?}",
        lines(&out)
    );
    assert!(
        has(&out, "528299") && has(&out, "workaround:"),
        "{:?}",
        lines(&out)
    );
    std::fs::write(
        &log,
        "Unexpected error in object_property_find_err() at ../qom/object.c:1358:\nqemu-system-aarch64: Property 'max-arm-cpu.sme' not found\n",
    )
    .unwrap();
    let out = lb_vm(&s, work.path(), &["check"]);
    assert!(has(&out, "nix-darwin issue 1292"), "{:?}", lines(&out));
    std::fs::write(
        &log,
        "qemu-system-x86_64: terminating on signal 15 from pid 1\n",
    )
    .unwrap();
    let out = lb_vm(&s, work.path(), &["check"]);
    assert!(!has(&out, "died"), "{:?}", lines(&out));
}

/// A live process lb-vm takes for this builder's VM (its command line
/// names the QMP socket), recorded as `start` records one, on `port`.
struct FakeVm {
    child: Child,
}

impl FakeVm {
    fn new(work: &Path, port: u16) -> Self {
        let qmp = work.join(format!("{NAME}.qmp"));
        let child = std::process::Command::new("sh")
            .args(["-c", "sleep 600; :"])
            .arg(&qmp)
            .spawn()
            .unwrap();
        let pid = child.id();
        std::fs::write(work.join(format!("{NAME}.pid")), format!("{pid}\n")).unwrap();
        std::fs::write(
            work.join(format!("{NAME}.state.json")),
            serde_json::json!({
                "pid": pid, "port": port, "accel": "tcg", "started_at": 0,
                "command": "sh", "program": "/bin/sh-not-this"
            })
            .to_string(),
        )
        .unwrap();
        FakeVm { child }
    }
}

impl Drop for FakeVm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alias(root: &Path, port: u16) -> PathBuf {
    let cfg = root.join("etc/ssh/ssh_config");
    std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
    std::fs::write(
        &cfg,
        format!("Host {NAME}\n  Hostname 127.0.0.1\n  Port {port}\n  User builder\n  HostKeyAlias {NAME}\n"),
    )
    .unwrap();
    cfg
}

#[test]
fn a_forward_on_every_interface_with_the_public_host_key_is_named() {
    let s = scratch();
    let work = work_outside_tmp();
    // What the nixpkgs runner's `hostfwd=tcp::PORT-:22` does: listen on 0.0.0.0.
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _vm = FakeVm::new(work.path(), port);
    alias(s.root(), port);
    let out = lb_vm(&s, work.path(), &["--port", &port.to_string(), "check"]);
    assert!(
        has(
            &out,
            &format!("port {port} listens on 0.0.0.0 (every interface) beyond loopback")
        ),
        "{:?}",
        lines(&out)
    );
    assert!(has(&out, "publicly known nixpkgs key"), "{:?}", lines(&out));
    // The builder's own host key: reachable, but nobody can pose as it.
    let own = format!(
        "@{}",
        workspace_dir()
            .join("tests/guest/ssh_host_ed25519_key.pub")
            .display()
    );
    let out = lb_vm(
        &s,
        work.path(),
        &["--port", &port.to_string(), "--host-key", &own, "check"],
    );
    assert!(!has(&out, "beyond loopback"), "{:?}", lines(&out));
    // A loopback-only forward is fine with any key.
    drop(listener);
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = lb_vm(&s, work.path(), &["--port", &port.to_string(), "check"]);
    assert!(!has(&out, "beyond loopback"), "{:?}", lines(&out));
    drop(listener);
}

#[test]
fn an_alias_on_another_port_than_the_vm_is_named() {
    let s = scratch();
    let work = work_outside_tmp();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _vm = FakeVm::new(work.path(), port);
    alias(s.root(), port + 1);
    let out = lb_vm(&s, work.path(), &["check"]);
    assert!(
        has(
            &out,
            &format!(
                "the ssh alias {NAME} reaches 127.0.0.1:{} but the VM listens on 127.0.0.1:{port}",
                port + 1
            )
        ),
        "{:?}",
        lines(&out)
    );
    assert!(
        has(
            &out,
            &format!("lb-sshcfg install --name {NAME} --port {port}")
        ),
        "{:?}",
        lines(&out)
    );
    alias(s.root(), port);
    let out = lb_vm(&s, work.path(), &["check"]);
    assert!(!has(&out, "ssh alias"), "{:?}", lines(&out));
    // Nothing answers with an SSH banner on the port: said too.
    assert!(has(&out, "no sshd answers"), "{:?}", lines(&out));
    drop(listener);
}
