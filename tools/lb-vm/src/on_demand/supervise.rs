//! The VM's life under the listener, in one thread: boot when a
//! connection asks, power off when idle, notice a VM that exits by
//! itself, power off and return on quit.

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lb_common::cmd::Child;
use lb_common::platform::QemuProfile;
use nix::sys::signal::Signal;

use super::listen::private_port;
use super::shared::Shared;
use super::{event, Phase, POWER_OFF_TIMEOUT, TICK};
use crate::boot::{self, address, signal_vm};
use crate::ready::{self, Readiness};
use crate::state::{self, State};
use crate::vm::{Boot, Layout, VmSpec};
use crate::{qmp, Ctx};

/// What the supervisor needs to boot the VM.
pub(super) struct Boots<'a> {
    pub(super) ctx: &'a Ctx,
    pub(super) spec: &'a VmSpec,
    pub(super) profile: &'a QemuProfile,
    pub(super) accel: String,
    pub(super) timeout: Duration,
    pub(super) ephemeral: bool,
}

/// What the supervisor does next.
enum Next {
    Boot,
    PowerOff,
    Died(String),
    Quit,
}

/// Wait until the supervisor has something to do, and say what. Decided
/// under the lock, so a connection sees every phase change at once.
fn next_step(shared: &Shared, vm: Option<&RunningVm>) -> Next {
    let mut g = shared.lock();
    loop {
        if g.quit {
            break Next::Quit;
        }
        if let Some(why) = vm.and_then(RunningVm::exited) {
            break Next::Died(why);
        }
        match g.phase {
            Phase::Booting if vm.is_none() => break Next::Boot,
            Phase::Up if g.open == 0 && g.idle_since.elapsed() >= shared.idle => {
                // Decided under the lock: a connection arriving
                // from now on waits for the next boot.
                g.phase = Phase::Stopping;
                break Next::PowerOff;
            }
            _ => {}
        }
        // With the VM off nothing happens until a connection or a
        // stop request notifies: the idle listener sleeps.
        g = if vm.is_some() {
            shared
                .changed
                .wait_timeout(g, TICK)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0
        } else {
            shared
                .changed
                .wait(g)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
    }
}

/// The VM's life, in one thread: boot when asked, power off when idle,
/// notice a VM that exits by itself, power off and return on quit.
pub(super) fn supervise(b: &Boots, shared: &Arc<Shared>) {
    let l = &b.ctx.layout;
    let mut vm: Option<RunningVm> = None;
    loop {
        let next = next_step(shared, vm.as_ref());
        match next {
            Next::Quit => {
                if let Some(v) = vm.take() {
                    let how = v.power_off(l);
                    event(&format!("the VM is down ({how})"));
                }
                shared.update(|g| {
                    g.phase = Phase::Off;
                    g.vm_pid = None;
                    g.guest_port = None;
                    g.session = None;
                });
                return;
            }
            Next::Died(why) => {
                if let Some(v) = vm.take() {
                    v.reap(l);
                }
                event(&format!("the VM went down by itself: {why}"));
                shared.update(|g| {
                    g.phase = Phase::Off;
                    g.vm_pid = None;
                    g.guest_port = None;
                    g.session = None;
                    g.last_error = Some(why);
                });
            }
            Next::PowerOff => {
                event(&format!(
                    "no connection for {}: powering the VM off",
                    humantime::format_duration(shared.idle)
                ));
                if let Some(v) = vm.take() {
                    let how = v.power_off(l);
                    event(&format!("the VM is down ({how}); listening on"));
                }
                shared.update(|g| {
                    g.vm_pid = None;
                    g.guest_port = None;
                    g.session = None;
                    // Connections that came during the shutdown boot it again.
                    g.phase = if g.open > 0 {
                        Phase::Booting
                    } else {
                        Phase::Off
                    };
                });
            }
            Next::Boot => match boot(b, shared) {
                Ok((v, (session, greeting))) => {
                    shared.update(|g| {
                        g.phase = Phase::Up;
                        g.vm_pid = Some(v.pid);
                        g.guest_port = Some(v.guest_port);
                        g.boots += 1;
                        g.idle_since = Instant::now();
                        g.session = Some((session, greeting, Instant::now()));
                    });
                    vm = Some(v);
                }
                Err(why) => {
                    event(&format!(
                        "boot failed: {why}; closed the waiting connections, the next one tries again"
                    ));
                    shared.update(|g| {
                        g.phase = Phase::Off;
                        g.boot_failures += 1;
                        g.last_error = Some(why);
                    });
                }
            },
        }
    }
}

/// A VM this listener started.
struct RunningVm {
    handle: Child,
    pid: u32,
    guest_port: u16,
}

impl RunningVm {
    fn exited(&self) -> Option<String> {
        match self.handle.try_wait() {
            Ok(Some(status)) => Some(format!("QEMU exited ({status})")),
            Ok(None) => None,
            Err(e) => Some(format!("QEMU failed: {e}")),
        }
    }

    /// Wait up to `timeout` for the VM to exit.
    fn wait_exit(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.exited().is_some() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Power the VM off cleanly (the ACPI power button), then SIGTERM,
    /// then SIGKILL; remove its files. Says which it took.
    fn power_off(self, l: &Layout) -> &'static str {
        let how = match qmp::execute(&l.qmp(), "system_powerdown") {
            Ok(_) if self.wait_exit(POWER_OFF_TIMEOUT) => "powered down",
            Ok(_) => self.terminate(),
            Err(e) => {
                event(&format!("{e}; sending SIGTERM instead"));
                self.terminate()
            }
        };
        self.reap(l);
        how
    }

    fn terminate(&self) -> &'static str {
        signal_vm(self.pid, Signal::SIGTERM);
        if self.wait_exit(POWER_OFF_TIMEOUT) {
            return "terminated";
        }
        signal_vm(self.pid, Signal::SIGKILL);
        let _ = self.wait_exit(Duration::from_secs(5));
        "killed"
    }

    fn reap(self, l: &Layout) {
        let _ = self.handle.wait();
        if let Err(e) = state::clean_up(l) {
            event(&format!("{e:#}"));
        }
    }
}

/// Boot the VM with its forward on a private port and wait for its sshd;
/// returns the VM and the session sshd greeted on. On failure nothing is
/// left running and the error says why.
fn boot(b: &Boots, shared: &Shared) -> Result<(RunningVm, (TcpStream, Vec<u8>)), String> {
    let l = &b.ctx.layout;
    let mut spec = b.spec.clone();
    spec.port = private_port(spec.image_port);
    let prepared = (|| {
        if b.ephemeral {
            lb_common::fs::remove_entry(&spec.disk)?;
        }
        if matches!(spec.boot, Boot::Kernel { .. }) {
            boot::ensure_disk(&spec)?;
        }
        for f in [l.console(), l.qemu_log(), l.qmp()] {
            let _ = lb_common::fs::remove_entry(&f);
        }
        let cmd = spec.command(b.profile, &b.accel);
        let state = State::new(&spec, &b.accel, &cmd);
        boot::spawn_vm(l, &cmd, &state).map(|child| (child, state))
    })();
    let (handle, state) = prepared.map_err(|e| format!("{e:#}"))?;
    let vm = RunningVm {
        pid: handle.pid(),
        handle,
        guest_port: spec.port,
    };
    let waiting = shared.lock().waiting;
    event(&format!(
        "booting the VM (pid {}, accel {}, guest port {}) for {waiting} waiting connection(s)",
        vm.pid, state.accel, vm.guest_port
    ));
    let started = Instant::now();
    let outcome = ready::await_banner(
        vm.guest_port,
        b.timeout,
        || {
            if shared.quitting() {
                Some("lb-vm was asked to stop".to_owned())
            } else {
                vm.exited()
            }
        },
        |_| {},
    );
    match outcome {
        Readiness::Ready(greeting) => {
            event(&format!(
                "sshd answered {:.2} s after the boot began (its greeting took {:.2} s); relaying",
                started.elapsed().as_secs_f64(),
                greeting.took.as_secs_f64()
            ));
            Ok((vm, greeting.session))
        }
        Readiness::Died(why) => {
            let quit = shared.quitting();
            if quit {
                let how = vm.power_off(l);
                Err(format!("{why} during the boot; the VM is down ({how})"))
            } else {
                vm.reap(l);
                Err(boot::boot_failure(l, &why).to_string())
            }
        }
        Readiness::TimedOut => {
            vm.terminate();
            vm.reap(l);
            Err(boot::boot_failure(
                l,
                &format!(
                    "no SSH banner on the guest's {} after {} s",
                    address(spec.port),
                    b.timeout.as_secs()
                ),
            )
            .to_string())
        }
    }
}
