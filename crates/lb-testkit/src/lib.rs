//! Test harness shared across the workspace: real parts, no mocks.
//!
//! - [`scratch_root`]: a fresh directory standing in for `/`;
//! - [`Sshd`]: a real OpenSSH server on a free loopback port, with a
//!   temporary host key, logging in the host's `builder` account with the
//!   authorized key the test chooses;
//! - [`ensure_nix_daemon`]: the host's nix daemon, started if none answers;
//! - [`fleet::Fleet`]: several such servers, each a builder of its own on
//!   a loopback address (127.0.0.2:22, ...) with a Nix store of its own;
//! - [`layouts`]: nix-darwin and Determinate Nix as they lie on disk, in a scratch root;
//! - [`runner::TestRunner`]: a runner with the contract of nixpkgs'
//!   `create-builder` and `run-nixos-vm`, booting the test guest;
//! - [`Vm::shared`]: the test builder VM (`tests/guest/`), booted once per
//!   test process and shared, killed when the process ends;
//! - [`Scenario`]: one tool's command line in a scratch root and work
//!   directory, `LB_*` and `NIX_*` cleared, with chained assertions on its
//!   [`Outcome`] (the shape of every tool's CLI tests);
//! - [`NixGen`] and [`nix_matrix!`]: the Nix generations (2.8, 2.26, 2.34)
//!   on both sides, builder guest and host-side Nix, one test each.
//!
//! A missing prerequisite is a test failure naming the command that
//! installs it, never a silent skip.

pub mod fleet;
mod keys;
pub mod layouts;
mod nixgen;
pub mod runner;
mod scenario;
mod sshd;
pub mod tree;
pub mod vm;

pub use keys::{keygen, KeyPair};
pub use nixgen::NixGen;
pub use scenario::{
    clean_command, clear_env, tool_command, Outcome, Scenario, CLEARED_NAMES, CLEARED_PREFIXES,
    NO_ARGS,
};
pub use sshd::Sshd;
pub use vm::Vm;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The host account the harness sshd logs in (created by
/// `tests/setup-host.sh`).
pub const BUILDER_USER: &str = "builder";

/// What to run when a prerequisite is missing.
pub const SETUP_HINT: &str = "run `sudo make setup-host` (tests/setup-host.sh) first";

/// The workspace's top directory.
#[must_use]
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/lb-testkit is two levels down")
        .to_path_buf()
}

/// The tools, every workspace binary a test runs from another crate (the
/// e2e tests, lb-docs' conventions).
pub const TOOLS: &[&str] = &[
    "lb-keys",
    "lb-vm",
    "lb-sshcfg",
    "lb-nixconf",
    "lb-ping",
    "lb-copy",
    "lb-doctor",
];

/// The directory holding the tools' binaries, for a test outside their
/// crates: `cargo test --workspace` builds them first; a test run alone
/// builds them here (`cargo build --bins --workspace`).
#[must_use]
pub fn tool_bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/debug/deps/TEST")
        .to_path_buf();
    if TOOLS.iter().any(|t| !dir.join(t).exists()) {
        let st =
            std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
                .args(["build", "--bins", "--workspace"])
                .current_dir(workspace_dir())
                .status()
                .expect("run cargo build");
        assert!(st.success(), "cargo build --bins --workspace failed");
    }
    dir
}

/// A fresh, empty directory to pass as `--root`.
#[must_use]
pub fn scratch_root() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("lb-root.")
        .tempdir()
        .expect("create scratch root")
}

/// Fail the test with a clear message when `program` is missing.
pub fn require_program(program: &str, package: &str) {
    assert!(
        lb_common::cmd::exists(program),
        "{program} is not installed: apt-get install {package} (or {SETUP_HINT})"
    );
}

/// A loopback port nobody listens on right now.
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Wait until `port` on 127.0.0.1 sends an SSH banner; returns it.
pub fn wait_for_ssh_banner(port: u16, timeout: Duration) -> Result<String, String> {
    wait_for_ssh_banner_at(([127, 0, 0, 1], port).into(), timeout)
}

/// Wait until `addr` sends an SSH banner; returns it.
pub fn wait_for_ssh_banner_at(addr: SocketAddr, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("never tried");
    while Instant::now() < deadline {
        match read_banner(addr) {
            Ok(b) if b.starts_with("SSH-") => return Ok(b),
            Ok(b) => last = format!("unexpected greeting {b:?}"),
            Err(e) => last = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(format!("no SSH banner on {addr} after {timeout:?}: {last}"))
}

/// Read one line from a fresh connection.
pub fn read_banner(addr: SocketAddr) -> std::io::Result<String> {
    use std::io::BufRead;
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut line = String::new();
    std::io::BufReader::new(s).read_line(&mut line)?;
    Ok(line.trim_end().to_owned())
}

/// The nix daemon's socket.
pub const NIX_DAEMON_SOCKET: &str = "/nix/var/nix/daemon-socket/socket";

/// Make sure the host's nix daemon answers on its socket, starting one
/// (detached, it outlives the tests like a system service) if none does.
pub fn ensure_nix_daemon() {
    require_program("nix-daemon", "nix-bin");
    if std::os::unix::net::UnixStream::connect(NIX_DAEMON_SOCKET).is_ok() {
        return;
    }
    std::process::Command::new("setsid")
        .args(["-f", "nix-daemon"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("start nix-daemon");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::os::unix::net::UnixStream::connect(NIX_DAEMON_SOCKET).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nix-daemon did not answer on {NIX_DAEMON_SOCKET}; {SETUP_HINT}");
}

/// Options every test's Nix invocation needs: no binary cache (nothing
/// outside is reachable) and the new CLI.
pub const NIX_TEST_OPTIONS: &[&str] = &[
    "--option",
    "substituters",
    "",
    "--extra-experimental-features",
    "nix-command",
];

/// Build a one-line derivation named `name` in the local store (no
/// substituters) and return its output path: a path that is valid here.
#[must_use]
pub fn build_local(dir: &Path, name: &str) -> String {
    let expr = dir.join(format!("{name}.nix"));
    std::fs::write(
        &expr,
        format!(
            "derivation {{ name = \"{name}\"; system = builtins.currentSystem; builder = \"/bin/sh\"; \
             args = [\"-c\" \"echo {name} > $out\"]; }}"
        ),
    )
    .expect("write the derivation");
    let out = std::process::Command::new("nix-build")
        .args(["--option", "substituters", "", "--no-out-link"])
        .arg(&expr)
        .output()
        .expect("run nix-build");
    assert!(
        out.status.success(),
        "nix-build: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}
