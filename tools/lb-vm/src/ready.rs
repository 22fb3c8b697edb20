//! Waiting for the guest's sshd: SSH banner probes that do not wait on
//! each other, and that do not pile up on a slow sshd.
//!
//! QEMU's user-mode forward accepts a host connection at once and only then
//! tries the guest. Until the guest's network is up that attempt gets no
//! answer, and the probe waits for QEMU's SYN retransmit (3 s, then 6 s
//! more); polling one probe at a time with a 3 s read timeout lost up to
//! that timeout (seen here: probes blocked 3 s each, and `start` returned
//! 3 s after the guest's "sshd ready"). Once the guest's network answers, a
//! probe ends at once (a reset) until sshd listens, and then waits for the
//! banner, which a loaded TCG guest takes seconds to send (every connection
//! makes sshd fork and re-exec itself, and the first ones wait for the
//! kernel's RNG). Probes given up after a short wait and retried piled sshd
//! children onto a starved guest (seen here: 17 s late under a load of 9 on
//! 2 cores), so once the guest answers no probe is given up early.
//!
//! So: while the guest has not answered, a probe starts every
//! [`SILENT_EVERY`] while fewer than [`MAX_SILENT`] wait (their connections
//! sit in QEMU, costing the guest nothing), each shut after
//! [`SILENT_READ`], before QEMU's first retransmit could carry it to sshd.
//! Once one was reset by the guest, its network is up: one probe runs at a
//! time, waiting long for the banner, the next starting [`ANSWERED_EVERY`]
//! after the last ended (a second beside a slow one would only make sshd
//! slower: seen here, a second probe 1.5 s into a 3.5 s greeting). The
//! first banner wins, and every other probe's connection is shut at once,
//! so none reaches sshd later.

use std::io::Read as _;
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Between probes while the guest's network is silent.
pub const SILENT_EVERY: Duration = Duration::from_millis(400);
/// Probes waiting at once while the guest's network is silent.
pub const MAX_SILENT: usize = 8;
/// How long a probe waits before the guest's network has answered: less
/// than QEMU's first SYN retransmit (3 s, seen here), so a probe sent
/// before the network was up is shut before that could reach sshd.
pub const SILENT_READ: Duration = Duration::from_millis(2900);
/// Between probes once the guest's network answers, or QEMU refused.
pub const ANSWERED_EVERY: Duration = Duration::from_millis(50);
/// How long a probe waits for the banner once connected.
const READ: Duration = Duration::from_secs(20);

/// sshd's greeting.
#[derive(Debug)]
pub struct Greeting {
    /// The banner line.
    pub banner: String,
    /// From the winning probe's connection to its banner: sshd's own
    /// greeting time (through QEMU's forward), which any client waits too.
    pub took: Duration,
    /// The probe's connection, still open (no read timeout), and every byte
    /// read from it (the banner line): a session sshd has already paid
    /// for, which the on-demand listener hands to the first client.
    pub session: (TcpStream, Vec<u8>),
}

/// How the wait ended.
#[derive(Debug)]
pub enum Readiness {
    /// sshd greeted.
    Ready(Greeting),
    /// `gone` reported why the VM cannot become ready.
    Died(String),
    TimedOut,
}

/// What one probe saw.
#[derive(Debug)]
pub enum Probe {
    /// The first line, starting `SSH-`, and how long it took to come.
    Banner(Greeting),
    /// Connected, then closed or reset without a banner: the guest's
    /// network answered (sshd not listening yet), or not an SSH server.
    Closed,
    /// Connected, nothing within the read timeout.
    Silent,
    /// Nobody listens on the host port (QEMU not up yet).
    Refused,
}

/// The connections of probes in flight, to shut them when the wait ends.
type Open = Arc<Mutex<Vec<TcpStream>>>;

/// One probe: connect to loopback `port` and read the first line.
#[must_use]
pub fn probe(port: u16, read_timeout: Duration) -> Probe {
    probe_registered(port, read_timeout, None)
}

fn probe_registered(port: u16, read_timeout: Duration, open: Option<&Open>) -> Probe {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return Probe::Refused;
    };
    if let (Some(open), Ok(clone)) = (open, s.try_clone()) {
        open.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(clone);
    }
    let seen = read_banner(&s, read_timeout);
    if let (Some(open), Probe::Banner(_)) = (open, &seen) {
        // The winner's connection is handed on, not shut with the others.
        let me = s.local_addr().ok();
        open.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|o| o.local_addr().ok() != me);
    }
    seen
}

/// Read the first line from `s`: the SSH banner, keeping the connection
/// and the bytes read.
fn read_banner(s: &TcpStream, read_timeout: Duration) -> Probe {
    if s.set_read_timeout(Some(read_timeout)).is_err() {
        return Probe::Closed;
    }
    let connected = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    let mut reader = s;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return Probe::Closed,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Probe::Silent
            }
            Err(_) => return Probe::Closed,
        }
        if let Some(end) = got.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&got[..end]).trim_end().to_owned();
            if !line.starts_with("SSH-") || s.set_read_timeout(None).is_err() {
                return Probe::Closed;
            }
            let Ok(session) = s.try_clone() else {
                return Probe::Closed;
            };
            return Probe::Banner(Greeting {
                banner: line,
                took: connected.elapsed(),
                session: (session, got),
            });
        }
        if got.len() > 255 {
            // RFC 4253: the version line is at most 255 bytes.
            return Probe::Closed;
        }
    }
}

/// The banner on loopback `port` now, if sshd greets within `read_timeout`.
#[must_use]
pub fn banner(port: u16, read_timeout: Duration) -> Option<String> {
    match probe(port, read_timeout) {
        Probe::Banner(g) => Some(g.banner),
        _ => None,
    }
}

/// Probe loopback `port` until a banner arrives, `timeout` passes, or
/// `gone` (asked between probes) says the VM is gone. `tick` is called
/// between probes with the time waited so far (for a progress display).
pub fn await_banner(
    port: u16,
    timeout: Duration,
    gone: impl FnMut() -> Option<String>,
    tick: impl FnMut(Duration),
) -> Readiness {
    let open: Open = Arc::default();
    let result = probe_until(port, timeout, &open, gone, tick);
    // Probes still waiting would reach sshd later and make it fork for
    // nothing: shut them now (QEMU then drops their connection attempts).
    for s in open
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .drain(..)
    {
        let _ = s.shutdown(Shutdown::Both);
    }
    result
}

fn probe_until(
    port: u16,
    timeout: Duration,
    open: &Open,
    mut gone: impl FnMut() -> Option<String>,
    mut tick: impl FnMut(Duration),
) -> Readiness {
    let started = Instant::now();
    let deadline = started + timeout;
    // Each probe reports whether it started after the guest answered.
    let (tx, rx) = mpsc::channel::<(bool, Probe)>();
    let mut silent_in_flight = 0usize;
    let mut answered_in_flight = 0usize;
    let mut answered = false;
    let mut next = started;
    loop {
        let now = Instant::now();
        let room = if answered {
            answered_in_flight == 0 && now >= next
        } else {
            silent_in_flight < MAX_SILENT && now >= next
        };
        if room {
            let (tx, open, after_answer) = (tx.clone(), Arc::clone(open), answered);
            // A probe still running when the wait ends is shut (above) and
            // sends into a closed channel: harmless.
            let spawned = std::thread::Builder::new()
                .name("ssh-probe".to_owned())
                .spawn(move || {
                    let read = if after_answer { READ } else { SILENT_READ };
                    let _ = tx.send((after_answer, probe_registered(port, read, Some(&open))));
                })
                .is_ok();
            if spawned {
                if answered {
                    answered_in_flight += 1;
                } else {
                    silent_in_flight += 1;
                }
                next = now
                    + if answered {
                        ANSWERED_EVERY
                    } else {
                        SILENT_EVERY
                    };
            }
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(1), ANSWERED_EVERY);
        match rx.recv_timeout(wait) {
            Ok((_, Probe::Banner(g))) => return Readiness::Ready(g),
            Ok((after_answer, seen)) => {
                if after_answer {
                    answered_in_flight -= 1;
                } else {
                    silent_in_flight -= 1;
                }
                if matches!(seen, Probe::Closed) {
                    answered = true;
                }
                if answered || matches!(seen, Probe::Refused) {
                    next = next.min(Instant::now() + ANSWERED_EVERY);
                }
            }
            Err(_) => {}
        }
        if let Some(why) = gone() {
            return Readiness::Died(why);
        }
        if Instant::now() >= deadline {
            return Readiness::TimedOut;
        }
        tick(started.elapsed());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::net::TcpListener;

    #[test]
    fn first_banner_wins_even_behind_silent_connections_which_are_then_shut() {
        // A listener that holds its first connections silent (as QEMU's
        // forward does before the guest answers) and greets the later ones.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let (held_tx, held_rx) = mpsc::channel();
        std::thread::spawn(move || {
            for (i, s) in l.incoming().enumerate() {
                let mut s = s.unwrap();
                if i < 3 {
                    held_tx.send(s).unwrap();
                } else {
                    let _ = s.write_all(b"SSH-2.0-test\r\n");
                }
            }
        });
        let t = Instant::now();
        let r = await_banner(port, Duration::from_secs(10), || None, |_| {});
        assert!(
            matches!(&r, Readiness::Ready(g) if g.banner == "SSH-2.0-test"),
            "{r:?}"
        );
        // Not held up by the silent ones (they wait up to READ).
        assert!(t.elapsed() < READ / 2, "{:?}", t.elapsed());
        // The silent ones were shut when the wait ended: each sees its end.
        for _ in 0..3 {
            let mut s = held_rx.recv().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = [0u8; 1];
            assert_eq!(std::io::Read::read(&mut s, &mut buf).unwrap(), 0);
        }
    }

    #[test]
    fn once_the_guest_answers_probes_wait_for_a_slow_banner_without_piling_up() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        // Closes the first connections at once (the guest's reset before
        // sshd listens), then greets slowly, as a starved TCG sshd does.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let open = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (o, m) = (open.clone(), most.clone());
        std::thread::spawn(move || {
            for (i, s) in l.incoming().enumerate() {
                let mut s = s.unwrap();
                if i < 5 {
                    drop(s);
                    continue;
                }
                let (o, m) = (o.clone(), m.clone());
                std::thread::spawn(move || {
                    let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                    m.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_secs(1));
                    let _ = s.write_all(b"SSH-2.0-slow\r\n");
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let outcome = await_banner(port, Duration::from_secs(20), || None, |_| {});
        // The greeting's own time is what the server took.
        assert!(
            matches!(&outcome, Readiness::Ready(greeting)
                if greeting.banner == "SSH-2.0-slow" && greeting.took >= Duration::from_secs(1)),
            "{outcome:?}"
        );
        assert_eq!(most.load(Ordering::SeqCst), 1, "probes piled up on sshd");
    }

    #[test]
    fn the_winning_session_stays_open_for_the_caller() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            s.write_all(b"SSH-2.0-test\r\n").unwrap();
            let mut line = String::new();
            std::io::BufRead::read_line(&mut std::io::BufReader::new(&s), &mut line).unwrap();
            s.write_all(format!("got {line}").as_bytes()).unwrap();
        });
        let Readiness::Ready(g) = await_banner(port, Duration::from_secs(10), || None, |_| {})
        else {
            panic!("no banner");
        };
        let (mut session, bytes) = g.session;
        assert_eq!(bytes, b"SSH-2.0-test\r\n");
        session.write_all(b"SSH-2.0-client\n").unwrap();
        let mut rest = String::new();
        session.read_to_string(&mut rest).unwrap();
        assert_eq!(rest, "got SSH-2.0-client\n");
    }

    #[test]
    fn gone_and_timeout_end_the_wait() {
        // Nobody listens: refused at once, every time.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = await_banner(
            port,
            Duration::from_secs(10),
            || Some("QEMU exited".to_owned()),
            |_| {},
        );
        assert!(
            matches!(&r, Readiness::Died(why) if why == "QEMU exited"),
            "{r:?}"
        );
        let r = await_banner(port, Duration::from_millis(200), || None, |_| {});
        assert!(matches!(r, Readiness::TimedOut), "{r:?}");
    }

    #[test]
    fn a_non_ssh_greeting_is_not_ready() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let _ = s.unwrap().write_all(b"HTTP/1.0 200 OK\r\n");
            }
        });
        assert_eq!(banner(port, Duration::from_secs(1)), None);
        let r = await_banner(port, Duration::from_millis(300), || None, |_| {});
        assert!(matches!(r, Readiness::TimedOut), "{r:?}");
    }
}
