//! lb-doctor: every check of the linux-builder tools and a ping of every
//! configured builder, as one overview with the fix of each failing line.
//!
//! Runs, in order, the checks of the tool that owns each step (the same
//! code as their `check` commands):
//!
//! | step | what | from |
//! |---|---|---|
//! | `keys` | the installed key pair (mode, group, matches the VM's keys directory) | `lb-keys check` |
//! | `alias` | the ssh_config alias as ssh resolves it; Hostname reachable; what root reads | `lb-sshcfg check` |
//! | `nix.conf` | the builders configuration; each builder's system and features against what it reports | `lb-nixconf check`, `lb-ping --health` |
//! | `daemon` | the nix-daemon runs and started after nix.conf last changed | `lb-nixconf check` |
//! | `VM` | runs and answers; crash signatures; disk size; TMPDIR; exposed port; alias port | `lb-vm check` |
//! | `ping` | every ssh-ng builder, stage by stage | `lb-ping` |
//! | `builder disk` | each builder's free store space against its min-free | `lb-ping --health` |
//! | `trust` | the build user trusted here; the builder's trust answer and trusted-users | `lb-nixconf check`, `lb-ping --health` |
//!
//! Reads what those checks read; writes nothing.
//!
//! Prints on stdout one line per step, `STEP STATUS SUMMARY` (STATUS `ok`,
//! `FAILED`, or `skipped`), each failing step followed by its problems and
//! their fixes; `--json` prints the same as one object:
//! `{"healthy": bool, "steps": [{"step", "status", "summary", "problems":
//! [{"message", "fix"}]}], "builders": [lb-ping's report per builder]}`.
//!
//! Exit status: 0 every step is healthy; 1 a step found a problem; 2 bad
//! usage (flags).

mod examples;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use lb_common::builder::{Builder, BuilderArgs};
use lb_common::cli::{Global, HasGlobal};
use lb_common::exit::Status;
use lb_common::paths::Root;
use lb_common::ui;
use lb_ping::health::{Aspect, Finding};
use lb_ping::{Report, Stage, Target};
use serde::Serialize;

/// Run every linux-builder check and ping every builder: one overview, with fixes.
#[derive(Debug, Parser)]
#[command(
    name = "lb-doctor",
    version,
    after_help = "Exit status: 0 all healthy; 1 a step found a problem; 2 bad usage."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub builder: BuilderArgs,
    /// The VM's working directory (its NAME.pid, NAME.qcow2, NAME.qemu.log...), as lb-vm --workdir [default: /var/lib/linux-builder, under --root]
    #[arg(long, value_name = "DIR", env = "LB_VM_WORKDIR")]
    pub workdir: Option<PathBuf>,
    /// The keys directory shared into the VM, to check the installed key against [default: WORKDIR/keys if present]
    #[arg(long, value_name = "DIR", env = "LB_KEYS_DIR")]
    pub keys: Option<PathBuf>,
    #[command(flatten)]
    pub disk: lb_vm::DiskArgs,
    /// The user builds run as, who must be trusted [default: SUDO_USER or USER, when --root is /]
    #[arg(long, value_name = "USER", env = "LB_TRUST_USER")]
    pub trust_user: Option<String>,
    /// Seconds each builder's ping has
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10.0,
        env = "LB_PING_TIMEOUT"
    )]
    pub timeout: f64,
    /// Leave out the VM step (a builder that is not a VM on this machine)
    #[arg(long)]
    pub no_vm: bool,
    /// Print the overview as JSON (shape in the manual)
    #[arg(long)]
    pub json: bool,
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

/// A step's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    Failed,
    Skipped,
}

/// One problem and, where it is separate, its fix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub message: String,
    pub fix: Option<String>,
}

impl Problem {
    fn line(message: impl Into<String>) -> Self {
        Problem {
            message: message.into(),
            fix: None,
        }
    }
}

/// One line of the overview.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub status: Verdict,
    pub summary: String,
    pub problems: Vec<Problem>,
}

impl Step {
    fn of(step: &'static str, ok_summary: String, problems: Vec<Problem>) -> Self {
        let status = if problems.is_empty() {
            Verdict::Ok
        } else {
            Verdict::Failed
        };
        let summary = if problems.is_empty() {
            ok_summary
        } else {
            format!("{} problem(s)", problems.len())
        };
        Step {
            step,
            status,
            summary,
            problems,
        }
    }

    fn from_result(
        step: &'static str,
        ok_summary: String,
        found: lb_common::Result<Vec<String>>,
    ) -> Self {
        match found {
            Ok(lines) => Self::of(
                step,
                ok_summary,
                lines.into_iter().map(Problem::line).collect(),
            ),
            Err(e) => Self::of(step, String::new(), vec![Problem::line(format!("{e:#}"))]),
        }
    }

    fn skipped(step: &'static str, why: &str) -> Self {
        Step {
            step,
            status: Verdict::Skipped,
            summary: why.to_owned(),
            problems: Vec::new(),
        }
    }
}

/// The whole overview.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub healthy: bool,
    pub steps: Vec<Step>,
    pub builders: Vec<Report>,
}

/// Run the tool.
#[allow(clippy::needless_pass_by_value)] // the shared main hands the parsed Cli over
pub fn run(cli: Cli) -> lb_common::Result<Status> {
    let root = Root::new(cli.global.root.as_deref())?;
    let builder = cli.builder.resolve(&root)?;
    if !(cli.timeout > 0.0 && cli.timeout <= 3600.0) {
        return Err(lb_common::usage!(
            "--timeout {}: give seconds above 0, at most 3600",
            cli.timeout
        ));
    }
    let overview = diagnose(&cli, &root, &builder);
    if cli.json {
        ui::out(&serde_json::to_string_pretty(&overview)?)?;
    } else {
        ui::out(&render(&overview))?;
    }
    if overview.healthy {
        ui::note("all healthy");
        Ok(Status::Ok)
    } else {
        let failed = overview
            .steps
            .iter()
            .filter(|s| s.status == Verdict::Failed)
            .count();
        ui::note(&format!("{failed} step(s) need attention (fixes above)"));
        Ok(Status::Failed)
    }
}

/// Every step, in the overview's order.
#[must_use]
pub fn diagnose(cli: &Cli, root: &Root, builder: &Builder) -> Overview {
    let root_dir = cli.global.root.as_deref();
    // As lb-vm finds it; a default that cannot be placed under --root
    // leaves the VM step to say so.
    let workdir = lb_vm::workdir_of(root, cli.workdir.as_deref()).unwrap_or_else(|_| {
        cli.workdir
            .clone()
            .unwrap_or_else(|| lb_vm::DEFAULT_WORKDIR.into())
    });
    let keys = cli
        .keys
        .clone()
        .or_else(|| Some(workdir.join("keys")).filter(|k| k.is_dir()));
    let mut steps = vec![Step::from_result(
        "keys",
        format!(
            "{}: installed, mode 0600, group nixbld",
            builder.key.display()
        ),
        lb_keys::problems(root_dir, &cli.builder, keys),
    )];
    steps.push(Step::from_result(
        "alias",
        format!("ssh reaches {} as {}", builder.name, builder.uri()),
        lb_sshcfg::problems(root, &cli.builder),
    ));
    let nixconf = lb_nixconf::problems(
        &cli.builder,
        root,
        &lb_nixconf::CheckArgs {
            trust_user: cli.trust_user.clone(),
            json: false,
        },
    );
    let reports = ping_all(root, Duration::from_secs_f64(cli.timeout));
    let (mut conf, mut trust, daemon, summary, daemon_summary) = match nixconf {
        Ok(p) => (
            p.conf.into_iter().map(Problem::line).collect(),
            p.trust.into_iter().map(Problem::line).collect(),
            Ok(p.daemon),
            p.summary,
            p.daemon_summary,
        ),
        Err(e) => {
            let e = format!("{e:#}");
            (
                vec![Problem::line(e.clone())],
                Vec::new(),
                Err(lb_common::failed!("{e}")),
                String::new(),
                String::new(),
            )
        }
    };
    let (disk, remote_trust, fit) = findings(&reports);
    conf.extend(fit);
    steps.push(Step::of("nix.conf", summary, conf));
    steps.push(Step::from_result("daemon", daemon_summary, daemon));
    steps.push(if cli.no_vm {
        Step::skipped("VM", "--no-vm")
    } else {
        Step::from_result(
            "VM",
            format!("{} runs and its sshd answers", builder.name),
            lb_vm::problems(root_dir, &cli.builder, Some(&workdir), &cli.disk),
        )
    });
    steps.push(ping_step(&reports));
    let answered = !reports.is_empty() && reports.iter().all(|r| r.health.is_some());
    let not_checked = "not checked: no builder answered the ping";
    steps.push(if answered || !disk.is_empty() {
        Step::of("builder disk", summarise(&reports, Aspect::Disk), disk)
    } else {
        Step::of(
            "builder disk",
            String::new(),
            vec![Problem::line(not_checked)],
        )
    });
    trust.extend(remote_trust);
    steps.push(if answered || !trust.is_empty() {
        Step::of("trust", summarise(&reports, Aspect::Trust), trust)
    } else {
        Step::of("trust", String::new(), vec![Problem::line(not_checked)])
    });
    Overview {
        healthy: steps.iter().all(|s| s.status != Verdict::Failed),
        steps,
        builders: reports,
    }
}

/// Ping every ssh-ng builder of the configuration, with `--health`.
fn ping_all(root: &Root, timeout: Duration) -> Vec<Report> {
    let Ok(configured) = lb_common::conf::load_builders(root) else {
        // nix.conf's own step reports why it cannot be read.
        return Vec::new();
    };
    let targets: Vec<Target> = configured
        .machines
        .into_iter()
        .filter(|m| m.uri.starts_with("ssh-ng://"))
        .map(|machine| Target { machine })
        .collect();
    let opts = lb_ping::Options { health: true };
    std::thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|t| scope.spawn(move || lb_ping::ping_with(t, root, timeout, opts)))
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    })
}

fn ping_step(reports: &[Report]) -> Step {
    if reports.is_empty() {
        return Step::of(
            "ping",
            String::new(),
            vec![Problem {
                message: "no ssh-ng:// builder is configured".to_owned(),
                fix: Some("lb-nixconf install".to_owned()),
            }],
        );
    }
    let mut problems = Vec::new();
    for r in reports {
        // A health finding is its own step's; the ping itself got through.
        if r.ok || r.failed_stage == Some(Stage::Health) {
            continue;
        }
        let (_, fix) = lb_ping::explain::advice(r);
        problems.push(Problem {
            message: format!(
                "{}: failed at {}: {}",
                r.uri,
                r.failed_stage.map_or("?", Stage::name),
                r.error.as_deref().unwrap_or("")
            ),
            fix: Some(fix),
        });
    }
    let summary = reports
        .iter()
        .map(|r| {
            format!(
                "{} answers (Nix {}, {:.0} ms)",
                r.uri,
                r.nix_version.as_deref().unwrap_or("?"),
                r.total_ms
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    Step::of("ping", summary, problems)
}

/// The health findings of every builder: (disk, trust, system and features).
fn findings(reports: &[Report]) -> (Vec<Problem>, Vec<Problem>, Vec<Problem>) {
    let mut disk = Vec::new();
    let mut trust = Vec::new();
    let mut fit = Vec::new();
    let problem = |f: &Finding| Problem {
        message: f.message.clone(),
        fix: f.fix.clone(),
    };
    for h in reports.iter().filter_map(|r| r.health.as_ref()) {
        for f in h.findings.iter().filter(|f| !f.ok) {
            match f.aspect {
                Aspect::Disk => disk.push(problem(f)),
                Aspect::Trust => trust.push(problem(f)),
                Aspect::System | Aspect::Features => fit.push(problem(f)),
            }
        }
    }
    (disk, trust, fit)
}

fn summarise(reports: &[Report], aspect: Aspect) -> String {
    reports
        .iter()
        .filter_map(|r| r.health.as_ref())
        .flat_map(|h| h.findings.iter().filter(|f| f.aspect == aspect))
        .map(|f| f.message.clone())
        .collect::<Vec<_>>()
        .join("; ")
}

/// The text overview.
#[must_use]
pub fn render(o: &Overview) -> String {
    let mut lines = Vec::new();
    for s in &o.steps {
        let status = match s.status {
            Verdict::Ok => "ok",
            Verdict::Failed => "FAILED",
            Verdict::Skipped => "skipped",
        };
        lines.push(
            format!("{:<13} {:<7} {}", s.step, status, s.summary)
                .trim_end()
                .to_owned(),
        );
        for p in &s.problems {
            lines.push(format!("    - {}", p.message));
            if let Some(fix) = &p.fix {
                lines.push(format!("      fix: {fix}"));
            }
        }
    }
    lines.push(if o.healthy {
        "all healthy".to_owned()
    } else {
        "problems found: see the fixes above".to_owned()
    });
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overview_lines() {
        let o = Overview {
            healthy: false,
            steps: vec![
                Step::of("keys", "installed".into(), Vec::new()),
                Step::of(
                    "VM",
                    String::new(),
                    vec![Problem {
                        message: "lb is not running".into(),
                        fix: Some("lb-vm start".into()),
                    }],
                ),
                Step::skipped("ping", "--no-vm"),
            ],
            builders: Vec::new(),
        };
        let text = render(&o);
        assert_eq!(
            text,
            "keys          ok      installed\n\
             VM            FAILED  1 problem(s)\n    - lb is not running\n      fix: lb-vm start\n\
             ping          skipped --no-vm\n\
             problems found: see the fixes above"
        );
    }
}
