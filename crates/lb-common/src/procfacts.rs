//! Facts about processes where there is no `/proc` (macOS): from `ps`,
//! `lsof` and `launchctl print`. The command lines are data (tested as
//! text) and the parsers take their output as text, so both are tested on
//! Linux; `ps` and `lsof` take the same flags here, so the commands
//! themselves run in the tests too.
//!
//! Which source a tool uses is chosen by [`Source::for_platform`]: `/proc`
//! on Linux, the commands on macOS (and on Linux under
//! `LB_PLATFORM=macos`, which is how the macOS path is exercised here).

use std::time::{Duration, SystemTime};

use crate::cmd::Cmd;
use crate::platform::{Os, Platform};

/// Where process facts come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Linux's `/proc`.
    Proc,
    /// `ps`, `lsof`, `launchctl` (macOS).
    Commands,
}

impl Source {
    /// The source for `p`: `/proc` on Linux, the commands on macOS.
    #[must_use]
    pub fn for_platform(p: &Platform) -> Self {
        match p.os {
            Os::Linux => Source::Proc,
            Os::MacOs => Source::Commands,
        }
    }

    /// The running host (`LB_PLATFORM` honoured; an unknown value means Linux's /proc).
    #[must_use]
    pub fn current() -> Self {
        Platform::current().map_or(Source::Proc, |p| Self::for_platform(&p))
    }
}

/// `ps -o FIELD= -p PID`: one field of one process, no header.
#[must_use]
pub fn ps_argv(pid: u32, field: &str) -> Vec<String> {
    vec![
        "ps".into(),
        "-o".into(),
        format!("{field}="),
        "-p".into(),
        pid.to_string(),
    ]
}

/// `lsof -nP -iTCP:PORT -sTCP:LISTEN -Fpc`: who listens on a TCP port, as
/// `p<pid>` and `c<command>` lines.
#[must_use]
pub fn lsof_listen_argv(port: u16) -> Vec<String> {
    vec![
        "lsof".into(),
        "-nP".into(),
        format!("-iTCP:{port}"),
        "-sTCP:LISTEN".into(),
        "-Fpc".into(),
    ]
}

/// `launchctl print system/LABEL`: a loaded daemon's state and pid.
#[must_use]
pub fn launchctl_print_argv(label: &str) -> Vec<String> {
    vec![
        "launchctl".into(),
        "print".into(),
        format!("system/{label}"),
    ]
}

fn run_text(argv: &[String]) -> Option<String> {
    let out = Cmd::from_argv(argv).run().ok()?;
    let text = out.stdout_text().trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// The first (pid, command) of `lsof -F pc` output.
#[must_use]
pub fn parse_lsof(text: &str) -> Option<(u32, String)> {
    let mut pid = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix('p') {
            if pid.is_some() {
                break;
            }
            pid = p.trim().parse().ok();
        } else if let (Some(c), Some(p)) = (line.strip_prefix('c'), pid) {
            return Some((p, c.trim().to_owned()));
        }
    }
    pid.map(|p| (p, String::new()))
}

/// `ps -o etime=`: `[[DD-]HH:]MM:SS`, as a duration.
#[must_use]
pub fn parse_etime(text: &str) -> Option<Duration> {
    let t = text.trim();
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, t),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse::<u64>().ok())
        .collect::<Option<_>>()?;
    let (h, m, s) = match parts.as_slice() {
        [m, s] => (0, *m, *s),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    Some(Duration::from_secs(((days * 24 + h) * 60 + m) * 60 + s))
}

/// What `launchctl print system/LABEL` says about a loaded job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LaunchdJob {
    /// `state = running` (or `not running`, `spawn scheduled`...).
    pub state: String,
    /// `pid = N` while it runs.
    pub pid: Option<u32>,
    /// `path = ...`: the plist it was loaded from.
    pub path: Option<String>,
    /// `NIX_CONF_DIR` from its `environment = { ... }`, if set.
    pub nix_conf_dir: Option<String>,
}

/// Parse `launchctl print` output (only the job's own top-level keys).
#[must_use]
pub fn parse_launchctl_print(text: &str) -> LaunchdJob {
    let mut job = LaunchdJob::default();
    let mut depth = 0usize;
    let mut block = String::new();
    for line in text.lines() {
        let l = line.trim();
        if l.ends_with('{') {
            depth += 1;
            if depth == 2 {
                l.trim_end_matches('{')
                    .trim()
                    .trim_end_matches('=')
                    .trim()
                    .clone_into(&mut block);
            }
            continue;
        }
        if l == "}" {
            depth = depth.saturating_sub(1);
            continue;
        }
        if depth == 1 {
            if let Some((k, v)) = l.split_once(" = ") {
                match k.trim() {
                    "state" => v.trim().clone_into(&mut job.state),
                    "pid" => job.pid = v.trim().parse().ok(),
                    "path" => job.path = Some(v.trim().to_owned()),
                    _ => {}
                }
            }
        } else if depth == 2 && block == "environment" {
            if let Some((k, v)) = l.split_once(" => ") {
                if k.trim() == "NIX_CONF_DIR" {
                    job.nix_conf_dir = Some(v.trim().to_owned());
                }
            }
        }
    }
    job
}

/// A loaded launchd job, or `None` when launchctl does not know it.
#[must_use]
pub fn launchd_job(label: &str) -> Option<LaunchdJob> {
    run_text(&launchctl_print_argv(label)).map(|t| parse_launchctl_print(&t))
}

/// A process's command line, arguments joined by spaces.
#[must_use]
pub fn cmdline(source: Source, pid: u32) -> Option<String> {
    match source {
        Source::Proc => std::fs::read(format!("/proc/{pid}/cmdline"))
            .ok()
            .map(|raw| {
                String::from_utf8_lossy(&raw)
                    .trim_end_matches('\0')
                    .replace('\0', " ")
            })
            .filter(|c| !c.is_empty()),
        Source::Commands => run_text(&ps_argv(pid, "command")),
    }
}

/// Has `pid` exited, leaving only its entry for the parent to collect?
#[must_use]
pub fn is_zombie(source: Source, pid: u32) -> bool {
    match source {
        Source::Proc => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('Z'))
            })
            .unwrap_or(false),
        Source::Commands => run_text(&ps_argv(pid, "stat")).is_some_and(|s| s.starts_with('Z')),
    }
}

/// The parent of `pid`.
#[must_use]
pub fn ppid(source: Source, pid: u32) -> Option<u32> {
    match source {
        Source::Proc => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse().ok())
            }),
        Source::Commands => run_text(&ps_argv(pid, "ppid")).and_then(|s| s.parse().ok()),
    }
}

/// Is `ancestor` the process `pid` or one of its parents?
#[must_use]
pub fn descends_from(source: Source, pid: u32, ancestor: u32) -> bool {
    let mut p = pid;
    for _ in 0..64 {
        if p == ancestor {
            return true;
        }
        match ppid(source, p) {
            Some(next) if next != p && next != 0 => p = next,
            _ => return false,
        }
    }
    false
}

/// When `pid` started, to the second (`ps -o etime=`); `/proc` callers
/// have their own, finer clock.
#[must_use]
pub fn started_by_ps(pid: u32) -> Option<SystemTime> {
    let elapsed = parse_etime(&run_text(&ps_argv(pid, "etime"))?)?;
    SystemTime::now().checked_sub(elapsed)
}

/// `(pid, command)` of the process listening on TCP `port`, as far as
/// this user may see (root sees all).
#[must_use]
pub fn listener(source: Source, port: u16) -> Option<(u32, String)> {
    match source {
        Source::Proc => proc_listener(port),
        Source::Commands => run_text(&lsof_listen_argv(port)).and_then(|t| parse_lsof(&t)),
    }
}

fn proc_listener(port: u16) -> Option<(u32, String)> {
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
                    return Some((pid, comm));
                }
            }
        }
    }
    None
}

/// Inodes of sockets in a /proc/net/tcp table listening on `port`.
#[must_use]
pub fn listening_inodes(table: &str, port: u16) -> Vec<String> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn command_lines() {
        insta::assert_snapshot!(
            [
                ps_argv(123, "command").join(" "),
                ps_argv(123, "stat").join(" "),
                ps_argv(123, "ppid").join(" "),
                ps_argv(123, "etime").join(" "),
                lsof_listen_argv(31022).join(" "),
                launchctl_print_argv("org.lb-vm.linux-builder").join(" "),
            ]
            .join("\n"),
            @r"
        ps -o command= -p 123
        ps -o stat= -p 123
        ps -o ppid= -p 123
        ps -o etime= -p 123
        lsof -nP -iTCP:31022 -sTCP:LISTEN -Fpc
        launchctl print system/org.lb-vm.linux-builder
        "
        );
    }

    #[test]
    fn parsers() {
        assert_eq!(
            parse_lsof("p4242\ncqemu-system-aarch64\nf12\n"),
            Some((4242, "qemu-system-aarch64".to_owned()))
        );
        assert_eq!(parse_lsof(""), None);
        assert_eq!(parse_etime("05:07"), Some(Duration::from_secs(307)));
        assert_eq!(parse_etime(" 1:00:00"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_etime("2-03:04:05"),
            Some(Duration::from_secs(2 * 86400 + 3 * 3600 + 4 * 60 + 5))
        );
        assert_eq!(parse_etime("x"), None);
        // The shape of `launchctl print system/org.nixos.nix-daemon`.
        let text = "system/org.nixos.nix-daemon = {\n\tactive count = 1\n\tpath = /Library/LaunchDaemons/org.nixos.nix-daemon.plist\n\tstate = running\n\n\tprogram = /nix/var/nix/profiles/default/bin/nix-daemon\n\tenvironment = {\n\t\tNIX_CONF_DIR => /etc/nix\n\t\tXPC_SERVICE_NAME => org.nixos.nix-daemon\n\t}\n\n\tpid = 90\n\tlast exit code = (never exited)\n\tevent triggers = {\n\t\tpid = 7\n\t}\n}\n";
        assert_eq!(
            parse_launchctl_print(text),
            LaunchdJob {
                state: "running".into(),
                pid: Some(90),
                path: Some("/Library/LaunchDaemons/org.nixos.nix-daemon.plist".into()),
                nix_conf_dir: Some("/etc/nix".into()),
            }
        );
    }

    /// The commands run for real: this machine's `ps` and `lsof` take the
    /// flags macOS's do.
    #[test]
    fn commands_agree_with_proc() {
        let me = std::process::id();
        for source in [Source::Proc, Source::Commands] {
            let c = cmdline(source, me).expect("own command line");
            assert!(c.contains("lb_common"), "{source:?}: {c}");
            assert!(!is_zombie(source, me));
            assert_eq!(
                ppid(source, me),
                Some(std::os::unix::process::parent_id()),
                "{source:?}"
            );
            assert!(descends_from(
                source,
                me,
                std::os::unix::process::parent_id()
            ));
            assert!(!descends_from(
                source,
                std::os::unix::process::parent_id(),
                me
            ));
        }
        let started = started_by_ps(me).expect("ps etime");
        assert!(started <= SystemTime::now());
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let by_proc = listener(Source::Proc, port).expect("/proc shows our listener");
        assert_eq!(by_proc.0, me);
        assert!(
            crate::cmd::exists("lsof"),
            "lsof is missing: install it (make setup-host)"
        );
        let by_lsof = listener(Source::Commands, port).expect("lsof shows our listener");
        assert_eq!(by_lsof.0, me);
    }

    #[test]
    fn parses_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
0: 0100007F:7A4E 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   \
1: 0100007F:7A4E 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 999 1\n";
        assert_eq!(listening_inodes(table, 31310), ["12345"]);
        assert!(listening_inodes(table, 22).is_empty());
    }
}
