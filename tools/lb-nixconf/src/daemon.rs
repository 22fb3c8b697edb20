//! When did the running Nix daemon start? It reads nix.conf only then, so
//! a nix.conf modified later is not in effect.
//!
//! On macOS (no `/proc`) from `launchctl print` and `ps`; on Linux from `/proc`: the top-level `nix-daemon` process (the daemon
//! forks one child per client, also called `nix-daemon`; those are skipped
//! by their parent), its start time from `/proc/PID/stat` (field 22, clock
//! ticks since boot) plus the boot time (`btime` in `/proc/stat`), and the
//! configuration directory it read (`NIX_CONF_DIR` in `/proc/PID/environ`,
//! else `/etc/nix`): a nix.conf in a scratch root is no daemon's concern.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lb_common::procfacts;

/// A running top-level nix-daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Daemon {
    pub pid: u32,
    pub started: SystemTime,
    /// The directory whose nix.conf it read at start.
    pub conf_dir: PathBuf,
}

/// `NIX_CONF_DIR` from a process environment block, else `/etc/nix`.
fn conf_dir_of(environ: &[u8]) -> PathBuf {
    environ
        .split(|b| *b == 0)
        .find_map(|kv| kv.strip_prefix(b"NIX_CONF_DIR="))
        .filter(|v| !v.is_empty())
        .map_or_else(
            || PathBuf::from("/etc/nix"),
            |v| PathBuf::from(String::from_utf8_lossy(v).into_owned()),
        )
}

/// `(comm, ppid, starttime)` from the text of `/proc/PID/stat`. The command
/// name is in parentheses and may itself hold spaces and parentheses, so
/// fields are counted after the last `)`.
fn parse_stat(stat: &str) -> Option<(String, u32, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat.get(open + 1..close)?.to_owned();
    let rest: Vec<&str> = stat.get(close + 1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state): ppid is field 4, starttime field 22.
    let ppid = rest.get(1)?.parse().ok()?;
    let started = rest.get(19)?.parse().ok()?;
    Some((comm, ppid, started))
}

fn boot_time(proc: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(proc.join("stat")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

fn ticks_per_second() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        // USER_HZ is 100 on every Linux architecture Nix runs on.
        .unwrap_or(100)
}

/// The newest top-level nix-daemon that read its nix.conf from `conf_dir`,
/// if `/proc` shows one.
#[must_use]
pub fn running_for(conf_dir: &Path) -> Option<Daemon> {
    let want = std::fs::canonicalize(conf_dir).unwrap_or_else(|_| conf_dir.to_path_buf());
    let found = match procfacts::Source::current() {
        procfacts::Source::Proc => running_in(Path::new("/proc")),
        procfacts::Source::Commands => launchd_daemons(),
    };
    found
        .into_iter()
        .filter(|d| {
            std::fs::canonicalize(&d.conf_dir).unwrap_or_else(|_| d.conf_dir.clone()) == want
        })
        .max_by_key(|d| d.started)
}

/// macOS: the daemon launchd runs (`launchctl print system/LABEL`, the
/// Nix installer's and nix-darwin's label, or Determinate's), its start
/// from `ps -o etime=` (to the second), its NIX_CONF_DIR from launchd's
/// environment for it.
fn launchd_daemons() -> Vec<Daemon> {
    [
        lb_common::managers::NIX_DAEMON_LABEL,
        lb_common::managers::DETERMINATE_DAEMON_LABEL,
    ]
    .iter()
    .filter_map(|label| {
        let job = procfacts::launchd_job(label)?;
        let pid = job.pid?;
        Some(Daemon {
            pid,
            started: procfacts::started_by_ps(pid)?,
            conf_dir: PathBuf::from(job.nix_conf_dir.unwrap_or_else(|| "/etc/nix".to_owned())),
        })
    })
    .collect()
}

/// Every top-level nix-daemon `/proc` shows.
fn running_in(proc: &Path) -> Vec<Daemon> {
    let Some(btime) = boot_time(proc) else {
        return Vec::new();
    };
    let hz = ticks_per_second();
    let mut stats = Vec::new();
    let Ok(entries) = std::fs::read_dir(proc) else {
        return Vec::new();
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(s) = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
        {
            stats.push((pid, s));
        }
    }
    let comm_of = |pid: u32| {
        stats
            .iter()
            .find(|(p, _)| *p == pid)
            .map(|(_, (c, _, _))| c.as_str())
    };
    stats
        .iter()
        .filter(|(_, (comm, ppid, _))| comm == "nix-daemon" && comm_of(*ppid) != Some("nix-daemon"))
        .map(|(pid, (_, _, ticks))| Daemon {
            pid: *pid,
            started: UNIX_EPOCH
                + Duration::from_secs(btime)
                + Duration::from_millis(ticks.saturating_mul(1000) / hz),
            conf_dir: conf_dir_of(
                &std::fs::read(proc.join(pid.to_string()).join("environ")).unwrap_or_default(),
            ),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let s = "42 (a) b) S 7 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(parse_stat(s), Some(("a) b".to_owned(), 7, 12345)));
        assert_eq!(parse_stat("garbage"), None);
    }

    #[test]
    fn conf_dir_defaults_to_etc_nix() {
        assert_eq!(conf_dir_of(b""), Path::new("/etc/nix"));
        assert_eq!(conf_dir_of(b"A=1\0NIX_CONF_DIR=\0"), Path::new("/etc/nix"));
        assert_eq!(conf_dir_of(b"NIX_CONF_DIR=/x\0"), Path::new("/x"));
    }

    #[test]
    fn finds_only_top_level_daemons() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(d.join("stat"), "cpu 1 2 3\nbtime 1000\n").unwrap();
        let proc = |pid: u32, comm: &str, ppid: u32, start: u64| {
            std::fs::create_dir(d.join(pid.to_string())).unwrap();
            std::fs::write(
                d.join(pid.to_string()).join("stat"),
                format!("{pid} ({comm}) S {ppid} 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0"),
            )
            .unwrap();
        };
        proc(1, "init", 0, 0);
        proc(10, "nix-daemon", 1, 500);
        proc(11, "nix-daemon", 10, 90000);
        std::fs::write(
            d.join("10/environ"),
            b"PATH=/bin\0NIX_CONF_DIR=/r/etc/nix\0",
        )
        .unwrap();
        let found = running_in(d);
        assert_eq!(found.len(), 1);
        let found = &found[0];
        assert_eq!(found.pid, 10);
        assert_eq!(found.conf_dir, Path::new("/r/etc/nix"));
        let hz = ticks_per_second();
        assert_eq!(
            found.started,
            UNIX_EPOCH + Duration::from_secs(1000) + Duration::from_millis(500 * 1000 / hz)
        );
    }
}
