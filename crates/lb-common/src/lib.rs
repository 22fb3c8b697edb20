//! Shared pieces of the linux-builder tools.
//!
//! Every tool links this crate and nothing else of the workspace. Each
//! module has one job:
//!
//! - [`builder`]: the builder's identity (name, user, port, keys...) and the
//!   clap flags that set it, identical in every tool;
//! - [`paths`]: `--root DIR`, the scratch prefix standing in for `/`;
//! - [`fs`]: the only code that writes files (atomic, locked, symlink-safe,
//!   dry-run aware);
//! - [`conf`]: parsers and renderers for nix.conf, the machines format,
//!   ssh_config and managed blocks, and the quoting of values for every
//!   format the tools write ([`conf::escape`]);
//! - [`platform`]: macOS and Linux differences, chosen at run time;
//! - [`cmd`]: the only code that runs other programs;
//! - [`plan`]: each change a step that inspects first, and the one apply
//!   that handles `-n/--dry-run`, `--check` and the messages;
//! - [`managers`]: nix-darwin and Determinate Nix, recognised on disk;
//! - [`procfacts`]: process facts from `ps`, `lsof`, `launchctl` where there is no /proc;
//! - [`privilege`]: re-running one step under sudo, never silently;
//! - [`report`]: the one shape of every `check`, and `--json` printing;
//! - [`ssh`]: alias resolution as ssh does it, and an ssh2 session to a builder;
//! - [`daemon`]: the client side of the Nix worker protocol;
//! - [`status`]: the exit status table, and the error that carries its status;
//! - [`exit`]: the `main` every tool shares;
//! - [`text`]: the one sanitiser for text from elsewhere (escaped, bounded);
//! - [`ui`]: messages on stderr.

// Every public item says what it is, and what its errors are.
#![warn(missing_docs, clippy::missing_errors_doc)]

pub mod builder;
pub mod cli;
pub mod cmd;
pub mod conf;
pub mod daemon;
pub mod exit;
pub mod fs;
pub mod managers;
pub mod nix_version;
pub mod paths;
pub mod plan;
pub mod platform;
pub mod privilege;
pub mod procfacts;
pub mod report;
pub mod ssh;
pub mod status;
pub mod text;
pub mod ui;

pub use status::{Context, Error, Result};
