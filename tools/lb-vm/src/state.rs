//! One builder's instance state in its working directory: `NAME.pid`
//! (the VM's pid, the one record of it) and `NAME.state.json` (what
//! `status` shows: port, accelerator, start time, command line), and the
//! cleaning up after a VM that is gone.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use lb_common::cmd::Cmd;
use lb_common::fs::{Apply, FileSpec};
use lb_common::ui;
use serde::{Deserialize, Serialize};

use crate::process;
use crate::vm::{Layout, VmSpec};

/// What `start` records for `status`, beside the pid file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub port: u16,
    /// The accelerator, or `runner` when the runner chose.
    pub accel: String,
    /// Seconds since the epoch.
    pub started_at: u64,
    /// The command line, shell-quoted.
    pub command: String,
    /// The program started (QEMU or the runner), to recognise the pid.
    pub program: String,
    /// A runner's own baked-in forward (on all interfaces), when not `port`.
    #[serde(default)]
    pub image_port: Option<u16>,
}

impl State {
    /// The state of `spec` booted now by `cmd` under `accel`.
    #[must_use]
    pub fn new(spec: &VmSpec, accel: &str, cmd: &Cmd) -> Self {
        State {
            port: spec.port,
            accel: accel.to_owned(),
            started_at: now(),
            command: cmd.display(),
            program: cmd.program().to_string_lossy().into_owned(),
            image_port: (spec.image_port != spec.port).then_some(spec.image_port),
        }
    }
}

/// Seconds since the epoch.
#[must_use]
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A small file of lb-vm's own (pid, state), written whole.
pub fn write_file(path: &Path, bytes: &[u8]) -> lb_common::Result<()> {
    lb_common::fs::write(path, bytes, &FileSpec::mode(0o644), Apply::Write)?;
    Ok(())
}

/// Record `pid` as the builder's VM, with its state.
pub fn record(l: &Layout, pid: u32, state: &State) -> lb_common::Result<()> {
    write_file(&l.pid(), format!("{pid}\n").as_bytes())?;
    write_file(&l.state(), serde_json::to_string_pretty(state)?.as_bytes())
}

/// The pid in a pid file, if it holds one.
#[must_use]
pub fn read_pid_file(path: &Path) -> Option<u32> {
    lb_common::fs::read_bounded(path, true, 64)
        .ok()
        .flatten()
        .and_then(|b| String::from_utf8_lossy(&b).trim().parse().ok())
}

#[must_use]
pub fn read_pid(l: &Layout) -> Option<u32> {
    read_pid_file(&l.pid())
}

#[must_use]
pub fn read_state(l: &Layout) -> Option<State> {
    lb_common::fs::read_bounded(&l.state(), true, 1 << 20)
        .ok()
        .flatten()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

/// The builder's process: `Some(pid)` when the pid file names a live
/// process that is its QEMU (or runner).
#[must_use]
pub fn running_pid(l: &Layout) -> Option<u32> {
    let pid = read_pid(l)?;
    let program = read_state(l).map(|s| PathBuf::from(s.program));
    let qmp = l.qmp();
    let mut markers: Vec<&Path> = vec![&qmp];
    if let Some(p) = &program {
        markers.push(p);
    }
    process::is_our_vm(pid, &markers).then_some(pid)
}

/// Remove the runner's TMPDIR (its store image is hundreds of MB).
pub fn clean_tmp(l: &Layout) -> lb_common::Result<()> {
    lb_common::fs::remove_tree(&l.tmp())?;
    Ok(())
}

/// Remove the pid file, control socket, state and TMPDIR of a VM that is gone.
pub fn clean_up(l: &Layout) -> lb_common::Result<()> {
    for f in [l.pid(), l.state()] {
        lb_common::fs::remove(&f, Apply::Write)?;
    }
    clean_tmp(l)?;
    // A unix socket is not a file lb_common::fs reads; it only needs unlinking.
    lb_common::fs::remove_entry(&l.qmp())?;
    Ok(())
}

/// Clean after a process that died behind our back; its pid if there was one.
pub fn clean_stale(l: &Layout) -> lb_common::Result<Option<u32>> {
    match read_pid(l) {
        Some(pid) if running_pid(l).is_none() => {
            ui::note(&format!(
                "{}: pid {pid} is not running any more; removed the stale pid file",
                l.pid().display()
            ));
            clean_up(l)?;
            Ok(Some(pid))
        }
        None if l.state().exists() || l.qmp().exists() => {
            clean_up(l)?;
            Ok(None)
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::Boot;

    fn spec(dir: &Path) -> VmSpec {
        let layout = Layout {
            dir: dir.to_path_buf(),
            name: "lb".to_owned(),
        };
        VmSpec {
            boot: Boot::Runner(dir.join("run-nixos-vm")),
            port: 31023,
            memory: 3072,
            cpus: 2,
            disk: layout.disk(),
            disk_size: 20480,
            keys: dir.join("keys"),
            system: "x86_64-linux".to_owned(),
            image_port: 31022,
            qemu_opts: Vec::new(),
            cert_file: None,
            layout,
        }
    }

    #[test]
    fn the_pid_is_recorded_once_and_the_state_beside_it() {
        let tmp = tempfile::tempdir().unwrap();
        let s = spec(tmp.path());
        let l = &s.layout;
        let cmd = Cmd::new("/nix/store/r/bin/run-nixos-vm");
        let st = State::new(&s, "runner", &cmd);
        assert_eq!(st.image_port, Some(31022), "the runner's own forward");
        record(l, 4242, &st).unwrap();
        assert_eq!(read_pid(l), Some(4242));
        assert_eq!(read_state(l), Some(st));
        let json = std::fs::read_to_string(l.state()).unwrap();
        assert!(!json.contains("4242"), "the pid lives in NAME.pid: {json}");
        // A state file from an older lb-vm, with its own pid, still reads.
        std::fs::write(
            l.state(),
            r#"{"pid": 7, "port": 1, "accel": "tcg", "started_at": 0, "command": "q", "program": "q"}"#,
        )
        .unwrap();
        assert_eq!(read_state(l).map(|s| s.port), Some(1));
    }

    #[test]
    fn a_dead_vms_files_are_cleaned() {
        let tmp = tempfile::tempdir().unwrap();
        let s = spec(tmp.path());
        let l = &s.layout;
        // A pid that is not a VM (this test), so "not running any more".
        let st = State::new(&s, "tcg", &Cmd::new("qemu-system-x86_64"));
        record(l, std::process::id(), &st).unwrap();
        lb_common::fs::ensure_dir(&l.tmp()).unwrap();
        std::fs::write(l.tmp().join("store.img"), "x").unwrap();
        assert_eq!(running_pid(l), None);
        assert_eq!(clean_stale(l).unwrap(), Some(std::process::id()));
        for f in [l.pid(), l.state(), l.tmp()] {
            assert!(!f.exists(), "{}", f.display());
        }
        assert_eq!(clean_stale(l).unwrap(), None);
    }
}
