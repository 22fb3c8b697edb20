//! The on-demand builder end to end: the VM is off, the host's real Nix
//! builds a derivation that needs the builder with `--max-jobs 0`, and the
//! build succeeds on the first try, built on the guest, because
//! `lb-vm start --on-demand` holds the connection while the VM boots; with
//! `--idle` of a few seconds the VM then powers off, and a second build
//! boots it again and succeeds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

use lb_testkit::{
    ensure_nix_daemon, free_port, scratch_root, vm::guest_images, workspace_dir, NIX_TEST_OPTIONS,
};

fn bin_dir() -> PathBuf {
    lb_testkit::tool_bin_dir()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

struct OnDemand {
    root: tempfile::TempDir,
    work: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
}

impl OnDemand {
    fn root(&self) -> &Path {
        self.root.path()
    }

    fn work(&self) -> &str {
        self.work.path().to_str().unwrap()
    }

    /// A tool with the builder's identity in LB_* variables.
    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        c.env("LB_ROOT", self.root())
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
            )
            .env_remove("NIX_CONF_DIR");
        c
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        let out = self.tool(name).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    fn status(&self) -> serde_json::Value {
        let out = self
            .tool("lb-vm")
            .args(["status", "--json", "--workdir", self.work()])
            .output()
            .unwrap();
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `nix build --max-jobs 0` of the demo's derivation: only the builder
    /// can build it. Returns the output's contents.
    fn build(&self, stamp: &str) -> String {
        let out = Command::new("nix")
            .args(NIX_TEST_OPTIONS)
            .env("NIX_CONF_DIR", self.root().join("etc/nix"))
            .env(
                "NIX_SSHOPTS",
                format!("-F {}", self.root().join("etc/ssh/ssh_config").display()),
            )
            .args(["build", "--max-jobs", "0", "--no-link", "--json", "-f"])
            .arg(workspace_dir().join("demo/builder-uname.nix"))
            .args(["--argstr", "stamp", stamp])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "the build failed (the first try must succeed):\n{}\nlistener log:\n{}",
            text(&out.stderr),
            std::fs::read_to_string(self.work.path().join("linux-builder.on-demand.log"))
                .unwrap_or_default()
        );
        // Nix 2.8 has no --print-out-paths; its --json names the outputs.
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        std::fs::read_to_string(json[0]["outputs"]["out"].as_str().unwrap()).unwrap()
    }
}

impl Drop for OnDemand {
    fn drop(&mut self) {
        // Never leave the listener or the VM running, whatever failed.
        let _ = self
            .tool("lb-vm")
            .args(["stop", "--workdir", self.work()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

fn pid_alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| !s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
}

#[test]
fn first_build_boots_the_vm_idle_powers_it_off_second_build_boots_it_again() {
    ensure_nix_daemon();
    let (kernel, initrd) = guest_images();
    let od = OnDemand {
        root: scratch_root(),
        work: tempfile::Builder::new()
            .prefix("lb-od-work.")
            .tempdir()
            .unwrap(),
        port: free_port(),
        bin: bin_dir(),
    };
    std::fs::create_dir_all(od.root().join("etc/nix")).unwrap();
    std::fs::write(
        od.root().join("etc/nix/nix.conf"),
        "substituters =\nexperimental-features = nix-command\nsandbox = false\n",
    )
    .unwrap();
    let keys = od.work.path().join("keys");
    od.run("lb-keys", &["install", keys.to_str().unwrap()]);
    od.run("lb-sshcfg", &["install"]);
    od.run("lb-nixconf", &["install", "--trust-user", "root"]);

    let out = od.run(
        "lb-vm",
        &[
            "start",
            "--on-demand",
            "--idle",
            "4s",
            "--workdir",
            od.work(),
            "--kernel",
            kernel.to_str().unwrap(),
            "--initrd",
            initrd.to_str().unwrap(),
            "--keys",
            keys.to_str().unwrap(),
            "--memory",
            "1024",
            "--cpus",
            "2",
            "--timeout",
            "240",
        ],
    );
    assert_eq!(text(&out.stdout).trim(), format!("127.0.0.1:{}", od.port));
    let v = od.status();
    assert_eq!(
        (&v["mode"], &v["vm_up"]),
        (&"on-demand".into(), &false.into()),
        "{v}"
    );

    let stamp = format!(
        "{:?}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // The VM is off: the first build boots it and succeeds on the first try.
    let first = od.build(&format!("on-demand-1-{stamp}"));
    assert!(first.starts_with("built on lb-test-guest: "), "{first}");
    let v = od.status();
    assert_eq!(v["on_demand"]["boots"], 1, "{v}");
    assert_eq!(v["on_demand"]["boot_failures"], 0, "{v}");

    // Idle for 4 s: the VM powers off; the listener stays.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut vm_pid = None;
    let v = loop {
        let v = od.status();
        vm_pid = v["pid"].as_u64().or(vm_pid);
        if v["on_demand"]["vm"] == "off" {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the idle VM never powered off: {v}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        (&v["running"], &v["vm_up"]),
        (&true.into(), &false.into()),
        "{v}"
    );
    if let Some(pid) = vm_pid {
        assert!(!pid_alive(pid), "QEMU {pid} still runs");
    }
    let log = std::fs::read_to_string(od.work.path().join("linux-builder.on-demand.log")).unwrap();
    assert!(log.contains("the VM is down (powered down)"), "{log}");

    // A second build boots it again.
    let second = od.build(&format!("on-demand-2-{stamp}"));
    assert!(second.starts_with("built on lb-test-guest: "), "{second}");
    let v = od.status();
    assert_eq!(v["on_demand"]["boots"], 2, "{v}");
    assert_eq!(v["on_demand"]["boot_failures"], 0, "{v}");

    od.run("lb-vm", &["stop", "--workdir", od.work()]);
    let v = od.status();
    assert_eq!(v["running"], false, "{v}");
}
