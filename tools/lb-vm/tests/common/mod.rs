//! What the tests booting the real guest share (vm.rs, on_demand.rs): a
//! scenario whose work directory is lb-vm's, the guest's images and a key
//! pair, and lb-vm run there.

// Each test binary uses its own part of this.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Command as StdCommand;

use assert_cmd::Command;

use lb_testkit::vm::guest_images;
use lb_testkit::Scenario;

/// The scenario's work directory is lb-vm's working directory (it runs
/// with no --root: the machine's own).
pub struct Setup {
    pub sc: Scenario,
    pub keys: PathBuf,
    pub key: lb_testkit::KeyPair,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

pub fn setup() -> Setup {
    lb_testkit::require_program("qemu-system-x86_64", "qemu-system-x86");
    lb_testkit::require_program("qemu-img", "qemu-utils");
    let (kernel, initrd) = guest_images();
    // The work directory is short (/tmp/lb-vm-work.XXXXXX): the QMP and
    // control sockets live there and unix socket paths are limited to
    // ~100 bytes.
    let sc = Scenario::new("lb-vm");
    let keys = sc.work().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = lb_testkit::keygen(&keys, "builder_ed25519");
    Setup {
        sc,
        keys,
        key,
        kernel,
        initrd,
    }
}

/// `lb-vm --workdir WORK`, every LB_*/NIX_* cleared.
pub fn lb_vm_std(s: &Setup) -> StdCommand {
    let mut c = s.sc.bare();
    c.arg("--workdir").arg(s.sc.work());
    c
}

/// `lb-vm --workdir WORK -q`.
pub fn lb_vm(s: &Setup) -> Command {
    let mut c = lb_vm_std(s);
    c.arg("-q");
    Command::from_std(c)
}

/// The guest's kernel and initrd, its keys, a small VM, forwarded from `port`.
pub fn kernel_args(s: &Setup, port: u16) -> Vec<String> {
    vec![
        "--kernel".into(),
        s.kernel.display().to_string(),
        "--initrd".into(),
        s.initrd.display().to_string(),
        "--append".into(),
        "console=ttyS0 quiet panic=-1".into(),
        "--keys".into(),
        s.keys.display().to_string(),
        "--memory".into(),
        "1024".into(),
        "--cpus".into(),
        "2".into(),
        "--disk-size".into(),
        "1024".into(),
        "--port".into(),
        port.to_string(),
    ]
}

/// `lb-vm --name NAME status --json`: its exit status and the object.
pub fn status_json(s: &Setup, name: &str) -> (i32, serde_json::Value) {
    let out = lb_vm(s)
        .args(["--name", name, "status", "--json"])
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        serde_json::from_slice(&out.stdout).unwrap(),
    )
}

/// Whether process `pid` still runs (a zombie counts as gone: it has exited).
pub fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
}
