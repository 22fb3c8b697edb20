//! The client side of the Nix worker protocol, over any byte stream.
//!
//! Facts from NixOS/nix `src/libstore/worker-protocol.hh`,
//! `remote-store.cc` (`initConnection`, `processStderr`), `daemon.cc` and
//! `libutil/serialise.cc` (`readString`, `readError`); see docs/reference.md
//! "Worker protocol":
//!
//! - integers are u64 little-endian; a string is its u64 length, the bytes
//!   and zero padding to a multiple of 8; a version is `major << 8 | minor`;
//! - the handshake: magic, version exchange, the feature sets at >= 1.38,
//!   the obsolete CPU-affinity and reserve-space words, the daemon's Nix
//!   version (>= 1.33) and whether it trusts us (>= 1.35), then one stderr
//!   loop.
//!
//! The peer may be hostile or broken (a shell printing a banner, a
//! compromised builder): every length and count read from it is checked
//! against [`Limits`] *before* anything is allocated, so the worst a peer
//! can do is make a read fail or run into the caller's timeout.

use std::io::{self, Read, Write};

use crate::status::{Classify, Status};

/// `WORKER_MAGIC_1`: the client's greeting ("cxin").
pub const WORKER_MAGIC_1: u64 = 0x6e69_7863;
/// `WORKER_MAGIC_2`: the daemon's answer ("oixd").
pub const WORKER_MAGIC_2: u64 = 0x6478_696f;

/// The oldest protocol spoken here: 1.34, Nix 2.8 to 2.14.
pub const MIN_VERSION: u64 = 0x122;
/// The newest protocol spoken here: 1.38, Nix 2.24 on.
pub const CLIENT_VERSION: u64 = 0x126;

const STDERR_NEXT: u64 = 0x6f6c_6d67;
const STDERR_READ: u64 = 0x6461_7461;
const STDERR_WRITE: u64 = 0x6461_7416;
const STDERR_LAST: u64 = 0x616c_7473;
const STDERR_ERROR: u64 = 0x6378_7470;
const STDERR_START_ACTIVITY: u64 = 0x5354_5254;
const STDERR_STOP_ACTIVITY: u64 = 0x5354_4f50;
const STDERR_RESULT: u64 = 0x5253_4c54;

/// `wopIsValidPath`.
const OP_IS_VALID_PATH: u64 = 1;
/// `wopQueryValidPaths`.
const OP_QUERY_VALID_PATHS: u64 = 31;

/// How much the peer may make us read. Defaults suit the handshake and
/// small queries; nothing the daemon legitimately sends there comes close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest string (version, log line, error message, feature name).
    pub max_string: u64,
    /// Most items in a list (features, activity fields).
    pub max_list: u64,
    /// Most traces in one error.
    pub max_traces: u64,
    /// Most stderr messages before LAST, so a chatty peer cannot keep one
    /// call busy forever (the caller's timeout bounds it too).
    pub max_messages: u64,
    /// Log lines kept from the stderr loop (older ones are dropped).
    pub keep_log: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_string: 64 * 1024,
            max_list: 4096,
            max_traces: 64,
            max_messages: 100_000,
            keep_log: 32,
        }
    }
}

/// What went wrong talking to a daemon.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The peer closed the stream in the middle of a read.
    #[error("the remote program closed the connection while we read {what}")]
    Eof {
        /// What was being read, e.g. "the trust flag".
        what: &'static str,
    },
    /// A read or a write ran into the stream's timeout.
    #[error("timed out reading {what} from the remote program")]
    TimedOut {
        /// What was being read or sent.
        what: &'static str,
    },
    /// A read failed for another reason than end of stream or timeout.
    #[error("reading {what}: {source}")]
    Io {
        /// What was being read.
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// A write failed for another reason than timeout.
    #[error("sending {what}: {source}")]
    Send {
        /// What was being sent, e.g. "the greeting".
        what: &'static str,
        /// The underlying error.
        source: io::Error,
    },
    /// The peer's greeting was not [`WORKER_MAGIC_2`] (or its error
    /// message not of type "Error"): it is not a Nix daemon.
    #[error("protocol mismatch: the remote program is not a Nix daemon (it sent {preview:?})")]
    NotADaemon {
        /// What the peer sent instead, control characters but newlines as `.`.
        preview: String,
    },
    /// The daemon's protocol is not 1.x or older than [`MIN_VERSION`].
    #[error("the Nix daemon speaks protocol {}, this tool speaks {} to {}; upgrade Nix on the builder", version_string(*.version), version_string(MIN_VERSION), version_string(CLIENT_VERSION))]
    Unsupported {
        /// The protocol version the daemon offered.
        version: u64,
    },
    /// A string's length is over [`Limits::max_string`].
    #[error("{what}: length {len} is over the limit of {max}; the peer is broken or hostile")]
    TooLong {
        /// What was being read.
        what: &'static str,
        /// The length the peer sent, in bytes.
        len: u64,
        /// The limit, in bytes.
        max: u64,
    },
    /// A count is over its limit (one of [`Limits`], or the number of
    /// paths asked about).
    #[error("{what}: count {count} is over the limit of {max}; the peer is broken or hostile")]
    TooMany {
        /// What was being counted.
        what: &'static str,
        /// The count the peer sent.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// The padding after a string is not all zero bytes.
    #[error("{what}: non-zero padding after a string; the stream is out of step")]
    Padding {
        /// What was being read.
        what: &'static str,
    },
    /// A number is outside the values its field may take.
    #[error("{what}: unexpected value {value:#x}")]
    BadValue {
        /// What was being read, e.g. "the IsValidPath answer".
        what: &'static str,
        /// The value the peer sent.
        value: u64,
    },
    /// The daemon asked to read or write data (`STDERR_READ`,
    /// `STDERR_WRITE`) during a request that transfers none.
    #[error("the daemon asked to {what} data, which this request does not do")]
    UnexpectedTransfer {
        /// "read" or "write".
        what: &'static str,
    },
    /// The daemon sent a stderr message code not known here.
    #[error("unknown stderr message {code:#x} from the daemon")]
    UnknownMessage {
        /// The code it sent.
        code: u64,
    },
    /// A `QueryValidPaths` answer named a path not in the question.
    #[error(
        "the daemon answered with {path:?}, a path we did not ask about; the stream is out of step"
    )]
    Unrequested {
        /// The path the daemon answered with.
        path: String,
    },
    /// The daemon sent an error (`STDERR_ERROR`).
    #[error("the daemon reported: {message}")]
    Remote {
        /// Its message.
        message: String,
        /// Its traces, in the order sent (none before protocol 1.26).
        traces: Vec<String>,
    },
}

impl Error {
    /// True when the error is the peer going quiet, not a wrong answer.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::TimedOut { .. })
    }
}

impl Classify for Error {
    fn status(&self) -> Status {
        Status::Failed
    }
}

/// `1.34` for `0x122`.
#[must_use]
pub fn version_string(version: u64) -> String {
    format!("{}.{}", version >> 8, version & 0xff)
}

/// Does the daemon trust us (protocol >= 1.35 says; older ones do not)?
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// The daemon trusts us.
    Yes,
    /// The daemon does not trust us.
    No,
    /// The daemon did not say (protocol < 1.35, or it sent "unknown").
    Unknown,
}

impl Trust {
    /// `yes`, `no` or `unknown`, as reports and JSON show it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Trust::Yes => "yes",
            Trust::No => "no",
            Trust::Unknown => "unknown",
        }
    }
}

/// What the daemon said about itself during the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The version the daemon offered.
    pub daemon_version: u64,
    /// The version both sides speak: min(daemon, ours).
    pub protocol: u64,
    /// The daemon's Nix version (protocol >= 1.33).
    pub nix_version: Option<String>,
    /// Whether the daemon trusts us.
    pub trust: Trust,
    /// The daemon's features (protocol >= 1.38).
    pub features: Vec<String>,
}

/// A stream made of a reader and a writer (a child's stdout and stdin, a
/// byte slice and a sink in tests).
#[derive(Debug)]
pub struct Duplex<R, W> {
    /// Where reads come from.
    pub reader: R,
    /// Where writes go.
    pub writer: W,
}

impl<R: Read, W> Read for Duplex<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.reader.read(buf)
    }
}

impl<R, W: Write> Write for Duplex<R, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.flush()
    }
}

/// A connected, handshaken client.
#[derive(Debug)]
pub struct Client<S> {
    stream: S,
    limits: Limits,
    /// What the daemon said about itself in the handshake.
    pub info: ServerInfo,
    /// The last log lines the daemon sent (at most `limits.keep_log`).
    pub log: Vec<String>,
}

/// Run the client handshake on `stream` with default limits.
///
/// # Errors
/// The stream failed or timed out ([`Error::Io`], [`Error::Send`],
/// [`Error::Eof`], [`Error::TimedOut`]), the peer is not a daemon or too
/// old ([`Error::NotADaemon`], [`Error::Unsupported`]), it sent something
/// malformed or over [`Limits`], or it reported an error ([`Error::Remote`]).
pub fn handshake<S: Read + Write>(stream: S) -> Result<Client<S>, Error> {
    handshake_with(stream, Limits::default())
}

/// Run the client handshake on `stream`.
///
/// # Errors
/// The stream failed or timed out ([`Error::Io`], [`Error::Send`],
/// [`Error::Eof`], [`Error::TimedOut`]), the peer is not a daemon or too
/// old ([`Error::NotADaemon`], [`Error::Unsupported`]), it sent something
/// malformed or over [`Limits`], or it reported an error ([`Error::Remote`]).
pub fn handshake_with<S: Read + Write>(mut stream: S, limits: Limits) -> Result<Client<S>, Error> {
    // The version goes with the magic: the daemon reads it right after
    // answering, so pipelining saves a round trip (newer Nix clients do the
    // same, worker-protocol-connection.cc).
    let mut out = Vec::with_capacity(16);
    put_u64(&mut out, WORKER_MAGIC_1);
    put_u64(&mut out, CLIENT_VERSION);
    send(&mut stream, &out, "the greeting")?;

    let mut first = [0u8; 8];
    read_exact(&mut stream, &mut first, "the daemon's greeting")?;
    let magic = u64::from_le_bytes(first);
    if magic != WORKER_MAGIC_2 {
        return Err(not_a_daemon(&mut stream, &first));
    }
    let daemon_version = read_u64(&mut stream, "the daemon's protocol version")?;
    if daemon_version >> 8 != 1 || daemon_version < MIN_VERSION {
        return Err(Error::Unsupported {
            version: daemon_version,
        });
    }
    let protocol = daemon_version.min(CLIENT_VERSION);
    let minor = protocol & 0xff;

    let mut features = Vec::new();
    if minor >= 38 {
        // We ask for no optional feature: the ping needs none.
        let mut out = Vec::new();
        put_u64(&mut out, 0);
        send(&mut stream, &out, "our feature set")?;
        features = read_strings(&mut stream, &limits, "the daemon's features")?;
    }
    // Obsolete CPU affinity (>= 1.14, "no affinity") and reserveSpace
    // (>= 1.11, false): both always present in the versions spoken here.
    let mut out = Vec::new();
    put_u64(&mut out, 0);
    put_u64(&mut out, 0);
    send(&mut stream, &out, "the connection options")?;

    let nix_version = if minor >= 33 {
        Some(read_string(
            &mut stream,
            limits.max_string,
            "the daemon's Nix version",
        )?)
    } else {
        None
    };
    let trust = if minor >= 35 {
        match read_u64(&mut stream, "the trust flag")? {
            0 => Trust::Unknown,
            1 => Trust::Yes,
            2 => Trust::No,
            value => {
                return Err(Error::BadValue {
                    what: "the trust flag",
                    value,
                })
            }
        }
    } else {
        Trust::Unknown
    };
    let mut client = Client {
        stream,
        limits,
        info: ServerInfo {
            daemon_version,
            protocol,
            nix_version,
            trust,
            features,
        },
        log: Vec::new(),
    };
    client.stderr_loop()?;
    Ok(client)
}

impl<S: Read + Write> Client<S> {
    /// `IsValidPath`: is `path` valid in the daemon's store? A cheap
    /// round trip that proves the channel works.
    ///
    /// # Errors
    /// The stream failed or timed out, the daemon reported an error
    /// ([`Error::Remote`]), or its answer is malformed ([`Error::BadValue`]
    /// and the like).
    pub fn is_valid_path(&mut self, path: &str) -> Result<bool, Error> {
        let mut out = Vec::new();
        put_u64(&mut out, OP_IS_VALID_PATH);
        put_string(&mut out, path.as_bytes());
        send(&mut self.stream, &out, "IsValidPath")?;
        self.stderr_loop()?;
        match read_u64(&mut self.stream, "the IsValidPath answer")? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(Error::BadValue {
                what: "the IsValidPath answer",
                value,
            }),
        }
    }

    /// `QueryValidPaths`: which of `paths` are valid in the daemon's
    /// store, all in one round trip. Never substitutes (the `substitute`
    /// flag, sent from protocol 1.27 on, is false). The answer is the valid
    /// ones, in the daemon's order (sorted), each one of `paths`.
    ///
    /// Request (daemon.cc `performOp`): the op, the path set (count, then
    /// each path as a string), the flag. Answer: the stderr loop, then the
    /// valid set in the same form. The daemon parses every path first: a
    /// path it cannot parse (another store directory, a bad hash part) is
    /// an [`Error::Remote`] and the daemon closes the connection.
    ///
    /// # Errors
    /// The stream failed or timed out, the daemon reported an error
    /// ([`Error::Remote`]), or its answer is malformed or names a path not
    /// asked about ([`Error::Unrequested`]).
    pub fn query_valid_paths<P: AsRef<str>>(&mut self, paths: &[P]) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        put_u64(&mut out, OP_QUERY_VALID_PATHS);
        put_u64(&mut out, paths.len() as u64);
        for p in paths {
            put_string(&mut out, p.as_ref().as_bytes());
        }
        if self.info.protocol & 0xff >= 27 {
            put_u64(&mut out, 0);
        }
        send(&mut self.stream, &out, "QueryValidPaths")?;
        self.stderr_loop()?;
        // The answer is a subset of the question: its size bounds the
        // count, and every path must be one we asked about.
        let count = read_u64(&mut self.stream, "the QueryValidPaths answer")?;
        bound_count(
            count,
            paths.len() as u64,
            "paths in the QueryValidPaths answer",
        )?;
        let asked: std::collections::HashSet<&str> = paths.iter().map(AsRef::as_ref).collect();
        let mut valid = Vec::new();
        for _ in 0..count {
            let path = read_string(&mut self.stream, self.limits.max_string, "a valid path")?;
            if !asked.contains(path.as_str()) {
                return Err(Error::Unrequested { path });
            }
            valid.push(path);
        }
        Ok(valid)
    }

    /// The stream, to close it or read what follows.
    pub fn into_inner(self) -> S {
        self.stream
    }

    /// The stream, borrowed.
    pub fn stream_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// Read stderr messages until LAST; an ERROR becomes [`Error::Remote`].
    fn stderr_loop(&mut self) -> Result<(), Error> {
        let limits = self.limits;
        let s = &mut self.stream;
        for _ in 0..limits.max_messages {
            let code = read_u64(s, "a stderr message")?;
            match code {
                STDERR_LAST => return Ok(()),
                STDERR_NEXT => {
                    let line = read_string(s, limits.max_string, "a log line")?;
                    keep(&mut self.log, line, limits.keep_log);
                }
                STDERR_ERROR => return Err(read_error(s, &limits, self.info.protocol)),
                STDERR_START_ACTIVITY => {
                    let _id = read_u64(s, "an activity id")?;
                    let _level = read_u64(s, "an activity level")?;
                    let _type = read_u64(s, "an activity type")?;
                    let text = read_string(s, limits.max_string, "an activity text")?;
                    skip_fields(s, &limits)?;
                    let _parent = read_u64(s, "an activity parent")?;
                    if !text.is_empty() {
                        keep(&mut self.log, text, limits.keep_log);
                    }
                }
                STDERR_STOP_ACTIVITY => {
                    let _id = read_u64(s, "an activity id")?;
                }
                STDERR_RESULT => {
                    let _id = read_u64(s, "an activity id")?;
                    let _type = read_u64(s, "a result type")?;
                    skip_fields(s, &limits)?;
                }
                // The requests made here never stream data either way.
                STDERR_READ => return Err(Error::UnexpectedTransfer { what: "read" }),
                STDERR_WRITE => return Err(Error::UnexpectedTransfer { what: "write" }),
                code => return Err(Error::UnknownMessage { code }),
            }
        }
        Err(Error::TooMany {
            what: "stderr messages before LAST",
            count: limits.max_messages,
            max: limits.max_messages,
        })
    }
}

fn keep(log: &mut Vec<String>, line: String, max: usize) {
    if max == 0 {
        return;
    }
    if log.len() >= max {
        log.remove(0);
    }
    log.push(line);
}

/// The ERROR payload: since 1.26 the structured form (serialise.cc
/// `readError`): "Error", level, name, message, position flag (0), trace
/// count, then per trace a position flag (0) and the text. Older: message
/// and exit status.
fn read_error<R: Read>(s: &mut R, limits: &Limits, protocol: u64) -> Error {
    let parsed = (|| {
        if protocol & 0xff < 26 {
            let message = read_string(s, limits.max_string, "an error message")?;
            let _status = read_u64(s, "an error status")?;
            return Ok((message, Vec::new()));
        }
        let kind = read_string(s, limits.max_string, "an error type")?;
        if kind != "Error" {
            return Err(Error::NotADaemon {
                preview: format!("error type {kind:?}"),
            });
        }
        let _level = read_u64(s, "an error level")?;
        let _name = read_string(s, limits.max_string, "an error name")?;
        let message = read_string(s, limits.max_string, "an error message")?;
        let pos = read_u64(s, "an error position")?;
        if pos != 0 {
            return Err(Error::BadValue {
                what: "an error position",
                value: pos,
            });
        }
        let count = read_u64(s, "an error trace count")?;
        bound_count(count, limits.max_traces, "error traces")?;
        let mut traces = Vec::new();
        for _ in 0..count {
            let pos = read_u64(s, "a trace position")?;
            if pos != 0 {
                return Err(Error::BadValue {
                    what: "a trace position",
                    value: pos,
                });
            }
            traces.push(read_string(s, limits.max_string, "an error trace")?);
        }
        Ok((message, traces))
    })();
    match parsed {
        Ok((message, traces)) => Error::Remote { message, traces },
        Err(e) => e,
    }
}

/// Activity fields: a count, then per field a type (0 int, 1 string) and
/// the value. Nothing here needs them; they are read and dropped.
fn skip_fields<R: Read>(s: &mut R, limits: &Limits) -> Result<(), Error> {
    let count = read_u64(s, "a field count")?;
    bound_count(count, limits.max_list, "activity fields")?;
    for _ in 0..count {
        match read_u64(s, "a field type")? {
            0 => {
                read_u64(s, "an integer field")?;
            }
            1 => {
                read_string(s, limits.max_string, "a string field")?;
            }
            value => {
                return Err(Error::BadValue {
                    what: "a field type",
                    value,
                })
            }
        }
    }
    Ok(())
}

fn bound_count(count: u64, max: u64, what: &'static str) -> Result<(), Error> {
    if count > max {
        return Err(Error::TooMany { what, count, max });
    }
    Ok(())
}

/// After a wrong magic, show what the peer sent (a shell's error, a
/// banner): up to 120 more bytes, printable characters only.
fn not_a_daemon<R: Read>(s: &mut R, first: &[u8]) -> Error {
    let mut buf = first.to_vec();
    let mut more = [0u8; 120];
    // Best effort: what is already there, no waiting for more than one read.
    if let Ok(n) = s.read(&mut more) {
        buf.extend_from_slice(&more[..n]);
    }
    let text: String = String::from_utf8_lossy(&buf)
        .chars()
        .map(|c| if c.is_control() && c != '\n' { '.' } else { c })
        .collect();
    Error::NotADaemon {
        preview: text.trim_end().to_owned(),
    }
}

fn io_error(e: io::Error, what: &'static str) -> Error {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => Error::Eof { what },
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::TimedOut { what },
        _ => Error::Io { what, source: e },
    }
}

fn send<W: Write>(s: &mut W, bytes: &[u8], what: &'static str) -> Result<(), Error> {
    s.write_all(bytes)
        .and_then(|()| s.flush())
        .map_err(|source| match source.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => Error::TimedOut { what },
            _ => Error::Send { what, source },
        })
}

fn read_exact<R: Read>(s: &mut R, buf: &mut [u8], what: &'static str) -> Result<(), Error> {
    s.read_exact(buf).map_err(|e| io_error(e, what))
}

fn read_u64<R: Read>(s: &mut R, what: &'static str) -> Result<u64, Error> {
    let mut b = [0u8; 8];
    read_exact(s, &mut b, what)?;
    Ok(u64::from_le_bytes(b))
}

/// A string, lossily decoded; the length is checked before allocating.
fn read_string<R: Read>(s: &mut R, max: u64, what: &'static str) -> Result<String, Error> {
    let len = read_u64(s, what)?;
    if len > max {
        return Err(Error::TooLong { what, len, max });
    }
    // len <= max, which is far below usize::MAX.
    let len = usize::try_from(len).map_err(|_| Error::TooLong { what, len, max })?;
    let mut bytes = vec![0u8; len];
    read_exact(s, &mut bytes, what)?;
    let pad = (8 - len % 8) % 8;
    let mut zeros = [0u8; 8];
    read_exact(s, &mut zeros[..pad], what)?;
    if zeros.iter().any(|&b| b != 0) {
        return Err(Error::Padding { what });
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn read_strings<R: Read>(
    s: &mut R,
    limits: &Limits,
    what: &'static str,
) -> Result<Vec<String>, Error> {
    let count = read_u64(s, what)?;
    bound_count(count, limits.max_list, what)?;
    let mut out = Vec::new();
    for _ in 0..count {
        out.push(read_string(s, limits.max_string, what)?);
    }
    Ok(out)
}

fn put_u64(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(&n.to_le_bytes());
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    put_u64(out, s.len() as u64);
    out.extend_from_slice(s);
    out.resize(out.len() + (8 - s.len() % 8) % 8, 0);
}

/// Encoders for a fake daemon in tests (here, in lb-ping and in the fuzz
/// target's seed corpus).
pub mod script {
    /// A u64 as the wire has it.
    #[must_use]
    pub fn u64(n: u64) -> Vec<u8> {
        n.to_le_bytes().to_vec()
    }

    /// A string as the wire has it.
    #[must_use]
    pub fn string(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        super::put_string(&mut v, s.as_bytes());
        v
    }

    /// What a daemon of `version` sends for a complete handshake.
    #[must_use]
    pub fn handshake(version: u64, nix_version: &str, trust: u64) -> Vec<u8> {
        let minor = version & 0xff;
        let mut v = u64(super::WORKER_MAGIC_2);
        v.extend(u64(version));
        if minor >= 38 {
            v.extend(u64(1));
            v.extend(string("some-feature"));
        }
        if minor >= 33 {
            v.extend(string(nix_version));
        }
        if minor >= 35 {
            v.extend(u64(trust));
        }
        v.extend(u64(super::STDERR_LAST));
        v
    }

    /// `STDERR_NEXT`: a log line follows.
    pub const NEXT: u64 = super::STDERR_NEXT;
    /// `STDERR_LAST`: the end of the stderr messages.
    pub const LAST: u64 = super::STDERR_LAST;
    /// `STDERR_ERROR`: an error follows; the request failed.
    pub const ERROR: u64 = super::STDERR_ERROR;
    /// `STDERR_READ`: the daemon asks the client for data.
    pub const READ: u64 = super::STDERR_READ;
    /// `STDERR_START_ACTIVITY`: an activity begins (id, level, type, text,
    /// fields, parent follow).
    pub const START_ACTIVITY: u64 = super::STDERR_START_ACTIVITY;
    /// `STDERR_STOP_ACTIVITY`: an activity ends (its id follows).
    pub const STOP_ACTIVITY: u64 = super::STDERR_STOP_ACTIVITY;
    /// `STDERR_RESULT`: an activity's result (id, type, fields follow).
    pub const RESULT: u64 = super::STDERR_RESULT;
}

/// Run the handshake and one IsValidPath against `server` bytes, writing
/// to nowhere: the fuzz target and the property test both call this.
///
/// # Errors
/// Whatever [`handshake`] or [`Client::is_valid_path`] returns for those
/// bytes.
pub fn exercise(server: &[u8]) -> Result<bool, Error> {
    let stream = Duplex {
        reader: server,
        writer: io::sink(),
    };
    let mut client = handshake(stream)?;
    client.is_valid_path("/nix/store/00000000000000000000000000000000-lb-ping")
}

#[cfg(test)]
mod tests {
    use super::script::{self, string, u64 as w};
    use super::*;

    type Fake = Duplex<io::Cursor<Vec<u8>>, Vec<u8>>;

    /// Handshake against `server`; also returns how many bytes were left.
    fn client_bytes(server: &[u8]) -> (Result<Client<Fake>, Error>, usize) {
        let stream = Duplex {
            reader: io::Cursor::new(server.to_vec()),
            writer: Vec::new(),
        };
        let r = handshake(stream);
        let rest = match &r {
            Ok(c) => server.len() - c.stream.reader.position() as usize,
            Err(_) => 0,
        };
        (r, rest)
    }

    #[test]
    fn handshake_1_34_reads_version_and_no_trust() {
        let (c, rest) = client_bytes(&script::handshake(0x122, "2.8.0", 0));
        let c = c.unwrap();
        assert_eq!(rest, 0);
        assert_eq!(c.info.protocol, 0x122);
        assert_eq!(c.info.nix_version.as_deref(), Some("2.8.0"));
        assert_eq!(c.info.trust, Trust::Unknown);
        // magic, our version, affinity, reserveSpace.
        let mut want = w(WORKER_MAGIC_1);
        want.extend(w(CLIENT_VERSION));
        want.extend(w(0));
        want.extend(w(0));
        assert_eq!(c.stream.writer, want);
    }

    #[test]
    fn handshake_1_35_and_1_37_read_trust() {
        for (v, t, want) in [
            (0x123, 1, Trust::Yes),
            (0x125, 2, Trust::No),
            (0x125, 0, Trust::Unknown),
        ] {
            let (c, _) = client_bytes(&script::handshake(v, "2.20.1", t));
            let c = c.unwrap();
            assert_eq!((c.info.protocol, c.info.trust), (v, want));
        }
    }

    #[test]
    fn handshake_1_38_exchanges_features() {
        let (c, rest) = client_bytes(&script::handshake(0x126, "2.24.0", 1));
        let c = c.unwrap();
        assert_eq!(rest, 0);
        assert_eq!(c.info.features, vec!["some-feature".to_owned()]);
        let mut want = w(WORKER_MAGIC_1);
        want.extend(w(CLIENT_VERSION));
        want.extend(w(0)); // our empty feature set
        want.extend(w(0));
        want.extend(w(0));
        assert_eq!(c.stream.writer, want);
    }

    #[test]
    fn newer_daemon_is_spoken_to_at_our_version() {
        // 1.40 offered, 1.38 negotiated: the bytes follow 1.38.
        let mut s = script::handshake(0x126, "2.99", 1);
        s[8..16].copy_from_slice(&w(0x128));
        let (c, _) = client_bytes(&s);
        let c = c.unwrap();
        assert_eq!((c.info.daemon_version, c.info.protocol), (0x128, 0x126));
    }

    #[test]
    fn old_and_foreign_versions_are_refused() {
        for v in [0x121, 0x21f, 0x0] {
            let mut s = w(WORKER_MAGIC_2);
            s.extend(w(v));
            let (c, _) = client_bytes(&s);
            assert!(matches!(c.unwrap_err(), Error::Unsupported { version } if version == v));
        }
    }

    #[test]
    fn garbage_is_not_a_daemon_and_shows_what_came() {
        let (c, _) = client_bytes(b"bash: nix-daemon: command not found\n");
        let e = c.unwrap_err();
        assert!(matches!(e, Error::NotADaemon { .. }));
        assert!(e.to_string().contains("command not found"), "{e}");
    }

    #[test]
    fn eof_names_what_was_read() {
        let (c, _) = client_bytes(&w(WORKER_MAGIC_2));
        let e = c.unwrap_err();
        assert!(
            matches!(
                e,
                Error::Eof {
                    what: "the daemon's protocol version"
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn structured_error_in_handshake() {
        let mut s = script::handshake(0x122, "2.8.0", 0);
        s.truncate(s.len() - 8); // drop LAST
        s.extend(w(script::NEXT));
        s.extend(string("warning: something"));
        s.extend(w(script::ERROR));
        s.extend(string("Error"));
        s.extend(w(0));
        s.extend(string("Error"));
        s.extend(string("user 'x' is not allowed"));
        s.extend(w(0));
        s.extend(w(1));
        s.extend(w(0));
        s.extend(string("while doing things"));
        let (c, _) = client_bytes(&s);
        match c.unwrap_err() {
            Error::Remote { message, traces } => {
                assert_eq!(message, "user 'x' is not allowed");
                assert_eq!(traces, vec!["while doing things".to_owned()]);
            }
            e => panic!("{e:?}"),
        }
    }

    #[test]
    fn activities_and_results_are_skipped() {
        let mut s = script::handshake(0x122, "2.8.0", 0);
        s.truncate(s.len() - 8);
        s.extend(w(script::START_ACTIVITY));
        s.extend(w(7));
        s.extend(w(3));
        s.extend(w(100));
        s.extend(string("copying"));
        s.extend(w(2));
        s.extend(w(0));
        s.extend(w(42));
        s.extend(w(1));
        s.extend(string("field"));
        s.extend(w(0));
        s.extend(w(script::RESULT));
        s.extend(w(7));
        s.extend(w(105));
        s.extend(w(0));
        s.extend(w(script::STOP_ACTIVITY));
        s.extend(w(7));
        s.extend(w(script::LAST));
        // IsValidPath answer.
        s.extend(w(script::LAST));
        s.extend(w(1));
        let (c, _) = client_bytes(&s);
        let mut c = c.unwrap();
        assert_eq!(c.log, vec!["copying".to_owned()]);
        assert!(c.is_valid_path("/nix/store/x").unwrap());
        let written = &c.stream.writer;
        let op = &written[written.len() - 32..];
        assert_eq!(&op[..8], &w(1)[..]);
        assert_eq!(&op[8..], &string("/nix/store/x")[..]);
    }

    const P1: &str = "/nix/store/00000000000000000000000000000001-a";
    const P2: &str = "/nix/store/00000000000000000000000000000002-b";

    /// A 1.34 daemon after the handshake, answering QueryValidPaths with
    /// `answer` after a log line.
    fn query_script(answer: &[&str]) -> Vec<u8> {
        let mut s = script::handshake(0x122, "2.8.0", 0);
        s.extend(w(script::NEXT));
        s.extend(string("querying"));
        s.extend(w(script::LAST));
        s.extend(w(answer.len() as u64));
        for p in answer {
            s.extend(string(p));
        }
        s
    }

    #[test]
    fn query_valid_paths_sends_the_set_and_no_substitution() {
        let (c, _) = client_bytes(&query_script(&[P2]));
        let mut c = c.unwrap();
        let before = c.stream.writer.len();
        assert_eq!(c.query_valid_paths(&[P1, P2]).unwrap(), vec![P2.to_owned()]);
        assert_eq!(c.log, vec!["querying".to_owned()]);
        // op 31, two paths, substitute = false (protocol >= 1.27).
        let mut want = w(31);
        want.extend(w(2));
        want.extend(string(P1));
        want.extend(string(P2));
        want.extend(w(0));
        assert_eq!(&c.stream.writer[before..], &want[..]);
        assert_eq!(
            c.stream.reader.position() as usize,
            c.stream.reader.get_ref().len()
        );
    }

    #[test]
    fn query_valid_paths_with_nothing_valid_or_nothing_asked() {
        let (c, _) = client_bytes(&query_script(&[]));
        assert!(c.unwrap().query_valid_paths(&[P1]).unwrap().is_empty());
        let (c, _) = client_bytes(&query_script(&[]));
        let mut c = c.unwrap();
        let empty: [&str; 0] = [];
        assert!(c.query_valid_paths(&empty).unwrap().is_empty());
    }

    #[test]
    fn query_valid_paths_refuses_answers_beyond_the_question() {
        // A path we did not ask about.
        let (c, _) = client_bytes(&query_script(&[P2]));
        let e = c.unwrap().query_valid_paths(&[P1]).unwrap_err();
        assert!(
            matches!(&e, Error::Unrequested { path } if path == P2),
            "{e:?}"
        );
        // More paths than asked: refused before reading them.
        let (c, _) = client_bytes(&query_script(&[P1, P2]));
        let e = c.unwrap().query_valid_paths(&[P1]).unwrap_err();
        assert!(
            matches!(
                e,
                Error::TooMany {
                    count: 2,
                    max: 1,
                    ..
                }
            ),
            "{e:?}"
        );
        // A huge count from a hostile peer.
        let mut s = script::handshake(0x122, "2.8.0", 0);
        s.extend(w(script::LAST));
        s.extend(w(u64::MAX));
        let (c, _) = client_bytes(&s);
        let e = c.unwrap().query_valid_paths(&[P1]).unwrap_err();
        assert!(matches!(e, Error::TooMany { .. }), "{e:?}");
    }

    #[test]
    fn query_valid_paths_reports_the_daemon_error() {
        // What Nix 2.8 sends for a path outside its store (parseStorePath).
        let mut s = script::handshake(0x122, "2.8.0", 0);
        s.extend(w(script::ERROR));
        s.extend(string("Error"));
        s.extend(w(0));
        s.extend(string("Error"));
        s.extend(string("path '/x/y' is not in the Nix store"));
        s.extend(w(0));
        s.extend(w(0));
        let (c, _) = client_bytes(&s);
        let e = c.unwrap().query_valid_paths(&["/x/y"]).unwrap_err();
        assert!(
            matches!(&e, Error::Remote { message, .. } if message.contains("not in the Nix store")),
            "{e:?}"
        );
    }

    #[test]
    fn read_request_is_an_error() {
        let mut s = script::handshake(0x122, "2.8.0", 0);
        s.truncate(s.len() - 8);
        s.extend(w(script::READ));
        s.extend(w(100));
        let (c, _) = client_bytes(&s);
        assert!(matches!(
            c.unwrap_err(),
            Error::UnexpectedTransfer { what: "read" }
        ));
    }

    #[test]
    fn huge_lengths_are_refused_before_allocating() {
        let mut s = w(WORKER_MAGIC_2);
        s.extend(w(0x122));
        s.extend(w(u64::MAX)); // version string length
        let (c, _) = client_bytes(&s);
        assert!(matches!(
            c.unwrap_err(),
            Error::TooLong { len: u64::MAX, .. }
        ));

        let mut s = w(WORKER_MAGIC_2);
        s.extend(w(0x126));
        s.extend(w(1 << 40)); // feature count
        let (c, _) = client_bytes(&s);
        assert!(matches!(c.unwrap_err(), Error::TooMany { .. }));

        let mut s = script::handshake(0x122, "2.8.0", 0);
        s.truncate(s.len() - 8);
        s.extend(w(script::ERROR));
        s.extend(string("Error"));
        s.extend(w(0));
        s.extend(string("Error"));
        s.extend(string("m"));
        s.extend(w(0));
        s.extend(w(1_000_000)); // traces
        let (c, _) = client_bytes(&s);
        assert!(matches!(
            c.unwrap_err(),
            Error::TooMany {
                what: "error traces",
                ..
            }
        ));
    }

    #[test]
    fn endless_log_is_cut_off() {
        let mut s = script::handshake(0x122, "2.8.0", 0);
        s.truncate(s.len() - 8);
        for i in 0..50 {
            s.extend(w(script::NEXT));
            s.extend(string(&format!("line {i}")));
        }
        let limits = Limits {
            max_messages: 40,
            keep_log: 3,
            ..Limits::default()
        };
        let stream = Duplex {
            reader: &s[..],
            writer: Vec::new(),
        };
        let e = handshake_with(stream, limits).unwrap_err();
        assert!(matches!(e, Error::TooMany { .. }), "{e:?}");
    }

    #[test]
    fn bad_padding_is_refused() {
        let mut s = w(WORKER_MAGIC_2);
        s.extend(w(0x122));
        s.extend(w(3));
        s.extend(b"2.8\x01\0\0\0\0");
        let (c, _) = client_bytes(&s);
        assert!(matches!(c.unwrap_err(), Error::Padding { .. }));
    }

    /// A tiny deterministic generator (xorshift), so the property test
    /// needs no crate and is reproducible.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Arbitrary server bytes never panic and always end (a finite input
    /// runs out); mutations of a valid exchange reach deep into the loop.
    #[test]
    fn arbitrary_server_bytes_end_in_an_answer_or_an_error() {
        let mut valid = script::handshake(0x122, "2.8.0", 0);
        valid.extend(w(script::LAST));
        valid.extend(w(0));
        assert!(!exercise(&valid).unwrap());
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for round in 0..20_000 {
            let input: Vec<u8> = if round % 2 == 0 {
                let len = (rng.next() % 256) as usize;
                (0..len).map(|_| rng.next() as u8).collect()
            } else {
                let mut v = valid.clone();
                for _ in 0..=(rng.next() % 4) {
                    let i = (rng.next() as usize) % v.len();
                    v[i] = rng.next() as u8;
                }
                if rng.next() % 3 == 0 {
                    v.truncate((rng.next() as usize) % v.len());
                }
                v
            };
            let _ = exercise(&input);
        }
    }
}

#[cfg(test)]
mod peer_text_tests {
    use super::script::{self, u64 as w};

    #[test]
    fn version_with_control_characters_is_read_as_sent() {
        let forged = "2.8.0\x1b]0;pwned\x07\nssh-ng://forged ok";
        let mut s = script::handshake(0x123, forged, 1);
        s.extend(w(script::LAST));
        s.extend(w(0));
        let r = super::exercise(&s);
        assert!(matches!(r, Ok(false)), "{r:?}");
    }
}
