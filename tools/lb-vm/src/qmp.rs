//! A minimal QMP client: enough to ask the guest to power down.
//!
//! QMP is line-delimited JSON over a unix socket: the server greets with
//! `{"QMP": ...}`, the client must send `qmp_capabilities` before any other
//! command, and asynchronous `{"event": ...}` lines may arrive at any time
//! (they are skipped while waiting for a command's `return`).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("QMP socket {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("QMP socket {path}: {what}")]
    Protocol { path: PathBuf, what: String },
}

/// Send `command` (no arguments) to the QMP server at `socket` and wait for
/// its answer.
pub fn execute(socket: &Path, command: &str) -> Result<serde_json::Value, Error> {
    let io = |source| Error::Io {
        path: socket.to_path_buf(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(io)?;
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(io)?;
    let mut writer = stream.try_clone().map_err(io)?;
    let mut reader = BufReader::new(stream);
    let greeting = read_message(socket, &mut reader)?;
    if greeting.get("QMP").is_none() {
        return Err(Error::Protocol {
            path: socket.to_path_buf(),
            what: format!("expected a QMP greeting, got {greeting}"),
        });
    }
    for cmd in ["qmp_capabilities", command] {
        let line = serde_json::json!({ "execute": cmd }).to_string();
        writer
            .write_all(format!("{line}\n").as_bytes())
            .map_err(io)?;
        let answer = loop {
            let msg = read_message(socket, &mut reader)?;
            if msg.get("event").is_none() {
                break msg;
            }
        };
        if let Some(err) = answer.get("error") {
            return Err(Error::Protocol {
                path: socket.to_path_buf(),
                what: format!("{cmd} failed: {err}"),
            });
        }
        if cmd == command {
            return Ok(answer
                .get("return")
                .cloned()
                .unwrap_or(serde_json::Value::Null));
        }
    }
    Ok(serde_json::Value::Null)
}

fn read_message(
    socket: &Path,
    reader: &mut BufReader<UnixStream>,
) -> Result<serde_json::Value, Error> {
    let mut line = String::new();
    // A QMP message is small; a peer that never ends its line is cut off by
    // the read timeout, and this bound keeps a broken one from filling memory.
    let n = reader
        .by_ref()
        .take(1 << 20)
        .read_line(&mut line)
        .map_err(|source| Error::Io {
            path: socket.to_path_buf(),
            source,
        })?;
    if n == 0 {
        return Err(Error::Protocol {
            path: socket.to_path_buf(),
            what: "closed by QEMU".to_owned(),
        });
    }
    serde_json::from_str(&line).map_err(|e| Error::Protocol {
        path: socket.to_path_buf(),
        what: format!("not JSON ({e}): {}", line.trim()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A fake QMP server following the protocol's shape, to check the
    /// client's handshake and event skipping (the real one is exercised by
    /// the VM tests).
    #[test]
    fn handshake_skips_events() {
        let tmp = tempfile::tempdir().unwrap();
        let sock = tmp.path().join("qmp");
        let listener = UnixListener::bind(&sock).unwrap();
        let server = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut w = s.try_clone().unwrap();
            let mut r = BufReader::new(s);
            w.write_all(b"{\"QMP\": {\"version\": {}, \"capabilities\": []}}\n")
                .unwrap();
            let mut seen = Vec::new();
            for _ in 0..2 {
                let mut l = String::new();
                r.read_line(&mut l).unwrap();
                seen.push(l.trim().to_owned());
                w.write_all(b"{\"event\": \"X\"}\n{\"return\": {}}\n")
                    .unwrap();
            }
            seen
        });
        let ret = execute(&sock, "system_powerdown").unwrap();
        assert_eq!(ret, serde_json::json!({}));
        let seen = server.join().unwrap();
        assert_eq!(
            seen,
            [
                r#"{"execute":"qmp_capabilities"}"#,
                r#"{"execute":"system_powerdown"}"#
            ]
        );
    }

    #[test]
    fn missing_socket_names_path() {
        let e = execute(Path::new("/nonexistent/qmp.sock"), "x").unwrap_err();
        assert!(e.to_string().contains("/nonexistent/qmp.sock"), "{e}");
    }
}
