//! Booting a VM, shared by `start` and the on-demand listener: the disk,
//! the spawn (own process group, output in the QEMU log, recorded at
//! once), the wait for its sshd, signals, and the evidence of a failed
//! boot.

use std::path::Path;
use std::time::Duration;

use lb_common::cmd::{Child, Cmd, Sink};
use lb_common::ui;
use lb_common::Context as _;
use nix::sys::signal::Signal;

use crate::ready::{self, Readiness};
use crate::state::{self, State};
use crate::vm::{Layout, VmSpec};
use crate::{port, process};

/// Where the builder answers.
#[must_use]
pub fn address(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// Print where the builder answers, once it does: `127.0.0.1:PORT`, or
/// with `--json` `{"name", "address", "port", "pid"}` (`pid` null for an
/// on-demand listener whose VM is not booted yet).
///
/// # Errors
/// Writing stdout failed.
pub fn print_ready(name: &str, port: u16, pid: Option<u32>, json: bool) -> lb_common::Result<()> {
    if json {
        lb_common::report::print_json(&serde_json::json!({
            "name": name,
            "address": address(port),
            "port": port,
            "pid": pid,
        }))
    } else {
        ui::out(&address(port))?;
        Ok(())
    }
}

/// Signal the VM's process group when it leads one (so a runner script
/// and the QEMU it started go together), else the process.
pub fn signal_vm(pid: u32, sig: Signal) {
    let group = i32::try_from(pid)
        .ok()
        .and_then(|p| nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(p))).ok())
        .is_some_and(|g| i64::from(g.as_raw()) == i64::from(pid));
    if group {
        if let Ok(raw) = i32::try_from(pid) {
            let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(raw), sig);
        }
    } else {
        process::signal(pid, sig);
    }
}

/// The last `n` lines of a log, looking at its last 64 KiB only (a guest
/// console log can grow without end).
pub fn tail(path: &Path, n: usize) -> String {
    use std::io::{Read as _, Seek as _, SeekFrom};
    const WINDOW: u64 = 64 << 10;
    let mut bytes = Vec::new();
    if let Ok(mut f) = std::fs::File::open(path) {
        let len = f.metadata().map_or(0, |m| m.len());
        if f.metadata().is_ok_and(|m| m.is_file())
            && f.seek(SeekFrom::Start(len.saturating_sub(WINDOW))).is_ok()
        {
            let _ = f.take(WINDOW).read_to_end(&mut bytes);
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    // A guest's console carries escape sequences: shown, not obeyed.
    lb_common::cmd::last_lines(&text, n)
        .iter()
        .map(|l| lb_common::text::escape_controls(l).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The error for a failed boot: what QEMU and the guest said last.
pub fn boot_failure(l: &Layout, what: &str) -> lb_common::Error {
    let console = tail(&l.console(), 15);
    let qemu = tail(&l.qemu_log(), 10);
    // The error itself is one line; the evidence is printed before it.
    if !qemu.is_empty() {
        ui::error(&format!("QEMU said ({}):\n{qemu}", l.qemu_log().display()));
    }
    if !console.is_empty() {
        ui::error(&format!(
            "last console lines ({}):\n{console}",
            l.console().display()
        ));
    }
    lb_common::failed!(
        "{what}; nothing left running (console log: {})",
        l.console().display()
    )
}

fn spinner(msg: String) -> Option<indicatif::ProgressBar> {
    if !ui::progress_allowed() {
        return None;
    }
    let pb = indicatif::ProgressBar::new_spinner();
    pb.set_message(msg);
    pb.enable_steady_tick(Duration::from_millis(120));
    Some(pb)
}

/// Wait for the SSH banner until `timeout`, giving up early when `dead`
/// says the VM is gone (see `ready` for why probes overlap). A banner
/// counts only while our VM lives and owns the listener: another builder
/// or an sshd answering on the port must not pass as ours.
pub fn await_ready(
    port: u16,
    vm: u32,
    timeout: Duration,
    mut dead: impl FnMut() -> Option<String>,
) -> Readiness {
    let pb = spinner(format!("waiting for sshd on {}", address(port)));
    let result = ready::await_banner(port, timeout, &mut dead, |waited| {
        if let Some(pb) = &pb {
            pb.set_message(format!(
                "waiting for sshd on {} ({}s)",
                address(port),
                waited.as_secs()
            ));
        }
    });
    if let Some(pb) = pb {
        pb.finish_and_clear();
    }
    match result {
        Readiness::Ready(_) if port::listener_is(port, vm) == Some(false) => {
            let who = process::port_owner(port).unwrap_or_default();
            Readiness::Died(format!(
                "an SSH server that is not this VM ({who}) answers on {}",
                address(port)
            ))
        }
        Readiness::Ready(_) => dead().map_or(result, Readiness::Died),
        other => other,
    }
}

/// Spawn the VM in its own process group with its output in the QEMU
/// log, and record its pid and state; on failure nothing is left running.
pub fn spawn_vm(l: &Layout, cmd: &Cmd, state: &State) -> lb_common::Result<Child> {
    // Both streams to the log: a VM holding our caller's stderr pipe would
    // keep `lb-vm start 2>&1 | ...` (and test harnesses) waiting forever.
    let log = lb_common::fs::open_log(&l.qemu_log(), false)?;
    // Its own process group: a Ctrl-C meant for lb-vm must not reach the
    // VM, and `stop` can signal a runner and its QEMU together.
    let child = cmd.spawn(Sink::File(log), true)?;
    if let Err(e) = state::record(l, child.pid(), state) {
        signal_vm(child.pid(), Signal::SIGKILL);
        let _ = child.wait();
        return Err(e);
    }
    Ok(child)
}

pub fn disk_create_cmd(spec: &VmSpec) -> Cmd {
    Cmd::new("qemu-img")
        .hint("install qemu-utils (apt-get install qemu-utils) or qemu")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&spec.disk)
        .arg(format!("{}M", spec.disk_size))
}

/// Create the disk if absent, grow it if smaller than `--disk-size`.
pub fn ensure_disk(spec: &VmSpec) -> lb_common::Result<()> {
    let want = spec.disk_size * 1024 * 1024;
    if !spec.disk.exists() {
        disk_create_cmd(spec).run()?;
        ui::note(&format!(
            "created {} ({} MiB)",
            spec.disk.display(),
            spec.disk_size
        ));
        return Ok(());
    }
    let info = Cmd::new("qemu-img")
        .hint("install qemu-utils (apt-get install qemu-utils) or qemu")
        .args(["info", "--output=json", "-U"])
        .arg(&spec.disk)
        .run()?;
    let v: serde_json::Value = serde_json::from_slice(&info.stdout)
        .with_context(|| format!("qemu-img info {}: not JSON", spec.disk.display()))?;
    let have = v
        .get("virtual-size")
        .and_then(serde_json::Value::as_u64)
        .with_context(|| format!("qemu-img info {}: no virtual-size", spec.disk.display()))?;
    if have < want {
        Cmd::new("qemu-img")
            .args(["resize", "-q"])
            .arg(&spec.disk)
            .arg(format!("{}M", spec.disk_size))
            .run()?;
        ui::note(&format!(
            "grew {} from {} MiB to {} MiB",
            spec.disk.display(),
            have / (1024 * 1024),
            spec.disk_size
        ));
    } else if have > want {
        ui::verbose(&format!(
            "{} is {} MiB, larger than --disk-size; disks are never shrunk",
            spec.disk.display(),
            have / (1024 * 1024)
        ));
    }
    Ok(())
}
