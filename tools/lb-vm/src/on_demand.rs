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

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use lb_common::exit::Status;
use lb_common::fs::Apply;
use lb_common::platform::QemuProfile;
use lb_common::{ui, usage};
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::ready::{self, Readiness};
use crate::vm::{Boot, Layout, VmSpec};
use crate::{process, qmp, relay, Ctx, StartArgs, StopArgs};

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

#[derive(Debug)]
struct Inner {
    phase: Phase,
    vm_pid: Option<u32>,
    guest_port: Option<u16>,
    open: usize,
    waiting: usize,
    /// When the last connection closed (or the VM came up with none).
    idle_since: Instant,
    boots: u64,
    boot_failures: u64,
    served: u64,
    held_over_shutdown: u64,
    last_error: Option<String>,
    quit: bool,
    /// The session the readiness probe opened (sshd greeted on it, which
    /// takes a loaded TCG guest seconds), the bytes read from it, and when:
    /// the first client to be relayed gets it instead of a new connection.
    session: Option<(TcpStream, Vec<u8>, Instant)>,
}

/// The state every thread shares; `changed` wakes waiters on any change.
#[derive(Debug)]
struct Shared {
    inner: Mutex<Inner>,
    changed: Condvar,
    port: u16,
    idle: Duration,
}

impl Shared {
    fn new(port: u16, idle: Duration) -> Self {
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

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking connection thread must not take the listener down.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn update(&self, f: impl FnOnce(&mut Inner)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    fn quitting(&self) -> bool {
        self.lock().quit
    }

    fn report(&self) -> Report {
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
    fn open(self: &Arc<Self>) -> OpenConnection {
        self.update(|g| g.open += 1);
        OpenConnection(Arc::clone(self))
    }
}

/// One open client connection; closing it may start the idle clock.
struct OpenConnection(Arc<Shared>);

/// Where a client's bytes go.
#[derive(Debug)]
enum Guest {
    /// A new connection to the guest's forward.
    Port(u16),
    /// The readiness probe's session: replay the bytes, then relay.
    Session(TcpStream, Vec<u8>),
}

impl OpenConnection {
    /// Wait until the VM is up (booting it if it is off) and say where to
    /// relay; `None` when the boot failed or the listener stops.
    fn wait_for_vm(&self) -> Option<Guest> {
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
    let _ = std::fs::remove_file(l.listener_pid());
    let _ = std::fs::remove_file(l.control());
}

fn address(port: u16) -> String {
    crate::address(port)
}

/// `lb-vm start --on-demand`: refuse what cannot work, then listen here
/// (`--foreground`) or in a detached copy of this command.
pub fn start(
    ctx: &Ctx,
    a: &StartArgs,
    spec: &VmSpec,
    profile: &QemuProfile,
) -> anyhow::Result<Status> {
    let l = &ctx.layout;
    let apply = Apply::from(a.change);
    if a.idle < Duration::from_secs(1) {
        return Err(usage!(
            "--idle {}: give at least 1s (for example 5m, 3h; default 180m)",
            humantime::format_duration(a.idle)
        ));
    }
    if let Some(r) = query(l) {
        if a.if_not_running || apply != Apply::Write {
            ui::note(&format!(
                "{} is already listening on demand (pid {}, VM {})",
                l.name,
                r.listener_pid,
                r.vm.as_str()
            ));
            if apply == Apply::Write {
                ui::out(&address(r.port))?;
            }
            return Ok(Status::Ok);
        }
        anyhow::bail!(
            "{} is already listening on demand on {} (pid {}); pass --if-not-running to accept that, or run `lb-vm stop` first",
            l.name,
            address(r.port),
            r.listener_pid
        );
    }
    check_port(spec)?;
    if let Some(status) = crate::preflight(ctx, a, spec, profile)? {
        return Ok(status);
    }
    match apply {
        Apply::Check => {
            ui::note(&format!(
                "{} is not listening; start would listen on {} on demand",
                l.name,
                address(spec.port)
            ));
            return Ok(Status::Failed);
        }
        Apply::DryRun => {
            let (accel, _) = crate::known_accel(ctx, &a.vm, profile);
            let accel = if matches!(spec.boot, Boot::Runner(_)) {
                "runner".to_owned()
            } else {
                accel
            };
            let mut guest = spec.clone();
            guest.port = private_port(spec.image_port);
            ui::out(&format!(
                "listen on {} (on demand; power off after {} idle)",
                address(spec.port),
                humantime::format_duration(a.idle)
            ))?;
            ui::out(&format!(
                "on the first connection (guest port chosen free at each boot): {}",
                guest.command(profile, &accel).display()
            ))?;
            return Ok(Status::Ok);
        }
        Apply::Write => {}
    }
    clean_stale(l);
    if a.foreground {
        serve(ctx, a, spec, profile)
    } else {
        detach(l, spec.port)
    }
}

/// A runner's QEMU binds its baked-in forward itself: the listener needs
/// another port.
pub fn check_port(spec: &VmSpec) -> anyhow::Result<()> {
    if matches!(spec.boot, Boot::Runner(_)) && spec.port == spec.image_port {
        return Err(usage!(
            "--port {}: a nixpkgs runner forwards {} to its guest itself (baked in), so an on-demand listener cannot hold it; give the builder another --port (e.g. 31023), and the same --port to lb-sshcfg and lb-nixconf",
            spec.port,
            spec.image_port
        ));
    }
    Ok(())
}

/// Run this same command again with `--foreground`, detached (its own
/// process group, output in the listener log), and return once it answers
/// on its control socket.
fn detach(l: &Layout, port: u16) -> anyhow::Result<Status> {
    std::fs::create_dir_all(&l.dir).with_context(|| format!("create {}", l.dir.display()))?;
    let exe = std::env::current_exe().context("find lb-vm's own path")?;
    let log_path = l.listener_log();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("open {}", log_path.display()))?;
    let err = log
        .try_clone()
        .with_context(|| format!("open {}", log_path.display()))?;
    let mut cmd = std::process::Command::new(&exe);
    cmd.args(std::env::args_os().skip(1))
        .arg("--foreground")
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("start {} --foreground", exe.display()))?;
    // The KVM probe (first start in a working directory) takes up to 20 s.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if query(l).is_some_and(|r| r.listener_pid == child.id()) {
            ui::note(&format!(
                "{} listens on {} on demand (pid {}; log {})",
                l.name,
                address(port),
                child.id(),
                log_path.display()
            ));
            ui::out(&address(port))?;
            return Ok(Status::Ok);
        }
        if let Some(st) = child.try_wait()? {
            anyhow::bail!(
                "the on-demand listener exited ({st}): {}",
                crate::tail(&log_path, 3).replace('\n', " / ")
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!(
                "the on-demand listener did not answer on {} within 60 s (log {})",
                l.control().display(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A loopback port nobody listens on now, for the guest's forward (never
/// `avoid`, the runner's baked-in one).
fn private_port(avoid: u16) -> u16 {
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_or(0, |a| a.port());
        if port != 0 && port != avoid {
            return port;
        }
    }
}

/// What the supervisor needs to boot the VM.
struct Boots<'a> {
    ctx: &'a Ctx,
    spec: &'a VmSpec,
    profile: &'a QemuProfile,
    accel: String,
    timeout: Duration,
    ephemeral: bool,
}

/// The listener, in this process: bind the port and the control socket,
/// then supervise the VM until `stop` or a signal.
fn serve(ctx: &Ctx, a: &StartArgs, spec: &VmSpec, profile: &QemuProfile) -> anyhow::Result<Status> {
    let l = &ctx.layout;
    std::fs::create_dir_all(&l.dir).with_context(|| format!("create {}", l.dir.display()))?;
    let accel = match spec.boot {
        Boot::Kernel { .. } => crate::choose_accel(ctx, &a.vm, spec, profile),
        Boot::Runner(_) => {
            std::fs::create_dir_all(l.tmp())
                .with_context(|| format!("create {}", l.tmp().display()))?;
            "runner".to_owned()
        }
    };
    // Loopback only: the relay never reaches beyond this machine.
    let listener = TcpListener::bind(("127.0.0.1", spec.port)).with_context(|| {
        format!(
            "listen on {}: {}",
            address(spec.port),
            process::port_owner(spec.port).unwrap_or_else(|| "in use".to_owned())
        )
    })?;
    let _ = std::fs::remove_file(l.control());
    let control = UnixListener::bind(l.control())
        .with_context(|| format!("bind {}", l.control().display()))?;
    crate::write_json(
        &l.listener_pid(),
        format!("{}\n", std::process::id()).as_bytes(),
    )?;
    let shared = Arc::new(Shared::new(spec.port, a.idle));
    let result = (|| {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGHUP,
        ])
        .context("install signal handlers")?;
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("signals".to_owned())
            .spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    event(&format!("signal {sig}: powering the VM off and stopping"));
                    s.update(|g| g.quit = true);
                }
            })?;
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("accept".to_owned())
            .spawn(move || accept_loop(&listener, &s))?;
        let s = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("control".to_owned())
            .spawn(move || control_loop(&control, &s))?;
        event(&format!(
            "{} listens on {}; the VM boots on the first connection and powers off after {} idle",
            l.name,
            address(spec.port),
            humantime::format_duration(a.idle)
        ));
        ui::out(&address(spec.port))?;
        let boots = Boots {
            ctx,
            spec,
            profile,
            accel,
            timeout: Duration::from_secs(a.timeout),
            ephemeral: a.ephemeral,
        };
        supervise(&boots, &shared);
        anyhow::Ok(())
    })();
    let _ = std::fs::remove_file(l.control());
    let _ = std::fs::remove_file(l.listener_pid());
    result?;
    event(&format!("{} stopped listening", l.name));
    Ok(Status::Ok)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        let client = match stream {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: back off instead of spinning.
                event(&format!("accept: {e}"));
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let conn = shared.open();
        let spawned = std::thread::Builder::new()
            .name("connection".to_owned())
            .spawn(move || serve_connection(&conn, &client));
        if let Err(e) = spawned {
            event(&format!("cannot start a connection thread: {e}"));
        }
    }
}

fn serve_connection(conn: &OpenConnection, client: &TcpStream) {
    let _ = client.set_nodelay(true);
    let Some(guest) = conn.wait_for_vm() else {
        // The boot failed or lb-vm stops: the client sees the connection
        // close (it has not seen a banner yet).
        return;
    };
    match guest {
        Guest::Session(session, greeting) => {
            // sshd's banner, read by the probe, then the session as is.
            let mut to_client = client;
            if std::io::Write::write_all(&mut to_client, &greeting).is_ok() {
                let _ = session.set_nodelay(true);
                relay::relay(client, &session);
            }
        }
        Guest::Port(port) => match TcpStream::connect(("127.0.0.1", port)) {
            Ok(session) => {
                let _ = session.set_nodelay(true);
                relay::relay(client, &session);
            }
            Err(e) => event(&format!("connect to the guest on {}: {e}", address(port))),
        },
    }
}

fn control_loop(listener: &UnixListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        let Ok(mut s) = stream else { continue };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let Ok(line) = read_line(&s) else { continue };
        let answer = match line.trim() {
            "status" => serde_json::to_string(&shared.report()).unwrap_or_default(),
            "stop" => {
                event("asked to stop: powering the VM off");
                shared.update(|g| g.quit = true);
                r#"{"stopping":true}"#.to_owned()
            }
            other => {
                serde_json::json!({ "error": format!("unknown request {other:?}") }).to_string()
            }
        };
        let _ = s.write_all(format!("{answer}\n").as_bytes());
    }
}

/// What the supervisor does next.
enum Next {
    Boot,
    PowerOff,
    Died(String),
    Quit,
}

/// Wait until the supervisor has something to do, and say what. Decided
/// under the lock, so a connection sees every phase change at once.
fn next_step(shared: &Shared, vm: Option<&RunningVm>) -> Next {
    let mut g = shared.lock();
    loop {
        if g.quit {
            break Next::Quit;
        }
        if let Some(why) = vm.and_then(RunningVm::exited) {
            break Next::Died(why);
        }
        match g.phase {
            Phase::Booting if vm.is_none() => break Next::Boot,
            Phase::Up if g.open == 0 && g.idle_since.elapsed() >= shared.idle => {
                // Decided under the lock: a connection arriving
                // from now on waits for the next boot.
                g.phase = Phase::Stopping;
                break Next::PowerOff;
            }
            _ => {}
        }
        // With the VM off nothing happens until a connection or a
        // stop request notifies: the idle listener sleeps.
        g = if vm.is_some() {
            shared
                .changed
                .wait_timeout(g, TICK)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0
        } else {
            shared
                .changed
                .wait(g)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
    }
}

/// The VM's life, in one thread: boot when asked, power off when idle,
/// notice a VM that exits by itself, power off and return on quit.
fn supervise(b: &Boots, shared: &Arc<Shared>) {
    let l = &b.ctx.layout;
    let mut vm: Option<RunningVm> = None;
    loop {
        let next = next_step(shared, vm.as_ref());
        match next {
            Next::Quit => {
                if let Some(v) = vm.take() {
                    let how = v.power_off(l);
                    event(&format!("the VM is down ({how})"));
                }
                shared.update(|g| {
                    g.phase = Phase::Off;
                    g.vm_pid = None;
                    g.guest_port = None;
                    g.session = None;
                });
                return;
            }
            Next::Died(why) => {
                if let Some(v) = vm.take() {
                    v.reap(l);
                }
                event(&format!("the VM went down by itself: {why}"));
                shared.update(|g| {
                    g.phase = Phase::Off;
                    g.vm_pid = None;
                    g.guest_port = None;
                    g.session = None;
                    g.last_error = Some(why);
                });
            }
            Next::PowerOff => {
                event(&format!(
                    "no connection for {}: powering the VM off",
                    humantime::format_duration(shared.idle)
                ));
                if let Some(v) = vm.take() {
                    let how = v.power_off(l);
                    event(&format!("the VM is down ({how}); listening on"));
                }
                shared.update(|g| {
                    g.vm_pid = None;
                    g.guest_port = None;
                    g.session = None;
                    // Connections that came during the shutdown boot it again.
                    g.phase = if g.open > 0 {
                        Phase::Booting
                    } else {
                        Phase::Off
                    };
                });
            }
            Next::Boot => match boot(b, shared) {
                Ok((v, (session, greeting))) => {
                    shared.update(|g| {
                        g.phase = Phase::Up;
                        g.vm_pid = Some(v.pid);
                        g.guest_port = Some(v.guest_port);
                        g.boots += 1;
                        g.idle_since = Instant::now();
                        g.session = Some((session, greeting, Instant::now()));
                    });
                    vm = Some(v);
                }
                Err(why) => {
                    event(&format!(
                        "boot failed: {why}; closed the waiting connections, the next one tries again"
                    ));
                    shared.update(|g| {
                        g.phase = Phase::Off;
                        g.boot_failures += 1;
                        g.last_error = Some(why);
                    });
                }
            },
        }
    }
}

/// A VM this listener started.
struct RunningVm {
    handle: duct::Handle,
    pid: u32,
    guest_port: u16,
}

impl RunningVm {
    fn exited(&self) -> Option<String> {
        match self.handle.try_wait() {
            Ok(Some(out)) => Some(format!("QEMU exited ({})", out.status)),
            Ok(None) => None,
            Err(e) => Some(format!("QEMU failed: {e}")),
        }
    }

    /// Wait up to `timeout` for the VM to exit.
    fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exited().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Power the VM off cleanly (the ACPI power button), then SIGTERM,
    /// then SIGKILL; remove its files. Says which it took.
    fn power_off(self, l: &Layout) -> &'static str {
        let how = match qmp::execute(&l.qmp(), "system_powerdown") {
            Ok(_) if self.wait_exit(POWER_OFF_TIMEOUT) => "powered down",
            Ok(_) => self.terminate(),
            Err(e) => {
                event(&format!("{e}; sending SIGTERM instead"));
                self.terminate()
            }
        };
        self.reap(l);
        how
    }

    fn terminate(&self) -> &'static str {
        crate::signal_vm(self.pid, Signal::SIGTERM);
        if self.wait_exit(POWER_OFF_TIMEOUT) {
            return "terminated";
        }
        crate::signal_vm(self.pid, Signal::SIGKILL);
        let _ = self.wait_exit(Duration::from_secs(5));
        "killed"
    }

    fn reap(self, l: &Layout) {
        let _ = self.handle.wait();
        if let Err(e) = crate::clean_up(l) {
            event(&format!("{e:#}"));
        }
    }
}

/// Boot the VM with its forward on a private port and wait for its sshd;
/// returns the VM and the session sshd greeted on. On failure nothing is
/// left running and the error says why.
fn boot(b: &Boots, shared: &Shared) -> Result<(RunningVm, (TcpStream, Vec<u8>)), String> {
    let l = &b.ctx.layout;
    let mut spec = b.spec.clone();
    spec.port = private_port(spec.image_port);
    let prepared = (|| {
        if b.ephemeral {
            match std::fs::remove_file(&spec.disk) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("remove {}", spec.disk.display()));
                }
                _ => {}
            }
        }
        if matches!(spec.boot, Boot::Kernel { .. }) {
            crate::ensure_disk(&spec)?;
        }
        for f in [l.console(), l.qemu_log(), l.qmp()] {
            let _ = std::fs::remove_file(f);
        }
        let cmd = spec.command(b.profile, &b.accel);
        let state = |pid: u32| crate::State {
            pid,
            port: spec.port,
            image_port: (spec.image_port != spec.port).then_some(spec.image_port),
            accel: b.accel.clone(),
            started_at: crate::now(),
            command: cmd.display(),
            program: cmd.program().to_string_lossy().into_owned(),
        };
        crate::spawn_vm(l, &cmd, &state)
    })();
    let (handle, state) = prepared.map_err(|e| format!("{e:#}"))?;
    let vm = RunningVm {
        handle,
        pid: state.pid,
        guest_port: spec.port,
    };
    let waiting = shared.lock().waiting;
    event(&format!(
        "booting the VM (pid {}, accel {}, guest port {}) for {waiting} waiting connection(s)",
        vm.pid, state.accel, vm.guest_port
    ));
    let started = Instant::now();
    let outcome = ready::await_banner(
        vm.guest_port,
        b.timeout,
        || {
            if shared.quitting() {
                Some("lb-vm was asked to stop".to_owned())
            } else {
                vm.exited()
            }
        },
        |_| {},
    );
    match outcome {
        Readiness::Ready(greeting) => {
            event(&format!(
                "sshd answered {:.2} s after the boot began (its greeting took {:.2} s); relaying",
                started.elapsed().as_secs_f64(),
                greeting.took.as_secs_f64()
            ));
            Ok((vm, greeting.session))
        }
        Readiness::Died(why) => {
            let quit = shared.quitting();
            if quit {
                let how = vm.power_off(l);
                Err(format!("{why} during the boot; the VM is down ({how})"))
            } else {
                vm.reap(l);
                Err(crate::boot_failure(l, &why).to_string())
            }
        }
        Readiness::TimedOut => {
            vm.terminate();
            vm.reap(l);
            Err(crate::boot_failure(
                l,
                &format!(
                    "no SSH banner on the guest's {} after {} s",
                    address(spec.port),
                    b.timeout.as_secs()
                ),
            )
            .to_string())
        }
    }
}

/// `lb-vm stop` when a listener runs: ask it to power the VM off and exit,
/// and wait for that. `None` when no listener answers (the caller then
/// stops a VM the ordinary way).
pub fn stop(l: &Layout, a: &StopArgs) -> anyhow::Result<Option<Status>> {
    let Some(r) = query(l) else {
        clean_stale(l);
        return Ok(None);
    };
    match Apply::from(a.change) {
        Apply::Check => return Ok(Some(Status::Failed)),
        Apply::DryRun => {
            ui::out(&format!(
                "ask the on-demand listener (pid {}) on {} to stop: it powers the VM off (qmp system_powerdown) and exits",
                r.listener_pid,
                l.control().display()
            ))?;
            return Ok(Some(Status::Ok));
        }
        Apply::Write => {}
    }
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
    // A VM the listener could not take down is stopped the ordinary way.
    if crate::running_pid(l).is_some() {
        return Ok(None);
    }
    ui::note(&format!("{} stopped (listener and VM)", l.name));
    Ok(Some(Status::Ok))
}

#[cfg(test)]
mod tests {
    use super::*;

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
