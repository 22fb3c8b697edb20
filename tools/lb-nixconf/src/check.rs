//! check: the builders Nix will use (entries, key files, aliases), the
//! build user's trust, and whether the running daemon has read the
//! configuration.

use std::path::Path;

use lb_common::builder::{validate_system, BuilderArgs, HostKey};
use lb_common::cmd::Cmd;
use lb_common::conf::load_builders;
use lb_common::conf::machines::Machine;
use lb_common::conf::nixconf::NixConf;
use lb_common::exit::Status;
use lb_common::paths::Root;
use lb_common::platform::Platform;
use lb_common::privilege::is_root;
use lb_common::report::CheckReport;
use lb_common::ui;

use crate::{alias, daemon, daemon_ps, newest_mtime, restart_argv, token, trust, CheckArgs};

/// Problems with the private key file as the daemon (root) will use it.
fn key_problems(machine: &Machine, key: &str) -> Option<String> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let host = machine.host();
    let meta = match std::fs::metadata(key) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some(format!(
                "{host}: key file {key} is missing; install it with lb-keys install"
            ))
        }
        Err(e) => return Some(format!("{host}: key file {key}: {e}")),
    };
    if !meta.is_file() {
        return Some(format!("{host}: key file {key} is not a regular file"));
    }
    let mode = meta.permissions().mode() & 0o777;
    if is_root() {
        if let Err(e) = std::fs::File::open(key) {
            return Some(format!(
                "{host}: key file {key} is not readable by root: {e}"
            ));
        }
    } else if meta.uid() == nix::unistd::geteuid().as_raw() && mode & 0o400 == 0 {
        return Some(format!(
            "{host}: key file {key} (mode {mode:04o}) is not readable by its owner; chmod 600 it"
        ));
    }
    // ssh refuses a private key its owner's group or others can read, when
    // it runs as that owner (root for the daemon; this user in a scratch root).
    let runs_as_owner = meta.uid() == 0 || meta.uid() == nix::unistd::geteuid().as_raw();
    if runs_as_owner && mode & 0o077 != 0 {
        return Some(format!(
            "{host}: key file {key} has mode {mode:04o}; ssh refuses a private key others can read: chmod 600 {key}"
        ));
    }
    None
}

/// What `check` finds, split as `lb-doctor` reports it.
#[derive(Debug, Clone, Default)]
pub struct Problems {
    /// The builders configuration, its key files and aliases.
    pub conf: Vec<String>,
    /// Whether the build user is trusted here.
    pub trust: Vec<String>,
    /// The running daemon against the configuration.
    pub daemon: Vec<String>,
    /// The file read and what was found, for the summary line.
    pub summary: String,
    /// What was compared about the daemon, for its summary line.
    pub daemon_summary: String,
}

/// `check`'s problems, one line each with its fix.
#[allow(clippy::too_many_lines)] // one list of checks, in the order they are reported
pub fn problems(args: &BuilderArgs, root: &Root, opts: &CheckArgs) -> lb_common::Result<Problems> {
    lb_common::builder::validate_name(&args.name)?;
    let builders = load_builders(root)?;
    let mut problems = Vec::new();
    if builders.assignments.len() > 1 {
        let places: Vec<String> = builders
            .assignments
            .iter()
            .map(|a| a.at.to_string())
            .collect();
        problems.push(format!(
            "builders is set {} times ({}); only the last counts: keep one",
            places.len(),
            places.join(", ")
        ));
    }
    if !builders.machines.iter().any(|m| m.host() == args.name) {
        problems.push(format!(
            "no builder {} in builders (read {}); run lb-nixconf install",
            args.name,
            builders.conf_file.display()
        ));
    }
    for m in &builders.machines {
        let host = m.host();
        let at = &m.at;
        let before = problems.len();
        match m.uri.split_once("://") {
            Some(("ssh-ng" | "ssh", _)) => {}
            Some((scheme, _)) => problems.push(format!(
                "{at}: {}: scheme {scheme}:// is not a remote builder; use ssh-ng://",
                m.uri
            )),
            None if m.effective_uri() == m.uri => problems.push(format!(
                "{at}: {}: a local store, not a remote builder; use ssh-ng://USER@HOST",
                m.uri
            )),
            None => problems.push(format!(
                "{at}: {}: a URI without a scheme means legacy ssh://; write ssh-ng://{}",
                m.uri, m.uri
            )),
        }
        for s in &m.systems {
            if validate_system(s).is_err() {
                problems.push(format!(
                    "{at}: {host}: system {s:?} is malformed; give ARCH-OS such as aarch64-linux"
                ));
            }
        }
        if let Some(k) = &m.public_host_key {
            if let Err(e) = HostKey::parse(k) {
                let reason = e.to_string();
                let reason = reason.split_once(": ").map_or(reason.as_str(), |(_, r)| r);
                problems.push(format!("{at}: {host}: host key is not valid: {reason}"));
            }
        }
        if let Some(key) = &m.ssh_key {
            if let Some(p) = key_problems(m, key) {
                problems.push(format!("{at}: {p}"));
            }
        }
        // Whether ssh reaches it matters once the entry itself is right.
        if problems.len() == before {
            problems.extend(alias::problem(root, m));
        }
    }
    let conf = NixConf::load(&builders.conf_file)?;
    let user = opts
        .trust_user
        .clone()
        .or_else(|| root.is_real().then(trust::build_user).flatten());
    let mut trust_problems = Vec::new();
    if let Some(user) = user {
        token("--trust-user", &user)?;
        trust_problems = trust::problems(&conf, &builders.conf_file, &user, root.is_real());
    }
    let conf_dir = builders.conf_file.parent().unwrap_or(Path::new("/"));
    let platform = Platform::current()?;
    let running = if platform.os == lb_common::platform::Os::MacOs {
        daemon_ps::running_for(conf_dir)
    } else {
        daemon::running_for(conf_dir)
    };
    let mut daemon_problems = Vec::new();
    let mut daemon_summary = format!(
        "no running nix-daemon reads {}: not compared",
        conf_dir.display()
    );
    match running {
        Some(d) => {
            daemon_summary = format!(
                "nix-daemon (pid {}) started after {} last changed",
                d.pid,
                builders.conf_file.display()
            );
            if let Some(changed) = newest_mtime(&conf.files) {
                if changed > d.started {
                    daemon_problems.push(format!(
                        "{} changed after the running nix-daemon (pid {}) started: the change is not in effect yet; run lb-nixconf restart-daemon ({})",
                        builders.conf_file.display(),
                        d.pid,
                        Cmd::from_argv(&restart_argv(root)?).display()
                    ));
                }
            }
        }
        None if root.is_real() && std::env::var_os("NIX_CONF_DIR").is_none() => {
            daemon_problems.push(format!(
                "no nix-daemon is running: Nix cannot build or reach builders through it; start it: {}",
                Cmd::from_argv(&platform.restart_daemon()).display()
            ));
        }
        None => ui::verbose(&format!(
            "no running nix-daemon reads {}; not comparing its start with nix.conf",
            conf_dir.display()
        )),
    }
    Ok(Problems {
        conf: problems,
        trust: trust_problems,
        daemon: daemon_problems,
        daemon_summary,
        summary: format!(
            "{}: {} builder(s)",
            builders.conf_file.display(),
            builders.machines.len()
        ),
    })
}

pub(crate) fn check(
    args: &BuilderArgs,
    root: &Root,
    opts: &CheckArgs,
) -> lb_common::Result<Status> {
    let found = problems(args, root, opts)?;
    let all: Vec<String> = found
        .conf
        .iter()
        .chain(&found.trust)
        .chain(&found.daemon)
        .cloned()
        .collect();
    let healthy = format!("{}, no problems", found.summary);
    CheckReport::new(&args.name, all, healthy).print(opts.json)
}
