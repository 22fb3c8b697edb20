//! install, generate, pubkey and uninstall.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use lb_common::builder::Builder;
use lb_common::cli::Global;
use lb_common::cmd::Cmd;
use lb_common::exit::Status;
use lb_common::fs::{self, Apply, FileSpec, Outcome};
use lb_common::paths::Root;
use lb_common::{privilege, ui, usage};
use nix::unistd::{Gid, Uid};

use crate::pair::{self, PairError, PairPaths};
use crate::{GenerateArgs, InstallArgs, PubkeyArgs, UninstallArgs};

/// What every command needs: the root, the builder (its key already
/// inside the root) and the flags to repeat when re-running under sudo.
#[derive(Debug)]
pub struct Ctx {
    pub root: Root,
    pub builder: Builder,
    pub global: Global,
    /// `--key` as the user gave it (before `--root` was applied).
    pub key_arg: PathBuf,
}

impl Ctx {
    pub(crate) fn installed(&self) -> PairPaths {
        PairPaths::of_private(&self.builder.key)
    }

    /// `lb-keys [--root R] [--key K] ARGS`, for messages that say what to run.
    pub(crate) fn suggest(&self, args: &str) -> String {
        let mut words = vec!["lb-keys".to_owned()];
        if let Some(p) = self.root.prefix() {
            words.extend(["--root".to_owned(), quote(p)]);
        }
        if self.key_arg != Path::new(lb_common::builder::DEFAULT_KEY) {
            words.extend(["--key".to_owned(), quote(&self.key_arg)]);
        }
        words.push(args.to_owned());
        words.join(" ")
    }
}

/// A path quoted for a shell command line in a message.
pub(crate) fn quote(p: &Path) -> String {
    let s = p.to_string_lossy();
    shlex::try_quote(&s).map_or_else(|_| format!("{s:?}"), std::borrow::Cow::into_owned)
}

/// A pair error as the exit table wants it: bad key files are bad input
/// (2); a file system refusal (symlink, I/O) stays a failure (1).
fn input_error(e: PairError, fix: &str) -> lb_common::Error {
    match e {
        PairError::Fs(e) => e.into(),
        error => pair::Unusable {
            error,
            fix: fix.to_owned(),
        }
        .into(),
    }
}

/// Look up the key's group, or say how to create it.
fn group_id(name: &str) -> lb_common::Result<Gid> {
    crate::group::lookup(name).map(|g| g.gid)
}

/// The wanted mode and ownership of an installed file.
fn spec(mode: u32, gid: Gid) -> FileSpec {
    FileSpec {
        mode,
        // "owner root where the process is root"; otherwise the writer's own.
        uid: privilege::is_root().then(|| Uid::from_raw(0)),
        gid: Some(gid),
    }
}

pub fn install(ctx: &Ctx, a: &InstallArgs) -> lb_common::Result<Status> {
    let apply = Apply::from(a.change);
    // nix-darwin's nix.linux-builder runs create-builder, which installs its
    // own pair over /etc/nix/builder_ed25519 whenever the keys differ.
    let nix_conf = lb_common::conf::nixconf::conf_dir(&ctx.root)?.join("nix.conf");
    if let Some(plist) = lb_common::managers::Managers::detect(&ctx.root, &nix_conf)
        .nix_darwin
        .and_then(|d| d.linux_builder)
    {
        lb_common::ui::warn(&format!(
            "nix-darwin's nix.linux-builder is enabled ({}): its create-builder installs its own key pair (from /var/lib/linux-builder/keys) over /etc/nix/builder_ed25519 when they differ; use that builder, or turn it off (nix.linux-builder.enable = false;) before using lb-keys' pair",
            plist.display()
        ));
    }
    pair::check_dir(&a.keys.dir)?;
    let gid = group_id(&a.group.group)?;
    let source = PairPaths::in_dir(&a.keys.dir);
    let target = ctx.installed();

    if let Some(status) = generate_step(ctx, a, &source, &target, apply)? {
        return Ok(status);
    }
    let fix = format!(
        "delete both {} and {} to have a fresh pair generated",
        source.private.display(),
        source.public.display()
    );
    let pair = pair::load(&source).map_err(|e| input_error(e, &fix))?;

    // Step 2: install, unless what is there already is right.
    let private_spec = spec(0o600, gid);
    let public_spec = spec(0o644, gid);
    let dir = fs::parent(&target.private);
    let can_do_it_myself = privilege::can_write_in(&dir) && may_set_group(gid);
    if !privilege::is_root() && !can_do_it_myself {
        // Not root, and the directory is not writable or the group not
        // ours to give. Without root we cannot read the installed private
        // key either; judge by
        // what we can see: the public key's bytes and the private key's
        // mode and group. Root compares the contents too when it runs.
        let up_to_date = fs::read_optional(&target.public)?.as_deref()
            == Some(pair.public_bytes.as_slice())
            && private_looks_right(&target.private, &private_spec);
        if up_to_date {
            return already(&target, apply);
        }
        return escalate_install(ctx, a, &source, &target, apply);
    }

    // Both files as one change: a refusal or a failed write at either
    // leaves the installed pair as it was, never a new private key beside
    // an old public one.
    let how = if apply == Apply::Write {
        Apply::Write
    } else {
        Apply::Check
    };
    let outcomes = fs::write_set(
        &[
            fs::Planned {
                path: &target.private,
                contents: &pair.private_bytes,
                spec: private_spec,
            },
            fs::Planned {
                path: &target.public,
                contents: &pair.public_bytes,
                spec: public_spec,
            },
        ],
        how,
    )?;
    let (private, public) = (outcomes[0], outcomes[1]);
    if !private.changed() && !public.changed() {
        return already(&target, apply);
    }
    match apply {
        Apply::Write => {
            for (path, outcome, mode) in [
                (&target.private, private, "600"),
                (&target.public, public, "644"),
            ] {
                if outcome.changed() {
                    ui::note(&format!(
                        "installed {} (mode {mode}, group {})",
                        path.display(),
                        a.group.group
                    ));
                }
            }
            ui::out(&target.private.display().to_string())?;
            Ok(Status::Ok)
        }
        Apply::DryRun => {
            print_install_changed(&source, &target, &a.group.group, private, public)?;
            Ok(Status::Ok)
        }
        Apply::Check => {
            ui::note(&format!("would install the pair to {}", dir.display()));
            Ok(Status::Failed)
        }
    }
}

/// Step 1, as the manual's script: if either half of the pair in KEYS_DIR
/// is missing, both are replaced. Returns a status when the command is
/// finished here (dry-run and check of a pair still to be generated).
fn generate_step(
    ctx: &Ctx,
    a: &InstallArgs,
    source: &PairPaths,
    target: &PairPaths,
    apply: Apply,
) -> lb_common::Result<Option<Status>> {
    let keys_dir = &a.keys.dir;
    let (has_private, has_public) = source.present();
    if has_private && has_public {
        return Ok(None);
    }
    if a.no_generate {
        let missing = if has_private {
            &source.public
        } else {
            &source.private
        };
        return Err(usage!(
            "{}: missing; run `{}` to generate the pair first",
            missing.display(),
            ctx.suggest(&format!("generate {}", quote(keys_dir)))
        ));
    }
    match apply {
        Apply::Write => {
            let fresh = pair::write_new(source)?;
            ui::note(&format!(
                "generated a new pair in {} ({})",
                keys_dir.display(),
                fresh.public.fingerprint(ssh_key::HashAlg::Sha256)
            ));
            Ok(None)
        }
        Apply::DryRun => {
            print_generate(source, has_private, has_public)?;
            // A fresh key differs from whatever is installed.
            print_install(source, target, &a.group.group)?;
            Ok(Some(Status::Ok))
        }
        Apply::Check => {
            ui::note(&format!(
                "would generate a new pair in {} and install it",
                keys_dir.display()
            ));
            Ok(Some(Status::Failed))
        }
    }
}

/// Not root, and the install directory is not ours: re-run only the
/// install step (never generation: the pair is the user's) under sudo.
fn escalate_install(
    ctx: &Ctx,
    a: &InstallArgs,
    source: &PairPaths,
    target: &PairPaths,
    apply: Apply,
) -> lb_common::Result<Status> {
    let dir = fs::parent(&target.private);
    match apply {
        Apply::Write => {
            let mut rest: Vec<OsString> = vec!["install".into(), "--no-generate".into()];
            if a.group.group != crate::DEFAULT_GROUP {
                rest.push("--group".into());
                rest.push(a.group.group.clone().into());
            }
            // The re-run must not try sudo again.
            rest.push("--no-sudo".into());
            rest.push(std::path::absolute(&a.keys.dir)?.into_os_string());
            let argv = crate::self_argv(ctx, &rest)?;
            privilege::escalate(
                &format!("installing the key to {}", dir.display()),
                &argv,
                a.sudo.no_sudo,
            )?;
            Ok(Status::Ok)
        }
        Apply::DryRun => {
            print_install(source, target, &a.group.group)?;
            Ok(Status::Ok)
        }
        Apply::Check => {
            ui::note(&format!("would install the pair to {}", dir.display()));
            Ok(Status::Failed)
        }
    }
}

fn already(target: &PairPaths, apply: Apply) -> lb_common::Result<Status> {
    ui::note(&format!(
        "{} is already installed; nothing changed",
        target.private.display()
    ));
    if apply == Apply::Write {
        ui::out(&target.private.display().to_string())?;
    }
    Ok(Status::Ok)
}

/// Can this process give its files group `gid` (without root: only a
/// group it is in)? If not, the install step needs root even where the
/// directory is writable.
fn may_set_group(gid: Gid) -> bool {
    nix::unistd::getegid() == gid || nix::unistd::getgroups().is_ok_and(|g| g.contains(&gid))
}

/// Mode and group as wanted (owner is root's business: we may not be root).
fn private_looks_right(path: &Path, spec: &FileSpec) -> bool {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => {
            m.permissions().mode() & 0o7777 == spec.mode
                && spec.gid.is_none_or(|g| g.as_raw() == m.gid())
        }
        _ => false,
    }
}

/// Dry run of generation: the commands the manual's script would run.
fn print_generate(
    source: &PairPaths,
    has_private: bool,
    has_public: bool,
) -> lb_common::Result<()> {
    for (present, path) in [(has_private, &source.private), (has_public, &source.public)] {
        if present {
            ui::out(&Cmd::new("rm").arg("-f").arg(path).display())?;
        }
    }
    let keygen = Cmd::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", pair::COMMENT, "-f"])
        .arg(&source.private);
    ui::out(&keygen.display())?;
    Ok(())
}

/// Dry run of installation: `install -g GROUP -m MODE SRC DST` per file,
/// the manual's own commands; never the key material itself.
fn print_install(source: &PairPaths, target: &PairPaths, group: &str) -> lb_common::Result<()> {
    print_install_changed(source, target, group, Outcome::Updated, Outcome::Updated)
}

fn print_install_changed(
    source: &PairPaths,
    target: &PairPaths,
    group: &str,
    private: Outcome,
    public: Outcome,
) -> lb_common::Result<()> {
    for (outcome, mode, src, dst) in [
        (private, "600", &source.private, &target.private),
        (public, "644", &source.public, &target.public),
    ] {
        if outcome.changed() {
            let cmd = Cmd::new("install")
                .args(["-g", group, "-m", mode])
                .arg(src)
                .arg(dst);
            ui::out(&cmd.display())?;
        }
    }
    Ok(())
}

pub fn generate(a: &GenerateArgs) -> lb_common::Result<Status> {
    let apply = Apply::from(a.change);
    pair::check_dir(&a.dir)?;
    let paths = PairPaths::in_dir(&a.dir);
    let (has_private, has_public) = paths.present();
    if !a.force && (has_private || has_public) {
        let fix = format!(
            "pass --force to replace {} and {} with a fresh pair",
            paths.private.display(),
            paths.public.display()
        );
        // A valid pair already there is what was asked for.
        pair::load(&paths).map_err(|e| match e {
            PairError::Fs(e) => lb_common::Error::from(e),
            other => lb_common::failed!("{other}; refusing to overwrite it: {fix}"),
        })?;
        ui::note(&format!(
            "{} already holds a key pair; nothing changed ({fix})",
            a.dir.display()
        ));
        if apply == Apply::Write {
            ui::out(&paths.private.display().to_string())?;
        }
        return Ok(Status::Ok);
    }
    match apply {
        Apply::Write => {
            let fresh = pair::write_new(&paths)?;
            ui::note(&format!(
                "generated {} and its .pub ({})",
                paths.private.display(),
                fresh.public.fingerprint(ssh_key::HashAlg::Sha256)
            ));
            ui::out(&paths.private.display().to_string())?;
            Ok(Status::Ok)
        }
        Apply::DryRun => {
            print_generate(&paths, has_private, has_public)?;
            Ok(Status::Ok)
        }
        Apply::Check => {
            ui::note(&format!("would generate a new pair in {}", a.dir.display()));
            Ok(Status::Failed)
        }
    }
}

pub fn pubkey(ctx: &Ctx, a: &PubkeyArgs) -> lb_common::Result<Status> {
    let path = &ctx.installed().public;
    let bytes = fs::read_optional(path)?.ok_or_else(|| {
        lb_common::failed!(
            "{}: not installed; run `sudo {}` first",
            path.display(),
            ctx.suggest("install ./keys")
        )
    })?;
    let key = pair::parse_public(path, &bytes).map_err(|e| {
        input_error(
            e,
            &format!("reinstall it with `sudo {}`", ctx.suggest("install ./keys")),
        )
    })?;
    let line = key
        .to_openssh()
        .map_err(|e| lb_common::failed!("{}: {e}", path.display()))?;
    if a.base64 {
        ui::out(&base64::engine::general_purpose::STANDARD.encode(format!("{line}\n")))?;
    } else {
        ui::out(&line)?;
    }
    Ok(Status::Ok)
}

pub fn uninstall(ctx: &Ctx, a: &UninstallArgs) -> lb_common::Result<Status> {
    let apply = Apply::from(a.change);
    let target = ctx.installed();
    let present: Vec<&PathBuf> = [&target.private, &target.public]
        .into_iter()
        .filter(|p| pair::is_present(p))
        .collect();
    // Copies of the key an interrupted install left (`.builder_ed25519.XXXXXX.tmp`).
    let mut stale = fs::stale_temps(&target.private)?;
    stale.extend(fs::stale_temps(&target.public)?);
    if present.is_empty() && stale.is_empty() {
        ui::note(&format!(
            "{} is not installed; nothing changed",
            target.private.display()
        ));
        return Ok(Status::Ok);
    }
    match apply {
        // Never through fs::remove's dry-run: it would print the private key.
        Apply::DryRun => {
            for p in present.iter().copied().chain(&stale) {
                ui::out(&Cmd::new("rm").arg("-f").arg(p).display())?;
            }
            Ok(Status::Ok)
        }
        Apply::Check => {
            ui::note(&format!(
                "would remove {}",
                present
                    .iter()
                    .copied()
                    .chain(&stale)
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" and ")
            ));
            Ok(Status::Failed)
        }
        Apply::Write => {
            let dir = fs::parent(&target.private);
            if !privilege::can_write_in(&dir) && !privilege::is_root() {
                let argv = crate::self_argv(ctx, &["uninstall".into(), "--no-sudo".into()])?;
                privilege::escalate(
                    &format!("removing the key from {}", dir.display()),
                    &argv,
                    a.sudo.no_sudo,
                )?;
                return Ok(Status::Ok);
            }
            // The secret first; each removal sweeps its leftovers too.
            let _lock = fs::lock_dir_of(&target.private, false)?;
            for p in [&target.private, &target.public] {
                let swept = fs::sweep_stale(p)?;
                if swept > 0 {
                    ui::note(&format!(
                        "removed {swept} temp file(s) an interrupted write of {} left",
                        p.display()
                    ));
                }
                if fs::remove(p, Apply::Write)? == Outcome::Removed {
                    ui::note(&format!("removed {}", p.display()));
                }
            }
            Ok(Status::Ok)
        }
    }
}
