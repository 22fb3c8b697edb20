//! lb-ping: ping configured builders over SSH and the Nix daemon protocol.
//!
//! Skeleton: the commands arrive with this tool's own issue.

use clap::{CommandFactory, Parser};
use lb_common::builder::BuilderArgs;
use lb_common::cli::{Global, HasGlobal};
use lb_common::exit::Status;

/// Ping configured builders over SSH and the Nix daemon protocol.
#[derive(Debug, Parser)]
#[command(name = "lb-ping", version)]
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
