//! lb-sshcfg: write and check the ssh_config alias that lets Nix reach the builder.
//!
//! Skeleton: the commands arrive with this tool's own issue.

use clap::{CommandFactory, Parser};
use lb_common::builder::BuilderArgs;
use lb_common::cli::{Global, HasGlobal};
use lb_common::exit::Status;

/// Write and check the ssh_config alias that lets Nix reach the builder.
#[derive(Debug, Parser)]
#[command(name = "lb-sshcfg", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(flatten)]
    pub builder: BuilderArgs,
}

impl HasGlobal for Cli {
    fn global(&self) -> &Global {
        &self.global
    }
}

/// The clap definition, for man pages and completions.
#[must_use]
pub fn command() -> clap::Command {
    Cli::command()
}

/// Run the tool.
pub fn run(_cli: Cli) -> anyhow::Result<Status> {
    Ok(Status::Ok)
}
