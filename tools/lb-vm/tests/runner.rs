//! lb-vm against a runner with the contract of nixpkgs' `create-builder`
//! and `run-nixos-vm` (lb_testkit::runner), booting the test guest under
//! real QEMU: every runner path of lb-vm as a real process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use assert_cmd::Command;
use lb_common::procfacts::{self, Source};
use lb_testkit::runner::{Baked, TestRunner};
use lb_testkit::Scenario;
use predicates::prelude::*;

/// The scenario's root holds the installed key; its work directory
/// (short, /tmp/lb-vm-work.XXXXXX: the QMP socket lives there and unix
/// paths are limited to ~100 bytes) is lb-vm's working directory.
struct Setup {
    sc: Scenario,
    keys: PathBuf,
    key: lb_testkit::KeyPair,
}

fn setup() -> Setup {
    lb_testkit::require_program("qemu-system-x86_64", "qemu-system-x86");
    lb_testkit::require_program("qemu-img", "qemu-utils");
    lb_testkit::require_program("sudo", "sudo");
    let sc = Scenario::new("lb-vm");
    std::fs::create_dir_all(sc.path("etc/nix")).unwrap();
    let keys = sc.work().join("keys");
    std::fs::create_dir(&keys).unwrap();
    let key = lb_testkit::keygen(&keys, "builder_ed25519");
    Setup { sc, keys, key }
}

impl Setup {
    fn installed_key(&self) -> PathBuf {
        self.sc.root().join("etc/nix/builder_ed25519")
    }

    /// What `lb-keys install` does: the pair in ROOT/etc/nix.
    fn install_keys(&self) {
        std::fs::copy(&self.key.private, self.installed_key()).unwrap();
        std::fs::copy(
            &self.key.public,
            self.sc.root().join("etc/nix/builder_ed25519.pub"),
        )
        .unwrap();
    }

    fn runner(&self, dir: &str, port: u16) -> TestRunner {
        TestRunner::write(
            &self.sc.work().join(dir),
            Baked {
                port,
                memory: 1024,
                cores: 1,
                disk_mib: 1024,
                installed_key: self.installed_key(),
            },
        )
    }

    /// `lb-vm --root ROOT --workdir WORK`, every LB_*/NIX_* cleared but
    /// the certificates the runner's Nix wants.
    fn lb_vm_std(&self) -> std::process::Command {
        let mut c = self.sc.command();
        c.env("NIX_SSL_CERT_FILE", cert_file())
            .arg("--workdir")
            .arg(self.sc.work());
        c
    }

    /// `lb-vm --root ROOT --workdir WORK -q`.
    fn lb_vm(&self) -> Command {
        let mut c = self.lb_vm_std();
        c.arg("-q");
        Command::from_std(c)
    }

    fn status(&self, name: &str) -> (i32, serde_json::Value) {
        let out = self
            .lb_vm()
            .args(["--name", name, "status", "--json"])
            .output()
            .unwrap();
        (
            out.status.code().unwrap(),
            serde_json::from_slice(&out.stdout).unwrap(),
        )
    }

    /// Log in through a forward with the real ssh client, checking the
    /// guest's fixed host key.
    fn ssh(&self, port: u16, command: &str) -> std::process::Output {
        let kh = self.sc.work().join("known_hosts");
        std::fs::write(
            &kh,
            format!("lbr-test {}\n", lb_testkit::vm::guest_host_key()),
        )
        .unwrap();
        std::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-p", &port.to_string()])
            .arg("-i")
            .arg(&self.key.private)
            .arg("-o")
            .arg(format!("UserKnownHostsFile={}", kh.display()))
            .args([
                "-o",
                "HostKeyAlias=lbr-test",
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
}

/// The host's CA bundle (ca-certificates is installed by setup-host).
fn cert_file() -> PathBuf {
    let p = PathBuf::from("/etc/ssl/certs/ca-certificates.crt");
    assert!(
        p.is_file(),
        "{} missing: apt-get install ca-certificates",
        p.display()
    );
    p
}

/// Stops the VM even when an assertion fails midway.
struct StopOnDrop<'a>(&'a Setup, &'a str);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self
            .0
            .lb_vm()
            .args(["--name", self.1, "stop", "--timeout", "5"])
            .output();
    }
}

/// QEMU's pid: the process listening on the runner's forward.
fn qemu_on(port: u16) -> u32 {
    procfacts::listener(Source::Proc, port)
        .unwrap_or_else(|| panic!("nobody listens on {port}"))
        .0
}

fn proc_cmdline(pid: u32) -> Vec<String> {
    String::from_utf8_lossy(&std::fs::read(format!("/proc/{pid}/cmdline")).unwrap())
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The value after the last `flag`: what QEMU uses.
fn last_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.windows(2)
        .rev()
        .find(|w| w[0] == flag)
        .map(|w| w[1].as_str())
}

fn gone(pid: u32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
        || std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|s| s.rsplit_once(')').unwrap().1.trim_start().starts_with('Z'))
}

fn wait_gone(pid: u32) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !gone(pid) {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    true
}

// One boot for many assertions: TCG boots are the expensive part.
#[allow(clippy::too_many_lines)]
#[test]
fn start_report_stop_restart_the_runner() {
    let s = setup();
    let port = lb_testkit::free_port();
    let r = s.runner("r1", port);
    let w = s.sc.work();
    let _guard = StopOnDrop(&s, "rb");
    let start = |extra: &[&str]| {
        let mut c = s.lb_vm();
        c.args(["--name", "rb", "start", "--runner"])
            .arg(&r.create_builder)
            .arg("--keys")
            .arg(&s.keys)
            .args(["--port", &port.to_string(), "--timeout", "240"])
            .args(extra);
        c
    };

    // The keys are not installed: create-builder would ask sudo with no
    // terminal to answer. lb-vm says what to run instead, and starts nothing.
    start(&[])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("so the runner would ask sudo"))
        .stderr(predicate::str::contains(format!(
            "sudo lb-keys install {}",
            s.keys.display()
        )));
    assert!(!w.join("rb.pid").exists());
    assert!(!w.join("rb.qcow2").exists());

    // A disk size the runner fixes itself is refused, not ignored.
    start(&["--disk-size", "2048"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--disk-size 2048: the runner creates its disk at the size built into it (1024 MiB)",
        ));

    s.install_keys();
    start(&["--memory", "1536"])
        .assert()
        .success()
        .stdout(format!("127.0.0.1:{port}\n"));
    let qemu = qemu_on(port);
    let args = proc_cmdline(qemu);
    // The runner's baked -m 1024 is there, and QEMU_OPTS' -m 1536 after it.
    assert_eq!(last_value(&args, "-m"), Some("1536"), "{args:?}");
    assert!(args.windows(2).any(|w| w == ["-m", "1024"]), "{args:?}");
    assert_eq!(last_value(&args, "-smp"), Some("1"), "{args:?}");
    assert!(
        args.iter()
            .any(|a| a.starts_with("user,id=user.0,hostfwd=tcp::")),
        "{args:?}"
    );
    // The runner ran in the workdir with lb-vm's disk and TMPDIR.
    let real = std::fs::canonicalize(w).unwrap();
    let info = std::process::Command::new("qemu-img")
        .args(["info", "--output=json", "-U"])
        .arg(w.join("rb.qcow2"))
        .output()
        .unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(info["virtual-size"], 1024u64 * 1024 * 1024, "{info}");
    assert!(w.join("rb.tmp/store.img").exists());
    assert_eq!(
        std::fs::read(w.join("rb.tmp/certs/ca-certificates.crt")).unwrap(),
        std::fs::read(cert_file()).unwrap()
    );
    // QEMU runs in TMPDIR, as run-nixos-vm cds there.
    assert_eq!(
        std::fs::read_link(format!("/proc/{qemu}/cwd")).unwrap(),
        real.join("rb.tmp")
    );

    let (code, v) = s.status("rb");
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (&v["running"], &v["ready"]),
        (&true.into(), &true.into()),
        "{v}"
    );
    let pid = u32::try_from(v["pid"].as_u64().unwrap()).unwrap();
    // The recorded pid is create-builder, QEMU its descendant.
    assert!(procfacts::descends_from(Source::Proc, qemu, pid));
    assert!(
        proc_cmdline(pid).join(" ").contains("create-builder"),
        "{:?}",
        proc_cmdline(pid)
    );

    // The guest has the host's CA bundle, shared in by the runner.
    let out = s.ssh(port, "wc -c </etc/ssl/certs/ca-certificates.crt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(cert_file()).unwrap().len();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        size.to_string()
    );

    // A second builder from a runner with the same baked port: refused
    // before it starts (its own --port is free; the runner's is not).
    let r2 = s.runner("r2", port);
    let other = lb_testkit::free_port();
    s.lb_vm()
        .args(["--name", "rb2", "start", "--runner"])
        .arg(&r2.create_builder)
        .arg("--keys")
        .arg(&s.keys)
        .args(["--port", &other.to_string()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "port {port} (the runner's own forward, built in, on all interfaces) is taken by pid {qemu} (qemu-system-x86"
        )))
        .stderr(predicate::str::contains("which answers \"SSH-2.0-"));
    assert!(!w.join("rb2.pid").exists());
    assert!(!w.join("rb2.qcow2").exists(), "the runner never ran");

    // Stop: a clean power-down; QEMU, create-builder and TMPDIR are gone.
    s.lb_vm()
        .args(["--name", "rb", "stop", "--timeout", "60"])
        .assert()
        .success();
    assert!(wait_gone(qemu), "QEMU {qemu} still running");
    assert!(gone(pid));
    assert!(!w.join("rb.pid").exists());
    assert!(!w.join("rb.tmp").exists(), "TMPDIR not cleaned at stop");

    // Restart on the same disk, with the runner's own memory this time.
    start(&[]).assert().success();
    let qemu2 = qemu_on(port);
    let args = proc_cmdline(qemu2);
    assert_eq!(last_value(&args, "-m"), Some("1024"), "{args:?}");
    assert!(s.ssh(port, "true").status.success());

    // Kill QEMU behind lb-vm's back: status notices, cleans up, TMPDIR too.
    let (_, v) = s.status("rb");
    let pid2 = v["pid"].as_u64().unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &qemu2.to_string()])
        .status()
        .unwrap();
    assert!(wait_gone(qemu2));
    assert!(wait_gone(u32::try_from(pid2).unwrap()));
    let (code, v) = s.status("rb");
    assert_eq!(code, 1, "{v}");
    assert_eq!(v["stale_pid"], pid2, "{v}");
    assert!(!w.join("rb.tmp").exists());
    assert!(!w.join("rb.qmp").exists());
}

/// A foreign SSH server (the harness sshd) on the port is never taken for
/// the builder: start refuses, and a live VM process whose port is
/// answered by someone else is neither ready nor waited for.
#[test]
fn a_foreign_ssh_server_is_never_our_builder() {
    let s = setup();
    s.install_keys();
    let sshd = lb_testkit::Sshd::start(None);
    let r = s.runner("r", sshd.port);
    s.lb_vm()
        .args(["--name", "fx", "start", "--runner"])
        .arg(&r.create_builder)
        .arg("--keys")
        .arg(&s.keys)
        .args(["--port", &sshd.port.to_string()])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "port {} (the runner's own forward, built in, on all interfaces) is taken by pid ",
            sshd.port
        )))
        .stderr(predicate::str::contains(
            "(sshd), which answers \"SSH-2.0-OpenSSH",
        ));
    let w = s.sc.work();
    assert!(!w.join("fx.pid").exists());

    // A process of ours that is alive (it names the builder's QMP socket,
    // as QEMU would) while sshd answers on its port.
    let qmp = w.join("fx.qmp");
    let mut fake = std::process::Command::new("sh")
        .arg("-c")
        .arg("sleep 120")
        .arg(&qmp)
        .spawn()
        .unwrap();
    std::fs::write(w.join("fx.pid"), format!("{}\n", fake.id())).unwrap();
    std::fs::write(
        w.join("fx.state.json"),
        serde_json::json!({
            "pid": fake.id(), "port": sshd.port, "accel": "runner", "started_at": 0,
            "command": "", "program": r.create_builder,
        })
        .to_string(),
    )
    .unwrap();
    let (code, v) = s.status("fx");
    let _ = (code, &v);
    assert_eq!(v["running"], true, "{v}");
    assert_eq!(v["ready"], false, "sshd passed as the builder: {v}");
    s.lb_vm()
        .args(["--name", "fx", "wait", "--timeout", "20"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains(
            "an SSH server that is not this VM",
        ));
    let _ = fake.kill();
    let _ = fake.wait();
}

/// `--foreground` with a runner (what launchd and systemd run): lb-vm
/// becomes create-builder, QEMU its child; a `--port` other than the
/// baked one is added through QEMU_NET_OPTS and both forwards reach sshd.
#[test]
fn foreground_runner_with_a_second_forward() {
    let s = setup();
    s.install_keys();
    let image_port = lb_testkit::free_port();
    let port = lb_testkit::free_port();
    let r = s.runner("r", image_port);
    let _guard = StopOnDrop(&s, "fg");
    let mut child = s
        .lb_vm_std()
        .args(["-q", "--name", "fg", "start", "--foreground", "--runner"])
        .arg(&r.create_builder)
        .arg("--keys")
        .arg(&s.keys)
        .args(["--port", &port.to_string(), "--cpus", "2"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    lb_testkit::wait_for_ssh_banner(port, Duration::from_secs(240)).unwrap();
    let (code, st) = s.status("fg");
    assert_eq!(code, 0, "{st}");
    assert_eq!(st["ready"], true, "{st}");
    assert_eq!(st["pid"], u64::from(child.id()), "{st}");
    let qemu = qemu_on(port);
    assert!(procfacts::descends_from(Source::Proc, qemu, child.id()));
    let args = proc_cmdline(qemu);
    assert_eq!(last_value(&args, "-smp"), Some("2"), "{args:?}");
    let netdev = last_value(&args, "-netdev").unwrap();
    assert!(
        netdev.ends_with(&format!(
            "hostfwd=tcp::{image_port}-:22,hostfwd=tcp:127.0.0.1:{port}-:22"
        )),
        "{netdev}"
    );
    assert!(s.ssh(port, "true").status.success());
    assert!(s.ssh(image_port, "true").status.success());

    s.lb_vm()
        .args(["--name", "fg", "stop", "--timeout", "60"])
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
    // A clean power-down exits 0: launchd (SuccessfulExit=false) and
    // systemd (Restart=on-failure) leave it down.
    assert!(
        exited.is_some_and(|st| st.success()),
        "the foreground VM did not exit cleanly after stop: {exited:?}"
    );
    assert!(!s.sc.work().join("fg.tmp").exists());
}
