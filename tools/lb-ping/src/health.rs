//! `--health`: after the daemon answered, one more command over the same
//! SSH session reads what decides whether builds sent there can work:
//!
//! - the free space of the builder's `/nix/store` (`df -Pk`) against its
//!   `min-free` (a store nearly full fails builds with "No space left on
//!   device", or makes every build wait for a garbage collection);
//! - who the builder's Nix trusts: the daemon's own answer (protocol 1.35+)
//!   and its `trusted-users` (a remote build by an untrusted user is
//!   refused: "you are not privileged to build input-addressed
//!   derivations"; unsigned copies need trust too);
//! - its `system`, `extra-platforms` and `system-features`, against the
//!   builders entry's systems and supported features (an entry that claims
//!   a system or feature the builder lacks gets builds that fail there:
//!   "Required system 'aarch64-linux'").
//!
//! The settings come from `nix config show` (Nix 2.20+), else `nix
//! show-config`, run as the builder's user, so they are what its Nix reads.

use std::io::Read as _;

use lb_common::conf::machines::Machine;
use lb_common::daemon::Trust;
use lb_common::ssh;
use serde::Serialize;

pub use crate::probe::{human, parse_probe, parse_size, probe_command, Probe};

/// At most this much of the probe's output is read: `nix show-config`
/// prints about 10 KiB; a hostile builder must not make us allocate more.
const MAX_OUTPUT: u64 = 256 * 1024;

/// Below this much free space a store counts as nearly full even when
/// `min-free` is 0 (Nix's default: never collect garbage during builds).
const FLOOR: u64 = 1024 * 1024 * 1024;

/// Which aspect a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Aspect {
    Disk,
    Trust,
    System,
    Features,
}

impl Aspect {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Aspect::Disk => "disk",
            Aspect::Trust => "trust",
            Aspect::System => "system",
            Aspect::Features => "features",
        }
    }
}

/// One judgement about the builder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub aspect: Aspect,
    pub ok: bool,
    pub message: String,
    /// What to do, for a finding that is not ok.
    pub fix: Option<String>,
}

/// What the builder said about itself, and the findings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Health {
    /// The user the session runs as on the builder (`id -un`).
    pub user: Option<String>,
    pub groups: Vec<String>,
    pub store_free_bytes: Option<u64>,
    pub store_size_bytes: Option<u64>,
    pub min_free_bytes: Option<u64>,
    pub system: Option<String>,
    pub extra_platforms: Vec<String>,
    pub system_features: Vec<String>,
    pub trusted_users: Option<Vec<String>>,
    pub findings: Vec<Finding>,
}

impl Health {
    /// The first finding that is not ok.
    #[must_use]
    pub fn first_problem(&self) -> Option<&Finding> {
        self.findings.iter().find(|f| !f.ok)
    }
}

/// Does a `trusted-users` list let `user` (in `groups`) in? Entries are
/// user names, `@group` and `*` (Nix's matchUser).
#[must_use]
pub fn trusts(list: &[String], user: &str, groups: &[String]) -> bool {
    list.iter().any(|e| {
        e == "*"
            || e == user
            || e.strip_prefix('@')
                .is_some_and(|g| groups.iter().any(|h| h == g))
    })
}

/// Judge the probe against the builders entry and the daemon's answer.
#[must_use]
pub fn judge(probe: &Probe, machine: &Machine, trust: Trust, host: &str) -> Health {
    let mut h = Health {
        user: probe.user.clone(),
        groups: probe.groups.clone(),
        store_free_bytes: probe.df.map(|d| d.1),
        store_size_bytes: probe.df.map(|d| d.0),
        min_free_bytes: probe.setting("min-free").and_then(parse_size),
        system: probe.setting("system").map(str::to_owned),
        extra_platforms: probe.words("extra-platforms"),
        system_features: probe.words("system-features"),
        trusted_users: probe
            .setting("trusted-users")
            .map(|_| probe.words("trusted-users")),
        findings: Vec::new(),
    };
    h.findings.push(disk(&h, host));
    h.findings.push(trust_finding(&h, trust, host));
    if let Some(f) = system(&h, machine, host) {
        h.findings.push(f);
    }
    if let Some(f) = features(&h, machine, host) {
        h.findings.push(f);
    }
    h
}

fn disk(h: &Health, host: &str) -> Finding {
    let (Some(size), Some(free)) = (h.store_size_bytes, h.store_free_bytes) else {
        return Finding {
            aspect: Aspect::Disk,
            ok: false,
            message: format!("{host}: could not read the free space of /nix/store (neither `stat -f` nor `df -Pk` printed anything usable)"),
            fix: Some(format!("ssh {host} stat -f /nix/store   (see what the builder says)")),
        };
    };
    let min_free = h.min_free_bytes.unwrap_or(0);
    let threshold = min_free.max(FLOOR.min(size / 10));
    let what = format!(
        "{host}: /nix/store has {} free of {} (min-free {})",
        human(free),
        human(size),
        if min_free == 0 {
            "0: no garbage collection during builds".to_owned()
        } else {
            human(min_free)
        }
    );
    if free >= threshold {
        return Finding {
            aspect: Aspect::Disk,
            ok: true,
            message: what,
            fix: None,
        };
    }
    Finding {
        aspect: Aspect::Disk,
        ok: false,
        message: format!(
            "{what}: nearly full, below {}; builds there fail with \"No space left on device\" or wait for garbage collection",
            human(threshold)
        ),
        fix: Some(format!(
            "free space on the builder: `ssh {host} nix-collect-garbage` (and remove big files outside the store); \
             or give it a bigger disk: `lb-vm stop`, then `lb-vm start --disk-size MIB` (grows the image) or `--ephemeral` (a fresh one)"
        )),
    }
}

fn trust_finding(h: &Health, trust: Trust, host: &str) -> Finding {
    let user = h.user.as_deref().unwrap_or("the ssh user");
    let list = h.trusted_users.as_ref().map(|l| l.join(" "));
    let listed = h.trusted_users.as_ref().map(|l| trusts(l, user, &h.groups));
    let says = list.as_deref().map_or_else(
        || "its trusted-users could not be read".to_owned(),
        |l| format!("its trusted-users = {l}"),
    );
    let fix = format!(
        "on the builder: add {user} to `trusted-users` in its nix.conf and restart its nix-daemon \
         (the nixpkgs builder has `trusted-users = builder`)"
    );
    let (ok, message) = match (trust, listed) {
        (Trust::Yes, _) => (true, format!("{host}: the builder's daemon trusts {user} ({says})")),
        (Trust::No, _) => (
            false,
            format!(
                "{host}: the builder's daemon answers that it does not trust {user} ({says}): remote builds are refused \
                 (\"not privileged to build input-addressed derivations\") and unsigned paths copied to it too"
            ),
        ),
        (Trust::Unknown, Some(true)) => (
            true,
            format!("{host}: {user} is in the builder's trusted-users (its daemon is too old to say itself)"),
        ),
        (Trust::Unknown, Some(false)) => (
            false,
            format!(
                "{host}: {user} is not in the builder's trusted-users ({says}): remote builds are refused \
                 (\"not privileged to build input-addressed derivations\")"
            ),
        ),
        (Trust::Unknown, None) => (
            false,
            format!("{host}: cannot tell whether the builder trusts {user}: its daemon does not say (protocol < 1.35) and {says}"),
        ),
    };
    Finding {
        aspect: Aspect::Trust,
        ok,
        message,
        fix: (!ok).then_some(fix),
    }
}

fn system(h: &Health, m: &Machine, host: &str) -> Option<Finding> {
    let sys = h.system.as_deref()?;
    let can: Vec<&str> = std::iter::once(sys)
        .chain(h.extra_platforms.iter().map(String::as_str))
        .collect();
    let missing: Vec<&str> = m
        .systems
        .iter()
        .map(String::as_str)
        .filter(|s| !can.contains(s))
        .collect();
    let extra = if h.extra_platforms.is_empty() {
        String::new()
    } else {
        format!(", extra-platforms {}", h.extra_platforms.join(" "))
    };
    Some(if missing.is_empty() {
        Finding {
            aspect: Aspect::System,
            ok: true,
            message: format!("{host}: builds {}", m.systems.join(",")),
            fix: None,
        }
    } else {
        Finding {
            aspect: Aspect::System,
            ok: false,
            message: format!(
                "{host}: the builders entry ({}) says it builds {}, but the builder's Nix is {sys}{extra}: builds for {} sent there fail (\"Required system '{}'\")",
                m.at,
                m.systems.join(","),
                missing.join(","),
                missing[0]
            ),
            fix: Some(format!(
                "lb-nixconf install --name {host} --system {sys}   (or boot a builder of the system you need)"
            )),
        }
    })
}

fn features(h: &Health, m: &Machine, host: &str) -> Option<Finding> {
    h.system.as_ref()?;
    let have = &h.system_features;
    let claimed_missing: Vec<&str> = m
        .supported_features
        .iter()
        .chain(&m.mandatory_features)
        .map(String::as_str)
        .filter(|f| !have.iter().any(|h| h == f))
        .collect();
    if !claimed_missing.is_empty() {
        return Some(Finding {
            aspect: Aspect::Features,
            ok: false,
            message: format!(
                "{host}: the builders entry ({}) says it supports {}, but the builder's system-features are {}: builds that ask for {} are sent there and fail",
                m.at,
                claimed_missing.join(","),
                if have.is_empty() { "(none)".to_owned() } else { have.join(" ") },
                claimed_missing.join(",")
            ),
            fix: Some(format!(
                "lb-nixconf install --name {host} --features {}   (what the builder supports), or add the features to the builder's system-features",
                if have.is_empty() { "''".to_owned() } else { have.join(",") }
            )),
        });
    }
    // Features the builder has but the entry does not offer: builds that
    // need them (big-parallel, kvm) are never sent there.
    let unused: Vec<&str> = ["big-parallel", "kvm", "benchmark", "nixos-test"]
        .into_iter()
        .filter(|f| have.iter().any(|h| h == f) && !m.supported_features.iter().any(|s| s == f))
        .collect();
    Some(Finding {
        aspect: Aspect::Features,
        ok: true,
        message: if unused.is_empty() {
            format!("{host}: supported features as configured")
        } else {
            format!(
                "{host}: the builder supports {} but the builders entry does not say so: builds that ask for them will not be sent there (lb-nixconf install --features {})",
                unused.join(","),
                have.join(",")
            )
        },
        fix: None,
    })
}

/// Run the probe over `conn`, judge it, and say which cause a failure is.
pub fn stage(
    conn: &ssh::Connection,
    machine: &Machine,
    trust: Trust,
) -> (Option<Health>, Result<(), (crate::Cause, String)>) {
    use crate::Cause;
    match check(conn, machine, trust, machine.host()) {
        Ok(h) => {
            let problem = h.first_problem().map(|f| {
                let cause = match f.aspect {
                    Aspect::Disk => Cause::DiskLow,
                    Aspect::Trust => Cause::NotTrusted,
                    Aspect::System => Cause::SystemMismatch,
                    Aspect::Features => Cause::FeatureMissing,
                };
                (cause, f.message.clone())
            });
            (Some(h), problem.map_or(Ok(()), Err))
        }
        Err(e) => (None, Err((Cause::Health, e))),
    }
}

/// Run the probe over `conn` and judge it.
pub fn check(
    conn: &ssh::Connection,
    machine: &Machine,
    trust: Trust,
    host: &str,
) -> Result<Health, String> {
    let command = probe_command(machine.query("remote-program"));
    let mut process = conn.exec(&command).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    (&mut process)
        .take(MAX_OUTPUT)
        .read_to_end(&mut out)
        .map_err(|e| {
            format!(
                "{}: reading the builder's answer to the health probe: {e}",
                conn.addr
            )
        })?;
    let _ = process.finish();
    Ok(judge(
        &parse_probe(&String::from_utf8_lossy(&out)),
        machine,
        trust,
        host,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use lb_common::conf::Location;

    fn machine(systems: &[&str], features: &[&str]) -> Machine {
        Machine {
            uri: "ssh-ng://builder@lb".into(),
            systems: systems.iter().map(|s| (*s).to_owned()).collect(),
            ssh_key: None,
            max_jobs: 1,
            speed_factor: 1.0,
            supported_features: features.iter().map(|s| (*s).to_owned()).collect(),
            mandatory_features: Vec::new(),
            public_host_key: None,
            at: Location {
                file: "/etc/nix/nix.conf".into(),
                line: 3,
            },
        }
    }

    /// As the test guest answers (busybox stat and df, Nix 2.8 show-config).
    const GUEST: &str = "@@id\nbuilder\nbuilder nix-users\n@@statfs\n4096 120595 95149\n@@df\n\
        Filesystem           1024-blocks    Used Available Capacity Mounted on\n@@conf\n\
        min-free = 0\nsystem = x86_64-linux\nextra-platforms = i686-linux\n\
        system-features = benchmark big-parallel nixos-test\ntrusted-users = root builder\n\
        substituters = \n";

    #[test]
    fn parses_the_guest_probe() {
        let p = parse_probe(GUEST);
        assert_eq!(p.user.as_deref(), Some("builder"));
        assert_eq!(p.groups, ["builder", "nix-users"]);
        assert_eq!(p.df, Some((4096 * 120_595, 4096 * 95_149)));
        // GNU or busybox df where stat -f printed nothing.
        let df = parse_probe(
            "@@statfs\n@@df\nFilesystem 1024-blocks Used Available Capacity Mounted on\n\
             /dev/vda 264212084 24020940 71264948 26% /\n",
        );
        assert_eq!(df.df, Some((264_212_084 * 1024, 71_264_948 * 1024)));
        assert_eq!(p.setting("system"), Some("x86_64-linux"));
        assert_eq!(p.setting("substituters"), Some(""));
        let h = judge(&p, &machine(&["x86_64-linux"], &[]), Trust::Unknown, "lb");
        assert!(h.findings.iter().all(|f| f.ok), "{:#?}", h.findings);
        assert!(
            h.findings[3].message.contains("big-parallel"),
            "{:?}",
            h.findings[3]
        );
    }

    #[test]
    fn a_full_store_is_named_against_min_free() {
        let text = GUEST.replace("4096 120595 95149", "4096 120595 2000");
        let h = judge(
            &parse_probe(&text),
            &machine(&["x86_64-linux"], &[]),
            Trust::Yes,
            "lb",
        );
        let f = h.first_problem().unwrap();
        assert_eq!(f.aspect, Aspect::Disk);
        assert!(f.message.contains("nearly full"), "{}", f.message);
        assert!(f.fix.as_ref().unwrap().contains("nix-collect-garbage"));
        // min-free above what is free: named too.
        let text = GUEST.replace("min-free = 0", "min-free = 1073741824");
        let h = judge(
            &parse_probe(&text),
            &machine(&["x86_64-linux"], &[]),
            Trust::Yes,
            "lb",
        );
        let f = h.first_problem().unwrap();
        assert!(f.message.contains("min-free 1.0 GiB"), "{}", f.message);
    }

    #[test]
    fn trust_from_the_daemon_or_trusted_users() {
        let m = machine(&["x86_64-linux"], &[]);
        let untrusted = GUEST.replace("trusted-users = root builder", "trusted-users = root");
        let h = judge(&parse_probe(&untrusted), &m, Trust::Unknown, "lb");
        assert_eq!(h.first_problem().unwrap().aspect, Aspect::Trust);
        let by_group = GUEST.replace("root builder", "root @nix-users");
        assert!(judge(&parse_probe(&by_group), &m, Trust::Unknown, "lb")
            .first_problem()
            .is_none());
        // The daemon's own answer wins over the list.
        let h = judge(&parse_probe(GUEST), &m, Trust::No, "lb");
        assert!(h
            .first_problem()
            .unwrap()
            .message
            .contains("does not trust builder"));
    }

    #[test]
    fn system_and_features_the_builder_lacks() {
        let p = parse_probe(GUEST);
        let h = judge(&p, &machine(&["aarch64-linux"], &[]), Trust::Yes, "lb");
        let f = h.first_problem().unwrap();
        assert_eq!(f.aspect, Aspect::System);
        assert!(
            f.message.contains("Required system 'aarch64-linux'"),
            "{}",
            f.message
        );
        let h = judge(&p, &machine(&["i686-linux"], &["kvm"]), Trust::Yes, "lb");
        let f = h.first_problem().unwrap();
        assert_eq!(f.aspect, Aspect::Features);
        assert!(f.message.contains("supports kvm"), "{}", f.message);
    }

    #[test]
    fn sizes_and_commands() {
        assert_eq!(parse_size("1G"), Some(1 << 30));
        assert_eq!(parse_size("0"), Some(0));
        assert_eq!(parse_size("x"), None);
        assert!(probe_command(None).contains("nix --extra-experimental-features"));
        assert!(probe_command(Some("/opt/n/bin/nix-daemon")).contains("/opt/n/bin/nix "));
    }
}
