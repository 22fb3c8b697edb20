//! `install` and `uninstall`: NAME's alias and known-hosts files and the
//! managed Include in ssh_config, as plan steps under one lock.

use std::path::{Path, PathBuf};

use lb_common::builder::{validate_name, BuilderArgs};
use lb_common::cli::Change;
use lb_common::conf::block::{ManagedBlock, Position};
use lb_common::conf::sshconfig::includes_dropin_dir;
use lb_common::exit::Status;
use lb_common::fs::{self, Apply, FileSpec};
use lb_common::managers;
use lb_common::paths::Root;
use lb_common::plan::{self, Applied, Files, Inspection, Step, Wanted};
use lb_common::{ui, usage};

use crate::layout::{self, is_ours, Layout, BLOCK_TAG, CREATED_NOTE};

const MANAGED: ManagedBlock<'static> = ManagedBlock { tag: BLOCK_TAG };

/// Unless `force`, stop with `why` when NAME's alias file is there and
/// lb-sshcfg did not write it (the manual's hand-written one).
fn refuse_foreign(layout: &Layout, force: bool, why: &str) -> lb_common::Result<()> {
    match existing(&layout.conf)? {
        Some(old) if !is_ours(&old) && !force => {
            lb_common::bail!("{}: {why}", layout.conf.display())
        }
        _ => Ok(()),
    }
}

/// A file we are about to change, as found before changing anything.
fn existing(path: &Path) -> lb_common::Result<Option<Vec<u8>>> {
    Ok(fs::read_optional(path)?)
}

/// `ssh_config` as text; it may be a symlink (nix-darwin links it into
/// /etc/static) as long as it needs no change.
fn read_main(layout: &Layout) -> lb_common::Result<Option<String>> {
    match fs::read_following(&layout.main)? {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes).map(Some).map_err(|_| {
            usage!(
                "{}: not UTF-8 text; fix the file before running lb-sshcfg",
                layout.main.display()
            )
        }),
    }
}

/// `text` (None: absent) with the managed Include, or unchanged if the
/// drop-in directory is already included.
fn with_include(text: Option<&str>, layout: &Layout) -> lb_common::Result<String> {
    let current = text.unwrap_or_default();
    if includes_dropin_dir(current, &layout.etc_ssh) {
        return Ok(current.to_owned());
    }
    let created = text.is_none()
        || MANAGED
            .body(current, &layout.main)?
            .is_some_and(|b| b.contains(CREATED_NOTE));
    Ok(MANAGED.set(
        current,
        &layout.include_body(created)?,
        Position::Top,
        &layout.main,
    )?)
}

/// nix-darwin owns one of lb-sshcfg's files (a link into /etc/static):
/// say so, then what to put in the nix-darwin configuration, its own
/// builder (which writes 100-linux-builder.conf) first.
fn nix_darwin_owns(path: &Path, target: &Path, alias: Option<&str>) -> lb_common::Result<Status> {
    ui::error(&managers::owned_by_nix_darwin(path, target));
    ui::out(managers::LinuxBuilderSnippet::default().render().trim_end())?;
    if let Some(alias) = alias {
        let rel = path
            .to_string_lossy()
            .rsplit_once("/etc/")
            .map_or_else(|| path.display().to_string(), |(_, r)| r.to_owned());
        ui::out("# or, for a builder you run yourself (lb-vm), instead:")?;
        ui::out(&format!("environment.etc.\"{rel}\".text = ''"))?;
        for line in alias.lines() {
            ui::out(&format!("  {line}"))?;
        }
        ui::out("'';")?;
    }
    Ok(Status::Failed)
}

/// Hold the locks of `/etc/ssh` and `ssh_config.d` for a whole install
/// or uninstall: which aliases exist, whether ssh_config needs the
/// Include, and every write are one step. Without it, `install b` beside
/// `uninstall a` could see no other alias, and remove the Include that b
/// has just come to need. `/etc/ssh` is created for the lock when writing
/// (it is every lb-sshcfg run's first lock, so holding it serialises them).
fn lock(layout: &Layout, apply: Apply) -> lb_common::Result<fs::LockSet> {
    if apply == Apply::Write {
        // Not possible (not root, read-only): the writability check after
        // the lock says why, with the fix.
        let _ = fs::create_dirs(&layout.etc_ssh);
    }
    Ok(fs::lock_dirs(&layout.dirs(), false)?)
}

pub(crate) fn install(
    args: &BuilderArgs,
    root: &Root,
    change: Change,
    force: bool,
) -> lb_common::Result<Status> {
    let builder = args.resolve(root)?;
    let layout = Layout::new(root, &builder.name)?;
    let apply = Apply::from(change);
    if let Some(target) = managers::static_link(&layout.conf) {
        // The nix-darwin file is on the real system: the alias as it
        // would be written there; Nix checks the host key from its
        // builders entry (publicHostKey), as nix-darwin's own alias does.
        let real = Layout::new(&Root::real(), &builder.name)?;
        let mut alias = layout::alias(&builder, &real);
        alias.identity_file = root.unroot(&builder.key);
        alias.known_hosts = None;
        let alias = alias.render()?;
        return nix_darwin_owns(&layout.conf, &target, Some(&alias));
    }
    // Rendered (and refused, when a value cannot be written safely) before
    // anything on disk is touched.
    let conf = layout::render_conf(&builder, &layout)?;
    let known_hosts = layout::render_known_hosts(&builder);
    layout.include_body(false)?;
    // From here to the last write: one lock (see `lock`).
    let _locks = lock(&layout, apply)?;

    // Look at every target before writing any, so that a symlink, a
    // directory, an unreadable or foreign file stops the install with
    // nothing written.
    refuse_foreign(
        &layout,
        force,
        "already exists and was not written by lb-sshcfg; move it away, or pass --force to replace it",
    )?;
    existing(&layout.known_hosts)?;
    let main = read_main(&layout)?;
    let main_new = with_include(main.as_deref(), &layout)?;
    let main_changes = main.as_deref() != Some(main_new.as_str());
    if main_changes {
        if let Some(target) = managers::static_link(&layout.main) {
            return nix_darwin_owns(&layout.main, &target, None);
        }
        fs::refuse_symlink(&layout.main)?;
    }
    let mut writable = vec![
        layout.dropin.clone(),
        layout.conf.clone(),
        layout.known_hosts.clone(),
    ];
    let spec = FileSpec::mode(0o644);
    let mut changes = vec![
        (
            layout.known_hosts.clone(),
            Wanted::Contents(known_hosts.into_bytes(), spec),
        ),
        (
            layout.conf.clone(),
            Wanted::Contents(conf.into_bytes(), spec),
        ),
    ];
    if main_changes {
        writable.extend([layout.etc_ssh.clone(), layout.main.clone()]);
        // Decided under the directory locks held since the reads above.
        let spec = FileSpec::mode(fs::existing_mode(&layout.main, 0o644));
        changes.push((
            layout.main.clone(),
            Wanted::Contents(main_new.into_bytes(), spec),
        ));
    }
    let step = Install {
        files: Files {
            changes,
            writable: Some((format!("writing {}", layout.dropin.display()), writable)),
            silent: false,
        },
        mode: apply,
        missing_key: (!builder.key.is_file()).then(|| {
            format!(
                "IdentityFile {} does not exist yet; install the builder's key (`lb-keys install`)",
                builder.key.display()
            )
        }),
    };
    let applied = plan::apply(apply, &step)?;
    if applied == Applied::Unchanged {
        ui::note(&format!("{}: already as wanted", layout.conf.display()));
    }
    if apply == Apply::Write {
        ui::out(&layout.conf.display().to_string())?;
    }
    Ok(applied.status())
}

/// `install`'s files, with the warning about a key not installed yet said
/// where it always was: after the writes, before what they did (in the
/// read-only modes: before what they would do).
struct Install {
    files: Files,
    mode: Apply,
    missing_key: Option<String>,
}

impl Install {
    fn warn(&self) {
        if let Some(w) = &self.missing_key {
            ui::warn(w);
        }
    }
}

impl Step for Install {
    fn preflight(&self) -> lb_common::Result<()> {
        self.files.preflight()
    }

    fn inspect(&self) -> lb_common::Result<Inspection> {
        let found = self.files.inspect()?;
        // For real, a change is warned about by `execute`, after writing.
        if self.mode != Apply::Write || matches!(found, Inspection::Done) {
            self.warn();
        }
        Ok(found)
    }

    fn execute(&self) -> lb_common::Result<()> {
        self.files.execute_then(|| self.warn())
    }

    fn tidy(&self) -> lb_common::Result<()> {
        self.files.tidy()
    }
}

/// The other aliases written by lb-sshcfg, which still need the Include.
fn other_aliases(layout: &Layout) -> lb_common::Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(&layout.dropin) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(fs::Error::io(&layout.dropin, e).into()),
    };
    let mut out = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| fs::Error::io(&layout.dropin, e))?.path();
        let file = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        if path == layout.conf
            || !file.starts_with("100-")
            || path.extension().is_none_or(|e| e != "conf")
        {
            continue;
        }
        if fs::read_following(&path)
            .ok()
            .flatten()
            .is_some_and(|t| is_ours(&t))
        {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

pub(crate) fn uninstall(
    name: &str,
    root: &Root,
    change: Change,
    force: bool,
) -> lb_common::Result<Status> {
    validate_name(name)?;
    let layout = Layout::new(root, name)?;
    if let Some(target) = managers::static_link(&layout.conf) {
        lb_common::bail!(
            "{}: nix-darwin owns this file (a link to {}); remove it in your nix-darwin configuration (nix.linux-builder.enable = false;), then darwin-rebuild switch",
            layout.conf.display(),
            target.display()
        );
    }
    let apply = Apply::from(change);
    plan::require_writable(
        apply,
        &format!("removing files in {}", layout.dropin.display()),
        &[
            &layout.dropin,
            &layout.conf,
            &layout.known_hosts,
            &layout.etc_ssh,
            &layout.main,
        ],
    )?;
    // Everything from here to the last removal under one lock (see `lock`).
    let _locks = lock(&layout, apply)?;

    refuse_foreign(
        &layout,
        force,
        "not written by lb-sshcfg; remove it by hand, or pass --force",
    )?;
    let others = other_aliases(&layout)?;
    let main = read_main(&layout)?;
    // What ssh_config becomes: None = delete it (lb-sshcfg created it and
    // nothing else is in it), Some(text) = write text.
    let main_new = match &main {
        Some(text) if others.is_empty() => {
            let created = MANAGED
                .body(text, &layout.main)?
                .is_some_and(|b| b.contains(CREATED_NOTE));
            let without = MANAGED.remove(text, &layout.main)?;
            if created && without.is_empty() {
                None
            } else {
                Some(without)
            }
        }
        other => other.clone(),
    };
    let main_changes = main_new != main;
    if main_changes {
        fs::refuse_symlink(&layout.main)?;
    }
    if !others.is_empty() {
        ui::verbose(&format!(
            "keeping the Include in {}: still used by {}",
            layout.main.display(),
            others
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }

    let mut changes = vec![
        (layout.conf.clone(), Wanted::Absent),
        (layout.known_hosts.clone(), Wanted::Absent),
    ];
    if main_changes {
        // Decided under the directory locks held since the reads above.
        let wanted = match main_new {
            None => Wanted::Absent,
            Some(text) => Wanted::Contents(
                text.into_bytes(),
                FileSpec::mode(fs::existing_mode(&layout.main, 0o644)),
            ),
        };
        changes.push((layout.main.clone(), wanted));
    }
    let applied = plan::apply(apply, &Files::new(changes))?;
    if applied == Applied::Unchanged {
        ui::note(&format!("{name}: nothing to remove"));
    }
    Ok(applied.status())
}
