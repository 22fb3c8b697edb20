//! `--explain`: every stage with its timing, and for the failed one the
//! likely cause and the command that fixes it.

use std::fmt::Write as _;

use lb_common::daemon::Trust;

use crate::{Cause, Report, Stage};

/// The explanation of one report, several lines.
#[must_use]
pub fn explain(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{}: {}", r.uri, if r.ok { "ok" } else { "FAILED" });
    if let (Some(addr), Some(user)) = (&r.address, &r.user) {
        let key = r
            .identity
            .as_ref()
            .map_or_else(|| "no key".to_owned(), |k| format!("key {}", k.display()));
        let _ = writeln!(s, "  {} resolves to {user}@{addr}, {key}", r.host);
    }
    for st in &r.stages {
        let _ = writeln!(
            s,
            "  {:<17} {:>9.1} ms  {}",
            st.stage.name(),
            st.ms,
            if st.ok { "ok" } else { "FAILED" }
        );
    }
    if let Some(h) = &r.health {
        for f in &h.findings {
            let _ = writeln!(
                s,
                "  {:<9} {}  {}",
                f.aspect.name(),
                if f.ok { "ok    " } else { "FAILED" },
                f.message
            );
            if let Some(fix) = &f.fix {
                let _ = writeln!(s, "            fix: {fix}");
            }
        }
    }
    if r.ok {
        let _ = writeln!(
            s,
            "  Nix {} on the builder, protocol {}, trusted: {}",
            r.nix_version.as_deref().unwrap_or("(version not sent)"),
            r.protocol.as_deref().unwrap_or("-"),
            r.trusted.as_str()
        );
        if r.trusted == Trust::No {
            let _ = writeln!(
                s,
                "  note: the builder's daemon does not trust {user}: remote builds send derivations \
                 with BuildDerivation, which only trusted users may do, and unsigned paths copied to it \
                 are refused. Fix on the builder: add {user} to `trusted-users` in its nix.conf and restart its daemon.",
                user = r.user.as_deref().unwrap_or("the user")
            );
        }
    } else {
        if let Some(e) = &r.error {
            let _ = writeln!(s, "  error: {e}");
        }
        let (cause, fix) = advice(r);
        let _ = writeln!(s, "  cause: {cause}");
        let _ = writeln!(s, "  fix:   {fix}");
    }
    let _ = write!(s, "  total {:.1} ms", r.total_ms);
    s
}

/// The likely cause and the fixing command, by what failed.
#[must_use]
pub fn advice(r: &Report) -> (String, String) {
    let d = &r.detail;
    let addr = r.address.as_deref().unwrap_or("the builder");
    let host = &r.host;
    match r.cause {
        Some(Cause::Refused) => (
            format!("nothing listens on {addr}: the builder VM is not running, or runs on another port"),
            format!("lb-vm status   (then `lb-vm start`; check the port in the ssh_config alias: `ssh -G {host}`)"),
        ),
        Some(Cause::Unreachable) => (
            format!("{addr} cannot be reached (no route, or a firewall drops the connection)"),
            format!("lb-vm status; check the Hostname in the ssh_config alias: `ssh -G {host}`"),
        ),
        Some(Cause::Name) => (
            format!("{host} does not resolve to an address: no ssh_config alias for it is read"),
            "lb-sshcfg install   (and make sure /etc/ssh/ssh_config includes /etc/ssh/ssh_config.d/*)".to_owned(),
        ),
        Some(Cause::Timeout) => {
            let during = r.failed_stage.map_or("the exchange", Stage::name);
            (
                format!(
                    "no answer within {:.1}s during {during}: the VM may still be booting, be overloaded, or the remote program hangs",
                    d.timeout.as_secs_f32()
                ),
                "lb-vm status (wait for the boot to finish), or retry with a longer --timeout".to_owned(),
            )
        }
        Some(Cause::HostKeyMismatch) => (
            format!(
                "the server at {addr} presents host key {} but {} was expected: a rebuilt VM, another machine on that port, or a stale entry",
                d.offered_key.as_deref().unwrap_or("?"),
                d.expected_key.as_deref().unwrap_or("the configured key")
            ),
            format!(
                "if this is the right builder: lb-nixconf install --host-key '{}'",
                d.offered_line.as_deref().unwrap_or("KEY")
            ),
        ),
        Some(Cause::HostKeyUnknown) => (
            format!(
                "the builders entry has no host key and no known_hosts file ({}) has one for {:?}; lb-ping never accepts an unknown key",
                d.known_hosts.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "),
                d.host_key_name.as_deref().unwrap_or(host)
            ),
            format!(
                "if {} is this builder's key: lb-nixconf install --host-key '{}'",
                d.offered_key.as_deref().unwrap_or("?"),
                d.offered_line.as_deref().unwrap_or("KEY")
            ),
        ),
        Some(Cause::KeyUnreadable) => (
            format!(
                "this user cannot read the SSH key {}; the Nix daemon runs as root and can",
                r.identity.as_ref().map_or_else(|| "(none named)".to_owned(), |k| k.display().to_string())
            ),
            "sudo lb-ping   (the daemon's view), or `lb-keys check` if the key is missing".to_owned(),
        ),
        Some(Cause::AuthRefused) => (
            format!(
                "the builder does not accept key {} for user {}",
                r.identity.as_ref().map_or_else(|| "?".to_owned(), |k| k.display().to_string()),
                r.user.as_deref().unwrap_or("?")
            ),
            "lb-keys check   (the installed key must match the builder's authorized key)".to_owned(),
        ),
        Some(Cause::ProgramMissing) => (
            format!(
                "`{}` does not run on the builder{}",
                d.command.as_deref().unwrap_or("nix-daemon --stdio"),
                d.remote_stderr.as_ref().map_or_else(String::new, |e| format!(": {e}"))
            ),
            "install Nix on the builder, or point the URI at it: ?remote-program=/nix/var/nix/profiles/default/bin/nix-daemon".to_owned(),
        ),
        Some(Cause::NotADaemon) => (
            "the remote program answers, but not with the Nix protocol: a login script printing text, or a ForceCommand".to_owned(),
            format!("ssh {host} nix-daemon --stdio </dev/null | head -c 200 | od -c   (see what it prints); remove output from the shell's startup files"),
        ),
        Some(Cause::DaemonTooOld) => (
            "the builder's Nix is older than 2.8 (protocol 1.34)".to_owned(),
            "upgrade Nix on the builder".to_owned(),
        ),
        Some(Cause::DaemonError) => (
            "the builder's Nix daemon refused the request (its message above)".to_owned(),
            "check the builder's nix.conf (allowed-users, trusted-users) and its daemon log".to_owned(),
        ),
        Some(Cause::Protocol) => (
            format!(
                "the daemon's answer broke off or was malformed{}",
                d.exit_status.map_or_else(String::new, |s| format!(" (it exited with status {s})"))
            ),
            format!("ssh {host} nix-daemon --stdio   (run it by hand to see its errors)"),
        ),
        Some(Cause::Ssh) => (
            "the SSH handshake failed: no common algorithm, or the server closed the connection".to_owned(),
            format!("ssh -v {host} true   (see where OpenSSH stops)"),
        ),
        Some(Cause::DiskLow | Cause::NotTrusted | Cause::SystemMismatch | Cause::FeatureMissing) => {
            let f = r.health.as_ref().and_then(crate::health::Health::first_problem);
            (
                f.map_or_else(|| "the builder cannot take builds".to_owned(), |f| f.message.clone()),
                f.and_then(|f| f.fix.clone()).unwrap_or_default(),
            )
        }
        Some(Cause::Health) => (
            "the builder did not answer the health probe (df, nix show-config)".to_owned(),
            format!("ssh {host} 'df -Pk /nix/store; nix show-config'   (see what it prints)"),
        ),
        Some(Cause::Config) | None => (
            "the builder could not be resolved from the configuration".to_owned(),
            format!("ssh -G {host}   (see what ssh reads), lb-nixconf show"),
        ),
    }
}
