//! lb-keys: generate and install the SSH key pair the Nix daemon uses to
//! log into the builder.
//!
//! The nixpkgs manual's first privileged step, done safely: the host's Nix
//! daemon (root) logs into the builder VM as `builder` with
//! `/etc/nix/builder_ed25519`, and the VM accepts the matching public key
//! from the keys directory shared into it (`./keys`, the guest's
//! `/var/keys`).
//!
//! Reads: the keys directory (KEYS_DIR, default `./keys`): its
//! `builder_ed25519` and `builder_ed25519.pub`; the installed pair at
//! `--key` (default `/etc/nix/builder_ed25519`, under `--root`); the group
//! database (`nixbld`, or `--group`) and the user database (`join-group`).
//!
//! Writes: `generate` and `install` create a fresh ed25519 pair in the keys
//! directory when it lacks one (private key mode 0600 from its first byte);
//! `install` copies the pair to `--key` and `--key`.pub (0600 and 0644,
//! group `nixbld`, owner root when run as root), atomically, touching
//! nothing that is already right; `uninstall` removes them; `join-group`
//! runs `gpasswd` (Linux) or `dseditgroup` (macOS). Key material is never
//! printed: a dry run shows the equivalent `ssh-keygen`, `install` and `rm`
//! commands instead of a diff of a private key.
//!
//! Prints on stdout: the private key's path (`install`, `generate`), the
//! public key (`pubkey`), or with `-n` the commands that would run.
//! Messages and `check`'s findings go to stderr.
//!
//! When the process is not root and cannot do the install itself (the
//! directory is not writable, or the group is not one of its own), only the
//! install step is re-run under `sudo --reset-timestamp`, the
//! command printed first; `--no-sudo` stops with exit 1 and that command.
//!
//! Exit status: 0 done, or already as wanted; 1 an operation failed, the
//! answer is negative (`check` found a problem, `--check` would change
//! something), the `nixbld` group is missing, or root is needed with
//! `--no-sudo`; 2 bad usage or unreadable input (KEYS_DIR is a file, a key
//! with a bad format, a private key that does not match its `.pub`).

mod check;
mod examples;
mod generate;
mod group;
mod install;
pub mod pair;
mod uninstall;

use std::path::PathBuf;

use clap::Parser;
use lb_common::builder::BuilderArgs;
use lb_common::cli::{Change, Global, HasGlobal};
use lb_common::exit::Status;

/// The group the installed private key belongs to, as the manual's
/// `install -g nixbld` sets it: the Nix daemon's build users group.
pub const DEFAULT_GROUP: &str = "nixbld";

/// Generate and install the SSH key pair the Nix daemon logs into the builder with.
#[derive(Debug, Parser)]
#[command(
    name = "lb-keys",
    version,
    long_about = "Generate and install the SSH key pair the Nix daemon logs into the builder with.\n\n\
        The host's Nix daemon runs as root and logs into the Linux builder VM as `builder` with \
        the private key /etc/nix/builder_ed25519. The VM accepts the matching public key from the \
        keys directory shared into it (./keys, seen by the guest as /var/keys).\n\n\
        `lb-keys install ./keys` does what the nixpkgs manual's script does: it generates the pair \
        in ./keys if it is missing, then copies it to /etc/nix (private key mode 600, group nixbld) \
        unless the installed public key is already the same. It asks for root with \
        `sudo --reset-timestamp` only for that copy, printing the command first.\n\n\
        Every command takes --root DIR to work inside a scratch directory instead of /."
)]
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
        ("install", &["key"]),
        ("generate", &[]),
        ("check", &["name", "key"]),
        ("pubkey", &["key"]),
        ("join-group", &[]),
        ("leave-group", &[]),
        ("uninstall", &["key"]),
    ];

    fn global(&self) -> &Global {
        &self.global
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Generate the pair in KEYS_DIR if missing, then install it to /etc/nix (prints the private key's path)
    #[command(
        long_about = "Generate the pair in KEYS_DIR if missing, then install it for the Nix daemon.\n\n\
        1. If KEYS_DIR/builder_ed25519 or KEYS_DIR/builder_ed25519.pub is missing, both are replaced \
        by a fresh ed25519 pair (comment builder@localhost; the private key is mode 600 from its first byte).\n\
        2. Unless the installed pair already matches, the private key is copied to --key \
        (default /etc/nix/builder_ed25519; mode 600, group nixbld, owner root when run as root) and \
        the public key beside it (KEY.pub, mode 644). Each file is replaced atomically: a crash or \
        full disk leaves the old file whole.\n\n\
        Prints the installed private key's path on stdout. A second run changes nothing and says so. \
        When not root and unable to do step 2 itself (--key's directory not writable, or the \
        group not one of its own), only step 2 is re-run under \
        `sudo --reset-timestamp`, printing that command first."
    )]
    Install(InstallArgs),
    /// Create a fresh pair in DIR without installing it (never overwrites without --force)
    #[command(
        long_about = "Create DIR/builder_ed25519 and DIR/builder_ed25519.pub: a fresh ed25519 pair in \
        OpenSSH format, comment builder@localhost, the private key mode 600 from its first byte.\n\n\
        An existing valid pair is left alone (exit 0); anything else in the way is an error unless \
        --force is given. Prints the private key's path on stdout."
    )]
    Generate(GenerateArgs),
    /// Verify the installed pair: present, mode 600, group nixbld, matching (exit 1 per problem found)
    #[command(long_about = "Verify the installed pair, changing nothing.\n\n\
        Exit 0 only if: the private key (--key) and its .pub exist as regular files; the private key \
        is mode 600 (not readable by group or others) and in group nixbld; the public key is the \
        private key's own; and, given KEYS_DIR, it is the key in that directory (the one the VM accepts).\n\n\
        Each problem is printed as one line on stderr naming the file and the fix; then exit 1. \
        Reading a root-owned private key needs root: without it that part is reported as a problem too.")]
    Check(CheckArgs),
    /// Print the installed public key (the `.pub` line, or its base64 with --base64)
    Pubkey(PubkeyArgs),
    /// Add a user to the nixbld group (gpasswd on Linux, dseditgroup on macOS)
    #[command(
        long_about = "Add USER to the nixbld group, the last step of the manual's setup \
        (\"Your host user should belong to the group nixbld\").\n\n\
        On macOS this runs `dseditgroup -o edit -a USER -t user nixbld`, on Linux `gpasswd -a USER nixbld` \
        (LB_PLATFORM=macos|linux chooses which). A user already in the group is left alone (exit 0). \
        The new membership applies to new login sessions. Not root: the command is run under \
        `sudo --reset-timestamp`, printed first. Under a scratch --root it edits ROOT/etc/group as \
        gpasswd would, and never the machine's groups."
    )]
    JoinGroup(JoinGroupArgs),
    /// Remove a user from the nixbld group, undoing join-group (gpasswd -d, dseditgroup -d)
    #[command(
        long_about = "Remove USER from the nixbld group: the reverse of join-group, for undoing \
        the setup. A user not in the group is left alone (exit 0); a user whose primary group it is \
        is refused (exit 1). Under a scratch --root it edits ROOT/etc/group."
    )]
    LeaveGroup(JoinGroupArgs),
    /// Remove the installed pair (--key and its .pub); the keys directory is left alone
    Uninstall(UninstallArgs),
}

/// The keys directory shared with the VM.
#[derive(Debug, Clone, clap::Args)]
pub struct KeysDir {
    /// The keys directory shared into the VM, holding builder_ed25519 and builder_ed25519.pub (used as given, not under --root)
    #[arg(value_name = "KEYS_DIR", default_value = "./keys", env = "LB_KEYS_DIR")]
    pub dir: PathBuf,
}

/// The group flag, for commands that set or check the key's group.
#[derive(Debug, Clone, clap::Args)]
pub struct GroupArg {
    /// The group that owns the installed private key (the Nix daemon's build users group)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_GROUP, env = "LB_GROUP")]
    pub group: String,
}

/// The group flag of `join-group`.
#[derive(Debug, Clone, clap::Args)]
pub struct JoinGroupArg {
    /// The group to add USER to or remove USER from (the Nix daemon's build users group)
    #[arg(long, value_name = "NAME", default_value = DEFAULT_GROUP, env = "LB_GROUP")]
    pub group: String,
}

/// `--no-sudo`.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct NoSudo {
    /// Never run sudo: when root is needed, exit 1 and print the command to run as root
    #[arg(long, env = "LB_NO_SUDO")]
    pub no_sudo: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct InstallArgs {
    #[command(flatten)]
    pub keys: KeysDir,
    #[command(flatten)]
    pub group: GroupArg,
    #[command(flatten)]
    pub change: Change,
    #[command(flatten)]
    pub sudo: NoSudo,
    /// Only install the pair already in KEYS_DIR, never generate one (the step re-run under sudo)
    #[arg(long)]
    pub no_generate: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Directory to create the pair in (created if missing)
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Replace whatever is there with a fresh pair (the old private key is lost)
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub change: Change,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Also require the installed key to be the one in this keys directory
    #[arg(value_name = "KEYS_DIR")]
    pub keys: Option<PathBuf>,
    #[command(flatten)]
    pub group: GroupArg,
    /// Print the findings as one JSON object: {"name", "ok", "problems", "summary"}
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PubkeyArgs {
    /// Print base64 of the line with its newline, the form nix's builders line and machines file carry
    #[arg(long)]
    pub base64: bool,
    /// Print {"path", "key", "base64", "fingerprint"} as one JSON object
    #[arg(long, conflicts_with = "base64")]
    pub json: bool,
}

#[derive(Debug, Clone, clap::Args)]
pub struct JoinGroupArgs {
    /// The user to add [default: SUDO_USER under sudo, else the user running lb-keys]
    // Not `user`: that id is the global --user (the builder's login).
    #[arg(id = "member", value_name = "USER")]
    pub member: Option<String>,
    #[command(flatten)]
    pub group: JoinGroupArg,
    #[command(flatten)]
    pub change: Change,
    #[command(flatten)]
    pub sudo: NoSudo,
}

#[derive(Debug, Clone, clap::Args)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub change: Change,
    #[command(flatten)]
    pub sudo: NoSudo,
}

/// The clap definition, for man pages and completions.
#[must_use]
pub fn command() -> clap::Command {
    lb_common::cli::command::<Cli>()
}

/// Run the tool.
pub fn run(cli: Cli) -> lb_common::Result<Status> {
    let root = lb_common::paths::Root::new(cli.global.root.as_deref())?;
    let builder = cli.builder.resolve(&root)?;
    let ctx = install::Ctx {
        root,
        builder,
        global: cli.global.clone(),
        key_arg: cli.builder.key.clone(),
    };
    match cli.command {
        Command::Install(a) => install::install(&ctx, &a),
        Command::Generate(a) => generate::generate(&ctx, &a),
        Command::Check(a) => check::check(&ctx, &a),
        Command::Pubkey(a) => install::pubkey(&ctx, &a),
        Command::JoinGroup(a) => group::change(&ctx.root, &a, group::Membership::Join),
        Command::LeaveGroup(a) => group::change(&ctx.root, &a, group::Membership::Leave),
        Command::Uninstall(a) => uninstall::uninstall(&ctx, &a),
    }
}

/// `check`'s problems for `lb-doctor`: the installed pair of the builder
/// `args` names (under `root`), and given `keys`, that it is the key there.
pub fn problems(
    root: Option<&std::path::Path>,
    args: &BuilderArgs,
    keys: Option<PathBuf>,
) -> lb_common::Result<Vec<String>> {
    let root = lb_common::paths::Root::new(root)?;
    let builder = args.resolve(&root)?;
    let ctx = install::Ctx {
        root,
        builder,
        global: Global::default(),
        key_arg: args.key.clone(),
    };
    check::problems(
        &ctx,
        &CheckArgs {
            keys,
            group: GroupArg {
                group: DEFAULT_GROUP.to_owned(),
            },
            json: false,
        },
    )
}
