//! `lb-vm status`: whether the builder runs (exit 1 if not), as text or
//! JSON.

use std::path::PathBuf;

use lb_common::exit::Status;
use lb_common::ui;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::report::{self, or_dash, yes_no, Report};
use crate::state;
use crate::{on_demand, port, Ctx};

/// How long status waits for the builder's SSH banner.
const STATUS_BANNER_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Serialize)]
struct StatusReport {
    name: String,
    running: bool,
    ready: bool,
    pid: Option<u32>,
    port: u16,
    accel: Option<String>,
    uptime_secs: Option<u64>,
    console_log: PathBuf,
    workdir: PathBuf,
    /// The pid of a VM that had died behind lb-vm's back (its files were removed).
    stale_pid: Option<u32>,
    /// `always-on` (`start`) or `on-demand` (`start --on-demand`).
    mode: &'static str,
    /// Whether the VM itself runs (with `on-demand`, it may be off).
    vm_up: bool,
    /// Connections open through the on-demand listener.
    connections: Option<usize>,
    /// Seconds until the on-demand listener powers the idle VM off.
    power_off_in_secs: Option<u64>,
    /// The on-demand listener's own report.
    on_demand: Option<on_demand::Report>,
}

impl Report for StatusReport {
    fn text(&self) -> Vec<String> {
        let mut out = vec![
            format!("name: {}", self.name),
            format!("running: {}", yes_no(self.running)),
            format!("ready: {}", yes_no(self.ready)),
            format!("mode: {}", self.mode),
        ];
        if let Some(od) = &self.on_demand {
            out.push(format!(
                "vm: {} (listener pid {}, {} boots, {} failed)",
                od.vm.as_str(),
                od.listener_pid,
                od.boots,
                od.boot_failures
            ));
            out.push(format!(
                "connections: {} ({} waiting for the VM)",
                od.connections, od.waiting
            ));
            out.push(format!(
                "power-off in: {}",
                or_dash(od.power_off_in_secs.map(|s| format!("{s}s")))
            ));
            if let Some(e) = &od.last_error {
                out.push(format!("last error: {e}"));
            }
        }
        out.push(format!("pid: {}", or_dash(self.pid.map(|p| p.to_string()))));
        out.push(format!("port: {}", self.port));
        out.push(format!("accel: {}", or_dash(self.accel.clone())));
        out.push(format!(
            "uptime: {}",
            or_dash(self.uptime_secs.map(|s| format!("{s}s")))
        ));
        out.push(format!("console log: {}", self.console_log.display()));
        if let Some(p) = self.stale_pid {
            out.push(format!("stale pid: {p} (had died; files removed)"));
        }
        out
    }
}

pub(crate) fn status(ctx: &Ctx, a: &StatusArgs) -> lb_common::Result<Status> {
    let l = &ctx.layout;
    let state = state::read_state(l);
    let pid = state::running_pid(l);
    let stale_pid = if pid.is_none() {
        state::clean_stale(l)?
    } else {
        None
    };
    let listener = on_demand::query(l);
    let port = listener.as_ref().map_or_else(
        || state.as_ref().map_or(ctx.builder.port, |s| s.port),
        |r| r.port,
    );
    let vm_up = pid.is_some();
    // On demand, the builder runs while its listener does, and is ready:
    // the listener holds connections until the guest's sshd answers.
    let running = vm_up || listener.is_some();
    // One probe of the VM's own sshd, given time to answer: a TCG guest on
    // a busy host was seen to take more than 3 s to send its banner right
    // after `start` had seen it, and status said "not ready".
    let ready =
        listener.is_some() || pid.is_some_and(|p| port::ours_answers(port, p, STATUS_BANNER_WAIT));
    let r = StatusReport {
        name: l.name.clone(),
        running,
        ready,
        pid,
        port,
        accel: state.as_ref().filter(|_| running).map(|s| s.accel.clone()),
        uptime_secs: state
            .as_ref()
            .filter(|_| running)
            .map(|s| state::now().saturating_sub(s.started_at)),
        console_log: l.console(),
        workdir: l.dir.clone(),
        stale_pid,
        mode: if listener.is_some() {
            "on-demand"
        } else {
            "always-on"
        },
        vm_up,
        connections: listener.as_ref().map(|r| r.connections),
        power_off_in_secs: listener.as_ref().and_then(|r| r.power_off_in_secs),
        on_demand: listener,
    };
    report::print(&r, a.json)?;
    if !running {
        ui::note(&format!(
            "{} is down; start it with `lb-vm start --workdir {}` and the --kernel/--initrd or --runner it boots",
            l.name,
            l.dir.display()
        ));
    }
    Ok(if running { Status::Ok } else { Status::Failed })
}
