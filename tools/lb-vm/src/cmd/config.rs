//! `lb-vm config`: the effective settings and the exact command that boots
//! the VM, as text or JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use lb_common::exit::Status;
use lb_common::ui;
use serde::Serialize;

use crate::boot::address;
use crate::cli::{self, ConfigArgs};
use crate::report::{self, Report};
use crate::vm::Boot;
use crate::{accel, Ctx};

/// The effective settings. Printed with its keys sorted, as text and JSON.
#[derive(Debug, Serialize)]
struct ConfigReport {
    name: String,
    workdir: PathBuf,
    pid_file: PathBuf,
    qmp_socket: PathBuf,
    console_log: PathBuf,
    qemu_log: PathBuf,
    state_file: PathBuf,
    disk: PathBuf,
    disk_size_mib: u64,
    memory_mib: u32,
    cpus: u32,
    port: u16,
    address: String,
    keys: PathBuf,
    system: String,
    accel: String,
    accel_settled: bool,
    kernel: Option<PathBuf>,
    initrd: Option<PathBuf>,
    append: Option<String>,
    runner: Option<PathBuf>,
    /// The runner's environment (empty for a kernel boot).
    env: BTreeMap<String, String>,
    program: String,
    args: Vec<String>,
    command: String,
}

impl ConfigReport {
    fn value(&self) -> serde_json::Value {
        // Through a JSON map, whose keys are sorted: `config`'s order.
        serde_json::to_value(self).unwrap_or_default()
    }
}

impl Report for ConfigReport {
    fn text(&self) -> Vec<String> {
        let serde_json::Value::Object(map) = self.value() else {
            return Vec::new();
        };
        map.iter()
            .filter(|(k, _)| *k != "args" && *k != "env")
            .map(|(k, val)| {
                let text = match val {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "-".to_owned(),
                    other => other.to_string(),
                };
                format!("{k}: {text}")
            })
            .collect()
    }

    fn json(&self) -> serde_json::Result<String> {
        serde_json::to_string_pretty(&self.value())
    }
}

pub(crate) fn config(ctx: &Ctx, a: &ConfigArgs) -> lb_common::Result<Status> {
    let spec = cli::spec(ctx, &a.vm)?;
    let profile = cli::profile(ctx);
    let l = &ctx.layout;
    let (accel, settled) = accel::known(l, &a.vm, &profile);
    let accel = if matches!(spec.boot, Boot::Runner(_)) {
        "runner".to_owned()
    } else {
        accel
    };
    let cmd = spec.command(&profile, &accel);
    let (kernel, initrd, append, runner) = match &spec.boot {
        Boot::Kernel {
            kernel,
            initrd,
            append,
        } => (
            Some(kernel.clone()),
            Some(initrd.clone()),
            Some(append.clone()),
            None,
        ),
        Boot::Runner(r) => (None, None, None, Some(r.clone())),
    };
    let env = if runner.is_some() {
        spec.runner_env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_string_lossy().into_owned()))
            .collect()
    } else {
        BTreeMap::new()
    };
    let r = ConfigReport {
        name: l.name.clone(),
        workdir: l.dir.clone(),
        pid_file: l.pid(),
        qmp_socket: l.qmp(),
        console_log: l.console(),
        qemu_log: l.qemu_log(),
        state_file: l.state(),
        disk: spec.disk.clone(),
        disk_size_mib: spec.disk_size,
        memory_mib: spec.memory,
        cpus: spec.cpus,
        port: spec.port,
        address: address(spec.port),
        keys: spec.keys.clone(),
        system: spec.system.clone(),
        accel,
        accel_settled: settled,
        kernel,
        initrd,
        append,
        runner,
        env,
        program: cmd.program().to_string_lossy().into_owned(),
        args: cmd
            .get_args()
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect(),
        command: cmd.display(),
    };
    report::print(&r, a.json)?;
    if !settled {
        ui::note("accel: kvm is not probed yet; `start` probes it and falls back to tcg");
    }
    Ok(Status::Ok)
}
