//! lb-vm: boot, wait for, stop and report on the builder VM.
//!
//! Skeleton: the commands arrive with this tool's own issue.

use clap::{CommandFactory, Parser};
use lb_common::builder::BuilderArgs;
use lb_common::cli::{Global, HasGlobal};
use lb_common::exit::Status;

/// Boot, wait for, stop and report on the builder VM.
#[derive(Debug, Parser)]
#[command(name = "lb-vm", version)]
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
