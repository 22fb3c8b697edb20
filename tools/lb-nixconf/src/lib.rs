//! lb-nixconf: put the builder into nix.conf and restart the Nix daemon.
//!
//! The manual has the user paste a `builders = ssh-ng://builder@linux-builder
//! ...` line and `builders-use-substitutes = true` into nix.conf, add
//! `extra-trusted-users`, and restart the daemon; this tool does it inside a
//! managed block and checks the result.
//!
//! Reads: `$NIX_CONF_DIR/nix.conf` (default `ROOT/etc/nix/nix.conf`), the
//! files it includes (`include`, `!include`), `@FILE` machines files, the
//! builder's private key (`check`), and `/proc` to find the running
//! nix-daemon's start time (`check`).
//!
//! Writes: only the `lb-nixconf` block of that nix.conf (`install`,
//! `remove`); lines outside it stay byte for byte, except a `builders` line
//! that `install --force` moves into the block. Runs the platform's daemon
//! restart (`restart-daemon`, `install --restart`).
//!
//! Prints on stdout: the machines line (`line`), the effective builders
//! (`show`, `--json`), the nix-darwin snippet when nix.conf belongs to
//! nix-darwin, diffs and commands under `-n`; messages go to stderr.
//!
//! Exit status: 0 done (including "already as wanted"); 1 failed or a
//! negative answer (`check` found problems, `--check` would change, a
//! `builders` line outside the block, nix.conf managed by nix-darwin, a
//! symlink at nix.conf, the restart failed); 2 bad usage or input
//! (malformed nix.conf lines with file:line, include loops, unreadable
//! includes, bad builders entries, bad host keys or flags).

mod alias;
mod body;
mod check;
mod daemon;
mod daemon_ps;
pub mod darwin;
mod examples;
mod install;
mod show;
mod trust;

use std::path::PathBuf;
use std::time::SystemTime;

use clap::Parser;
use lb_common::builder::{Builder, BuilderArgs};
use lb_common::cli::{Change, Global, HasGlobal};
use lb_common::cmd::Cmd;
use lb_common::conf::escape;
use lb_common::conf::machines::{self, Machine};
use lb_common::conf::nixconf;
use lb_common::conf::Location;
use lb_common::exit::Status;
use lb_common::fs::Apply;
use lb_common::managers::Managers;
use lb_common::paths::Root;
use lb_common::plan::{self, Inspection, Needed, Step};
use lb_common::platform::Platform;
use lb_common::privilege::is_root;
use lb_common::Context as _;
use lb_common::{ui, usage};

pub use crate::check::{problems, Problems};

/// Put the builder into nix.conf and restart the Nix daemon.
#[derive(Debug, Parser)]
#[command(name = "lb-nixconf", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub builder: BuilderArgs,
    #[command(subcommand)]
    pub command: Command,
}

impl HasGlobal for Cli {
    const EXAMPLES: lb_common::cli::Examples = examples::EXAMPLES;
    const BUILDER_FLAGS: lb_common::cli::BuilderFlags = &[
        (
            "line",
            &["name", "user", "key", "host_key", "system", "max_jobs"],
        ),
        (
            "install",
            &["name", "user", "key", "host_key", "system", "max_jobs"],
        ),
        ("remove", &["name"]),
        ("show", &[]),
        ("check", &["name"]),
        ("restart-daemon", &[]),
    ];

    fn global(&self) -> &Global {
        &self.global
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print this builder's entry for the `builders` setting (the machines format)
    Line(LineCmd),
    /// Put this builder into nix.conf's managed block, with builders-use-substitutes
    Install(InstallArgs),
    /// Take this builder (--name) out of nix.conf; the block goes with its last builder
    Remove(RemoveArgs),
    /// Print the builders Nix would use, one per builder with every field named
    Show(ShowArgs),
    /// Exit 1 with one line per problem in the builders configuration
    Check(CheckArgs),
    /// Restart the Nix daemon so it rereads nix.conf
    RestartDaemon(RestartArgs),
}

/// `line`: the fields, and how to print them.
#[derive(Debug, Clone, clap::Args)]
pub struct LineCmd {
    #[command(flatten)]
    pub line: LineArgs,
    /// Print {"line", "entry"} as one JSON object (the entry as `show --json` names its fields)
    #[arg(long)]
    pub json: bool,
}

/// The machines-line fields beyond the shared identity flags.
#[derive(Debug, Clone, clap::Args)]
pub struct LineArgs {
    /// How much faster this builder is than others; Nix prefers faster ones (a whole number for Nix before 2.20 and nix-darwin)
    #[arg(long, env = "LB_SPEED_FACTOR", default_value_t = 1.0, value_name = "N")]
    pub speed_factor: f64,
    /// Features the builder supports, comma-separated (e.g. kvm,big-parallel)
    #[arg(long, env = "LB_FEATURES", value_delimiter = ',', value_name = "LIST")]
    pub features: Vec<String>,
    /// Features a derivation must ask for to be built there, comma-separated
    #[arg(
        long,
        env = "LB_MANDATORY_FEATURES",
        value_delimiter = ',',
        value_name = "LIST"
    )]
    pub mandatory_features: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub line: LineArgs,
    #[command(flatten)]
    pub change: Change,
    /// Also add USER to extra-trusted-users (repeat for several; users accumulate)
    #[arg(long, value_name = "USER")]
    pub trust_user: Vec<String>,
    /// Move a `builders` line found outside the block into it (its entries are kept)
    #[arg(long)]
    pub force: bool,
    /// Restart the Nix daemon afterwards, so the change takes effect
    #[arg(long)]
    pub restart: bool,
    /// Print {"name", "file", "line", "entry", "result"} as one JSON object; with -n no diff, result says what would change
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RemoveArgs {
    #[command(flatten)]
    pub change: Change,
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    /// Print a JSON array of objects instead of text
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Default, clap::Args)]
pub struct CheckArgs {
    /// Also require USER to be a trusted user of this Nix [default: SUDO_USER or USER, when --root is /]
    #[arg(long, value_name = "USER", env = "LB_TRUST_USER")]
    pub trust_user: Option<String>,
    /// Print the findings as one JSON object: {"name", "ok", "problems", "summary"}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct RestartArgs {
    #[command(flatten)]
    pub change: Change,
}

/// The clap definition, for man pages and completions.
#[must_use]
pub fn command() -> clap::Command {
    lb_common::cli::command::<Cli>()
}

/// Run the tool.
#[allow(clippy::needless_pass_by_value)] // the shared main hands over the parsed Cli
pub fn run(cli: Cli) -> lb_common::Result<Status> {
    let root = Root::new(cli.global.root.as_deref())?;
    match &cli.command {
        Command::Line(args) => {
            let builder = cli.builder.resolve(&root)?;
            let machine = machine_of(&builder, &args.line)?;
            if args.json {
                lb_common::report::print_json(&serde_json::json!({
                    "line": machine.render(),
                    "entry": machine,
                }))?;
            } else {
                ui::out(&machine.render())?;
            }
            Ok(Status::Ok)
        }
        Command::Install(args) => install::install(&cli.builder, &root, args),
        Command::Remove(args) => install::remove(&cli.builder.name, &root, args.change),
        Command::Show(args) => show::show(&root, args.json),
        Command::Check(a) => check::check(&cli.builder, &root, a),
        Command::RestartDaemon(args) => restart_daemon(Apply::from(args.change), &root),
    }
}

/// One item of a comma-separated machines field (a feature), through
/// lb-common's machines layer.
pub(crate) fn token(what: &str, s: &str) -> lb_common::Result<()> {
    escape::machines_list_item(what, s)?;
    Ok(())
}

/// This builder as one entry of the machines format, checked by reading
/// the rendered line back with the shared parser.
pub fn machine_of(builder: &Builder, args: &LineArgs) -> lb_common::Result<Machine> {
    if !(args.speed_factor.is_finite()
        && args.speed_factor > 0.0
        && args.speed_factor <= f64::from(u32::MAX))
    {
        return Err(usage!(
            "--speed-factor {}: give a positive number (a whole one for Nix before 2.20 and for nix-darwin's speedFactor)",
            args.speed_factor
        ));
    }
    if args.speed_factor.fract() != 0.0 {
        // machines.cc before 2.20 reads field 5 as an unsigned int and then
        // refuses the whole builders list ("failed to convert column #4 ...
        // to 'unsigned int'", seen here with 2.8); 2.20 made it a float.
        ui::warn(&format!(
            "--speed-factor {}: Nix before 2.20 reads only whole numbers there and then ignores every builder in the list, and nix-darwin's speedFactor is a whole number; give one unless all clients run Nix 2.20 or later",
            args.speed_factor
        ));
    }
    for f in &args.features {
        token("--features", f)?;
    }
    for f in &args.mandatory_features {
        token("--mandatory-features", f)?;
    }
    // The key path is the one value here a user writes freely.
    let key = escape::machines_field(
        "--key (LB_KEY)",
        escape::path_text("--key (LB_KEY)", &builder.key)?,
    )?
    .to_owned();
    let at = Location {
        file: PathBuf::from("<command line>"),
        line: 0,
    };
    let machine = Machine {
        uri: builder.uri(),
        systems: vec![builder.system.clone()],
        ssh_key: Some(key),
        max_jobs: u64::from(builder.max_jobs),
        speed_factor: args.speed_factor,
        supported_features: args.features.clone(),
        mandatory_features: args.mandatory_features.clone(),
        public_host_key: Some(builder.host_key.machines_base64()),
        at: at.clone(),
    };
    let mut back = machines::parse(
        &machine.render(),
        &builder.system,
        &at,
        &machines::resolve_as_given,
    )?;
    // Where it came from is not part of the comparison.
    for m in &mut back {
        m.at = at.clone();
    }
    if back != [machine.clone()] {
        lb_common::bail!(
            "internal error: the line {:?} does not read back as written",
            machine.render()
        );
    }
    Ok(machine)
}

fn conf_path(root: &Root) -> lb_common::Result<PathBuf> {
    Ok(nixconf::conf_dir(root)?.join("nix.conf"))
}

pub(crate) fn newest_mtime(files: &[PathBuf]) -> Option<SystemTime> {
    files
        .iter()
        .filter_map(|f| std::fs::metadata(f).and_then(|m| m.modified()).ok())
        .max()
}

/// The daemon restart for this machine: on a Mac with Determinate Nix its
/// daemon's label is systems.determinate.nix-daemon.
pub(crate) fn restart_argv(root: &Root) -> lb_common::Result<Vec<String>> {
    let platform = Platform::current()?;
    let mut argv = platform.restart_daemon();
    if platform.os == lb_common::platform::Os::MacOs {
        let label = Managers::detect(root, &conf_path(root)?).daemon_label();
        if let Some(last) = argv.last_mut() {
            *last = format!("system/{label}");
        }
    }
    Ok(argv)
}

fn restart_daemon(apply: Apply, root: &Root) -> lb_common::Result<Status> {
    let step = RestartDaemon {
        root,
        argv: restart_argv(root)?,
    };
    // A restart is an action, not a state: --check has nothing to judge.
    plan::apply(apply, &step)?;
    Ok(Status::Ok)
}

/// Restarting the Nix daemon so it rereads nix.conf, as one plan step:
/// always needed (the daemon reads nix.conf only as it starts); `-n`
/// shows the command. The daemon is this machine's and reads /etc/nix,
/// not a scratch root: for a scratch root it is never run (the tests and
/// the demo must not restart it). Not as root, it is re-run under sudo.
struct RestartDaemon<'a> {
    root: &'a Root,
    argv: Vec<String>,
}

impl Step for RestartDaemon<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        Ok(Inspection::Needed(Needed::commands(
            &[Cmd::from_argv(&self.argv)],
            "would restart the Nix daemon",
        )))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let cmd = Cmd::from_argv(&self.argv);
        if !self.root.is_real() {
            ui::note(&format!(
                "not restarting the Nix daemon: {} is a scratch root, not this machine's /etc/nix (on the machine: {})",
                self.root.prefix().map_or_else(String::new, |p| p.display().to_string()),
                cmd.display()
            ));
            return Ok(());
        }
        if is_root() {
            cmd.run().context("restarting the Nix daemon")?;
        } else {
            let sudo_args: Vec<std::ffi::OsString> = self.argv.iter().map(Into::into).collect();
            lb_common::privilege::escalate("restarting the Nix daemon", &sudo_args, false)
                .context("restarting the Nix daemon")?;
        }
        ui::note("nix-daemon restarted");
        Ok(())
    }
}
