//! lb-doctor against a real builder: the test guest booted by `lb-vm
//! start`, set up by the tools in a scratch root as the demo does. All
//! healthy; then, each made for real and undone, the guest's store
//! filesystem filled with a big file, the ssh alias on the wrong port, and
//! the VM down: each named on its line with its fix.

use std::path::PathBuf;
use std::process::{Command, Output};

use lb_testkit::{free_port, scratch_root, vm::guest_images, workspace_dir};

struct Setup {
    root: tempfile::TempDir,
    work: PathBuf,
    port: u16,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Setup {
    fn tool(&self, name: &str) -> Command {
        let mut c = lb_testkit::clean_command(assert_cmd::cargo::cargo_bin(name));
        c.env("LB_ROOT", self.root.path())
            .env("LB_NAME", "linux-builder")
            .env("LB_HOSTNAME", "127.0.0.1")
            .env("LB_PORT", self.port.to_string())
            .env("LB_SYSTEM", "x86_64-linux")
            .env("LB_MAX_JOBS", "2")
            .env(
                "LB_HOST_KEY",
                format!(
                    "@{}",
                    workspace_dir()
                        .join("tests/guest/ssh_host_ed25519_key.pub")
                        .display()
                ),
            );
        c
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        let out = self.tool(name).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?}: {}\n{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn keys(&self) -> PathBuf {
        self.work.join("keys")
    }

    /// lb-doctor's JSON overview, its exit status, and the overview as
    /// text (from a second run) when `with_text`, else the JSON pretty.
    fn doctor_with(&self, with_text: bool) -> (Option<i32>, serde_json::Value, String) {
        let work = self.work.display().to_string();
        let keys = self.keys().display().to_string();
        let out = self
            .tool("lb-doctor")
            .args(["--workdir", &work, "--keys", &keys, "--json"])
            .output()
            .unwrap();
        let v = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                text(&out.stdout),
                text(&out.stderr)
            )
        });
        if !with_text {
            let pretty = format!("{v:#}");
            return (out.status.code(), v, pretty);
        }
        let plain = self
            .tool("lb-doctor")
            .args(["--workdir", &work, "--keys", &keys])
            .output()
            .unwrap();
        assert_eq!(plain.status.code(), out.status.code());
        (out.status.code(), v, text(&plain.stdout))
    }

    fn doctor(&self) -> (Option<i32>, serde_json::Value, String) {
        self.doctor_with(false)
    }

    /// A command on the guest, as root's ssh reaches it through the alias.
    fn on_guest(&self, command: &str) -> Output {
        let cfg = self.root.path().join("etc/ssh/ssh_config");
        Command::new("ssh")
            .arg("-F")
            .arg(cfg)
            .args(["-o", "BatchMode=yes", "linux-builder", command])
            .output()
            .unwrap()
    }
}

impl Drop for Setup {
    fn drop(&mut self) {
        let _ = self
            .tool("lb-vm")
            .args(["stop", "--workdir"])
            .arg(&self.work)
            .output();
    }
}

fn step<'a>(v: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {v:#}"))
}

/// The step's problems and fixes as one text.
fn said(v: &serde_json::Value, name: &str) -> String {
    let s = step(v, name);
    s["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            format!(
                "{} | fix: {}",
                p["message"].as_str().unwrap(),
                p["fix"].as_str().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn failed(v: &serde_json::Value) -> Vec<String> {
    v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["status"] == "failed")
        .map(|s| s["step"].as_str().unwrap().to_owned())
        .collect()
}

/// A scratch root set up as the demo does, with the guest booted by lb-vm.
fn boot() -> Setup {
    lb_testkit::require_program("qemu-system-x86_64", "qemu-system-x86");
    let (kernel, initrd) = guest_images();
    let root = scratch_root();
    let work = root.path().join("var/lib/linux-builder");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::create_dir_all(root.path().join("etc/nix")).unwrap();
    std::fs::write(
        root.path().join("etc/nix/nix.conf"),
        "substituters =\nexperimental-features = nix-command\nsandbox = false\n",
    )
    .unwrap();
    let s = Setup {
        root,
        work,
        port: free_port(),
    };
    let keys = s.keys().display().to_string();
    let workdir = s.work.display().to_string();
    s.run("lb-keys", &["install", &keys]);
    s.run(
        "lb-vm",
        &[
            "start",
            "--workdir",
            &workdir,
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
            "--keys",
            &keys,
            "--memory",
            "1024",
            "--cpus",
            "2",
        ],
    );
    s.run("lb-sshcfg", &["install"]);
    s.run("lb-nixconf", &["install", "--trust-user", "root"]);
    s
}

/// Healthy: every step ok, exit 0. Returns the store's (free, size).
fn healthy(s: &Setup) -> (u64, u64) {
    let (code, v, plain) = s.doctor_with(true);
    assert_eq!(code, Some(0), "{plain}\n{v:#}");
    assert_eq!(v["healthy"], true);
    assert!(failed(&v).is_empty(), "{plain}");
    for name in [
        "keys",
        "alias",
        "nix.conf",
        "daemon",
        "VM",
        "ping",
        "builder disk",
        "trust",
    ] {
        assert!(
            plain.lines().any(|l| l.starts_with(name)),
            "no line for {name}:\n{plain}"
        );
    }
    assert!(plain.trim_end().ends_with("all healthy"), "{plain}");
    let health = &v["builders"][0]["health"];
    let free = health["store_free_bytes"].as_u64().unwrap();
    let size = health["store_size_bytes"].as_u64().unwrap();
    assert!(size > 0 && free > 0, "{health:#}");
    (free, size)
}

/// The builder's store filesystem filled by a big file: named with its fix.
fn disk_filled(s: &Setup, free: u64, size: u64) {
    let fill_mib = (free - size / 20) >> 20;
    let out = s.on_guest(&format!(
        "dd if=/dev/zero of=$HOME/fill bs=1M count={fill_mib} 2>&1; stat -f /nix/store"
    ));
    assert!(
        out.status.success(),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let (code, v, plain) = s.doctor_with(true);
    assert_eq!(code, Some(1), "{plain}");
    assert_eq!(failed(&v), ["builder disk"], "{plain}");
    let disk = said(&v, "builder disk");
    assert!(
        disk.contains("/nix/store has") && disk.contains("nearly full"),
        "{disk}"
    );
    assert!(disk.contains("fix: free space on the builder"), "{disk}");
    assert!(
        plain.contains("builder disk  FAILED") && plain.contains("fix: free space"),
        "{plain}"
    );
    assert!(s.on_guest("rm -f $HOME/fill").status.success());
}

/// The alias on the wrong port: the alias and VM lines say so, and the ping fails.
fn alias_on_the_wrong_port(s: &Setup) {
    let wrong = (s.port + 1).to_string();
    s.run("lb-sshcfg", &["--port", &wrong, "install"]);
    let (code, v, plain) = s.doctor();
    assert_eq!(code, Some(1), "{plain}");
    let a = said(&v, "alias");
    assert!(
        a.contains(&format!(
            "Port: ssh uses {wrong} for linux-builder, expected {}",
            s.port
        )),
        "{a}"
    );
    let m = said(&v, "VM");
    assert!(
        m.contains(&format!(
            "reaches 127.0.0.1:{wrong} but the VM listens on 127.0.0.1:{}",
            s.port
        )) && m.contains(&format!(
            "lb-sshcfg install --name linux-builder --port {}",
            s.port
        )),
        "{m}"
    );
    assert!(said(&v, "ping").contains("failed at connect"), "{plain}");
    s.run("lb-sshcfg", &["install"]);
    let (code, _, plain) = s.doctor();
    assert_eq!(code, Some(0), "{plain}");
}

/// The VM down: named with lb-vm start, and the ping's refused connection.
fn vm_down(s: &Setup) {
    s.run(
        "lb-vm",
        &["stop", "--workdir", &s.work.display().to_string()],
    );
    let (code, v, plain) = s.doctor();
    assert_eq!(code, Some(1), "{plain}");
    let m = said(&v, "VM");
    assert!(
        m.contains("linux-builder is not running") && m.contains("lb-vm start --workdir"),
        "{m}"
    );
    let p = said(&v, "ping");
    assert!(
        p.contains("failed at connect") && p.contains("fix: lb-vm status"),
        "{p}"
    );
    assert!(said(&v, "builder disk").contains("not checked"), "{plain}");
}

#[test]
fn doctor_on_a_real_builder_healthy_then_each_fault_named() {
    let setup = boot();
    let (free, size) = healthy(&setup);
    disk_filled(&setup, free, size);
    alias_on_the_wrong_port(&setup);
    vm_down(&setup);
}
