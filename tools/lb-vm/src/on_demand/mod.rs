//! The on-demand builder: `lb-vm start --on-demand`.
//!
//! lb-vm itself listens on the builder's port (127.0.0.1 only) and keeps it
//! while the VM is off. The first connection boots the VM; it, and every
//! connection that arrives during the boot, is held until the guest's sshd
//! greets on the guest's private forward (another loopback port, chosen
//! free at each boot), and then relayed both ways (`relay`). So no build
//! fails while the VM boots: a client sees the banner late, never a reset.
//! After `--idle` with no connection open the VM is powered off cleanly
//! (QMP `system_powerdown`, as `stop` does) and lb-vm goes on listening.
//!
//! Decisions:
//! - A connection that arrives while the VM shuts down for idleness waits
//!   for the next boot: the guest has been told to power off and cannot be
//!   called back, so the VM boots again as soon as it is down.
//! - A boot that fails closes the connections waiting on it and logs why
//!   (QEMU's and the console's last lines); the next connection tries again.
//! - A nixpkgs runner forwards its baked-in port (31022) to the guest on
//!   all interfaces itself; the private forward is added through
//!   `QEMU_NET_OPTS` (spliced into the runner's `-netdev user,...`), and the
//!   builder's port must then be another one, or the runner's QEMU could
//!   not bind its own forward.
//!
//! Files (beside the VM's own `NAME.pid`, `NAME.state.json`, ... which are
//! written while the VM runs): `NAME.listener.pid`, `NAME.ctl` (control
//! socket: one line `status` or `stop`, answered with one JSON line) and,
//! when started detached, `NAME.on-demand.log`.

mod listen;
mod serve;
mod shared;
mod supervise;

use std::cell::Cell;
use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::time::{Duration, SystemTime};

use lb_common::exit::Status;
use lb_common::fs::Apply;
use lb_common::plan::{self, Inspection, Needed, Step};
use lb_common::ui;
use lb_common::Context as _;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::cli::StopArgs;
use crate::vm::Layout;
use crate::{process, state};

pub use listen::{check_port, start};

/// How long a clean power-off may take before SIGTERM, then SIGKILL.
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the supervisor looks at the VM and the idle clock.
const TICK: Duration = Duration::from_millis(100);
/// How long the readiness probe's session may wait for a client (sshd's
/// LoginGraceTime is 120 s; far less keeps it well clear of that).
const SESSION_FRESH: Duration = Duration::from_secs(10);

/// Where the VM is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Powered off; the next connection boots it.
    Off,
    /// Booting; connections wait for its sshd.
    Booting,
    /// Up; connections are relayed at once.
    Up,
    /// Powering off (idle); connections wait for the next boot.
    Stopping,
}

impl Phase {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Off => "off",
            Phase::Booting => "booting",
            Phase::Up => "up",
            Phase::Stopping => "stopping",
        }
    }
}

/// What the listener reports on its control socket (`lb-vm status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub listener_pid: u32,
    /// The builder's port, on 127.0.0.1.
    pub port: u16,
    pub vm: Phase,
    pub vm_pid: Option<u32>,
    /// The guest's private forward while the VM runs.
    pub guest_port: Option<u16>,
    /// Connections open: relayed or waiting for the VM.
    pub connections: usize,
    /// Of those, waiting for a boot.
    pub waiting: usize,
    pub idle_timeout_secs: u64,
    /// Seconds until the idle power-off, while the VM is up with no connection.
    pub power_off_in_secs: Option<u64>,
    pub boots: u64,
    pub boot_failures: u64,
    /// Connections relayed to the guest so far.
    pub served: u64,
    /// Connections that arrived while the VM powered off for idleness
    /// (each waited for the next boot).
    pub held_over_shutdown: u64,
    pub last_error: Option<String>,
}

/// One line in the listener's log, with the time (launchd's log has none).
fn event(msg: &str) {
    let now = humantime::format_rfc3339_millis(SystemTime::now());
    eprintln!("lb-vm: {now} {msg}");
}

/// The listener's answer on its control socket, if one answers.
#[must_use]
pub fn query(l: &Layout) -> Option<Report> {
    request(l, "status")
        .ok()
        .and_then(|line| serde_json::from_str(&line).ok())
}

fn request(l: &Layout, what: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(l.control())?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(format!("{what}\n").as_bytes())?;
    read_line(&s)
}

/// One line, bounded: requests and answers are short JSON lines.
fn read_line(s: &UnixStream) -> std::io::Result<String> {
    let mut line = String::new();
    BufReader::new(std::io::Read::take(s, 64 * 1024)).read_line(&mut line)?;
    Ok(line)
}

/// Remove a dead listener's pid file and control socket.
fn clean_stale(l: &Layout) {
    let pid = std::fs::read_to_string(l.listener_pid())
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if pid.is_some_and(process::alive) {
        return;
    }
    let _ = lb_common::fs::remove_entry(&l.listener_pid());
    let _ = lb_common::fs::remove_entry(&l.control());
}

/// `lb-vm stop` when a listener runs: ask it to power the VM off and exit,
/// and wait for that. `None` when no listener answers (the caller then
/// stops a VM the ordinary way).
pub fn stop(l: &Layout, a: &StopArgs) -> lb_common::Result<Option<Status>> {
    let Some(r) = query(l) else {
        clean_stale(l);
        return Ok(None);
    };
    let step = AskToStop {
        l,
        r: &r,
        vm_left: Cell::new(false),
    };
    // --check: a listener would be stopped (status 1, nothing said).
    let applied = plan::apply(Apply::from(a.change), &step)?;
    if step.vm_left.get() {
        // A VM the listener could not take down is stopped the ordinary way.
        return Ok(None);
    }
    Ok(Some(applied.status()))
}

/// Ask the running listener `r` to power its VM off and exit, and wait
/// for that.
struct AskToStop<'a> {
    l: &'a Layout,
    r: &'a Report,
    /// Set when the listener is gone but its VM still runs.
    vm_left: Cell<bool>,
}

impl Step for AskToStop<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        Ok(Inspection::Needed(Needed {
            preview: vec![format!(
                "ask the on-demand listener (pid {}) on {} to stop: it powers the VM off (qmp system_powerdown) and exits",
                self.r.listener_pid,
                self.l.control().display()
            )],
            ..Needed::default()
        }))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let (l, r) = (self.l, self.r);
        request(l, "stop").with_context(|| format!("ask {} to stop", l.control().display()))?;
        ui::note(&format!(
            "asked the on-demand listener of {} (pid {}) to power the VM off and stop",
            l.name, r.listener_pid
        ));
        let patience = POWER_OFF_TIMEOUT * 2 + Duration::from_secs(10);
        if !process::wait_gone(r.listener_pid, patience) {
            process::signal(r.listener_pid, Signal::SIGKILL);
            ui::warn(&format!(
                "the listener (pid {}) did not stop within {} s; killed it",
                r.listener_pid,
                patience.as_secs()
            ));
        }
        clean_stale(l);
        if state::running_pid(l).is_some() {
            self.vm_left.set(true);
        } else {
            ui::note(&format!("{} stopped (listener and VM)", l.name));
        }
        Ok(())
    }
}
