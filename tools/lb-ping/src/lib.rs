//! lb-ping: ping builders over SSH and the Nix daemon protocol, and say
//! which step failed and why.
//!
//! `nix store ping --store ssh-ng://...` answers "cannot open connection"
//! for every failure. lb-ping opens the same connection itself (ssh2 and
//! lb-common's worker-protocol client), one timed stage at a time:
//!
//! | stage | what it does |
//! |---|---|
//! | `resolve` | the alias as ssh resolves it (`ssh -G`; `-F ROOT/etc/ssh/ssh_config` under `--root`): host, port, user, identity |
//! | `connect` | TCP connection |
//! | `ssh-handshake` | SSH key exchange |
//! | `host-key` | the server's key against the entry's base64 host key, else the known_hosts entry (HostKeyAlias); an unknown key is refused |
//! | `auth` | public-key authentication as the user with the entry's key |
//! | `exec` | runs `nix-daemon --stdio` (or the URI's `remote-program`, `--store` for `remote-store`) |
//! | `daemon-handshake` | worker protocol 1.34 to 1.38: Nix version, trust |
//! | `is-valid-path` | one cheap request proving the channel works |
//! | `health` | with `--health` only: one more command over the same session reads the builder's free store space and `min-free`, `trusted-users`, `system` and `system-features`, and judges them against the entry |
//!
//! Reads: nix.conf (`$NIX_CONF_DIR` or `ROOT/etc/nix`, includes, `builders`
//! and `@FILE` machines files), the ssh_config and known_hosts files ssh
//! would use, the builder's private key. Writes nothing.
//!
//! Prints on stdout, one line per builder, in the order given:
//! `URI STATUS VERSION PROTOCOL TRUSTED TIME`, e.g.
//! `ssh-ng://linux-builder ok 2.8.0 1.34 unknown 84ms` (STATUS is `ok` or
//! the stage that failed; `-` for what is not known). The error of each
//! failed builder also goes to stderr.
//!
//! `--json` prints one JSON array instead, an object per builder:
//!
//! ```json
//! [{"uri": "ssh-ng://linux-builder",      // as configured or given
//!   "host": "linux-builder",              // the URI's host (the ssh alias)
//!   "address": "127.0.0.1:31022",         // after ssh -G; null if resolve failed
//!   "user": "builder", "identity": "/etc/nix/builder_ed25519",
//!   "ok": true,
//!   "failed_stage": null,                 // or a stage name from the table
//!   "cause": null,                        // or: refused, unreachable, timeout, name, host-key-mismatch,
//!                                         //  host-key-unknown, key-unreadable, auth-refused, program-missing,
//!                                         //  not-a-daemon, daemon-too-old, daemon-error, protocol, ssh, config,
//!                                         //  (--health) disk-low, not-trusted, system-mismatch, feature-missing, health
//!   "error": null,                        // the one-line error
//!   "nix_version": "2.8.0", "protocol": "1.34",
//!   "trusted": "unknown",                 // yes | no | unknown (protocol < 1.35 does not say)
//!   "total_ms": 84.1,
//!   "stages": [{"stage": "resolve", "ms": 3.2, "ok": true}, ...],   // up to the failed one
//!   // the builders entry's own fields (Nix's defaults for a URI given on the command line),
//!   // so an overview of a fleet can show what each builder is for:
//!   "systems": ["aarch64-linux"], "max_jobs": 4, "speed_factor": 1.0,
//!   "supported_features": ["kvm", "big-parallel"], "mandatory_features": [],
//!   "health": null}]                      // with --health: what the builder said, and the findings
//! ```
//!
//! `--explain` prints each builder's stages with their timings and, for
//! the failed one, the likely cause and the command that fixes it.
//!
//! Exit status: 0 every builder answered, 1 one or more failed, 2 bad usage
//! or a configuration it cannot parse (including no ssh-ng builder to ping).

use lb_common::text::escape_controls;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lb_common::builder::HostKey;
use lb_common::cli::{Global, HasGlobal};
use lb_common::conf::machines::Machine;
use lb_common::conf::Location;
use lb_common::daemon::Trust;
use lb_common::exit::Status;
use lb_common::paths::Root;
use lb_common::Context as _;
use lb_common::{ui, usage};
use serde::Serialize;

mod examples;
pub mod explain;
pub mod health;
mod ping;
mod probe;

use ping::failed_report;
pub use ping::{ping, ping_with, Options};

/// Ping builders over SSH and the Nix daemon protocol, naming the step that fails.
#[derive(Debug, Parser)]
#[command(name = "lb-ping", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Builders to ping: a name from the builders list (the URI's host, e.g.
    /// linux-builder) or an ssh-ng:// URI [default: every ssh-ng:// builder in nix.conf]
    #[arg(value_name = "NAME|URI")]
    pub builders: Vec<String>,
    /// Seconds each builder has for the whole exchange, connect to answer
    #[arg(long, value_name = "SECONDS", default_value_t = 10.0, env = "LB_PING_TIMEOUT",
          value_parser = parse_timeout)]
    pub timeout: f64,
    /// Print a JSON array (shape in the manual) instead of one line per builder
    #[arg(long, conflicts_with = "explain")]
    pub json: bool,
    /// Show every stage with its timing, and for a failure its likely cause and fix
    #[arg(long)]
    pub explain: bool,
    /// Also read the builder's free store space, trusted-users, system and features over the same session, and fail if builds there cannot work
    #[arg(long, env = "LB_PING_HEALTH")]
    pub health: bool,
}

fn parse_timeout(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(t) if t > 0.0 && t <= 3600.0 => Ok(t),
        _ => Err(format!(
            "{s:?}: give seconds above 0, at most 3600, e.g. 10 or 2.5"
        )),
    }
}

impl HasGlobal for Cli {
    const EXAMPLES: lb_common::cli::Examples = examples::EXAMPLES;

    fn global(&self) -> &Global {
        &self.global
    }
}

/// The clap definition, for man pages and completions.
#[must_use]
pub fn command() -> clap::Command {
    lb_common::cli::command::<Cli>()
}

/// One stage of a ping, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    Resolve,
    Connect,
    SshHandshake,
    HostKey,
    Auth,
    Exec,
    DaemonHandshake,
    IsValidPath,
    Health,
}

impl Stage {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Stage::Resolve => "resolve",
            Stage::Connect => "connect",
            Stage::SshHandshake => "ssh-handshake",
            Stage::HostKey => "host-key",
            Stage::Auth => "auth",
            Stage::Exec => "exec",
            Stage::DaemonHandshake => "daemon-handshake",
            Stage::IsValidPath => "is-valid-path",
            Stage::Health => "health",
        }
    }
}

/// Why a stage failed, for `--explain` and `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Cause {
    Refused,
    Unreachable,
    Timeout,
    Name,
    HostKeyMismatch,
    HostKeyUnknown,
    KeyUnreadable,
    AuthRefused,
    ProgramMissing,
    NotADaemon,
    DaemonTooOld,
    DaemonError,
    Protocol,
    Ssh,
    Config,
    DiskLow,
    NotTrusted,
    SystemMismatch,
    FeatureMissing,
    Health,
}

/// One stage's timing.
#[derive(Debug, Clone, Serialize)]
pub struct StageTime {
    pub stage: Stage,
    pub ms: f64,
    pub ok: bool,
}

/// What pinging one builder found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub uri: String,
    pub host: String,
    pub address: Option<String>,
    pub user: Option<String>,
    pub identity: Option<PathBuf>,
    pub ok: bool,
    pub failed_stage: Option<Stage>,
    pub cause: Option<Cause>,
    pub error: Option<String>,
    pub nix_version: Option<String>,
    pub protocol: Option<String>,
    pub trusted: Trust,
    pub total_ms: f64,
    pub stages: Vec<StageTime>,
    pub systems: Vec<String>,
    pub max_jobs: u64,
    pub speed_factor: f64,
    pub supported_features: Vec<String>,
    pub mandatory_features: Vec<String>,
    /// With `--health`: what the builder said about itself, and the findings.
    pub health: Option<health::Health>,
    /// Details `--explain` shows (host key lines, remote stderr); not in JSON.
    #[serde(skip)]
    pub detail: Detail,
}

/// Facts gathered for the explanation of a failure.
#[derive(Debug, Clone, Default)]
pub struct Detail {
    pub expected_key: Option<String>,
    pub offered_key: Option<String>,
    pub offered_line: Option<String>,
    pub known_hosts: Vec<PathBuf>,
    pub host_key_name: Option<String>,
    pub remote_stderr: Option<String>,
    pub exit_status: Option<i32>,
    pub command: Option<String>,
    pub timeout: Duration,
}

/// A builder to ping, as configured or given.
#[derive(Debug, Clone)]
pub struct Target {
    pub machine: Machine,
}

impl Target {
    fn adhoc(uri: String) -> Self {
        Target {
            machine: Machine {
                uri,
                systems: Vec::new(),
                ssh_key: None,
                max_jobs: 1,
                speed_factor: 1.0,
                supported_features: Vec::new(),
                mandatory_features: Vec::new(),
                public_host_key: None,
                at: Location {
                    file: PathBuf::from("the command line"),
                    line: 0,
                },
            },
        }
    }

    /// The expected host key: the entry's field 8, else the URI's
    /// `base64-ssh-public-host-key`.
    fn host_key(&self) -> lb_common::Result<Option<HostKey>> {
        let m = &self.machine;
        let text = m
            .public_host_key
            .as_deref()
            .or_else(|| m.query("base64-ssh-public-host-key"));
        text.map(|t| HostKey::parse(t).with_context(|| format!("{}: builder {}", m.at, m.uri)))
            .transpose()
    }

    fn key(&self) -> Option<PathBuf> {
        self.machine
            .ssh_key
            .as_deref()
            .or_else(|| self.machine.query("ssh-key"))
            .map(PathBuf::from)
    }
}

/// Which builders to ping: the arguments, or every ssh-ng builder of the
/// effective nix.conf.
fn targets(cli: &Cli, root: &Root) -> lb_common::Result<Vec<Target>> {
    let configured = lb_common::conf::load_builders(root)?;
    let is_ng = |m: &Machine| m.uri.starts_with("ssh-ng://");
    if cli.builders.is_empty() {
        let mut out = Vec::new();
        for m in &configured.machines {
            if is_ng(m) {
                out.push(Target { machine: m.clone() });
            } else {
                ui::warn(&format!(
                    "{}: skipping {}: lb-ping speaks ssh-ng:// only (write the URI as ssh-ng://... to use the daemon protocol)",
                    m.at,
                    m.effective_uri()
                ));
            }
        }
        if out.is_empty() {
            return Err(usage!(
                "no ssh-ng:// builder in {} (nor its machines files); name one (`lb-ping ssh-ng://builder@linux-builder`) or run `lb-nixconf install`",
                configured.conf_file.display()
            ));
        }
        return Ok(out);
    }
    cli.builders
        .iter()
        .map(|arg| {
            if arg.contains("://") {
                if !arg.starts_with("ssh-ng://") {
                    return Err(usage!(
                        "{arg}: lb-ping speaks ssh-ng:// only; give ssh-ng://[USER@]HOST"
                    ));
                }
                let found = configured.machines.iter().find(|m| m.uri == *arg);
                Ok(found.map_or_else(
                    || Target::adhoc(arg.clone()),
                    |m| Target { machine: m.clone() },
                ))
            } else {
                if arg.is_empty() || arg.starts_with('-') || arg.contains(char::is_whitespace) {
                    return Err(usage!("{arg:?}: give a builder name or an ssh-ng:// URI"));
                }
                let found = configured
                    .machines
                    .iter()
                    .find(|m| is_ng(m) && m.host() == arg);
                Ok(found.map_or_else(
                    || Target::adhoc(format!("ssh-ng://{arg}")),
                    |m| Target { machine: m.clone() },
                ))
            }
        })
        .collect()
}

/// Run the tool.
#[allow(clippy::needless_pass_by_value)] // the shared main hands the parsed Cli over
pub fn run(cli: Cli) -> lb_common::Result<Status> {
    let root = Root::new(cli.global.root.as_deref())?;
    let targets = targets(&cli, &root)?;
    // Bad host keys in the configuration are bad input: refuse before pinging.
    for t in &targets {
        let host = t.machine.host();
        if host.is_empty() || host.starts_with('-') || host.contains(char::is_whitespace) {
            return Err(usage!(
                "{}: no usable host in the URI; give ssh-ng://[USER@]HOST",
                t.machine.uri
            ));
        }
        t.host_key()?;
    }
    let timeout = Duration::from_secs_f64(cli.timeout);
    let reports: Vec<Report> = std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| {
                let root = &root;
                let opts = Options { health: cli.health };
                scope.spawn(move || ping_with(t, root, timeout, opts))
            })
            .collect();
        handles
            .into_iter()
            .zip(&targets)
            .map(|(h, t)| {
                h.join()
                    .unwrap_or_else(|_| failed_report(t, "the ping thread panicked"))
            })
            .collect()
    });
    for r in reports.iter().filter(|r| !r.ok) {
        if let (Some(stage), Some(e)) = (r.failed_stage, &r.error) {
            // Peer text (a daemon's error message) is escaped for the terminal.
            ui::error(&format!(
                "{}: {}: {}",
                r.uri,
                stage.name(),
                escape_controls(e)
            ));
        }
    }
    if cli.json {
        ui::out(&serde_json::to_string_pretty(&reports)?)?;
    } else if cli.explain {
        for r in &reports {
            ui::out(&explain::explain(r))?;
        }
    } else {
        for r in &reports {
            ui::out(&line(r))?;
        }
    }
    Ok(if reports.iter().all(|r| r.ok) {
        Status::Ok
    } else {
        Status::Failed
    })
}

/// The one-line summary. The peer's version string is escaped: a newline
/// in it would forge a result line, an escape sequence reach the terminal.
#[must_use]
pub fn line(r: &Report) -> String {
    let status = if r.ok {
        "ok"
    } else {
        r.failed_stage.map_or("failed", Stage::name)
    };
    format!(
        "{} {} {} {} {} {}ms",
        escape_controls(&r.uri),
        status,
        escape_controls(r.nix_version.as_deref().unwrap_or("-")),
        r.protocol.as_deref().unwrap_or("-"),
        r.trusted.as_str(),
        r.total_ms.round()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ping::Pinger;

    #[test]
    fn line_shape() {
        let t = Target::adhoc("ssh-ng://lb".to_owned());
        let mut r = Pinger::new(&t, Duration::from_secs(1)).finish(true);
        r.nix_version = Some("2.8.0".into());
        r.protocol = Some("1.34".into());
        r.total_ms = 41.6;
        insta::assert_snapshot!(line(&r), @"ssh-ng://lb ok 2.8.0 1.34 unknown 42ms");
        r.ok = false;
        r.failed_stage = Some(Stage::HostKey);
        r.nix_version = None;
        r.protocol = None;
        insta::assert_snapshot!(line(&r), @"ssh-ng://lb host-key - - unknown 42ms");
    }

    #[test]
    fn peer_text_cannot_forge_a_line_or_reach_the_terminal() {
        let t = Target::adhoc("ssh-ng://lb".to_owned());
        let mut r = Pinger::new(&t, Duration::from_secs(1)).finish(true);
        r.nix_version = Some("2.8\x1b[2J\nssh-ng://other ok 9 1.38 yes 1ms".into());
        let l = line(&r);
        assert!(!l.contains('\n') && !l.contains('\x1b'), "{l:?}");
        r.ok = false;
        r.failed_stage = Some(Stage::DaemonHandshake);
        r.error = Some("no\x1b]0;t\x07\n  cause: forged".into());
        let e = explain::explain(&r);
        assert!(
            !e.contains('\x1b') && !e.contains("\n  cause: forged"),
            "{e:?}"
        );
    }

    #[test]
    fn timeout_must_be_positive() {
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("x").is_err());
        assert!((parse_timeout("2.5").unwrap() - 2.5).abs() < f64::EPSILON);
    }
}
