//! Commands that outlive the call: a child started in the background
//! ([`Cmd::spawn`]) and the process replaced by a command ([`Cmd::replace_process`]).
//! [`Cmd::run`] covers everything that runs to completion; these two are
//! for a VM and its supervisors (lb-vm), which must keep running.

use std::fs::File;
use std::process::ExitStatus;

use super::{Cmd, Error};

/// Where a spawned command's stdout and stderr go (its stdin is always
/// `/dev/null`: nothing may wait on our terminal).
#[derive(Debug)]
pub enum Sink {
    /// Both to `/dev/null`.
    Null,
    /// Both to this file (a log), so a child never holds the caller's
    /// pipes open: `lb-vm start 2>&1 | ...` must end when lb-vm does.
    File(File),
}

/// A command running in the background, started by [`Cmd::spawn`].
#[derive(Debug)]
pub struct Child {
    handle: duct::Handle,
    pid: u32,
}

impl Child {
    /// The child's pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Its exit status if it has exited (reaping it), `None` while it runs.
    /// A non-zero exit is a status here, not an error.
    ///
    /// # Errors
    /// When waiting on the child fails.
    pub fn try_wait(&self) -> std::io::Result<Option<ExitStatus>> {
        Ok(self.handle.try_wait()?.map(|o| o.status))
    }

    /// Wait for it to exit.
    ///
    /// # Errors
    /// When waiting on the child fails.
    pub fn wait(&self) -> std::io::Result<ExitStatus> {
        Ok(self.handle.wait()?.status)
    }

    /// SIGKILL it and reap it.
    ///
    /// # Errors
    /// When the signal or the wait fails.
    pub fn kill(&self) -> std::io::Result<()> {
        // duct 1 only signals (0.13 also waited): reap it here.
        self.handle.kill()?;
        self.handle.wait().map(|_| ())
    }
}

impl Cmd {
    /// Start the command without waiting for it, logged at `-v` like
    /// [`Cmd::run`]; stdin is `/dev/null`, stdout and stderr go to `out`.
    /// With `own_group` it leads a new process group: a Ctrl-C meant for
    /// the caller does not reach it, and the group can be signalled as one
    /// (a runner script and the QEMU it starts).
    ///
    /// # Errors
    /// [`Error::NotFound`] when the program is not installed, [`Error::Io`]
    /// when it cannot be started.
    pub fn spawn(&self, out: Sink, own_group: bool) -> Result<Child, Error> {
        crate::ui::verbose(&format!("running: {}", self.display()));
        let mut e = self.expression().stdin_null().unchecked();
        e = match out {
            Sink::Null => e.stdout_null().stderr_null(),
            Sink::File(f) => {
                let err = f.try_clone().map_err(|source| Error::Io {
                    command: self.display(),
                    source,
                })?;
                e.stdout_file(f).stderr_file(err)
            }
        };
        if own_group {
            e = e.before_spawn(|c| {
                std::os::unix::process::CommandExt::process_group(c, 0);
                Ok(())
            });
        }
        let handle = e.start().map_err(|e| self.spawn_error(e))?;
        let Some(&pid) = handle.pids().first() else {
            let _ = handle.kill();
            return Err(Error::Io {
                command: self.display(),
                source: std::io::Error::other("started but has no pid"),
            });
        };
        Ok(Child { handle, pid })
    }

    /// Become the command: replace this process (pid, signals and all) by
    /// it, with its environment and directory. A service manager then
    /// supervises the program itself. Returns only when the exec failed,
    /// with why.
    #[must_use]
    pub fn replace_process(&self) -> Error {
        use std::os::unix::process::CommandExt as _;
        crate::ui::verbose(&format!("exec: {}", self.display()));
        let mut c = std::process::Command::new(&self.program);
        c.args(&self.args);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        if let Some(d) = &self.dir {
            c.current_dir(d);
        }
        let err = c.exec();
        self.spawn_error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn a_spawned_child_writes_its_log_and_is_reaped() {
        let tmp = tempfile::tempdir().unwrap();
        let log = tmp.path().join("out.log");
        let child = Cmd::new("sh")
            .args(["-c", "echo out; echo err >&2; exit 3"])
            .spawn(Sink::File(File::create(&log).unwrap()), false)
            .unwrap();
        assert!(child.pid() > 0);
        let st = child.wait().unwrap();
        assert_eq!(st.code(), Some(3), "a non-zero exit is a status");
        assert_eq!(child.try_wait().unwrap().map(|s| s.code()), Some(Some(3)));
        assert_eq!(std::fs::read_to_string(&log).unwrap(), "out\nerr\n");
    }

    #[test]
    fn try_wait_is_none_while_it_runs_and_kill_ends_it() {
        let child = Cmd::new("sleep").arg("30").spawn(Sink::Null, true).unwrap();
        assert!(child.try_wait().unwrap().is_none());
        // Its own process group: it leads it.
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.pid()).unwrap());
        assert_eq!(nix::unistd::getpgid(Some(pid)).unwrap(), pid);
        let t = Instant::now();
        child.kill().unwrap();
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(child.try_wait().unwrap().is_some());
    }

    #[test]
    fn spawning_a_missing_program_names_the_hint() {
        let e = Cmd::new("lb-no-such-program")
            .hint("apt-get install nothing")
            .spawn(Sink::Null, false)
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "lb-no-such-program: not found; apt-get install nothing"
        );
    }

    #[test]
    fn replacing_by_a_missing_program_returns_why() {
        // A failed exec returns; a working one would replace the test.
        let e = Cmd::new("lb-no-such-program").replace_process();
        assert!(matches!(e, Error::NotFound { .. }), "{e}");
    }
}
