//! `lb-vm service`: print or install (and load) the launchd daemon or
//! systemd unit that runs `lb-vm start --foreground` with this VM's flags
//! ([`VmSpec::flags`]), or unload and remove it.

use std::ffi::OsString;
use std::io::Write as _;
use std::path::Path;

use lb_common::cmd::Cmd;
use lb_common::exit::Status;
use lb_common::fs::{Apply, FileSpec};
use lb_common::plan::{self, Applied, Files, Inspection, Needed, Step, Wanted};
use lb_common::ui;
use lb_common::Context as _;

use crate::cli::{self, ServiceArgs};
use crate::vm::{Asked, VmSpec};
use crate::{on_demand, runner, service, supervisor, Ctx};

/// The PATH a service gets: launchd's default (/usr/bin:/bin:/usr/sbin:/sbin)
/// has no Nix profile and no Homebrew, where QEMU and ssh-keygen live.
const SERVICE_PATH: &str = "/nix/var/nix/profiles/default/bin:/run/current-system/sw/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

/// `lb-vm start --foreground ...` as the service runs it.
fn service_argv(a: &ServiceArgs, spec: &VmSpec) -> lb_common::Result<Vec<OsString>> {
    if a.on_demand {
        on_demand::check_port(spec)?;
    }
    let exe = std::env::current_exe().context("find lb-vm's own path for the service")?;
    let mut argv: Vec<OsString> = vec![exe.into_os_string(), "start".into(), "--foreground".into()];
    if a.on_demand {
        argv.extend([
            "--on-demand".into(),
            "--idle".into(),
            humantime::format_duration(a.idle).to_string().into(),
        ]);
    }
    argv.extend(spec.flags(&Asked {
        memory: a.vm.memory,
        cpus: a.vm.cpus,
        disk_size: a.vm.disk_size,
        accel: a.vm.accel.clone(),
    }));
    Ok(argv)
}

pub(crate) fn service(ctx: &Ctx, a: &ServiceArgs) -> lb_common::Result<Status> {
    let l = &ctx.layout;
    let kind = if a.launchd {
        supervisor::Kind::Launchd
    } else {
        supervisor::Kind::Systemd
    };
    let svc = supervisor::Service::new(kind, &ctx.root, &l.name, a.label.as_deref())?;
    let apply = Apply::from(a.change);
    if a.uninstall {
        return uninstall_service(ctx, &svc, apply);
    }
    let spec = cli::spec(ctx, &a.vm)?;
    let argv = service_argv(a, &spec)?;
    let mut env = vec![("PATH".to_owned(), SERVICE_PATH.to_owned())];
    // sudo and launchd drop the user's NIX_SSL_CERT_FILE; the runner needs
    // it to give the guest a CA bundle.
    if let Some(c) = runner::cert_file() {
        env.push(("NIX_SSL_CERT_FILE".to_owned(), c.display().to_string()));
    }
    let s = service::ServiceSpec {
        name: l.name.clone(),
        label: svc.id.clone(),
        argv: argv
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect(),
        workdir: l.dir.display().to_string(),
        tmpdir: l.tmp().display().to_string(),
        env,
        on_demand: a.on_demand,
    };
    let text = if a.launchd { s.plist()? } else { s.unit()? };
    if !a.install {
        let mut o = std::io::stdout().lock();
        o.write_all(text.as_bytes())?;
        o.flush()?;
        return Ok(Status::Ok);
    }
    svc.refuse_foreign()?;
    let file = ServiceFile {
        dir: &l.dir,
        files: Files {
            silent: true,
            ..Files::new(vec![(
                svc.file.clone(),
                Wanted::Contents(text.into_bytes(), FileSpec::mode(0o644)),
            )])
        },
    };
    let written = plan::apply(apply, &file)?;
    if apply == Apply::Check {
        // --check judges the file only (loading it is not judged).
        return Ok(written.status());
    }
    let loaded = ctx.root.is_real() && svc.loaded();
    if written == Applied::Unchanged && loaded {
        ui::note(&format!(
            "{} is already up to date and loaded",
            svc.file.display()
        ));
        return Ok(Status::Ok);
    }
    let cmds = svc.load(loaded);
    run_service_commands(ctx, apply, &cmds, &format!("wrote {}", svc.file.display()))?;
    Ok(Status::Ok)
}

/// The service file, silent (the load commands say what was done), and
/// for real the VM's directory first: launchd does not create
/// WorkingDirectory, and the VM's files go there.
struct ServiceFile<'a> {
    dir: &'a Path,
    files: Files,
}

impl Step for ServiceFile<'_> {
    fn preflight(&self) -> lb_common::Result<()> {
        lb_common::fs::ensure_dir(self.dir)?;
        Ok(())
    }

    fn inspect(&self) -> lb_common::Result<Inspection> {
        self.files.inspect()
    }

    fn execute(&self) -> lb_common::Result<()> {
        self.files.execute()
    }

    fn tidy(&self) -> lb_common::Result<()> {
        self.files.tidy()
    }
}

/// launchctl/systemctl commands as a step: printed under `-n`; for a
/// scratch `--root` only named (the machine's service manager knows
/// nothing of files there); `--check` says nothing of them.
struct ServiceCommands<'a> {
    ctx: &'a Ctx,
    cmds: &'a [Vec<String>],
    done: &'a str,
}

impl ServiceCommands<'_> {
    fn shown(&self) -> Vec<String> {
        self.cmds
            .iter()
            .map(|c| Cmd::from_argv(c).display())
            .collect()
    }
}

impl Step for ServiceCommands<'_> {
    fn inspect(&self) -> lb_common::Result<Inspection> {
        Ok(if self.cmds.is_empty() {
            Inspection::Done
        } else {
            Inspection::Needed(Needed {
                preview: self.shown(),
                ..Needed::default()
            })
        })
    }

    fn execute(&self) -> lb_common::Result<()> {
        let (done, shown) = (self.done, self.shown().join(" && "));
        if self.ctx.root.is_real() {
            supervisor::run_all(self.cmds, false)?;
            ui::note(&format!("{done}; ran: {shown}"));
        } else {
            ui::note(&format!(
                "{done}; --root is a scratch root, so not running: {shown}"
            ));
        }
        Ok(())
    }
}

/// Run launchctl/systemctl commands `cmds` ([`ServiceCommands`]); with
/// none, say `done`.
pub(crate) fn run_service_commands(
    ctx: &Ctx,
    apply: Apply,
    cmds: &[Vec<String>],
    done: &str,
) -> lb_common::Result<()> {
    if plan::apply(apply, &ServiceCommands { ctx, cmds, done })? == Applied::Unchanged {
        ui::note(done);
    }
    Ok(())
}

fn uninstall_service(
    ctx: &Ctx,
    svc: &supervisor::Service,
    apply: Apply,
) -> lb_common::Result<Status> {
    let l = &ctx.layout;
    if std::fs::symlink_metadata(&svc.file).is_err() {
        ui::note(&format!("{} is not installed", svc.file.display()));
        return Ok(Status::Ok);
    }
    svc.refuse_foreign()?;
    if !svc.installed_for(&l.dir) {
        lb_common::bail!(
            "{}: not lb-vm's service for {} in {}; remove it by hand if it is yours",
            svc.file.display(),
            l.name,
            l.dir.display()
        );
    }
    if apply == Apply::Check {
        return Ok(Status::Failed);
    }
    let loaded = ctx.root.is_real() && svc.loaded();
    if loaded || apply == Apply::DryRun || !ctx.root.is_real() {
        run_service_commands(ctx, apply, &svc.unload(), "unloading")?;
    }
    plan::apply(
        apply,
        &Files {
            silent: true,
            ..Files::new(vec![(svc.file.clone(), Wanted::Absent)])
        },
    )?;
    run_service_commands(
        ctx,
        apply,
        &svc.after_removal(),
        &format!("removed {}", svc.file.display()),
    )?;
    Ok(Status::Ok)
}
