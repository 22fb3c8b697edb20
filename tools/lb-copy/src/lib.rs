//! lb-copy: copy build outputs back from the builder:
//! `nix build --eval-store auto --store ssh-ng://... --json | lb-copy`.
//!
//! Reads: the paths to copy from stdin or the files named as arguments, in
//! any shape Nix prints them (`nix build --json` of every version,
//! `nix path-info --json` array or keyed object, or store paths one per
//! line; see [`input`]); nix.conf (`$NIX_CONF_DIR` or `ROOT/etc/nix`, its
//! includes and machines files) for the default source store and its key
//! and host key; `NIX_STORE_DIR` for the store directory; which local
//! store Nix opens (`store` in nix.conf, the user's nix.conf or
//! `NIX_CONFIG`, else `NIX_REMOTE`) and where its daemon listens
//! (`NIX_DAEMON_SOCKET_PATH`, `NIX_STATE_DIR`).
//!
//! Does: asks the local store which paths are already valid (the local
//! Nix daemon over its socket in one `QueryValidPaths`, no process
//! started; `nix-store --check-validity` when the store in effect is not
//! the daemon's or the daemon cannot be reached; see [`local`]), and copies the rest in ONE
//! `nix copy --from URI PATHS...` (one connection; past 256 KiB of paths
//! `nix copy --from URI --stdin` with the paths on its stdin, or on Nix
//! before 2.15 one `nix copy` per 256 KiB of paths), with the builders
//! entry's key and host key as `ssh-key=` / `base64-ssh-public-host-key=`
//! query parameters and, under a scratch `--root`, `NIX_SSHOPTS=-F
//! ROOT/etc/ssh/ssh_config`. With `--out-link PREFIX` it makes GC roots
//! named as `nix build` names them (`result`, `result-dev`, `result-1`...).
//!
//! Prints on stdout: each output path, one per line, in input order
//! (duplicates once), so the next command in the pipe can use them. With
//! `--json`, the input's structure with a `copied` flag per path (`true`:
//! this run copied it; `false`: it was already here), one line per input:
//!
//! ```json
//! [{"drvPath": "/nix/store/...-hello.drv",
//!   "outputs": {"out": "/nix/store/...-hello"},   // only the --output ones
//!   "copied": {"out": true}},                    // per output
//!  {"path": "/nix/store/...-x", "copied": false}] // {"path"} and bare strings
//! {"/nix/store/...-y": {"narSize": 1, "copied": true}}  // path-info keyed form
//! ```
//!
//! Plain path lists become `[{"path": P, "copied": B}, ...]`.
//! `-n/--dry-run` prints the commands it would run on stdout, and the
//! paths it would copy on stderr. Progress (paths and bytes) is drawn on
//! stderr when it is a terminal.
//!
//! Exit status: 0 every path is now valid locally (including "nothing to
//! do": empty input, all present); 1 the copy failed (builder unreachable,
//! unsigned paths refused, builder gone mid-copy: no path is left
//! half-copied, Nix registers a path only when all of it arrived); 2 bad
//! usage or input (malformed JSON with line and column, JSON of another
//! shape, a path outside the store, an unknown `--output`).

pub mod copy;
mod examples;
pub mod input;
pub mod local;
pub mod progress;
mod select;

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use clap::Parser;
use lb_common::cli::{Global, HasGlobal};
use lb_common::cmd::Cmd;
use lb_common::conf::machines::Machine;
use lb_common::exit::Status;
use lb_common::fs::Apply;
use lb_common::nix_version::NixVersion;
use lb_common::paths::Root;
use lb_common::plan::{self, Applied, DryRunSays, Inspection, Needed, Step};
use lb_common::{ui, usage};

/// Copy build outputs back from the builder: nix build --json | lb-copy.
///
/// Reads `nix build --json`, `nix path-info --json` or store paths (one per
/// line) on stdin or from FILEs, copies the paths missing here from the
/// builder in one `nix copy --from`, and prints every path.
#[derive(Debug, Parser)]
#[command(name = "lb-copy", version)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Files holding the paths (nix build --json output, nix path-info --json
    /// output, or store paths one per line) [default: stdin]
    #[arg(value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// The store to copy from: a store URI, or a builder's name (its URI's
    /// host) from the builders list [default: the first ssh-ng:// builder in
    /// nix.conf, else ssh-ng://builder@linux-builder]
    // The doc comment is clap's help text, clap's `[default: ...]` style.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, value_name = "URI|NAME", env = "LB_COPY_FROM")]
    pub from: Option<String>,
    /// Copy only this derivation output (repeat for more) [default: all]
    #[arg(long = "output", value_name = "NAME")]
    pub outputs: Vec<String>,
    /// Accept paths nobody signed (passes --no-check-sigs to nix copy;
    /// you must be a trusted user of the local Nix daemon)
    #[arg(long)]
    pub no_check_sigs: bool,
    /// Make GC roots: symlinks PREFIX, PREFIX-dev, PREFIX-1... named as
    /// `nix build --out-link PREFIX` names them
    #[arg(short, long, value_name = "PREFIX")]
    pub out_link: Option<PathBuf>,
    /// Print the input's structure with a `copied` flag per path instead of
    /// plain paths (with -n: whether it would be copied)
    #[arg(long)]
    pub json: bool,
    /// Show what would be copied and the commands, and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
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

/// One input as read.
struct Input {
    name: String,
    doc: input::Document,
}

fn read_inputs(files: &[PathBuf]) -> lb_common::Result<Vec<Input>> {
    if files.is_empty() || files.iter().all(|f| f == Path::new("-")) {
        // Parsed as it arrives, with a bound: never read whole first.
        return Ok(vec![Input {
            doc: input::parse_reader(std::io::stdin().lock(), "stdin")?,
            name: "stdin".to_owned(),
        }]);
    }
    files
        .iter()
        .map(|f| {
            let name = f.display().to_string();
            // A FIFO is fine here (`lb-copy <(nix build --json ...)`): the
            // stream is bounded as stdin is.
            let file = std::fs::File::open(f).map_err(|e| {
                usage!("{name}: cannot read: {e}; name a file holding nix build --json output or store paths")
            })?;
            if file.metadata().is_ok_and(|m| m.is_dir()) {
                return Err(usage!(
                    "{name}: is a directory; name a file holding nix build --json output or store paths"
                ));
            }
            Ok(Input {
                doc: input::parse_reader(file, &name)?,
                name,
            })
        })
        .collect()
}

/// The source store and the builders entry it came from.
fn source(cli: &Cli, root: &Root) -> lb_common::Result<(String, Option<Machine>)> {
    let ssh_ng = |m: &Machine| m.effective_uri().starts_with("ssh-ng://");
    match cli.from.as_deref() {
        Some(from) if from.contains("://") => {
            // Take the key and host key from the entry for the same host,
            // if one is configured; a URI is usable without any.
            let entry = lb_common::conf::load_builders(root).ok().and_then(|b| {
                b.machines
                    .into_iter()
                    .find(|m| ssh_ng(m) && m.host() == copy::uri_host(from))
            });
            Ok((from.to_owned(), entry))
        }
        Some(name) => {
            let builders = lb_common::conf::load_builders(root)?;
            let found = builders.machines.iter().find(|m| m.host() == name).cloned();
            if let Some(m) = found {
                return Ok((m.effective_uri(), Some(m)));
            }
            let known: Vec<&str> = builders.machines.iter().map(Machine::host).collect();
            let known = if known.is_empty() {
                "it names no builder".to_owned()
            } else {
                format!("known: {}", known.join(", "))
            };
            Err(usage!(
                "--from {name}: no builder of that name in {} ({known}); give a store URI such as ssh-ng://builder@{name}",
                builders.conf_file.display(),
            ))
        }
        None => {
            let builders = lb_common::conf::load_builders(root)?;
            Ok(builders.machines.into_iter().find(ssh_ng).map_or_else(
                || (copy::FALLBACK_URI.to_owned(), None),
                |m| (m.effective_uri(), Some(m)),
            ))
        }
    }
}

/// Run the tool.
#[allow(clippy::needless_pass_by_value)] // the shared main hands the parsed Cli over
pub fn run(cli: Cli) -> lb_common::Result<Status> {
    let root = Root::new(cli.global.root.as_deref())?;
    let inputs = read_inputs(&cli.files)?;
    let store = input::store_dir();

    let mut wanted = Vec::new();
    let mut index = 0;
    let mut seen_outputs = BTreeSet::new();
    for r in &inputs {
        wanted.extend(input::wanted(
            &r.doc,
            &r.name,
            &cli.outputs,
            &store,
            &mut index,
            &mut seen_outputs,
        )?);
    }
    input::check_selection(&cli.outputs, &seen_outputs)?;
    if wanted.is_empty() {
        ui::note("nothing to copy: the input names no store paths");
        if cli.json {
            print_json(&inputs, &cli.outputs, &HashSet::new())?;
        }
        return Ok(Status::Ok);
    }

    let mut unique: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for w in &wanted {
        if seen.insert(w.path.as_str()) {
            unique.push(&w.path);
        }
    }

    let (uri, entry) = source(&cli, &root)?;
    let uri = copy::with_entry_params(&uri, entry.as_ref());
    let local = local::Local::new(&root);
    let missing = local.invalid(&unique)?;
    let missing_set: HashSet<String> = missing.iter().cloned().collect();
    let missing_refs: Vec<&str> = unique
        .iter()
        .copied()
        .filter(|p| missing_set.contains(*p))
        .collect();
    let sshopts = copy::ssh_opts(&root, std::env::var("NIX_SSHOPTS").ok().as_deref());
    let copy_cmds = copy::copy_commands(
        &copy::copy_base(&uri, cli.no_check_sigs, sshopts.as_deref()),
        &missing_refs,
        copy::ARGV_BUDGET,
        NixVersion::installed,
    );

    // -n: the paths that would be copied (stderr) and the commands (stdout).
    // -n --json: the same JSON as a copy prints, `copied` saying what would
    // be copied, and so no command preview on stdout (the notes stay).
    let mode = if cli.dry_run {
        Apply::DryRun
    } else {
        Apply::Write
    }
    .for_json(cli.json);
    let copy = CopyMissing {
        local: &local,
        uri: &uri,
        copy_cmds: &copy_cmds,
        missing_refs: &missing_refs,
        total: unique.len(),
    };
    if plan::apply(mode, &copy)? == Applied::Unchanged {
        ui::note(&if cli.dry_run {
            format!("0 of {} paths missing here; nothing to copy", unique.len())
        } else {
            format!(
                "all {} paths are already here; nothing copied",
                unique.len()
            )
        });
    }
    match &cli.out_link {
        Some(prefix) => {
            let roots: Vec<Cmd> = wanted
                .iter()
                .map(|w| copy::root_command(&link(prefix, w), &w.path))
                .collect();
            plan::apply(mode, &GcRoots(&roots))?;
        }
        None if !cli.dry_run => ui::note(
            "the paths have no GC root (nix-collect-garbage may delete them); \
             pass --out-link PREFIX to keep them",
        ),
        None => {}
    }
    if cli.dry_run {
        if cli.json {
            print_json(&inputs, &cli.outputs, &missing_set)?;
        }
        return Ok(Status::Ok);
    }

    if cli.json {
        print_json(&inputs, &cli.outputs, &missing_set)?;
    } else {
        for p in &unique {
            ui::out(p)?;
        }
    }
    Ok(Status::Ok)
}

/// The paths missing here, copied by one `nix copy` (one per batch where
/// they fit no command line and Nix reads no `--stdin`); `-n` names them
/// on stderr and prints the commands.
struct CopyMissing<'a> {
    local: &'a local::Local,
    uri: &'a str,
    copy_cmds: &'a [copy::CopyCmd],
    missing_refs: &'a [&'a str],
    total: usize,
}

impl Step for CopyMissing<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        if self.missing_refs.is_empty() {
            return Ok(Inspection::Done);
        }
        let mut would: Vec<String> = self
            .missing_refs
            .iter()
            .map(|p| format!("would copy {p}"))
            .collect();
        would.push(format!(
            "{} of {} paths missing here; would run:",
            self.missing_refs.len(),
            self.total
        ));
        Ok(Inspection::Needed(Needed {
            preview: self.copy_cmds.iter().map(copy::CopyCmd::display).collect(),
            would,
            dry_run_says: DryRunSays::Before,
        }))
    }

    fn execute(&self) -> lb_common::Result<()> {
        copy_missing(
            self.local,
            self.uri,
            self.copy_cmds,
            self.missing_refs,
            self.total,
        )
    }
}

/// `nix-store --add-root` for each wanted path (`--out-link`).
struct GcRoots<'a>(&'a [Cmd]);

impl Step for GcRoots<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        Ok(Inspection::Needed(Needed {
            preview: self.0.iter().map(Cmd::display).collect(),
            ..Needed::default()
        }))
    }

    fn execute(&self) -> lb_common::Result<()> {
        for root in self.0 {
            root.run()?;
        }
        Ok(())
    }
}

/// The `nix copy`, then a check that every missing path arrived.
fn copy_missing(
    local: &local::Local,
    uri: &str,
    copy_cmds: &[copy::CopyCmd],
    missing_refs: &[&str],
    total: usize,
) -> lb_common::Result<()> {
    ui::note(&format!(
        "copying {} of {} paths from {}",
        missing_refs.len(),
        total,
        uri.split('?').next().unwrap_or(uri)
    ));
    let mut failed = None;
    for c in copy_cmds {
        let (ok, stderr) = if ui::progress_allowed() {
            progress::run_with_bar(&c.cmd, c.paths)?
        } else {
            match c.cmd.run() {
                Ok(_) => (true, String::new()),
                Err(lb_common::cmd::Error::Failed { stderr, .. }) => (false, stderr),
                Err(e) => return Err(e.into()),
            }
        };
        if !ok {
            failed = Some(stderr);
            break;
        }
    }
    // `nix copy` exits 0 only when every path is valid here, so only a
    // failure needs a second look (one process less on the common path).
    if let Some(stderr) = failed {
        let arrived = missing_refs.len() - local.invalid(missing_refs)?.len();
        return Err(copy::classify(uri, &stderr, arrived, missing_refs.len()).into());
    }
    ui::note(&format!(
        "copied {} paths; {} were already here",
        missing_refs.len(),
        total - missing_refs.len()
    ));
    Ok(())
}

fn link(prefix: &Path, w: &input::Wanted) -> PathBuf {
    PathBuf::from(w.link_name(&prefix.to_string_lossy()))
}

fn print_json(
    inputs: &[Input],
    selection: &[String],
    copied: &HashSet<String>,
) -> lb_common::Result<()> {
    for r in inputs {
        let v = input::annotate(&r.doc, selection, &|p| copied.contains(p));
        ui::out(&v.to_string())?;
    }
    Ok(())
}
