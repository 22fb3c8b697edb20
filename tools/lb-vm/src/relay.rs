//! Relaying one client connection to the guest's sshd, both ways.
//!
//! Blocking copies on two threads (this one and one scoped helper), each
//! through one reused buffer: Nix opens one ssh connection per build slot,
//! so connections are few and a thread pair each costs less than an async
//! runtime would add to an otherwise synchronous tool. Both ends are
//! loopback sockets: the client accepted on 127.0.0.1, the guest's forward
//! on 127.0.0.1 (see `on_demand`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};

/// Bytes per read: large enough that a bulk transfer (a NAR) takes few
/// system calls, small enough to stay in cache.
const BUFFER: usize = 128 * 1024;

/// Bytes relayed each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Relayed {
    pub to_guest: u64,
    pub to_client: u64,
}

/// Copy bytes both ways between `client` and `guest` until both directions
/// end. An end of stream on one side is passed on as a half-close (ssh
/// closes its sending side first); an error on either ends both.
pub fn relay(client: &TcpStream, guest: &TcpStream) -> Relayed {
    std::thread::scope(|s| {
        let back = std::thread::Builder::new()
            .name("relay-back".to_owned())
            .spawn_scoped(s, || pump(guest, client));
        let Ok(back) = back else {
            // No thread for the way back: refuse the connection rather
            // than relay one way.
            close(client, guest);
            return Relayed::default();
        };
        let to_guest = pump(client, guest);
        Relayed {
            to_guest,
            to_client: back.join().unwrap_or(0),
        }
    })
}

fn close(a: &TcpStream, b: &TcpStream) {
    let _ = a.shutdown(Shutdown::Both);
    let _ = b.shutdown(Shutdown::Both);
}

/// Copy `from` to `to` until end of stream or an error.
fn pump(mut from: &TcpStream, mut to: &TcpStream) -> u64 {
    let mut buf = vec![0u8; BUFFER];
    let mut total = 0u64;
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return total;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
                total += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    close(from, to);
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A connected pair of loopback sockets.
    fn pair() -> (TcpStream, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (b, _) = l.accept().unwrap();
        (a, b)
    }

    #[test]
    fn bytes_go_both_ways_and_half_close_passes_on() {
        // user <-> (client | relay | guest) <-> server
        let (mut user, client) = pair();
        let (guest, mut server) = pair();
        let relay = std::thread::spawn(move || relay(&client, &guest));
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let sent = data.clone();
        let writer = std::thread::spawn(move || {
            user.write_all(&sent).unwrap();
            // Half-close: the server must see the end, and still answer.
            user.shutdown(Shutdown::Write).unwrap();
            let mut back = Vec::new();
            user.read_to_end(&mut back).unwrap();
            back
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).unwrap();
        assert_eq!(got, data);
        server.write_all(b"answer after the end").unwrap();
        drop(server);
        assert_eq!(writer.join().unwrap(), b"answer after the end");
        assert_eq!(
            relay.join().unwrap(),
            Relayed {
                to_guest: data.len() as u64,
                to_client: 20
            }
        );
    }

    #[test]
    fn a_reset_ends_both_directions() {
        let (user, client) = pair();
        let (guest, server) = pair();
        let relay = std::thread::spawn(move || relay(&client, &guest));
        // The server vanishes without a half-close from the user: the
        // relay must not hang on the user's side.
        drop(server);
        let mut buf = [0u8; 1];
        let mut u = &user;
        assert_eq!(u.read(&mut buf).unwrap_or(0), 0);
        drop(user);
        relay.join().unwrap();
    }
}
