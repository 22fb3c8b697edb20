//! install, generate, check, pubkey and uninstall.

use std::ffi::OsString;
use std::io::ErrorKind;
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
use crate::{CheckArgs, GenerateArgs, InstallArgs, PubkeyArgs, UninstallArgs};

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
    fn installed(&self) -> PairPaths {
        PairPaths::of_private(&self.builder.key)
    }

    /// `lb-keys [--root R] [--key K] ARGS`, for messages that say what to run.
    fn suggest(&self, args: &str) -> String {
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
fn quote(p: &Path) -> String {
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

/// One thing `check` found wrong: the file and the fix.
struct Problem(String);

impl Problem {
    fn new(path: &Path, what: impl std::fmt::Display, fix: impl std::fmt::Display) -> Self {
        Problem(format!("{}: {what}; {fix}", path.display()))
    }
}

pub fn check(ctx: &Ctx, a: &CheckArgs) -> lb_common::Result<Status> {
    let problems = problems(ctx, a)?;
    if problems.is_empty() {
        let with = a
            .keys
            .as_deref()
            .map(|k| format!(", matches {}", k.display()))
            .unwrap_or_default();
        ui::note(&format!(
            "{}: installed, mode 0600, group {}{with}",
            ctx.installed().private.display(),
            a.group.group
        ));
        Ok(Status::Ok)
    } else {
        for p in &problems {
            ui::error(p);
        }
        Ok(Status::Failed)
    }
}

/// `check`'s findings, one line each with its fix.
pub fn problems(ctx: &Ctx, a: &CheckArgs) -> lb_common::Result<Vec<String>> {
    if let Some(keys) = &a.keys {
        pair::check_dir(keys)?;
        if !keys.exists() {
            return Err(usage!(
                "{}: no such directory; give the keys directory shared with the VM",
                keys.display()
            ));
        }
    }
    let target = ctx.installed();
    let install = ctx.suggest(&format!(
        "install {}",
        a.keys.as_deref().map_or_else(|| "./keys".to_owned(), quote)
    ));
    let reinstall = format!("run `sudo {install}`");
    let mut problems = Vec::new();

    let group = crate::group::lookup(&a.group.group);
    if let Err(e) = &group {
        problems.push(Problem(format!("{e:#}")));
    }
    let private_ok = check_private_file(
        &target.private,
        group.ok().as_ref(),
        &reinstall,
        &mut problems,
    );
    let installed_public = check_public_file(&target.public, &reinstall, &mut problems);
    if private_ok {
        check_private_matches(
            ctx,
            &target,
            installed_public.as_ref(),
            &reinstall,
            &mut problems,
        );
    }
    if let (Some(keys), Some(public)) = (&a.keys, &installed_public) {
        check_keys_dir(keys, &target.public, public, &reinstall, &mut problems);
    } else if let Some(keys) = &a.keys {
        // Still report a broken keys directory when the installed key is.
        let source = PairPaths::in_dir(keys);
        if !pair::is_present(&source.public) {
            problems.push(Problem::new(
                &source.public,
                "missing, so the VM accepts no key",
                &reinstall,
            ));
        }
    }

    Ok(problems.into_iter().map(|p| p.0).collect())
}

/// The installed private key: a regular file, 0600, in the group. True
/// when it is a regular file (so its contents can be looked at).
fn check_private_file(
    path: &Path,
    group: Option<&nix::unistd::Group>,
    reinstall: &str,
    problems: &mut Vec<Problem>,
) -> bool {
    let m = match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => {
            problems.push(Problem::new(path, "missing", reinstall));
            return false;
        }
        Err(e) => {
            problems.push(Problem::new(path, e, reinstall));
            return false;
        }
        Ok(m) if m.file_type().is_symlink() => {
            problems.push(Problem::new(
                path,
                "is a symlink, which a root process must not follow",
                format!("remove it and {reinstall}"),
            ));
            return false;
        }
        Ok(m) if !m.is_file() => {
            problems.push(Problem::new(path, "not a regular file", reinstall));
            return false;
        }
        Ok(m) => m,
    };
    let mode = m.permissions().mode() & 0o7777;
    if mode != 0o600 {
        // Group/other bits read clearer as a mask than as trailing_zeros().
        #[allow(clippy::verbose_bit_mask)]
        let private_to_owner = mode & 0o077 == 0;
        let why = if private_to_owner {
            "want 0600"
        } else {
            "group or others can read or change it; want 0600"
        };
        problems.push(Problem::new(
            path,
            format!("mode {mode:04o}: {why}"),
            format!("run `sudo chmod 600 {}`", quote(path)),
        ));
    }
    if let Some(g) = group {
        if m.gid() != g.gid.as_raw() {
            let actual = nix::unistd::Group::from_gid(Gid::from_raw(m.gid()))
                .ok()
                .flatten()
                .map_or_else(|| m.gid().to_string(), |g| g.name);
            problems.push(Problem::new(
                path,
                format!("group is {actual}, want {}", g.name),
                format!("run `sudo chgrp {} {}`", g.name, quote(path)),
            ));
        }
    }
    true
}

/// The installed public key: present, well-formed, not writable by others.
fn check_public_file(
    path: &Path,
    reinstall: &str,
    problems: &mut Vec<Problem>,
) -> Option<ssh_key::PublicKey> {
    if let Ok(m) = std::fs::symlink_metadata(path) {
        let mode = m.permissions().mode() & 0o7777;
        if m.is_file() && mode & 0o022 != 0 {
            problems.push(Problem::new(
                path,
                format!("mode {mode:04o}: others can change the key"),
                format!("run `sudo chmod 644 {}`", quote(path)),
            ));
        }
    }
    match fs::read_optional(path) {
        Ok(None) => {
            problems.push(Problem::new(path, "missing", reinstall));
            None
        }
        Err(e) => {
            problems.push(Problem(format!("{e}; {reinstall}")));
            None
        }
        Ok(Some(bytes)) => match pair::parse_public(path, &bytes) {
            Ok(k) => Some(k),
            Err(e) => {
                problems.push(Problem(format!("{e}; {reinstall}")));
                None
            }
        },
    }
}

/// The private key's own public key must be the installed one.
fn check_private_matches(
    ctx: &Ctx,
    target: &PairPaths,
    public: Option<&ssh_key::PublicKey>,
    reinstall: &str,
    problems: &mut Vec<Problem>,
) {
    let read = fs::read_optional(&target.private)
        .and_then(|b| b.ok_or_else(|| fs::Error::io(&target.private, ErrorKind::NotFound.into())));
    let bytes = match read {
        Err(fs::Error::Io { source: e, .. }) if e.kind() == ErrorKind::PermissionDenied => {
            problems.push(Problem::new(
                &target.private,
                format!(
                    "cannot read it as uid {} to verify it matches {} (as it should be: the Nix daemon runs as root and reads it)",
                    nix::unistd::geteuid(),
                    target.public.display()
                ),
                format!("run `sudo {}`", ctx.suggest("check")),
            ));
            return;
        }
        Err(e) => {
            problems.push(Problem(format!("{e}; {reinstall}")));
            return;
        }
        Ok(bytes) => zeroize::Zeroizing::new(bytes),
    };
    match pair::parse_private(&target.private, &bytes) {
        Err(e) => problems.push(Problem(format!("{e}; {reinstall}"))),
        Ok(key) => {
            if public.is_some_and(|p| key.public_key().key_data() != p.key_data()) {
                problems.push(Problem::new(
                    &target.public,
                    format!("is not the public key of {}", target.private.display()),
                    reinstall,
                ));
            }
        }
    }
}

/// The keys directory's public key is the one the VM accepts: the
/// installed key must be it.
fn check_keys_dir(
    keys: &Path,
    installed_path: &Path,
    installed: &ssh_key::PublicKey,
    reinstall: &str,
    problems: &mut Vec<Problem>,
) {
    let source = PairPaths::in_dir(keys);
    match fs::read_optional(&source.public) {
        Ok(None) => problems.push(Problem::new(
            &source.public,
            "missing, so the VM accepts no key",
            reinstall,
        )),
        Err(e) => problems.push(Problem(format!("{e}"))),
        Ok(Some(bytes)) => match pair::parse_public(&source.public, &bytes) {
            Err(e) => problems.push(Problem(format!(
                "{e}; delete both halves of the pair in {} and {reinstall}",
                keys.display()
            ))),
            Ok(k) if k.key_data() != installed.key_data() => problems.push(Problem::new(
                installed_path,
                format!(
                    "differs from {} (the key the VM accepts)",
                    source.public.display()
                ),
                reinstall,
            )),
            Ok(_) => {}
        },
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
