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
use lb_common::plan::{self, Applied, Inspection, Needed, Step};
use lb_common::{privilege, ui};
use nix::unistd::{Gid, Uid};

use crate::generate::GeneratePair;
use crate::pair::{self, PairError, PairPaths};
use crate::{InstallArgs, PubkeyArgs};

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

    /// This tool's command line for the subcommand and arguments `rest`:
    /// `PROGRAM [--root R] [--key K] [-q] [-v...] REST`, the global flags
    /// that matter and defaults left out. Environment variables do not
    /// survive sudo, so settings are passed as flags. The one serialiser
    /// behind [`Ctx::suggest`] and [`Ctx::rerun_argv`].
    fn command_line(
        &self,
        program: OsString,
        key: &Path,
        rerun: bool,
        rest: &[OsString],
    ) -> Vec<OsString> {
        let mut argv = vec![program];
        if let Some(prefix) = self.root.prefix() {
            argv.push("--root".into());
            argv.push(prefix.as_os_str().to_owned());
        }
        if self.key_arg != Path::new(lb_common::builder::DEFAULT_KEY) {
            argv.push("--key".into());
            argv.push(key.as_os_str().to_owned());
        }
        if rerun {
            if self.global.quiet {
                argv.push("-q".into());
            }
            for _ in 0..self.global.verbose {
                argv.push("-v".into());
            }
        }
        argv.extend(rest.iter().cloned());
        argv
    }

    /// `lb-keys [--root R] [--key K] REST` as a shell line, for messages
    /// that say what to run (the key as the user gave it).
    pub(crate) fn suggest<S: AsRef<std::ffi::OsStr>>(&self, rest: &[S]) -> String {
        let rest: Vec<OsString> = rest.iter().map(|r| r.as_ref().to_owned()).collect();
        let argv = self.command_line("lb-keys".into(), &self.key_arg, false, &rest);
        Cmd::from_argv(&argv).display()
    }

    /// The arguments that re-run a step of this tool as another process
    /// (under sudo): this very binary, the key's path made absolute, `-q`
    /// and `-v` kept.
    ///
    /// # Errors
    /// This binary's path or the working directory cannot be found.
    pub(crate) fn rerun_argv(&self, rest: &[OsString]) -> lb_common::Result<Vec<OsString>> {
        let exe = std::env::current_exe()
            .map_err(|e| lb_common::failed!("finding lb-keys's own path to re-run it: {e}"))?;
        let key = if self.key_arg == Path::new(lb_common::builder::DEFAULT_KEY) {
            self.key_arg.clone()
        } else {
            std::path::absolute(&self.key_arg)?
        };
        Ok(self.command_line(exe.into_os_string(), &key, true, rest))
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
    let mode = Apply::from(a.change);
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

    // Step 1, as the manual's script: if either half of the pair in
    // KEYS_DIR is missing, both are replaced. Under -n and --check the
    // command ends here: a fresh pair differs from whatever is installed.
    let generated = plan::apply(
        mode,
        &GeneratePair {
            ctx,
            dir: &a.keys.dir,
            paths: &source,
            refuse: a.no_generate,
            then_install: Some((&target, &a.group.group)),
        },
    )?;
    if generated.read_only() {
        return Ok(generated.status());
    }
    let fix = format!(
        "delete both {} and {} to have a fresh pair generated",
        source.private.display(),
        source.public.display()
    );
    let pair = pair::load(&source).map_err(|e| input_error(e, &fix))?;

    // Step 2: install, unless what is there already is right.
    let step = InstallPair {
        ctx,
        a,
        source: &source,
        target: &target,
        pair: &pair,
        private_spec: spec(0o600, gid),
        public_spec: spec(0o644, gid),
    };
    let dir = fs::parent(&target.private);
    let can_do_it_myself = privilege::can_write_in(&dir) && may_set_group(gid);
    let installed = if !privilege::is_root() && !can_do_it_myself {
        // Not root, and the directory is not writable or the group not
        // ours to give: re-run only this step under sudo.
        plan::apply(mode, &Escalated(step))?
    } else {
        plan::apply(mode, &step)?
    };
    if installed == Applied::Unchanged {
        ui::note(&format!(
            "{} is already installed; nothing changed",
            target.private.display()
        ));
        if mode == Apply::Write {
            ui::out(&target.private.display().to_string())?;
        }
    }
    Ok(installed.status())
}

/// Install's step 2: both files of the pair as one change, so a refusal
/// or a failed write at either leaves the installed pair as it was, never
/// a new private key beside an old public one.
struct InstallPair<'a> {
    ctx: &'a Ctx,
    a: &'a InstallArgs,
    source: &'a PairPaths,
    target: &'a PairPaths,
    pair: &'a pair::Pair,
    private_spec: FileSpec,
    public_spec: FileSpec,
}

impl InstallPair<'_> {
    fn write(&self, how: Apply) -> lb_common::Result<[Outcome; 2]> {
        let outcomes = fs::write_set(
            &[
                fs::Planned {
                    path: &self.target.private,
                    contents: &self.pair.private_bytes,
                    spec: self.private_spec,
                },
                fs::Planned {
                    path: &self.target.public,
                    contents: &self.pair.public_bytes,
                    spec: self.public_spec,
                },
            ],
            how,
        )?;
        Ok([outcomes[0], outcomes[1]])
    }

    fn needed(&self, outcomes: [Outcome; 2]) -> Inspection {
        if !outcomes.iter().any(|o| o.changed()) {
            return Inspection::Done;
        }
        // The manual's own commands under -n; never the key material.
        Inspection::Needed(Needed::commands(
            &install_commands(self.source, self.target, &self.a.group.group, outcomes),
            format!(
                "would install the pair to {}",
                fs::parent(&self.target.private).display()
            ),
        ))
    }
}

impl Step for InstallPair<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        Ok(self.needed(self.write(Apply::Check)?))
    }

    fn execute(&self) -> lb_common::Result<()> {
        let outcomes = self.write(Apply::Write)?;
        for (path, outcome, mode) in [
            (&self.target.private, outcomes[0], "600"),
            (&self.target.public, outcomes[1], "644"),
        ] {
            if outcome.changed() {
                ui::note(&format!(
                    "installed {} (mode {mode}, group {})",
                    path.display(),
                    self.a.group.group
                ));
            }
        }
        ui::out(&self.target.private.display().to_string())?;
        Ok(())
    }

    /// The pair is as wanted: the write still sweeps what a killed
    /// install left beside it.
    fn tidy(&self) -> lb_common::Result<()> {
        self.write(Apply::Write)?;
        Ok(())
    }
}

/// [`InstallPair`] for a process that cannot do it: not root, and the
/// install directory not ours. Only the install step (never generation:
/// the pair is the user's) is re-run under sudo.
struct Escalated<'a>(InstallPair<'a>);

impl Step for Escalated<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        let s = &self.0;
        // Without root we cannot read the installed private key; judge by
        // what we can see: the public key's bytes and the private key's
        // mode and group. Root compares the contents too when it runs.
        let up_to_date = fs::read_optional(&s.target.public)?.as_deref()
            == Some(s.pair.public_bytes.as_slice())
            && private_looks_right(&s.target.private, &s.private_spec);
        Ok(if up_to_date {
            Inspection::Done
        } else {
            s.needed([Outcome::Updated, Outcome::Updated])
        })
    }

    fn execute(&self) -> lb_common::Result<()> {
        let InstallPair { ctx, a, target, .. } = self.0;
        let mut rest: Vec<OsString> = vec!["install".into(), "--no-generate".into()];
        if a.group.group != crate::DEFAULT_GROUP {
            rest.push("--group".into());
            rest.push(a.group.group.clone().into());
        }
        // The re-run must not try sudo again.
        rest.push("--no-sudo".into());
        rest.push(std::path::absolute(&a.keys.dir)?.into_os_string());
        let argv = ctx.rerun_argv(&rest)?;
        privilege::escalate(
            &format!(
                "installing the key to {}",
                fs::parent(&target.private).display()
            ),
            &argv,
            a.sudo.no_sudo,
        )
    }
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

/// Installation as the manual does it: `install -g GROUP -m MODE SRC DST`
/// for each file that `outcomes` (private, public) says changes.
pub(crate) fn install_commands(
    source: &PairPaths,
    target: &PairPaths,
    group: &str,
    outcomes: [Outcome; 2],
) -> Vec<Cmd> {
    [
        (outcomes[0], "600", &source.private, &target.private),
        (outcomes[1], "644", &source.public, &target.public),
    ]
    .into_iter()
    .filter(|(outcome, ..)| outcome.changed())
    .map(|(_, mode, src, dst)| {
        Cmd::new("install")
            .args(["-g", group, "-m", mode])
            .arg(src)
            .arg(dst)
    })
    .collect()
}

pub fn pubkey(ctx: &Ctx, a: &PubkeyArgs) -> lb_common::Result<Status> {
    let path = &ctx.installed().public;
    let bytes = fs::read_optional(path)?.ok_or_else(|| {
        lb_common::failed!(
            "{}: not installed; run `sudo {}` first",
            path.display(),
            ctx.suggest(&["install", "./keys"])
        )
    })?;
    let key = pair::parse_public(path, &bytes).map_err(|e| {
        input_error(
            e,
            &format!(
                "reinstall it with `sudo {}`",
                ctx.suggest(&["install", "./keys"])
            ),
        )
    })?;
    let line = key
        .to_openssh()
        .map_err(|e| lb_common::failed!("{}: {e}", path.display()))?;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{line}\n"));
    if a.json {
        lb_common::report::print_fields(&[
            ("path", path.display().to_string()),
            ("key", line.clone()),
            ("base64", b64),
            (
                "fingerprint",
                key.fingerprint(ssh_key::HashAlg::Sha256).to_string(),
            ),
        ])?;
    } else if a.base64 {
        ui::out(&b64)?;
    } else {
        ui::out(&line)?;
    }
    Ok(Status::Ok)
}
