//! Waiting for the guest's sshd: SSH banner probes that do not wait on
//! each other.
//!
//! QEMU's user-mode forward accepts a host connection at once and only then
//! tries the guest. Until the guest's network is up that attempt gets no
//! answer, and a probe blocks until its read timeout or QEMU's SYN
//! retransmit seconds later; polling one probe at a time lost up to a
//! whole read timeout (seen here: probes blocked 3 s each, and `start`
//! returned 3 s after sshd was up). Once the guest's network answers, a
//! probe ends at once (a reset) until sshd listens, and then waits for the
//! banner, which a loaded TCG guest takes a second or more to send: every
//! probe makes sshd fork and re-exec itself, so probes must not pile up on
//! it (seen here: six at once took 2.7 s to greet).
//!
//! So: while the guest has not answered, a short probe (giving up after
//! [`SHORT_READ`]) starts every [`SILENT_EVERY`], and one long probe
//! (waiting [`LONG_READ`]) is always pending beside them, so a guest whose
//! sshd came up together with its network, or greets slowly, is still seen.
//! Once a probe was reset by the guest (sshd not listening yet), probes
//! wait [`LONG_READ`] for the banner and run one at a time, the next
//! starting [`ANSWERED_EVERY`] after the last; a second starts beside one
//! that stays silent for [`HEDGE_AFTER`] (a lost SYN waits for QEMU's
//! retransmit, seconds later). The first banner wins.

use std::io::{BufRead as _, Read as _};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Between short probes while the guest's network is silent.
pub const SILENT_EVERY: Duration = Duration::from_millis(200);
/// Between probes once the guest's network answers.
pub const ANSWERED_EVERY: Duration = Duration::from_millis(20);
/// A second probe beside one silent this long, once the guest answers.
pub const HEDGE_AFTER: Duration = Duration::from_millis(1500);
const SHORT_READ: Duration = Duration::from_secs(1);
const LONG_READ: Duration = Duration::from_secs(8);

/// How the wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    /// sshd greeted: the banner line.
    Ready(String),
    /// `gone` reported why the VM cannot become ready.
    Died(String),
    TimedOut,
}

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// The first line, starting `SSH-`.
    Banner(String),
    /// Connected, then closed or reset without a banner: the guest's
    /// network answered (sshd not listening yet), or not an SSH server.
    Closed,
    /// Connected, nothing within the read timeout.
    Silent,
    /// Nobody listens on the host port (QEMU not up yet).
    Refused,
}

/// One probe: connect to loopback `port` and read the first line.
#[must_use]
pub fn probe(port: u16, read_timeout: Duration) -> Probe {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) else {
        return Probe::Refused;
    };
    if s.set_read_timeout(Some(read_timeout)).is_err() {
        return Probe::Closed;
    }
    let mut line = String::new();
    match std::io::BufReader::new(s.take(256)).read_line(&mut line) {
        Ok(_) if line.starts_with("SSH-") => Probe::Banner(line.trim_end().to_owned()),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Probe::Silent
        }
        _ => Probe::Closed,
    }
}

/// The banner on loopback `port` now, if sshd greets within `read_timeout`.
#[must_use]
pub fn banner(port: u16, read_timeout: Duration) -> Option<String> {
    match probe(port, read_timeout) {
        Probe::Banner(b) => Some(b),
        _ => None,
    }
}

/// Probe loopback `port` until a banner arrives, `timeout` passes, or
/// `gone` (asked between probes) says the VM is gone. `tick` is called
/// between probes with the time waited so far (for a progress display).
pub fn await_banner(
    port: u16,
    timeout: Duration,
    mut gone: impl FnMut() -> Option<String>,
    mut tick: impl FnMut(Duration),
) -> Readiness {
    let started = Instant::now();
    let deadline = started + timeout;
    // Each probe reports whether it was a long one and what it saw.
    let (tx, rx) = mpsc::channel::<(bool, Probe)>();
    let mut short_in_flight = 0usize;
    let mut long_in_flight = 0usize;
    let mut answered = false;
    let mut next_short = started;
    let mut last_long = started;
    loop {
        let now = Instant::now();
        let launch = |long: bool| {
            let tx = tx.clone();
            let read = if long { LONG_READ } else { SHORT_READ };
            // A probe still running when the wait ends finishes within its
            // timeouts and sends into a closed channel: harmless.
            std::thread::Builder::new()
                .name("ssh-probe".to_owned())
                .spawn(move || {
                    let _ = tx.send((long, probe(port, read)));
                })
                .is_ok()
        };
        if answered {
            let in_flight = short_in_flight + long_in_flight;
            let hedge = long_in_flight == 1 && now >= last_long + HEDGE_AFTER;
            let room = (in_flight == 0 && now >= next_short) || (in_flight < 2 && hedge);
            if room && launch(true) {
                long_in_flight += 1;
                last_long = now;
            }
        } else {
            if long_in_flight == 0 && launch(true) {
                long_in_flight += 1;
                last_long = now;
            }
            if now >= next_short {
                if launch(false) {
                    short_in_flight += 1;
                }
                next_short = now + SILENT_EVERY;
            }
        }
        let wait = if answered {
            ANSWERED_EVERY
        } else {
            next_short
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        };
        match rx.recv_timeout(wait) {
            Ok((_, Probe::Banner(b))) => return Readiness::Ready(b),
            Ok((long, seen)) => {
                if long {
                    long_in_flight -= 1;
                } else {
                    short_in_flight -= 1;
                }
                if seen == Probe::Closed {
                    answered = true;
                }
                if answered {
                    next_short = Instant::now() + ANSWERED_EVERY;
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
    fn first_banner_wins_even_behind_silent_connections() {
        // A listener that holds its first connections silent (as QEMU's
        // forward does before the guest answers) and greets the later ones.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for (i, s) in l.incoming().enumerate() {
                let mut s = s.unwrap();
                if i < 3 {
                    held.push(s);
                } else {
                    let _ = s.write_all(b"SSH-2.0-test\r\n");
                }
            }
        });
        let t = Instant::now();
        let r = await_banner(port, Duration::from_secs(10), || None, |_| {});
        assert_eq!(r, Readiness::Ready("SSH-2.0-test".to_owned()));
        // Not held up by the silent ones' read timeouts.
        assert!(t.elapsed() < SHORT_READ, "{:?}", t.elapsed());
    }

    #[test]
    fn once_the_guest_answers_probes_wait_for_a_slow_banner_without_piling_up() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        // Closes the first connections at once (the guest's reset before
        // sshd listens), then greets later than a short probe waits.
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
                    std::thread::sleep(SHORT_READ + Duration::from_millis(250));
                    let _ = s.write_all(b"SSH-2.0-slow\r\n");
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        let r = await_banner(port, Duration::from_secs(20), || None, |_| {});
        assert_eq!(r, Readiness::Ready("SSH-2.0-slow".to_owned()));
        // One, or two when the hedge started beside a silent one.
        assert!(most.load(Ordering::SeqCst) <= 2, "probes piled up on sshd");
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
        assert_eq!(r, Readiness::Died("QEMU exited".to_owned()));
        let r = await_banner(port, Duration::from_millis(200), || None, |_| {});
        assert_eq!(r, Readiness::TimedOut);
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
        assert_eq!(r, Readiness::TimedOut);
    }
}
