//! SSH as the tools see it: alias resolution the way `ssh` itself does it
//! (`ssh -G`), and an ssh2 session to a builder whose host key is always
//! checked (against the expected key, or the known-hosts entry; an unknown
//! key is never accepted).
//!
//! The session is opened in the stages a diagnosis needs, each its own
//! call so a caller can time it and name the one that failed:
//! [`connect`] (TCP), [`Connection::handshake`] (SSH), [`Connection::check_host_key`],
//! [`Connection::authenticate`], [`Connection::exec`]. Every stage honours
//! one deadline: the socket and session timeouts are set from the time
//! left before each blocking call.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::builder::HostKey;
use crate::cmd::Cmd;
use crate::paths::Root;
use crate::status::{Classify, Status};

/// What `ssh -G` reports for a host: the values ssh would use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The host name to connect to (`hostname`; empty if ssh printed none).
    pub hostname: String,
    /// The TCP port (`port`; 22 if ssh printed none or an unreadable one).
    pub port: u16,
    /// The user to log in as (`user`; empty if ssh printed none).
    pub user: String,
    /// The name host keys are looked up under (`hostkeyalias`); `None`
    /// when unset or `none`.
    pub host_key_alias: Option<String>,
    /// The private keys to try, one per `identityfile` line, unexpanded.
    pub identity_files: Vec<PathBuf>,
    /// The user's known-hosts files (`userknownhostsfile`), unexpanded.
    pub user_known_hosts_files: Vec<PathBuf>,
    /// The system's known-hosts files (`globalknownhostsfile`), unexpanded.
    pub global_known_hosts_files: Vec<PathBuf>,
    /// Every option ssh reported, lower-case keyword to values.
    pub options: BTreeMap<String, Vec<String>>,
}

/// The ssh_config a tool must read: `ROOT/etc/ssh/ssh_config` under a
/// scratch root (passed with `-F`), else ssh's own defaults.
#[must_use]
pub fn config_file(root: &Root) -> Option<PathBuf> {
    (!root.is_real()).then(|| root.lexical(Path::new("/etc/ssh/ssh_config")))
}

/// `$NIX_SSHOPTS` split into words as today's Nix splits it (shell words,
/// quotes honoured: Nix 2.26 and later; older Nix split on whitespace,
/// which gives the same words for every value without quotes). A value
/// with an unbalanced quote falls back to whitespace splitting.
#[must_use]
pub fn nix_sshopts(value: Option<&str>) -> Vec<String> {
    let value = value.unwrap_or_default();
    shlex::split(value).unwrap_or_else(|| value.split_whitespace().map(str::to_owned).collect())
}

/// True when the words choose an ssh_config of their own (`-F FILE` or
/// `-FFILE`): then that file is the one ssh reads, not the root's.
#[must_use]
pub fn chooses_config(words: &[String]) -> bool {
    words.iter().any(|w| w.starts_with("-F"))
}

/// True when the ssh command-line words set `keyword` (lower case, as in
/// ssh_config): `-o Keyword=V`, `-oKeyword V`, or the short flag for it
/// (`-p` Port, `-l` User, `-i` IdentityFile). Options on ssh's command
/// line come before every configuration file.
#[must_use]
pub fn sshopts_set(words: &[String], keyword: &str) -> bool {
    let short = match keyword {
        "port" => Some("-p"),
        "user" => Some("-l"),
        "identityfile" => Some("-i"),
        _ => None,
    };
    let names = |option: &str| {
        option
            .split(['=', ' ', '\t'])
            .next()
            .is_some_and(|k| k.eq_ignore_ascii_case(keyword))
    };
    let mut it = words.iter().peekable();
    while let Some(w) = it.next() {
        if w == "-o" {
            if it.next().is_some_and(|o| names(o)) {
                return true;
            }
        } else if let Some(o) = w.strip_prefix("-o") {
            if names(o) {
                return true;
            }
        } else if short.is_some_and(|s| w.starts_with(s)) {
            return true;
        }
    }
    false
}

/// The `ssh -G` command for `host` (optionally as `user`), with the
/// options Nix passes to ssh (`$NIX_SSHOPTS`): what ssh reports is then
/// what Nix's own ssh would use.
#[must_use]
pub fn resolve_command(root: &Root, host: &str, user: Option<&str>) -> Cmd {
    let mut cmd = Cmd::new("ssh").hint("install OpenSSH's client (apt-get install openssh-client)");
    let opts = nix_sshopts(std::env::var("NIX_SSHOPTS").ok().as_deref());
    if let Some(f) = config_file(root).filter(|_| !chooses_config(&opts)) {
        cmd = cmd.arg("-F").arg(f);
    }
    cmd = cmd.args(opts);
    if let Some(u) = user {
        cmd = cmd.arg("-l").arg(u);
    }
    // `--`: a host that starts with `-` must never be read as an option.
    cmd.arg("-G").arg("--").arg(host)
}

/// Resolve `host` as ssh would.
///
/// # Errors
/// `ssh -G` could not be started or exited non-zero ([`crate::cmd::Error`]).
pub fn resolve(root: &Root, host: &str, user: Option<&str>) -> Result<Resolved, crate::cmd::Error> {
    let out = resolve_command(root, host, user).run()?;
    Ok(parse_dash_g(&out.stdout_text()))
}

/// Parse `ssh -G` output (`keyword value` lines, keywords lower-case).
#[must_use]
pub fn parse_dash_g(text: &str) -> Resolved {
    let mut options: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            options.entry(k.to_owned()).or_default().push(v.to_owned());
        }
    }
    let one = |k: &str| options.get(k).and_then(|v| v.first()).cloned();
    let paths = |k: &str| {
        options
            .get(k)
            .map(|v| {
                v.iter()
                    .flat_map(|s| {
                        // ssh -G joins several files with spaces; a value
                        // that is itself a file is one path with spaces
                        // (a root such as "/tmp/my root").
                        if s.contains(' ') && Path::new(s).is_file() {
                            vec![s.as_str()]
                        } else {
                            s.split_whitespace().collect()
                        }
                    })
                    .map(PathBuf::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    Resolved {
        hostname: one("hostname").unwrap_or_default(),
        port: one("port").and_then(|p| p.parse().ok()).unwrap_or(22),
        user: one("user").unwrap_or_default(),
        host_key_alias: one("hostkeyalias").filter(|a| a != "none"),
        // One file per `identityfile` line: a path with spaces stays whole.
        identity_files: options
            .get("identityfile")
            .map(|v| v.iter().map(PathBuf::from).collect())
            .unwrap_or_default(),
        user_known_hosts_files: paths("userknownhostsfile"),
        global_known_hosts_files: paths("globalknownhostsfile"),
        options,
    }
}

/// Expand a leading `~/` (ssh -G prints known-hosts paths unexpanded).
#[must_use]
pub fn expand_tilde(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::var_os("HOME")) {
        (Ok(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => path.to_path_buf(),
    }
}

/// The host key a session must present.
#[derive(Debug, Clone)]
pub enum ExpectedHostKey {
    /// The key the builders entry (or URI) names.
    Key(HostKey),
    /// Whatever the known_hosts files say for `name` (HostKeyAlias or host
    /// name) on `port`.
    KnownHosts {
        /// The name looked up: the HostKeyAlias, else the host name.
        name: String,
        /// The port looked up; 22 matches entries without a port (as ssh
        /// looks up an alias).
        port: u16,
        /// The known_hosts files to read; those that do not exist are
        /// skipped.
        files: Vec<PathBuf>,
    },
}

impl ExpectedHostKey {
    /// The known-hosts expectation ssh itself would use for `resolved`.
    #[must_use]
    pub fn from_resolved(resolved: &Resolved) -> Self {
        let files = resolved
            .user_known_hosts_files
            .iter()
            .chain(&resolved.global_known_hosts_files)
            .map(|p| expand_tilde(p))
            .collect();
        match &resolved.host_key_alias {
            // ssh looks an alias up as given, without the port.
            Some(alias) => ExpectedHostKey::KnownHosts {
                name: alias.clone(),
                port: 22,
                files,
            },
            None => ExpectedHostKey::KnownHosts {
                name: resolved.hostname.clone(),
                port: resolved.port,
                files,
            },
        }
    }
}

/// A failed step of opening a session. Each names the host (and path) it
/// concerns and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The host name did not resolve to an address.
    #[error("{addr}: cannot resolve the host name: {source}")]
    Address {
        /// `host:port`.
        addr: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No address of the host accepted a TCP connection (or the socket
    /// could not be shared with the session).
    #[error("{addr}: cannot connect: {source}")]
    Connect {
        /// `host:port`.
        addr: String,
        /// The error of the last address tried.
        source: io::Error,
    },
    /// The deadline passed before a stage finished.
    #[error("{addr}: timed out after {}s during {stage}", .after.as_secs_f32())]
    TimedOut {
        /// `host:port`.
        addr: String,
        /// The stage that was running ("TCP connect", "SSH handshake",
        /// "authentication", "exec", ...).
        stage: &'static str,
        /// How long after the attempt started (the TCP connect, or the
        /// handshake for the later stages) the time ran out.
        after: Duration,
    },
    /// The SSH handshake failed, or libssh2 could not set up the session.
    #[error("{addr}: SSH handshake failed: {detail}")]
    Handshake {
        /// `host:port`.
        addr: String,
        /// libssh2's message.
        detail: String,
    },
    /// The server offered a host key other than the one expected.
    #[error("{addr}: host key mismatch: expected {expected}, the server offers {offered}")]
    HostKeyMismatch {
        /// `host:port`.
        addr: String,
        /// The key expected: its fingerprint, or which known_hosts entry.
        expected: String,
        /// The SHA-256 fingerprint of the key the server offered.
        offered: String,
        /// The offered key as an OpenSSH public-key line (empty if it
        /// could not be encoded).
        offered_line: String,
    },
    /// No known_hosts file has an entry for the host: the key is refused.
    #[error("{addr}: host key {offered} is unknown: no entry for {name:?} in {}; add the builder's host key to the builders entry or known_hosts", files_list(.files))]
    HostKeyUnknown {
        /// `host:port`.
        addr: String,
        /// The name looked up (HostKeyAlias or host name).
        name: String,
        /// The known_hosts files searched.
        files: Vec<PathBuf>,
        /// The SHA-256 fingerprint of the key the server offered.
        offered: String,
        /// The offered key as an OpenSSH public-key line (empty if it
        /// could not be encoded).
        offered_line: String,
    },
    /// The server presented no host key, or one that could not be parsed.
    #[error("{addr}: the server sent no host key it could be checked by")]
    NoHostKey {
        /// `host:port`.
        addr: String,
    },
    /// The private key file could not be opened or read.
    #[error("{}: cannot read the SSH key: {source}", .path.display())]
    KeyUnreadable {
        /// The private key file.
        path: PathBuf,
        /// The error opening or reading it.
        source: io::Error,
    },
    /// The server refused public-key authentication.
    #[error("{addr}: the server refused key {} for user {user}: {detail}", .key.display())]
    AuthRefused {
        /// `host:port`.
        addr: String,
        /// The user logged in as.
        user: String,
        /// The private key file offered.
        key: PathBuf,
        /// libssh2's message.
        detail: String,
    },
    /// A channel could not be opened or the command could not be started.
    #[error("{addr}: cannot run `{command}`: {detail}")]
    Exec {
        /// `host:port`.
        addr: String,
        /// The command line sent to the server.
        command: String,
        /// libssh2's message.
        detail: String,
    },
}

fn files_list(files: &[PathBuf]) -> String {
    if files.is_empty() {
        return "no known_hosts file".to_owned();
    }
    files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

impl Classify for Error {
    fn status(&self) -> Status {
        Status::Failed
    }
}

impl Error {
    /// True for [`Error::TimedOut`]: the deadline passed.
    #[must_use]
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::TimedOut { .. })
    }
}

fn left(deadline: Instant) -> Option<Duration> {
    deadline
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
}

fn timed_out(addr: &str, stage: &'static str, started: Instant) -> Error {
    Error::TimedOut {
        addr: addr.to_owned(),
        stage,
        after: started.elapsed(),
    }
}

fn is_ssh_timeout(e: &ssh2::Error) -> bool {
    // LIBSSH2_ERROR_TIMEOUT and LIBSSH2_ERROR_SOCKET_TIMEOUT.
    matches!(e.code(), ssh2::ErrorCode::Session(-9 | -30))
}

/// `host:port`, bracketing IPv6 addresses.
#[must_use]
pub fn addr_label(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Open a TCP connection to `host:port` before `deadline`, trying each
/// address the name resolves to.
///
/// # Errors
/// The name does not resolve ([`Error::Address`]), no address accepts the
/// connection ([`Error::Connect`]), or the deadline passes
/// ([`Error::TimedOut`]).
pub fn connect(host: &str, port: u16, deadline: Instant) -> Result<TcpStream, Error> {
    let started = Instant::now();
    let addr = addr_label(host, port);
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|source| Error::Address {
            addr: addr.clone(),
            source,
        })?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the name has no address");
    for a in addrs {
        let Some(time) = left(deadline) else {
            return Err(timed_out(&addr, "TCP connect", started));
        };
        match TcpStream::connect_timeout(&a, time) {
            Ok(s) => {
                // Small requests and answers: do not wait to coalesce them.
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                return Err(timed_out(&addr, "TCP connect", started))
            }
            Err(e) => last = e,
        }
    }
    Err(Error::Connect { addr, source: last })
}

/// An SSH session after the handshake.
pub struct Connection {
    session: ssh2::Session,
    tcp: TcpStream,
    deadline: Instant,
    started: Instant,
    /// `host:port`, for messages.
    pub addr: String,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // As for RemoteProcess: never wait past the deadline to say goodbye.
        if left(self.deadline).is_none() {
            let _ = self.tcp.shutdown(std::net::Shutdown::Both);
        } else {
            let _ = self.arm("close");
        }
    }
}

impl Connection {
    /// Run the SSH handshake over `tcp`.
    ///
    /// # Errors
    /// libssh2 cannot set up the session or the handshake fails
    /// ([`Error::Handshake`]), the socket cannot be cloned
    /// ([`Error::Connect`]), or the deadline passes ([`Error::TimedOut`]).
    pub fn handshake(tcp: TcpStream, addr: &str, deadline: Instant) -> Result<Self, Error> {
        let session = ssh2::Session::new().map_err(|e| Error::Handshake {
            addr: addr.to_owned(),
            detail: e.to_string(),
        })?;
        let tcp_for_session = tcp.try_clone().map_err(|source| Error::Connect {
            addr: addr.to_owned(),
            source,
        })?;
        let mut conn = Connection {
            session,
            tcp,
            deadline,
            started: Instant::now(),
            addr: addr.to_owned(),
        };
        conn.session.set_tcp_stream(tcp_for_session);
        conn.arm("SSH handshake")?;
        conn.session.handshake().map_err(|e| {
            conn.ssh_error(&e, "SSH handshake", |addr, detail| Error::Handshake {
                addr,
                detail,
            })
        })?;
        Ok(conn)
    }

    /// Set the session and socket timeouts to the time left.
    fn arm(&self, stage: &'static str) -> Result<(), Error> {
        let time = left(self.deadline).ok_or_else(|| timed_out(&self.addr, stage, self.started))?;
        // 0 means "no timeout" to libssh2: never pass it.
        let ms = u32::try_from(time.as_millis()).unwrap_or(u32::MAX).max(1);
        self.session.set_timeout(ms);
        let _ = self.tcp.set_read_timeout(Some(time));
        let _ = self.tcp.set_write_timeout(Some(time));
        Ok(())
    }

    fn ssh_error(
        &self,
        e: &ssh2::Error,
        stage: &'static str,
        make: impl FnOnce(String, String) -> Error,
    ) -> Error {
        if is_ssh_timeout(e) || left(self.deadline).is_none() {
            timed_out(&self.addr, stage, self.started)
        } else {
            make(self.addr.clone(), e.to_string())
        }
    }

    /// The key the server presented, parsed.
    ///
    /// # Errors
    /// The server presented no key, or one that cannot be parsed
    /// ([`Error::NoHostKey`]).
    pub fn offered_key(&self) -> Result<ssh_key::PublicKey, Error> {
        let (blob, _) = self.session.host_key().ok_or_else(|| Error::NoHostKey {
            addr: self.addr.clone(),
        })?;
        ssh_key::PublicKey::from_bytes(blob).map_err(|_| Error::NoHostKey {
            addr: self.addr.clone(),
        })
    }

    /// Check the server's host key. Never accepts a key it cannot match.
    ///
    /// # Errors
    /// The key differs from the expected one ([`Error::HostKeyMismatch`]),
    /// no known_hosts entry names the host ([`Error::HostKeyUnknown`]), the
    /// server presented no usable key ([`Error::NoHostKey`]), or libssh2
    /// cannot set up its known-hosts check ([`Error::Handshake`]).
    pub fn check_host_key(&self, expected: &ExpectedHostKey) -> Result<(), Error> {
        let offered = self.offered_key()?;
        let fingerprint = offered.fingerprint(ssh_key::HashAlg::Sha256).to_string();
        let offered_line = offered.to_openssh().unwrap_or_default();
        match expected {
            ExpectedHostKey::Key(key) => {
                if key.same_key(&offered) {
                    Ok(())
                } else {
                    Err(Error::HostKeyMismatch {
                        addr: self.addr.clone(),
                        expected: key.fingerprint(),
                        offered: fingerprint,
                        offered_line,
                    })
                }
            }
            ExpectedHostKey::KnownHosts { name, port, files } => {
                let (blob, _) = self.session.host_key().ok_or_else(|| Error::NoHostKey {
                    addr: self.addr.clone(),
                })?;
                let mut known = self.session.known_hosts().map_err(|e| Error::Handshake {
                    addr: self.addr.clone(),
                    detail: e.to_string(),
                })?;
                for f in files.iter().filter(|f| f.is_file()) {
                    // A file libssh2 cannot parse counts as no entry: the
                    // key is then refused, never accepted.
                    let _ = known.read_file(f, ssh2::KnownHostFileKind::OpenSSH);
                }
                let result = if *port == 22 {
                    known.check(name, blob)
                } else {
                    known.check_port(name, *port, blob)
                };
                match result {
                    ssh2::CheckResult::Match => Ok(()),
                    ssh2::CheckResult::Mismatch => Err(Error::HostKeyMismatch {
                        addr: self.addr.clone(),
                        expected: format!("the known_hosts entry for {name:?}"),
                        offered: fingerprint,
                        offered_line,
                    }),
                    ssh2::CheckResult::NotFound | ssh2::CheckResult::Failure => {
                        Err(Error::HostKeyUnknown {
                            addr: self.addr.clone(),
                            name: name.clone(),
                            files: files.clone(),
                            offered: fingerprint,
                            offered_line,
                        })
                    }
                }
            }
        }
    }

    /// Public-key authentication as `user` with the private key `identity`.
    ///
    /// # Errors
    /// The key file cannot be read ([`Error::KeyUnreadable`]), the server
    /// refuses the key ([`Error::AuthRefused`]), or the deadline passes
    /// ([`Error::TimedOut`]).
    pub fn authenticate(&self, user: &str, identity: &Path) -> Result<(), Error> {
        // Open it ourselves first: libssh2 reports an unreadable file as a
        // vague authentication failure.
        std::fs::File::open(identity)
            .and_then(|mut f| f.read(&mut [0u8; 1]))
            .map_err(|source| Error::KeyUnreadable {
                path: identity.to_path_buf(),
                source,
            })?;
        self.arm("authentication")?;
        self.session
            .userauth_pubkey_file(user, None, identity, None)
            .map_err(|e| {
                self.ssh_error(&e, "authentication", |addr, detail| Error::AuthRefused {
                    addr,
                    user: user.to_owned(),
                    key: identity.to_path_buf(),
                    detail,
                })
            })?;
        if self.session.authenticated() {
            Ok(())
        } else {
            Err(Error::AuthRefused {
                addr: self.addr.clone(),
                user: user.to_owned(),
                key: identity.to_path_buf(),
                detail: "not authenticated".to_owned(),
            })
        }
    }

    /// Run `command` on the server; its stdin and stdout are the stream.
    ///
    /// # Errors
    /// A channel cannot be opened or the command cannot be started
    /// ([`Error::Exec`]), or the deadline passes ([`Error::TimedOut`]).
    pub fn exec(&self, command: &str) -> Result<RemoteProcess, Error> {
        self.arm("exec")?;
        let exec_err = |e: &ssh2::Error| {
            self.ssh_error(e, "exec", |addr, detail| Error::Exec {
                addr,
                command: command.to_owned(),
                detail,
            })
        };
        let mut channel = self.session.channel_session().map_err(|e| exec_err(&e))?;
        channel.exec(command).map_err(|e| exec_err(&e))?;
        Ok(RemoteProcess {
            channel,
            session: self.session.clone(),
            tcp: self.tcp.try_clone().ok(),
            deadline: self.deadline,
            broken: false,
        })
    }
}

/// A program running on the server: `Read` is its stdout, `Write` its
/// stdin. Every read and write is bounded by the session's deadline
/// (a timeout surfaces as `io::ErrorKind::TimedOut`).
pub struct RemoteProcess {
    channel: ssh2::Channel,
    session: ssh2::Session,
    tcp: Option<TcpStream>,
    deadline: Instant,
    /// A read or write failed: the stream is out of step.
    broken: bool,
}

impl Drop for RemoteProcess {
    fn drop(&mut self) {
        // libssh2 closes the channel and the session politely when they
        // are freed, waiting for the peer. A peer that stalled or broke
        // would hold us there: cut the socket so the close fails at once.
        if self.broken || left(self.deadline).is_none() {
            if let Some(t) = &self.tcp {
                let _ = t.shutdown(std::net::Shutdown::Both);
            }
        } else {
            let _ = self.arm();
        }
    }
}

impl std::fmt::Debug for RemoteProcess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteProcess").finish_non_exhaustive()
    }
}

impl RemoteProcess {
    fn arm(&self) -> io::Result<()> {
        let time = left(self.deadline).ok_or_else(|| io::Error::from(io::ErrorKind::TimedOut))?;
        let ms = u32::try_from(time.as_millis()).unwrap_or(u32::MAX).max(1);
        self.session.set_timeout(ms);
        if let Some(t) = &self.tcp {
            let _ = t.set_read_timeout(Some(time));
            let _ = t.set_write_timeout(Some(time));
        }
        Ok(())
    }

    /// After the program stopped answering: its exit status (if it
    /// exited) and the start of what it wrote on stderr (at most 4 KiB, so
    /// a noisy program cannot make us allocate much), within the deadline.
    pub fn finish(&mut self) -> (Option<i32>, String) {
        let mut err = Vec::new();
        if self.arm().is_ok() {
            let _ = self.channel.send_eof();
            let _ = self.channel.stderr().take(4096).read_to_end(&mut err);
        }
        let status = if self.arm().is_ok() && self.channel.wait_close().is_ok() {
            self.channel.exit_status().ok()
        } else {
            None
        };
        (status, String::from_utf8_lossy(&err).trim().to_owned())
    }
}

impl Read for RemoteProcess {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.arm()?;
        let r = self.channel.read(buf);
        self.broken |= r.is_err();
        r
    }
}

impl Write for RemoteProcess {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.arm()?;
        let r = self.channel.write(buf);
        self.broken |= r.is_err();
        r
    }
    /// Nothing to do: a blocking `write` has handed every byte to libssh2.
    /// Not `Channel::flush`: that is `libssh2_channel_flush_ex`, which
    /// *discards the unread input* of the channel, so a daemon that sent
    /// its next answer in the same packet as the last one (seen here: a
    /// peer that writes its whole handshake at once) lost it, and the read
    /// that followed waited out the timeout.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The command Nix runs for an ssh-ng store (ssh-store.cc): the remote
/// program (default `nix-daemon`) with `--stdio`, and `--store STORE` when
/// the URI names a remote store.
#[must_use]
pub fn daemon_command(remote_program: Option<&str>, remote_store: Option<&str>) -> String {
    let mut cmd = format!("{} --stdio", remote_program.unwrap_or("nix-daemon"));
    if let Some(store) = remote_store.filter(|s| !s.is_empty()) {
        let quoted = shlex::try_quote(store).unwrap_or_else(|_| store.to_owned().into());
        cmd.push_str(" --store ");
        cmd.push_str(&quoted);
    }
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nix_sshopts_split_as_todays_nix_does() {
        let w = |v: &str| nix_sshopts(Some(v));
        assert_eq!(
            w("-F /a/b -o BatchMode=yes"),
            ["-F", "/a/b", "-o", "BatchMode=yes"]
        );
        assert_eq!(
            w(r#"-o ProxyCommand="ssh -W %h:%p jump""#),
            ["-o", "ProxyCommand=ssh -W %h:%p jump"]
        );
        assert_eq!(w("-o 'unbalanced"), ["-o", "'unbalanced"]);
        assert!(nix_sshopts(None).is_empty());
        assert!(chooses_config(&w("-o X=1 -F/x")));
        assert!(!chooses_config(&w("-o X=1")));
    }

    #[test]
    fn sshopts_set_reads_o_and_short_flags() {
        let w = |v: &str| nix_sshopts(Some(v));
        assert!(sshopts_set(&w("-o Port=2222"), "port"));
        assert!(sshopts_set(&w("-oport=2222"), "port"));
        assert!(sshopts_set(&w("-p 2222"), "port"));
        assert!(sshopts_set(&w("-o 'HostKeyAlias x'"), "hostkeyalias"));
        assert!(sshopts_set(&w("-i /k"), "identityfile"));
        assert!(!sshopts_set(&w("-o BatchMode=yes -F /c"), "port"));
        assert!(!sshopts_set(&w("-o PortX=1"), "port"));
    }

    #[test]
    fn daemon_command_as_nix_builds_it() {
        assert_eq!(daemon_command(None, None), "nix-daemon --stdio");
        assert_eq!(
            daemon_command(Some("/run/x/nix-daemon"), Some("/tmp/my store")),
            "/run/x/nix-daemon --stdio --store '/tmp/my store'"
        );
    }

    #[test]
    fn known_hosts_expectation_follows_the_alias() {
        let r = parse_dash_g(
            "hostname 127.0.0.1\nport 2222\nhostkeyalias lb\nuserknownhostsfile /k1 /k2\n\
             globalknownhostsfile /g\n",
        );
        match ExpectedHostKey::from_resolved(&r) {
            ExpectedHostKey::KnownHosts { name, port, files } => {
                assert_eq!((name.as_str(), port, files.len()), ("lb", 22, 3));
            }
            ExpectedHostKey::Key(_) => panic!("expected known hosts"),
        }
        let r = parse_dash_g("hostname h\nport 2222\n");
        assert!(matches!(
            ExpectedHostKey::from_resolved(&r),
            ExpectedHostKey::KnownHosts { port: 2222, .. }
        ));
    }

    #[test]
    fn connect_to_a_closed_port_is_refused_and_named() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = connect("127.0.0.1", port, Instant::now() + Duration::from_secs(5)).unwrap_err();
        assert!(matches!(e, Error::Connect { .. }), "{e:?}");
        assert!(
            e.to_string()
                .starts_with(&format!("127.0.0.1:{port}: cannot connect")),
            "{e}"
        );
    }

    #[test]
    fn parses_dash_g() {
        let r = parse_dash_g(
            "user builder\nhostname localhost\nport 31022\nhostkeyalias linux-builder\n\
             identityfile /etc/nix/builder_ed25519\nidentityfile ~/.ssh/id_rsa\n\
             userknownhostsfile ~/.ssh/known_hosts ~/.ssh/known_hosts2\n",
        );
        assert_eq!(r.port, 31022);
        assert_eq!(r.host_key_alias.as_deref(), Some("linux-builder"));
        assert_eq!(r.identity_files.len(), 2);
        assert_eq!(r.user_known_hosts_files.len(), 2);
    }

    #[test]
    fn real_ssh_resolves_a_scratch_config() {
        let tmp = tempfile::tempdir().unwrap();
        let root = Root::new(Some(tmp.path())).unwrap();
        let cfg = root.system(Path::new("/etc/ssh/ssh_config")).unwrap();
        std::fs::create_dir_all(cfg.parent().unwrap()).unwrap();
        std::fs::write(
            &cfg,
            "Host lb\n  Hostname 127.0.0.1\n  Port 31555\n  User builder\n  HostKeyAlias lb\n",
        )
        .unwrap();
        let r = resolve(&root, "lb", None).unwrap();
        assert_eq!(
            (r.hostname.as_str(), r.port, r.user.as_str()),
            ("127.0.0.1", 31555, "builder")
        );
        assert_eq!(r.host_key_alias.as_deref(), Some("lb"));
        let r = resolve(&root, "lb", Some("other")).unwrap();
        assert_eq!(r.user, "other");
    }
}
