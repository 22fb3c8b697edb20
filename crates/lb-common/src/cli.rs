//! Flags every tool shares, as clap structs to flatten.

use std::path::PathBuf;

/// `-v`, `-q` and `--root`: accepted by every tool, before or after the
/// subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Global {
    /// Say more on stderr (repeat for more); shows every command run
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Say nothing on stderr but errors; no progress display
    #[arg(short, long, global = true, env = "LB_QUIET")]
    pub quiet: bool,
    /// Treat DIR as `/` for every system path read or written (a scratch prefix)
    #[arg(long, value_name = "DIR", global = true, env = "LB_ROOT")]
    pub root: Option<PathBuf>,
}

/// `-n/--dry-run` and `--check`, for commands that change things.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Change {
    /// Show what would change (a diff or the commands) and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Change nothing; exit 1 if a change would be made
    #[arg(long, conflicts_with = "dry_run")]
    pub check: bool,
}

impl Change {
    /// True when nothing may be written.
    #[must_use]
    pub fn read_only(self) -> bool {
        self.dry_run || self.check
    }
}

/// Implemented by each tool's top-level parser so the shared `main` can set
/// up messages before running.
pub trait HasGlobal {
    fn global(&self) -> &Global;
}
