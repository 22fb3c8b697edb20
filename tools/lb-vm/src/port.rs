//! Is a port somebody's, and is the SSH server on it ours?
//!
//! A bind test alone misleads: std (and QEMU's slirp) set SO_REUSEADDR,
//! with which macOS lets a bind on 127.0.0.1 succeed beside a QEMU
//! listening on `*:31022` (the nixpkgs runner's forward has an empty host
//! address). So a port counts as taken when a connection to 127.0.0.1
//! succeeds (then its first line is read: an SSH banner says what
//! answers), or when a listener cannot be bound on it (a listener on
//! another address, on Linux). Readiness is a banner on the port *and*
//! the listener being our VM's process (or one of its children), when the
//! system lets us see who listens.

use std::io::{BufRead as _, Read as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use lb_common::procfacts::{self, Source};

/// Someone holds a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    pub port: u16,
    /// The first line sent on connect, when it was an SSH banner.
    pub banner: Option<String>,
    /// `(pid, command)` of the listener, when visible.
    pub owner: Option<(u32, String)>,
}

impl Taken {
    /// `pid N (comm), which answers SSH-2.0-...`.
    #[must_use]
    pub fn who(&self) -> String {
        let mut s = match &self.owner {
            Some((pid, comm)) => format!("pid {pid} ({comm})"),
            None => "another process".to_owned(),
        };
        if let Some(b) = &self.banner {
            s = format!("{s}, which answers {b:?}");
        }
        s
    }
}

/// The first line a connection to 127.0.0.1:`port` gets, if any.
fn first_line(port: u16, wait: Duration) -> Result<Option<String>, ()> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|_| ())?;
    let _ = s.set_read_timeout(Some(wait));
    let mut line = String::new();
    let _ = std::io::BufReader::new(s.take(256)).read_line(&mut line);
    Ok(Some(line.trim_end().to_owned()).filter(|l| !l.is_empty()))
}

/// Who holds `port`, if anyone: a connection to 127.0.0.1 succeeds, or a
/// listener cannot be bound there (`all_interfaces`: on 0.0.0.0, where the
/// runner's own forward listens).
#[must_use]
pub fn taken(port: u16, all_interfaces: bool) -> Option<Taken> {
    let owner = || procfacts::listener(Source::current(), port);
    if let Ok(line) = first_line(port, Duration::from_millis(1500)) {
        return Some(Taken {
            port,
            banner: line.filter(|l| l.starts_with("SSH-")),
            owner: owner(),
        });
    }
    let host = if all_interfaces {
        "0.0.0.0"
    } else {
        "127.0.0.1"
    };
    if TcpListener::bind((host, port)).is_err() {
        return Some(Taken {
            port,
            banner: None,
            owner: owner(),
        });
    }
    None
}

/// Is the listener on `port` the process `vm` or one of its children?
/// `None` when the system does not say who listens (another user's
/// process, without root).
#[must_use]
pub fn listener_is(port: u16, vm: u32) -> Option<bool> {
    let source = Source::current();
    let (pid, _) = procfacts::listener(source, port)?;
    Some(procfacts::descends_from(source, pid, vm))
}

/// Our builder answers on `port`: an SSH banner within `wait`, and the
/// listener is not somebody else's.
#[must_use]
pub fn ours_answers(port: u16, vm: u32, wait: std::time::Duration) -> bool {
    crate::ready::banner(port, wait).is_some() && listener_is(port, vm) != Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_silent_listener_is_taken_without_banner() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let t = taken(port, false).expect("taken");
        assert_eq!(t.banner, None);
        assert_eq!(t.owner.as_ref().map(|o| o.0), Some(std::process::id()));
        assert!(t
            .who()
            .starts_with(&format!("pid {} (", std::process::id())));
        // Ours: this process listens (no banner, so not ready).
        assert_eq!(listener_is(port, std::process::id()), Some(true));
        assert!(!ours_answers(
            port,
            std::process::id(),
            std::time::Duration::from_secs(1)
        ));
        drop(l);
        assert_eq!(taken(port, true), None);
    }

    #[test]
    fn a_listener_on_another_address_takes_the_wildcard() {
        // 127.0.0.2 is another loopback host: a connection to 127.0.0.1
        // fails, but the runner's forward on 0.0.0.0 could not bind.
        let Ok(l) = TcpListener::bind("127.0.0.2:0") else {
            panic!("127.0.0.2 is loopback on Linux; bind failed");
        };
        let port = l.local_addr().unwrap().port();
        assert!(taken(port, true).is_some());
        assert!(taken(port, false).is_none());
    }
}
