//! `install` and `remove`: nix.conf's managed block, edited as one plan
//! step (and the advice for nix-darwin and Determinate Nix, which manage
//! nix.conf themselves).

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use lb_common::builder::BuilderArgs;
use lb_common::cli::Change;
use lb_common::conf::escape;
use lb_common::conf::machines::Machine;
use lb_common::exit::Status;
use lb_common::fs::{self, Apply, FileSpec};
use lb_common::managers::{self, LinuxBuilderSnippet, Managers};
use lb_common::paths::Root;
use lb_common::plan::{self, Applied, Files, Inspection, Step, Wanted};
use lb_common::platform::Platform;
use lb_common::privilege::require_writable;
use lb_common::{ui, usage};

use crate::body::{self, EditError};
use crate::{conf_path, daemon, darwin, machine_of, newest_mtime, restart_daemon, InstallArgs};

/// The file lb-nixconf edits: nix.conf, or Determinate Nix's
/// nix.custom.conf (Determinate owns nix.conf and includes that file for
/// users' settings). nix-darwin's nix.conf is handled by the caller.
fn edit_target(root: &Root) -> lb_common::Result<(PathBuf, Managers)> {
    let conf = conf_path(root)?;
    let m = Managers::detect(root, &conf);
    ui::verbose(&format!("this machine's Nix: {}", m.describe()));
    let target = match &m.determinate {
        Some(d) if managers::static_link(&conf).is_none() => d.custom_conf.clone(),
        _ => conf,
    };
    Ok((target, m))
}

/// Say where the block goes under Determinate, and whether nix.conf
/// really includes that file.
fn note_determinate(root: &Root, m: &Managers) -> lb_common::Result<()> {
    let Some(d) = &m.determinate else {
        return Ok(());
    };
    let conf = conf_path(root)?;
    ui::note(&format!(
        "Determinate Nix owns {} (found {}); lb-nixconf's block goes in {}, which it includes",
        conf.display(),
        d.evidence.display(),
        d.custom_conf.display()
    ));
    let includes = fs::read_following(&conf)
        .ok()
        .flatten()
        .is_some_and(|b| managers::includes_custom_conf(&String::from_utf8_lossy(&b)));
    if !includes {
        ui::warn(&format!(
            "{} does not include {}: Nix will not read it until it has `!include {}` (reinstall Determinate Nix, or add that line)",
            conf.display(),
            managers::DETERMINATE_CUSTOM_CONF,
            managers::DETERMINATE_CUSTOM_CONF
        ));
    }
    Ok(())
}

/// What `install --json` prints: the entry, and what became of it.
#[derive(serde::Serialize)]
struct InstallReport<'a> {
    name: &'a str,
    /// The file edited (under `--root`).
    file: String,
    /// The entry in the machines format.
    line: String,
    /// Its fields, as `show --json` names them.
    entry: &'a Machine,
    /// `changed`, `unchanged`, `would change` (`-n`, `--check`), or
    /// `managed by nix-darwin` (nothing written; see `nix_darwin`).
    result: &'a str,
    /// The nix-darwin settings to use instead, when nix-darwin owns nix.conf.
    #[serde(skip_serializing_if = "Option::is_none")]
    nix_darwin: Option<String>,
}

/// The nix-darwin settings for this builder: nix-darwin's own builder
/// first, then a builder of one's own.
fn nix_darwin_snippet(machine: &Machine, key: &str, trusted: &[String]) -> String {
    let native = Platform::current()
        .map(|p| format!("{}-linux", p.arch))
        .unwrap_or_default();
    let builder = LinuxBuilderSnippet {
        // nix-darwin's speedFactor is an integer: a fractional one (Nix 2.20+
        // only, warned about by machine_of) is left to its default.
        speed_factor: format!("{}", machine.speed_factor).parse().ok(),
        supported_features: (!machine.supported_features.is_empty())
            .then(|| machine.supported_features.clone()),
        mandatory_features: Some(machine.mandatory_features.clone()),
        systems: (machine.systems != [native]).then(|| machine.systems.clone()),
        ..LinuxBuilderSnippet::default()
    };
    let mut out = builder.render();
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("# or, for a builder you run yourself (lb-vm), instead:\n");
    out.push_str(&darwin::snippet(machine, key, trusted));
    out
}

fn read_text(path: &Path) -> lb_common::Result<String> {
    let bytes = fs::read_optional(path)?.unwrap_or_default();
    String::from_utf8(bytes)
        .map_err(|_| usage!("{}: not UTF-8 text; fix the file by hand", path.display()))
}

/// Read-modify-write nix.conf as text, as one step: for real, stop first,
/// with the sudo command, when the directory is not ours to write; then,
/// under lb-common's lock (held until the step is dropped, so what is
/// written is what was decided), `edit` runs once on the text there and
/// the file keeps its mode (0644 for a new file: every user's Nix reads it).
struct EditConf<'a> {
    path: &'a Path,
    edit: &'a dyn Fn(&str) -> lb_common::Result<Vec<u8>>,
    /// Set by the first inspection: the lock and the file as `edit` made it.
    decided: OnceCell<(Option<fs::DirLock>, Files)>,
}

impl<'a> EditConf<'a> {
    fn new(path: &'a Path, edit: &'a dyn Fn(&str) -> lb_common::Result<Vec<u8>>) -> Self {
        EditConf {
            path,
            edit,
            decided: OnceCell::new(),
        }
    }

    fn decide(&self) -> lb_common::Result<&Files> {
        if let Some((_, files)) = self.decided.get() {
            return Ok(files);
        }
        let path = self.path;
        let lock = fs::lock_dir_of(path, false)?;
        let old = fs::read_optional(path)?;
        let text = std::str::from_utf8(old.as_deref().unwrap_or_default())
            .map_err(|_| usage!("{}: not UTF-8 text; fix the file by hand", path.display()))?;
        let new = (self.edit)(text)?;
        let spec = FileSpec::mode(fs::existing_mode(path, 0o644));
        let files = Files::new(vec![(path.to_path_buf(), Wanted::Contents(new, spec))]);
        Ok(&self.decided.get_or_init(|| (lock, files)).1)
    }
}

impl Step for EditConf<'_> {
    fn preflight(&self) -> lb_common::Result<()> {
        let path = self.path;
        require_writable(
            &format!("editing {}", path.display()),
            &[path.parent().unwrap_or(Path::new("/")), path],
        )
    }

    fn inspect(&self) -> lb_common::Result<Inspection> {
        self.decide()?.inspect()
    }

    fn execute(&self) -> lb_common::Result<()> {
        self.decide()?.execute()
    }

    fn tidy(&self) -> lb_common::Result<()> {
        self.decide()?.tidy()
    }
}

pub(crate) fn install(
    args: &BuilderArgs,
    root: &Root,
    opts: &InstallArgs,
) -> lb_common::Result<Status> {
    let builder = args.resolve(root)?;
    let machine = machine_of(&builder, &opts.line)?;
    for u in &opts.trust_user {
        escape::nix_conf_word("--trust-user", u)?;
    }
    let (path, found) = edit_target(root)?;
    let apply = Apply::from(opts.change);

    let report = |result: &str, snippet: Option<String>| {
        lb_common::report::print_json(&InstallReport {
            name: &builder.name,
            file: path.display().to_string(),
            line: machine.render(),
            entry: &machine,
            result,
            nix_darwin: snippet,
        })
    };
    if let Some(target) = darwin::managed_target(&path) {
        let key = root.unroot(&builder.key).to_string_lossy().into_owned();
        ui::error(&managers::owned_by_nix_darwin(&path, &target));
        let snippet = nix_darwin_snippet(&machine, &key, &opts.trust_user);
        if opts.json {
            report("managed by nix-darwin", Some(snippet))?;
        } else {
            for line in snippet.lines() {
                ui::out(line)?;
            }
        }
        return Ok(Status::Failed);
    }
    note_determinate(root, &found)?;

    let edit = |text: &str| {
        match body::install(text, &path, &machine, &opts.trust_user, opts.force) {
            Ok((t, moved)) => {
                for at in moved {
                    ui::note(&format!("{at}: moving this builders line into lb-nixconf's block"));
                }
                Ok(t)
            }
            Err(EditError::Conf(e)) => Err(e.into()),
            Err(EditError::Conflict { at, text, included: true }) => Err(lb_common::failed!(
                "{at}: `{text}` is set in a file nix.conf includes; lb-nixconf edits only {}: move or remove that line by hand",
                path.display()
            )),
            Err(EditError::Conflict { at, text, .. }) => Err(lb_common::failed!(
                "{at}: `{text}` is set outside lb-nixconf's block; remove it, or pass --force to move its entries into the block"
            )),
        }
        .map(String::into_bytes)
    };
    // -n --json: judged as --check is (no diff on stdout), exit 0.
    let mode = apply.for_json(opts.json);
    let applied = plan::apply(mode, &EditConf::new(&path, &edit))?;
    if applied == Applied::Unchanged {
        ui::note(&format!(
            "{}: already has builder {}",
            path.display(),
            builder.name
        ));
    }
    let changed = applied != Applied::Unchanged;
    if opts.json {
        report(
            match applied {
                Applied::Unchanged => "unchanged",
                Applied::Changed => "changed",
                Applied::Shown | Applied::WouldChange => "would change",
            },
            None,
        )?;
    }
    if opts.restart && mode != Apply::Check {
        // A restart is wanted when the file changed, or when an earlier
        // change is still not in effect.
        let stale = daemon::running_for(path.parent().unwrap_or(Path::new("/")))
            .is_some_and(|d| newest_mtime(std::slice::from_ref(&path)) > Some(d.started));
        if changed || stale {
            restart_daemon(apply, root)?;
        } else {
            ui::note("the daemon already runs with this nix.conf; not restarting");
        }
    } else if applied == Applied::Changed {
        ui::note("restart the Nix daemon for the change to take effect: lb-nixconf restart-daemon");
    }
    Ok(if apply == Apply::DryRun {
        Status::Ok
    } else {
        applied.status()
    })
}

pub(crate) fn remove(name: &str, root: &Root, change: Change) -> lb_common::Result<Status> {
    lb_common::builder::validate_name(name)?;
    let (path, _) = edit_target(root)?;
    let apply = Apply::from(change);
    if let Some(target) = darwin::managed_target(&path) {
        return Err(lb_common::failed!(
            "{}: nix-darwin owns this file (a link to {}); remove the builder in your nix-darwin configuration (nix.linux-builder.enable = false; or its nix.buildMachines entry), then darwin-rebuild switch",
            path.display(),
            target.display()
        ));
    }
    let text = read_text(&path)?;
    if body::remove(&text, &path, name)?.is_none() {
        ui::note(&format!(
            "{}: no builder {name} in lb-nixconf's block",
            path.display()
        ));
        return Ok(Status::Ok);
    }
    // Re-read under the lock: another writer may have changed it.
    let edit = |text: &str| {
        Ok(body::remove(text, &path, name)?
            .unwrap_or_else(|| text.to_owned())
            .into_bytes())
    };
    let applied = plan::apply(apply, &EditConf::new(&path, &edit))?;
    if applied == Applied::Unchanged {
        ui::note(&format!("{}: no builder {name}", path.display()));
    }
    Ok(applied.status())
}
