//! The test builder VM (`tests/guest/`), booted once per test process.
//!
//! QEMU runs under a lifeline: a `sh` whose stdin is a pipe from this
//! process. When the test process ends, however it ends, the pipe closes,
//! `read` returns, and the shell kills QEMU and removes the VM's directory.
//! So a shared VM held in a `static` never outlives its tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::{keygen, workspace_dir, KeyPair, SETUP_HINT};

/// A running test builder VM.
#[derive(Debug)]
pub struct Vm {
    /// Loopback port forwarded to the guest's sshd.
    pub port: u16,
    /// The keys directory shared into the guest as `/var/keys`.
    pub keys_dir: PathBuf,
    /// The `builder` key pair the guest accepts.
    pub key: KeyPair,
    /// The guest's fixed host key line (`tests/guest/ssh_host_ed25519_key.pub`).
    pub host_key: String,
    /// The guest's serial console, for failure messages.
    pub console_log: PathBuf,
    /// `kvm` or `tcg`.
    pub accel: String,
    /// From QEMU start to the SSH banner.
    pub boot_time: Duration,
    pub dir: PathBuf,
    lifeline: Mutex<Child>,
}

static SHARED: OnceLock<Vm> = OnceLock::new();

/// The guest's kernel and initrd, built (or found up to date) by
/// `tests/guest/build.sh` under `target/guest`.
#[must_use]
pub fn guest_images() -> (PathBuf, PathBuf) {
    let ws = workspace_dir();
    let out = ws.join("target/guest");
    std::fs::create_dir_all(&out).expect("create target/guest");
    // Test binaries may run in parallel (nextest): one builds, the others wait.
    let lock = std::fs::File::create(out.join(".lock")).expect("lock file");
    let _lock = Flock::lock(lock, FlockArg::LockExclusive).expect("lock target/guest");
    let result = Command::new("bash")
        .arg(ws.join("tests/guest/build.sh"))
        .arg(&out)
        .stderr(Stdio::inherit())
        .output()
        .expect("run tests/guest/build.sh");
    assert!(
        result.status.success(),
        "tests/guest/build.sh failed ({}); {SETUP_HINT}",
        result.status
    );
    let text = String::from_utf8_lossy(&result.stdout);
    let mut lines = text.lines();
    let kernel = PathBuf::from(lines.next().expect("build.sh prints the kernel path"));
    let initrd = PathBuf::from(lines.next().expect("build.sh prints the initrd path"));
    (kernel, initrd)
}

/// The guest's fixed host key line.
#[must_use]
pub fn guest_host_key() -> String {
    std::fs::read_to_string(workspace_dir().join("tests/guest/ssh_host_ed25519_key.pub"))
        .expect("read tests/guest/ssh_host_ed25519_key.pub")
        .trim()
        .to_owned()
}

impl Vm {
    /// The VM shared by every test in this process, booted on first use.
    pub fn shared() -> &'static Vm {
        SHARED.get_or_init(Vm::boot)
    }

    /// Boot a VM of our own (slow: prefer [`Vm::shared`]).
    #[must_use]
    pub fn boot() -> Vm {
        let (kernel, initrd) = guest_images();
        Vm::boot_images(&kernel, &initrd)
    }

    /// Boot a VM of our own from these guest images (one Nix generation's:
    /// [`crate::NixGen::guest_images`]).
    #[must_use]
    pub fn boot_images(kernel: &Path, initrd: &Path) -> Vm {
        crate::require_program("qemu-system-x86_64", "qemu-system-x86");
        let (kernel, initrd) = (kernel.to_path_buf(), initrd.to_path_buf());
        let base = workspace_dir().join("target/lb-testkit");
        std::fs::create_dir_all(&base).expect("create target/lb-testkit");
        let dir = tempfile::Builder::new()
            .prefix("vm.")
            .tempdir_in(&base)
            .expect("vm dir")
            .keep();
        let keys_dir = dir.join("keys");
        std::fs::create_dir(&keys_dir).expect("keys dir");
        let key = keygen(&keys_dir, "builder_ed25519");
        let accel = choose_accel(&kernel, &initrd, &dir);
        match start(
            &kernel,
            &initrd,
            &dir,
            &keys_dir,
            &accel,
            Duration::from_secs(120),
        ) {
            Ok((port, lifeline, boot_time)) => Vm {
                port,
                keys_dir,
                key,
                host_key: guest_host_key(),
                console_log: dir.join("console.log"),
                accel,
                boot_time,
                dir,
                lifeline: Mutex::new(lifeline),
            },
            Err(e) => panic!("{e}"),
        }
    }

    /// The console log so far.
    #[must_use]
    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.console_log).unwrap_or_default()
    }

    /// An ssh_config with `alias` for this VM, for `ssh -F` / `NIX_SSHOPTS`.
    #[must_use]
    pub fn ssh_config(&self, alias: &str) -> PathBuf {
        let kh = self.dir.join(format!("known_hosts.{alias}"));
        std::fs::write(&kh, format!("{alias} {}\n", self.host_key)).expect("known_hosts");
        let p = self.dir.join(format!("ssh_config.{alias}"));
        std::fs::write(
            &p,
            format!(
                "Host {alias}\n  Hostname 127.0.0.1\n  Port {}\n  User builder\n  HostKeyAlias {alias}\n  \
                 IdentityFile {}\n  UserKnownHostsFile {}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
                self.port,
                self.key.private.display(),
                kh.display()
            ),
        )
        .expect("ssh_config");
        p
    }

    /// Stop this VM now (for tests that own one).
    pub fn kill(&self) {
        let mut child = self.lifeline.lock().expect("lifeline");
        if let Some(stdin) = child.stdin.as_mut() {
            let _ = stdin.write_all(b"stop\n");
        }
        let _ = child.wait();
    }
}

/// The QEMU command line for the test guest.
#[must_use]
pub fn qemu_args(
    kernel: &Path,
    initrd: &Path,
    dir: &Path,
    keys: &Path,
    accel: &str,
    port: u16,
) -> Vec<String> {
    let s = |p: &Path| p.display().to_string();
    vec![
        "qemu-system-x86_64".into(),
        "-accel".into(),
        accel.into(),
        "-m".into(),
        "1024".into(),
        "-smp".into(),
        "2".into(),
        "-display".into(),
        "none".into(),
        "-no-reboot".into(),
        "-kernel".into(),
        s(kernel),
        "-initrd".into(),
        s(initrd),
        "-append".into(),
        "console=ttyS0 quiet panic=-1".into(),
        "-netdev".into(),
        format!("user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22"),
        "-device".into(),
        "virtio-net-pci,netdev=n0".into(),
        "-virtfs".into(),
        format!(
            "local,path={},security_model=none,mount_tag=keys,readonly=on",
            s(keys)
        ),
        "-serial".into(),
        format!("file:{}", s(&dir.join("console.log"))),
        "-monitor".into(),
        "none".into(),
    ]
}

/// Start QEMU under a lifeline and wait for sshd.
fn start(
    kernel: &Path,
    initrd: &Path,
    dir: &Path,
    keys: &Path,
    accel: &str,
    timeout: Duration,
) -> Result<(u16, Child, Duration), String> {
    let port = crate::free_port();
    let args = qemu_args(kernel, initrd, dir, keys, accel, port);
    let started = Instant::now();
    // `read` returns when our end of the pipe closes (this process exits)
    // or when we write a line; then QEMU is killed and its directory kept
    // only while the process lives.
    let mut lifeline = Command::new("sh")
        .arg("-c")
        .arg(r#""$@" >"$LB_VM_DIR/qemu.log" 2>&1 </dev/null & q=$!; read -r _; kill $q 2>/dev/null; wait $q"#)
        .arg("lifeline")
        .args(&args)
        .env("LB_VM_DIR", dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn qemu: {e}"))?;
    match crate::wait_for_ssh_banner(port, timeout) {
        Ok(_) => Ok((port, lifeline, started.elapsed())),
        Err(e) => {
            if let Some(stdin) = lifeline.stdin.as_mut() {
                let _ = stdin.write_all(b"stop\n");
            }
            let _ = lifeline.wait();
            let console = std::fs::read_to_string(dir.join("console.log")).unwrap_or_default();
            let qemu = std::fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
            let tail: Vec<&str> = console
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            Err(format!(
                "test VM ({accel}) did not reach sshd: {e}\nqemu: {qemu}\nconsole (last lines):\n{}",
                tail.join("\n")
            ))
        }
    }
}

/// KVM where it truly works (a probe boot reaches sshd quickly), TCG
/// otherwise. `LB_TEST_ACCEL` overrides; the probe's verdict is cached
/// beside the guest images.
fn choose_accel(kernel: &Path, initrd: &Path, dir: &Path) -> String {
    if let Ok(a) = std::env::var("LB_TEST_ACCEL") {
        return a;
    }
    let cache = workspace_dir().join("target/guest/accel");
    if let Ok(a) = std::fs::read_to_string(&cache) {
        return a.trim().to_owned();
    }
    let kvm_usable = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let probe_dir = dir.join("kvm-probe");
    let accel = if kvm_usable && std::fs::create_dir(&probe_dir).is_ok() {
        let keys = probe_dir.join("keys");
        std::fs::create_dir(&keys).expect("probe keys dir");
        match start(
            kernel,
            initrd,
            &probe_dir,
            &keys,
            "kvm",
            Duration::from_secs(20),
        ) {
            Ok((_, mut lifeline, _)) => {
                if let Some(stdin) = lifeline.stdin.as_mut() {
                    let _ = stdin.write_all(b"stop\n");
                }
                let _ = lifeline.wait();
                "kvm"
            }
            Err(_) => "tcg",
        }
    } else {
        "tcg"
    };
    let _ = std::fs::write(&cache, accel);
    accel.to_owned()
}
