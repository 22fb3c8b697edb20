//! lb-sshcfg: write and check the ssh_config alias that lets Nix reach the builder.
//!
//! Nix before 2.31 cannot put a port into an `ssh-ng://` URI, so the root
//! nix daemon reaches the builder through an ssh alias NAME (`--name`,
//! default `linux-builder`).
//!
//! Reads: `ROOT/etc/ssh/ssh_config`, the files it includes, and what
//! `ssh -G NAME` reports (run with `-F ROOT/etc/ssh/ssh_config` under a
//! scratch `--root`).
//!
//! Writes (`install`), all inside `--root`:
//! - `/etc/ssh/ssh_config.d/100-NAME.conf`: `Host NAME` with `Hostname`,
//!   `User`, `HostKeyAlias NAME`, `Port`, `IdentityFile` and
//!   `GlobalKnownHostsFile` pointing at
//! - `/etc/ssh/ssh_config.d/100-NAME.known_hosts`: the builder's host key
//!   under NAME (not matched by `*.conf`, so never read as configuration);
//! - `/etc/ssh/ssh_config`: a managed block at the top with
//!   `Include /etc/ssh/ssh_config.d/*.conf`, only when the file does not
//!   include that directory already. The file is created when absent.
//!
//! `uninstall` removes NAME's two files, and the managed block once no
//! other alias written by lb-sshcfg is left, giving back `ssh_config` byte
//! for byte; an `ssh_config` that lb-sshcfg itself created (noted inside
//! the block) is deleted when nothing else is left in it. An alias file
//! lb-sshcfg did not write (the manual's hand-written one) is neither
//! replaced nor removed without `--force`.
//!
//! Prints: `install` the alias file's path; `print` the alias file;
//! `check` one line per problem; `-n` a unified diff. Messages go to stderr.
//!
//! Exit status: 0 done or already as wanted (`check`: no problem found);
//! 1 failed (a symlink or directory at a target, an unreadable file, a
//! foreign alias file without `--force`), `check` found problems, or
//! `--check` found a change to make; 2 bad input (name, port, host key,
//! a `ssh_config` that is not UTF-8 or has broken markers).

mod check;
mod examples;
mod install;
pub mod layout;
mod reach;

use clap::{Parser, Subcommand};
use lb_common::builder::BuilderArgs;
use lb_common::cli::{Change, Global, HasGlobal};
use lb_common::exit::Status;
use lb_common::paths::Root;
use lb_common::report::CheckReport;
use lb_common::ui;

use layout::Layout;

/// Write and check the ssh_config alias that lets Nix reach the builder.
#[derive(Debug, Parser)]
#[command(
    name = "lb-sshcfg",
    version,
    after_help = "Exit status: 0 done or already as wanted (check: no problem); \
                  1 failed, check found problems, or --check found a change to make; \
                  2 bad usage or input."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub builder: BuilderArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write /etc/ssh/ssh_config.d/100-NAME.conf and its known-hosts file, and make ssh_config include them; prints the file's path
    Install {
        #[command(flatten)]
        change: Change,
        /// Replace an alias file that lb-sshcfg did not write (e.g. one written by hand from the manual)
        #[arg(long)]
        force: bool,
    },
    /// Print the alias file install would write; write nothing
    Print {
        /// Print {"name", "path", "contents"} as one JSON object
        #[arg(long)]
        json: bool,
    },
    /// Resolve NAME as ssh does (`ssh -G`) and print one line per problem; exit 1 if any
    Check {
        /// Print the findings as one JSON object: {"name", "ok", "problems", "summary"}
        #[arg(long)]
        json: bool,
    },
    /// Remove NAME's alias and known-hosts files, and the managed Include once no other alias needs it
    Uninstall {
        #[command(flatten)]
        change: Change,
        /// Remove an alias file that lb-sshcfg did not write
        #[arg(long)]
        force: bool,
    },
}

impl HasGlobal for Cli {
    const EXAMPLES: lb_common::cli::Examples = examples::EXAMPLES;
    const BUILDER_FLAGS: lb_common::cli::BuilderFlags = &[
        (
            "install",
            &["name", "user", "hostname", "port", "key", "host_key"],
        ),
        ("print", &["name", "user", "hostname", "port", "key"]),
        (
            "check",
            &["name", "user", "hostname", "port", "key", "host_key"],
        ),
        ("uninstall", &["name"]),
    ];

    fn global(&self) -> &Global {
        &self.global
    }
}

/// The clap definition, for man pages and completions.
#[must_use]
pub fn command() -> clap::Command {
    lb_common::cli::command::<Cli>()
}

/// Run the tool.
// The shared `main` hands the parsed command line over by value.
#[allow(clippy::needless_pass_by_value)]
pub fn run(cli: Cli) -> lb_common::Result<Status> {
    let root = Root::new(cli.global.root.as_deref())?;
    match cli.command {
        Command::Install { change, force } => install::install(&cli.builder, &root, change, force),
        Command::Print { json } => {
            let builder = cli.builder.resolve(&root)?;
            let layout = Layout::new(&root, &builder.name)?;
            let text = layout::render_conf(&builder, &layout)?;
            if json {
                lb_common::report::print_fields(&[
                    ("name", builder.name.clone()),
                    ("path", layout.conf.display().to_string()),
                    ("contents", text),
                ])?;
                return Ok(Status::Ok);
            }
            for line in text.lines() {
                ui::out(line)?;
            }
            Ok(Status::Ok)
        }
        Command::Check { json } => {
            let builder = cli.builder.resolve(&root)?;
            let problems = check::problems(&root, &builder, &Layout::new(&root, &builder.name)?)?;
            let healthy = format!("the alias works as {}", builder.uri());
            CheckReport::new(&builder.name, problems, healthy).print(json)
        }
        Command::Uninstall { change, force } => {
            install::uninstall(&cli.builder.name, &root, change, force)
        }
    }
}

/// `check`'s problems for `lb-doctor`, one line each with its fix.
pub fn problems(root: &Root, args: &BuilderArgs) -> lb_common::Result<Vec<String>> {
    let builder = args.resolve(root)?;
    check::problems(root, &builder, &Layout::new(root, &builder.name)?)
}
