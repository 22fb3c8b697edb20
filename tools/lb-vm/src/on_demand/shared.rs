//! The listener's state, shared by its threads: the VM's phase, the open
//! and waiting connections, the idle clock, the probe's session, and the
//! counters `status` reports.

use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{Phase, Report, SESSION_FRESH};

#[derive(Debug)]
pub(super) struct Inner {
    pub(super) phase: Phase,
    pub(super) vm_pid: Option<u32>,
    pub(super) guest_port: Option<u16>,
    pub(super) open: usize,
    pub(super) waiting: usize,
    /// When the last connection closed (or the VM came up with none).
    pub(super) idle_since: Instant,
    pub(super) boots: u64,
    pub(super) boot_failures: u64,
    pub(super) served: u64,
    pub(super) held_over_shutdown: u64,
    pub(super) last_error: Option<String>,
    pub(super) quit: bool,
    /// The session the readiness probe opened (sshd greeted on it, which
    /// takes a loaded TCG guest seconds), the bytes read from it, and when:
    /// the first client to be relayed gets it instead of a new connection.
    pub(super) session: Option<(TcpStream, Vec<u8>, Instant)>,
}

/// The state every thread shares; `changed` wakes waiters on any change.
#[derive(Debug)]
pub(super) struct Shared {
    pub(super) inner: Mutex<Inner>,
    pub(super) changed: Condvar,
    pub(super) port: u16,
    pub(super) idle: Duration,
}

impl Shared {
    pub(super) fn new(port: u16, idle: Duration) -> Self {
        Shared {
            inner: Mutex::new(Inner {
                phase: Phase::Off,
                vm_pid: None,
                guest_port: None,
                open: 0,
                waiting: 0,
                idle_since: Instant::now(),
                boots: 0,
                boot_failures: 0,
                served: 0,
                held_over_shutdown: 0,
                last_error: None,
                quit: false,
                session: None,
            }),
            changed: Condvar::new(),
            port,
            idle,
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking connection thread must not take the listener down.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn update(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    pub(super) fn quitting(&self) -> bool {
        self.lock().quit
    }

    pub(super) fn report(&self) -> Report {
        let g = self.lock();
        let power_off_in_secs = (g.phase == Phase::Up && g.open == 0).then(|| {
            // Rounded up: 0 only once the power-off is due.
            let left = self.idle.saturating_sub(g.idle_since.elapsed());
            left.as_secs() + u64::from(left.subsec_nanos() > 0)
        });
        Report {
            listener_pid: std::process::id(),
            port: self.port,
            vm: g.phase,
            vm_pid: g.vm_pid,
            guest_port: g.guest_port,
            connections: g.open,
            waiting: g.waiting,
            idle_timeout_secs: self.idle.as_secs(),
            power_off_in_secs,
            boots: g.boots,
            boot_failures: g.boot_failures,
            served: g.served,
            held_over_shutdown: g.held_over_shutdown,
            last_error: g.last_error.clone(),
        }
    }

    /// Count a new connection as open until the guard drops.
    pub(super) fn open(self: &Arc<Self>) -> OpenConnection {
        self.update(|g| g.open += 1);
        OpenConnection(Arc::clone(self))
    }
}

/// One open client connection; closing it may start the idle clock.
pub(super) struct OpenConnection(Arc<Shared>);

/// Where a client's bytes go.
#[derive(Debug)]
pub(super) enum Guest {
    /// A new connection to the guest's forward.
    Port(u16),
    /// The readiness probe's session: replay the bytes, then relay.
    Session(TcpStream, Vec<u8>),
}

impl OpenConnection {
    /// Wait until the VM is up (booting it if it is off) and say where to
    /// relay; `None` when the boot failed or the listener stops.
    pub(super) fn wait_for_vm(&self) -> Option<Guest> {
        let s = &self.0;
        let mut g = s.lock();
        let failures = g.boot_failures;
        g.waiting += 1;
        match g.phase {
            Phase::Off => g.phase = Phase::Booting,
            Phase::Stopping => g.held_over_shutdown += 1,
            Phase::Booting | Phase::Up => {}
        }
        s.changed.notify_all();
        let port = loop {
            if g.quit || g.boot_failures != failures {
                break None;
            }
            if g.phase == Phase::Up {
                g.served += 1;
                break match g.session.take() {
                    Some((stream, bytes, at)) if at.elapsed() < SESSION_FRESH => {
                        Some(Guest::Session(stream, bytes))
                    }
                    _ => g.guest_port.map(Guest::Port),
                };
            }
            g = s
                .changed
                .wait(g)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        };
        g.waiting -= 1;
        drop(g);
        s.changed.notify_all();
        port
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.update(|g| {
            g.open -= 1;
            if g.open == 0 {
                g.idle_since = Instant::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_connection_during_shutdown_waits_and_the_next_boot_serves_it() {
        let s = Arc::new(Shared::new(1, Duration::from_secs(1)));
        s.update(|g| g.phase = Phase::Stopping);
        let conn = s.open();
        let waiter = std::thread::spawn(move || conn.wait_for_vm());
        // It waits: the VM is going down.
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!((s.report().waiting, s.report().held_over_shutdown), (1, 1));
        // The supervisor, once the VM is down, boots again for it.
        s.update(|g| {
            g.phase = if g.open > 0 {
                Phase::Booting
            } else {
                Phase::Off
            };
        });
        assert_eq!(s.report().vm, Phase::Booting);
        s.update(|g| {
            g.phase = Phase::Up;
            g.guest_port = Some(4242);
        });
        assert!(matches!(waiter.join().unwrap(), Some(Guest::Port(4242))));
        let r = s.report();
        assert_eq!((r.connections, r.waiting, r.served), (0, 0, 1));
    }

    #[test]
    fn a_failed_boot_releases_its_waiters_and_the_next_connection_retries() {
        let s = Arc::new(Shared::new(1, Duration::from_secs(1)));
        let conn = s.open();
        let w = std::thread::spawn(move || conn.wait_for_vm());
        std::thread::sleep(Duration::from_millis(50));
        // The first connection asked for a boot.
        assert_eq!(s.report().vm, Phase::Booting);
        s.update(|g| {
            g.phase = Phase::Off;
            g.boot_failures += 1;
        });
        assert!(w.join().unwrap().is_none());
        let conn = s.open();
        let w = std::thread::spawn(move || conn.wait_for_vm());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(s.report().vm, Phase::Booting, "no retry");
        s.update(|g| g.quit = true);
        assert!(w.join().unwrap().is_none());
    }

    #[test]
    fn the_first_client_gets_the_probe_session_while_it_is_fresh() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let session = || TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let s = Arc::new(Shared::new(1, Duration::from_secs(60)));
        s.update(|g| {
            g.phase = Phase::Up;
            g.guest_port = Some(4242);
            g.session = Some((session(), b"SSH-2.0-x\r\n".to_vec(), Instant::now()));
        });
        let first = s.open();
        let second = s.open();
        assert!(
            matches!(first.wait_for_vm(), Some(Guest::Session(_, ref b)) if b == b"SSH-2.0-x\r\n")
        );
        assert!(matches!(second.wait_for_vm(), Some(Guest::Port(4242))));
        // A session left waiting too long (sshd would time it out) is not used.
        s.update(|g| {
            g.session = Some((
                session(),
                b"SSH-2.0-x\r\n".to_vec(),
                Instant::now().checked_sub(SESSION_FRESH).unwrap(),
            ));
        });
        assert!(matches!(s.open().wait_for_vm(), Some(Guest::Port(4242))));
    }

    #[test]
    fn the_idle_clock_runs_only_without_connections() {
        let s = Arc::new(Shared::new(1, Duration::from_secs(60)));
        s.update(|g| g.phase = Phase::Up);
        assert_eq!(s.report().power_off_in_secs, Some(60));
        let c = s.open();
        assert_eq!(s.report().power_off_in_secs, None);
        drop(c);
        assert_eq!(s.report().power_off_in_secs, Some(60));
    }
}
