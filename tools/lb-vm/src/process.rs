//! Processes and ports: is a pid still our QEMU, who holds a port, signals.

use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, Instant};

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

/// A zombie has exited; only its parent has not collected it yet.
fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
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
    let cmdline = match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(raw) => String::from_utf8_lossy(&raw).replace('\0', " "),
        Err(_) => match ps_command(pid) {
            Some(c) => c,
            None => return false,
        },
    };
    names_a_marker(&cmdline, markers)
}

fn names_a_marker(cmdline: &str, markers: &[&Path]) -> bool {
    markers
        .iter()
        .any(|m| !m.as_os_str().is_empty() && cmdline.contains(&*m.to_string_lossy()))
}

/// `ps -o command= -p PID`: the command line where /proc is missing.
fn ps_command(pid: u32) -> Option<String> {
    lb_common::cmd::Cmd::new("ps")
        .args(["-o", "command=", "-p", &pid.to_string()])
        .run()
        .ok()
        .map(|o| o.stdout_text().trim().to_owned())
        .filter(|c| !c.is_empty())
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

/// Can a listener be bound on loopback `port` right now?
#[must_use]
pub fn port_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// `pid N (comm)` of the process listening on `port`, when /proc tells
/// (as root, or for the user's own processes).
#[must_use]
pub fn port_owner(port: u16) -> Option<String> {
    let inodes: Vec<String> = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok())
        .flat_map(|text| listening_inodes(&text, port))
        .collect();
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if wanted.iter().any(|w| target.as_os_str() == w.as_str()) {
                    let comm = std::fs::read_to_string(entry.path().join("comm"))
                        .map(|c| c.trim().to_owned())
                        .unwrap_or_default();
                    return Some(format!("pid {pid} ({comm})"));
                }
            }
        }
    }
    None
}

/// Inodes of sockets in a /proc/net/tcp table listening on `port`.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    let want = format!("{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
            let local_port = f.get(1)?.rsplit_once(':')?.1;
            if local_port == want && *f.get(3)? == "0A" {
                f.get(9).map(|i| (*i).to_owned())
            } else {
                None
            }
        })
        .collect()
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
    fn ps_reads_a_command_line() {
        let me = std::process::id();
        assert!(ps_command(me).is_some_and(|c| !c.is_empty()));
    }

    #[test]
    fn parses_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
0: 0100007F:7A4E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   \
1: 0100007F:7A4E 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(listening_inodes(table, 31310), ["12345"]);
        assert!(listening_inodes(table, 22).is_empty());
    }

    #[test]
    fn finds_own_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert!(!port_free(port));
        let owner = port_owner(port).expect("our own socket is visible in /proc");
        assert!(
            owner.starts_with(&format!("pid {} ", std::process::id())),
            "{owner}"
        );
        drop(l);
        assert!(port_free(port));
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
