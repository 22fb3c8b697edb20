//! When did the running Nix daemon start, where there is no `/proc`
//! (macOS)? `ps -axo pid=,ppid=,etime=,comm=` gives every process's
//! elapsed time; the daemon launchd runs (`org.nixos.nix-daemon`) reads
//! `/etc/nix/nix.conf` (launchd passes it no NIX_CONF_DIR). The same `ps`
//! columns exist in Linux's procps, so this path is also run here.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use lb_common::cmd::Cmd;

use crate::daemon::Daemon;

/// `[[DD-]HH:]MM:SS` as ps prints elapsed time.
#[must_use]
pub fn parse_etime(s: &str) -> Option<Duration> {
    let (days, rest) = match s.split_once('-') {
        Some((d, r)) => (d.parse::<u64>().ok()?, r),
        None => (0, s),
    };
    let parts: Vec<u64> = rest
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let secs = match parts[..] {
        [m, s] => m * 60 + s,
        [h, m, s] => h * 3600 + m * 60 + s,
        _ => return None,
    };
    Some(Duration::from_secs(days * 86_400 + secs))
}

/// The top-level nix-daemons in `ps` output, with their start time.
#[must_use]
pub fn parse_ps(text: &str, now: SystemTime) -> Vec<(u32, SystemTime)> {
    let rows: Vec<(u32, u32, Duration, String)> = text
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let pid = f.next()?.parse().ok()?;
            let parent = f.next()?.parse().ok()?;
            let etime = parse_etime(f.next()?)?;
            let comm: Vec<&str> = f.collect();
            let comm = comm.join(" ");
            let base = comm.rsplit('/').next().unwrap_or(&comm).to_owned();
            Some((pid, parent, etime, base))
        })
        .collect();
    let comm_of = |pid: u32| rows.iter().find(|r| r.0 == pid).map(|r| r.3.as_str());
    rows.iter()
        .filter(|r| r.3 == "nix-daemon" && comm_of(r.1) != Some("nix-daemon"))
        .filter_map(|r| now.checked_sub(r.2).map(|t| (r.0, t)))
        .collect()
}

/// The newest top-level nix-daemon `ps` shows, if it reads `conf_dir`
/// (which must be `/etc/nix`).
#[must_use]
pub fn running_for(conf_dir: &Path) -> Option<Daemon> {
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let etc_nix = PathBuf::from("/etc/nix");
    if canon(conf_dir) != canon(&etc_nix) {
        return None;
    }
    let out = Cmd::new("ps")
        .args(["-axo", "pid=,ppid=,etime=,comm="])
        .run()
        .ok()?;
    parse_ps(&out.stdout_text(), SystemTime::now())
        .into_iter()
        .max_by_key(|d| d.1)
        .map(|(pid, started)| Daemon {
            pid,
            started,
            conf_dir: etc_nix,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_times() {
        assert_eq!(parse_etime("05:07"), Some(Duration::from_secs(307)));
        assert_eq!(parse_etime("01:00:00"), Some(Duration::from_secs(3600)));
        assert_eq!(
            parse_etime("2-00:00:01"),
            Some(Duration::from_secs(172_801))
        );
        assert_eq!(parse_etime("x"), None);
    }

    #[test]
    fn top_level_daemon_from_recorded_macos_ps() {
        // `ps -axo pid=,ppid=,etime=,comm=` on macOS 14 with the Nix installer's daemon.
        let text = "    1     0 3-02:11:09 /sbin/launchd\n\
                    \x20 412     1 3-02:10:58 /nix/var/nix/profiles/default/bin/nix-daemon\n\
                    \x20 913   412      00:04 /nix/var/nix/profiles/default/bin/nix-daemon\n\
                    \x20 977   601      12:30 /Applications/Some App.app/Contents/MacOS/Some App\n";
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let found = parse_ps(text, now);
        assert_eq!(
            found,
            [(
                412,
                now - Duration::from_secs(3 * 86_400 + 2 * 3600 + 10 * 60 + 58)
            )]
        );
    }

    #[test]
    fn real_ps_finds_the_same_daemon_as_proc() {
        lb_testkit::ensure_nix_daemon();
        let out = Cmd::new("ps")
            .args(["-axo", "pid=,ppid=,etime=,comm="])
            .run()
            .unwrap();
        let by_ps = parse_ps(&out.stdout_text(), SystemTime::now());
        let by_proc = crate::daemon::running_for(Path::new("/etc/nix")).unwrap();
        let (pid, started) = by_ps.iter().find(|d| d.0 == by_proc.pid).copied().unwrap();
        assert_eq!(pid, by_proc.pid);
        // ps rounds to seconds; /proc has clock ticks.
        let diff = started
            .duration_since(by_proc.started)
            .unwrap_or_else(|e| e.duration());
        assert!(diff <= Duration::from_secs(2), "{diff:?}");
    }
}
