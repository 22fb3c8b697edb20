//! check: the installed pair as the Nix daemon will use it, and (given
//! KEYS_DIR) that it is the key the VM accepts.

use std::io::ErrorKind;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use lb_common::exit::Status;
use lb_common::fs;
use lb_common::report::CheckReport;
use lb_common::usage;
use nix::unistd::Gid;

use crate::install::{quote, Ctx};
use crate::pair::{self, PairPaths};
use crate::CheckArgs;

/// One thing `check` found wrong: the file and the fix.
struct Problem(String);

impl Problem {
    fn new(path: &Path, what: impl std::fmt::Display, fix: impl std::fmt::Display) -> Self {
        Problem(format!("{}: {what}; {fix}", path.display()))
    }
}

pub fn check(ctx: &Ctx, a: &CheckArgs) -> lb_common::Result<Status> {
    let with = a
        .keys
        .as_deref()
        .map(|k| format!(", matches {}", k.display()))
        .unwrap_or_default();
    let healthy = format!(
        "{}: installed, mode 0600, group {}{with}",
        ctx.installed().private.display(),
        a.group.group
    );
    CheckReport::new(&ctx.builder.name, problems(ctx, a)?, healthy).print(a.json)
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
    let keys = a.keys.as_deref().unwrap_or(Path::new("./keys"));
    let install = ctx.suggest(&[Path::new("install"), keys]);
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
                format!("run `sudo {}`", ctx.suggest(&["check"])),
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
