//! The ping engine: one builder through its stages (resolve, connect,
//! host key, authenticate, daemon handshake, trust, health), timed, into a
//! [`Report`] that says what happened.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use lb_common::daemon::{self, Trust};
use lb_common::paths::Root;
use lb_common::ssh::{self, ExpectedHostKey};

use crate::{health, Cause, Detail, Report, Stage, StageTime, Target};

pub(crate) fn failed_report(t: &Target, error: &str) -> Report {
    let mut r = Pinger::new(t, Duration::ZERO).report;
    r.failed_stage = Some(Stage::Resolve);
    r.error = Some(error.to_owned());
    r
}

pub(crate) struct Pinger {
    report: Report,
    started: Instant,
    stage_started: Instant,
}

/// A failure: the cause and the one-line error.
type Fail = (Cause, String);

impl Pinger {
    pub(crate) fn new(t: &Target, timeout: Duration) -> Self {
        let now = Instant::now();
        Pinger {
            report: Report {
                uri: t.machine.uri.clone(),
                host: t.machine.host().to_owned(),
                address: None,
                user: None,
                identity: None,
                ok: false,
                failed_stage: None,
                cause: None,
                error: None,
                nix_version: None,
                protocol: None,
                trusted: Trust::Unknown,
                total_ms: 0.0,
                stages: Vec::new(),
                systems: t.machine.systems.clone(),
                max_jobs: t.machine.max_jobs,
                speed_factor: t.machine.speed_factor,
                supported_features: t.machine.supported_features.clone(),
                mandatory_features: t.machine.mandatory_features.clone(),
                health: None,
                detail: Detail {
                    timeout,
                    ..Detail::default()
                },
            },
            started: now,
            stage_started: now,
        }
    }

    /// Record `stage` as finished (ok or not) and start the next clock.
    fn done(&mut self, stage: Stage, ok: bool) {
        let now = Instant::now();
        self.report.stages.push(StageTime {
            stage,
            ms: ms(now - self.stage_started),
            ok,
        });
        self.stage_started = now;
    }

    fn step<T>(&mut self, stage: Stage, r: Result<T, Fail>) -> Result<T, ()> {
        match r {
            Ok(v) => {
                self.done(stage, true);
                Ok(v)
            }
            Err((cause, error)) => {
                self.done(stage, false);
                self.report.failed_stage = Some(stage);
                self.report.cause = Some(cause);
                self.report.error = Some(error);
                Err(())
            }
        }
    }

    pub(crate) fn finish(mut self, ok: bool) -> Report {
        self.report.ok = ok;
        self.report.total_ms = ms(self.started.elapsed());
        self.report
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

/// What a ping does beyond the stages every ping runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Run the `health` stage (see [`health`]).
    pub health: bool,
}

/// Ping one builder; never fails, the report says what happened.
#[must_use]
pub fn ping(t: &Target, root: &Root, timeout: Duration) -> Report {
    ping_with(t, root, timeout, Options::default())
}

/// [`ping`] with options.
#[must_use]
pub fn ping_with(t: &Target, root: &Root, timeout: Duration, opts: Options) -> Report {
    let mut p = Pinger::new(t, timeout);
    let deadline = p.started + timeout;
    let ok = stages(t, root, deadline, opts, &mut p).is_ok();
    p.finish(ok)
}

fn ssh_fail(e: &ssh::Error) -> Fail {
    let cause = match e {
        ssh::Error::Address { .. } => Cause::Name,
        ssh::Error::Connect { source, .. } => match source.kind() {
            std::io::ErrorKind::ConnectionRefused => Cause::Refused,
            _ => Cause::Unreachable,
        },
        ssh::Error::TimedOut { .. } => Cause::Timeout,
        ssh::Error::HostKeyMismatch { .. } => Cause::HostKeyMismatch,
        ssh::Error::HostKeyUnknown { .. } => Cause::HostKeyUnknown,
        ssh::Error::KeyUnreadable { .. } => Cause::KeyUnreadable,
        ssh::Error::AuthRefused { .. } => Cause::AuthRefused,
        ssh::Error::Exec { .. } => Cause::ProgramMissing,
        ssh::Error::Handshake { .. } | ssh::Error::NoHostKey { .. } => Cause::Ssh,
    };
    (cause, e.to_string())
}

fn stages(
    t: &Target,
    root: &Root,
    deadline: Instant,
    opts: Options,
    p: &mut Pinger,
) -> Result<(), ()> {
    let m = &t.machine;
    // resolve
    let resolved = p.step(
        Stage::Resolve,
        resolve(t, root).map_err(|e| (Cause::Config, format!("{e:#}"))),
    )?;
    let (resolved, identity, expected) = resolved;
    let addr = ssh::addr_label(&resolved.hostname, resolved.port);
    p.report.address = Some(addr.clone());
    p.report.user = Some(resolved.user.clone());
    p.report.identity.clone_from(&identity);
    match &expected {
        ExpectedHostKey::Key(k) => p.report.detail.expected_key = Some(k.fingerprint()),
        ExpectedHostKey::KnownHosts { name, files, .. } => {
            p.report.detail.known_hosts.clone_from(files);
            p.report.detail.host_key_name = Some(name.clone());
        }
    }

    let tcp = p.step(
        Stage::Connect,
        ssh::connect(&resolved.hostname, resolved.port, deadline).map_err(|e| ssh_fail(&e)),
    )?;
    let conn = p.step(
        Stage::SshHandshake,
        ssh::Connection::handshake(tcp, &addr, deadline).map_err(|e| ssh_fail(&e)),
    )?;
    let checked = conn.check_host_key(&expected);
    if let Err(
        ssh::Error::HostKeyMismatch {
            offered,
            offered_line,
            ..
        }
        | ssh::Error::HostKeyUnknown {
            offered,
            offered_line,
            ..
        },
    ) = &checked
    {
        p.report.detail.offered_key = Some(offered.clone());
        p.report.detail.offered_line = Some(offered_line.clone());
    }
    p.step(Stage::HostKey, checked.map_err(|e| ssh_fail(&e)))?;
    let auth = match &identity {
        Some(key) => conn
            .authenticate(&resolved.user, key)
            .map_err(|e| ssh_fail(&e)),
        None => Err((
            Cause::KeyUnreadable,
            format!("{addr}: no SSH key: the builders entry names none and ssh_config has no IdentityFile"),
        )),
    };
    p.step(Stage::Auth, auth)?;

    let command = ssh::daemon_command(m.query("remote-program"), m.query("remote-store"));
    p.report.detail.command = Some(command.clone());
    let mut process = p.step(Stage::Exec, conn.exec(&command).map_err(|e| ssh_fail(&e)))?;

    let handshake = daemon::handshake(&mut process);
    let mut client = match handshake {
        Ok(c) => {
            p.done(Stage::DaemonHandshake, true);
            c
        }
        Err(e) => {
            let fail = daemon_fail(&e, &mut process, &command, &addr, p);
            // A program that is not there fails at exec, as the user sees it.
            let stage = if fail.0 == Cause::ProgramMissing {
                Stage::Exec
            } else {
                Stage::DaemonHandshake
            };
            if stage == Stage::Exec {
                // Exec "succeeded" at the SSH level; the shell then failed.
                if let Some(last) = p.report.stages.last_mut() {
                    last.ok = false;
                }
                p.report.failed_stage = Some(Stage::Exec);
                p.report.cause = Some(fail.0);
                p.report.error = Some(fail.1);
                return Err(());
            }
            return p.step(stage, Err(fail));
        }
    };
    p.report.nix_version.clone_from(&client.info.nix_version);
    p.report.protocol = Some(daemon::version_string(client.info.protocol));
    p.report.trusted = client.info.trust;
    let probe = client
        .is_valid_path("/nix/store/00000000000000000000000000000000-lb-ping")
        .map_err(|e| daemon_fail(&e, client.stream_mut(), &command, &addr, p));
    p.step(Stage::IsValidPath, probe)?;
    if opts.health {
        let (found, judged) = health::stage(&conn, m, client.info.trust);
        p.report.health = found;
        p.step(Stage::Health, judged)?;
    }
    Ok(())
}

fn daemon_fail(
    e: &daemon::Error,
    process: &mut ssh::RemoteProcess,
    command: &str,
    addr: &str,
    p: &mut Pinger,
) -> Fail {
    let timeout = p.report.detail.timeout;
    if e.is_timeout() {
        return (
            Cause::Timeout,
            format!(
                "{addr}: `{command}` did not answer within the {}s timeout ({e})",
                timeout.as_secs_f32()
            ),
        );
    }
    if matches!(
        e,
        daemon::Error::Eof { .. } | daemon::Error::NotADaemon { .. }
    ) {
        let (status, stderr) = process.finish();
        p.report.detail.exit_status = status;
        let first = stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        let first: String = first.chars().take(300).collect();
        if !first.is_empty() {
            p.report.detail.remote_stderr = Some(first.clone());
        }
        // 127: the shell found no such command; 126: not executable.
        let missing = matches!(status, Some(126 | 127))
            || first.contains("command not found")
            || first.contains("No such file or directory");
        if missing {
            return (
                Cause::ProgramMissing,
                format!("{addr}: `{command}` cannot run on the builder: {first}"),
            );
        }
        if matches!(e, daemon::Error::Eof { .. }) {
            let how = match (status, first.is_empty()) {
                (Some(s), true) => format!(" (exit status {s})"),
                (Some(s), false) => format!(" (exit status {s}: {first})"),
                (None, false) => format!(": {first}"),
                (None, true) => String::new(),
            };
            return (
                Cause::Protocol,
                format!("{addr}: `{command}` ended early{how}"),
            );
        }
        return (Cause::NotADaemon, format!("{addr}: {e}"));
    }
    let cause = match e {
        daemon::Error::Unsupported { .. } => Cause::DaemonTooOld,
        daemon::Error::Remote { .. } => Cause::DaemonError,
        _ => Cause::Protocol,
    };
    (cause, format!("{addr}: {e}"))
}

type Resolution = (ssh::Resolved, Option<PathBuf>, ExpectedHostKey);

fn resolve(t: &Target, root: &Root) -> lb_common::Result<Resolution> {
    let m = &t.machine;
    let resolved = ssh::resolve(root, m.host(), m.user())?;
    let identity = t.key().or_else(|| {
        let files: Vec<PathBuf> = resolved
            .identity_files
            .iter()
            .map(|f| ssh::expand_tilde(f))
            .collect();
        files
            .iter()
            .find(|f| Path::new(f).exists())
            .or(files.first())
            .cloned()
    });
    let expected = match t.host_key()? {
        Some(k) => ExpectedHostKey::Key(k),
        None => ExpectedHostKey::from_resolved(&resolved),
    };
    Ok((resolved, identity, expected))
}
