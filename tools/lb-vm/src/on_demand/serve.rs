//! The listener in this process: the builder's port, the control socket,
//! signals, and a thread per connection relaying to the guest once it is
//! up.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixListener;
use std::sync::Arc;
use std::time::Duration;

use lb_common::exit::Status;
use lb_common::platform::QemuProfile;
use lb_common::Context as _;

use super::shared::{Guest, OpenConnection, Shared};
use super::supervise::{supervise, Boots};
use super::{event, read_line};
use crate::boot::address;
use crate::cli::StartArgs;
use crate::vm::{Boot, VmSpec};
use crate::{accel, process, relay, state, Ctx};

/// The listener, in this process: bind the port and the control socket,
/// then supervise the VM until `stop` or a signal.
pub(super) fn serve(
    ctx: &Ctx,
    a: &StartArgs,
    spec: &VmSpec,
    profile: &QemuProfile,
) -> lb_common::Result<Status> {
    let l = &ctx.layout;
    lb_common::fs::ensure_dir(&l.dir)?;
    let accel = match spec.boot {
        Boot::Kernel { .. } => accel::choose(l, &a.vm, spec, profile),
        Boot::Runner(_) => {
            lb_common::fs::ensure_dir(&l.tmp())?;
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
    let _ = lb_common::fs::remove_entry(&l.control());
    let control = UnixListener::bind(l.control())
        .with_context(|| format!("bind {}", l.control().display()))?;
    state::write_file(
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
        crate::boot::print_ready(&l.name, spec.port, None, a.json)?;
        let boots = Boots {
            ctx,
            spec,
            profile,
            accel,
            timeout: Duration::from_secs(a.timeout),
            ephemeral: a.ephemeral,
        };
        supervise(&boots, &shared);
        Ok::<(), lb_common::Error>(())
    })();
    let _ = lb_common::fs::remove_entry(&l.control());
    let _ = lb_common::fs::remove_entry(&l.listener_pid());
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
