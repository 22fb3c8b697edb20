//! Processes and ports: is a pid still our QEMU, who holds a port, signals.

use std::path::Path;
use std::time::{Duration, Instant};

use lb_common::procfacts::{self, Source};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Is `pid` alive (signal 0 is accepted or refused for permission)?
#[must_use]
pub fn alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    match kill(Pid::from_raw(raw), None) {
        Ok(()) | Err(nix::errno::Errno::EPERM) => !is_zombie(pid),
        Err(_) => false,
    }
}

/// A zombie has exited; only its parent has not collected it yet
/// (`/proc`, or `ps -o stat=` on macOS).
fn is_zombie(pid: u32) -> bool {
    procfacts::is_zombie(Source::current(), pid)
}

/// Is `pid` a live process that belongs to this builder? A pid file
/// outlives its process, and the pid may since have gone to another
/// program (after a reboot, even another builder's QEMU): the process must
/// name one of this builder's own files (its QMP socket, its runner) on
/// its command line. The command line comes from /proc, or from `ps`
/// where there is no /proc (macOS).
#[must_use]
pub fn is_our_vm(pid: u32, markers: &[&Path]) -> bool {
    if !alive(pid) {
        return false;
    }
    procfacts::cmdline(Source::current(), pid).is_some_and(|c| names_a_marker(&c, markers))
}

fn names_a_marker(cmdline: &str, markers: &[&Path]) -> bool {
    markers
        .iter()
        .any(|m| !m.as_os_str().is_empty() && cmdline.contains(&*m.to_string_lossy()))
}

/// Send `signal` to `pid`, ignoring a process that is already gone.
pub fn signal(pid: u32, signal: Signal) {
    if let Ok(raw) = i32::try_from(pid) {
        let _ = kill(Pid::from_raw(raw), signal);
    }
}

/// Wait until `pid` is gone; true if it went within `timeout`.
#[must_use]
pub fn wait_gone(pid: u32, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if !alive(pid) {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `pid N (comm)` of the process listening on `port`, when /proc (or
/// lsof on macOS) tells: as root, or for the user's own processes.
#[must_use]
pub fn port_owner(port: u16) -> Option<String> {
    procfacts::listener(Source::current(), port).map(|(pid, comm)| format!("pid {pid} ({comm})"))
}

/// Does loopback `port` answer with an SSH banner now? QEMU's user-mode
/// forward accepts connections before the guest listens and then drops
/// them, so only the banner proves sshd is up.
#[must_use]
pub fn ssh_banner(port: u16) -> Option<String> {
    crate::ready::banner(port, Duration::from_secs(3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reused_pid_is_not_ours() {
        // This test process is alive, but names no file of a builder.
        let me = std::process::id();
        let qmp = Path::new("/var/lib/linux-builder/linux-builder.qmp");
        assert!(!is_our_vm(me, &[qmp]));
        assert!(names_a_marker(
            "qemu-system-x86_64 -qmp unix:/var/lib/linux-builder/linux-builder.qmp,server=on",
            &[qmp]
        ));
        assert!(!names_a_marker(
            "qemu-system-x86_64 -qmp unix:/other/b2.qmp",
            &[qmp]
        ));
        assert!(!names_a_marker("anything", &[Path::new("")]));
    }

    #[test]
    fn finds_own_listener() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let owner = port_owner(port).expect("our own socket is visible");
        assert!(
            owner.starts_with(&format!("pid {} ", std::process::id())),
            "{owner}"
        );
    }

    #[test]
    fn own_process_is_alive_but_not_a_vm() {
        assert!(alive(std::process::id()));
        assert!(!alive(0));
        assert!(!is_our_vm(
            std::process::id(),
            &[Path::new("/no/such/marker")]
        ));
    }
}
