//! One tool's command line in a scratch world: the shape of every CLI test.
//!
//! A [`Scenario`] holds a fresh scratch root (passed as `--root`) and a
//! fresh work directory (the child's current directory), and builds the
//! tool's command with every `LB_*` and `NIX_*` variable of the test
//! process removed, so the developer's or CI's own configuration never
//! reaches the tool under test. [`Scenario::run`] returns an [`Outcome`]
//! whose assertions chain and, on failure, print the command line, its
//! status, stdout and stderr:
//!
//! ```no_run
//! let s = lb_testkit::Scenario::new("lb-keys");
//! s.run(["check"])
//!     .code(1)
//!     .stderr_has("builder_ed25519: missing");
//! s.run(["install", "./keys"]).success().stdout_has("builder_ed25519");
//! ```
//!
//! [`Scenario::command`] and [`Scenario::cmd`] give the same command to
//! spawn by hand (pipes, concurrent runs) or to use with assert_cmd.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::io::Read as _;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// No arguments, for [`Scenario::run`]: `s.run(NO_ARGS)` is `tool --root ROOT`.
pub const NO_ARGS: [&str; 0] = [];

/// The prefixes of the variables a tool under test must not inherit.
pub const CLEARED_PREFIXES: &[&str] = &["LB_", "NIX_"];

/// Variables cleared by name: the caller's sudo identity, which the tools
/// take as the default user (lb-keys join-group, the trusted user).
pub const CLEARED_NAMES: &[&str] = &["SUDO_USER"];

/// `program` with every `LB_*` and `NIX_*` variable of this process (and
/// [`CLEARED_NAMES`]) removed from its environment; nothing else set (no
/// `--root`, no current directory). For runs that need no scratch root,
/// such as `--help`, and for programs that run a tool (strace, runuser).
#[must_use]
pub fn clean_command(program: impl AsRef<OsStr>) -> Command {
    let mut c = Command::new(program);
    clear_env(&mut c);
    c
}

/// Remove from `c`'s environment what [`clean_command`] leaves out, for
/// a command made elsewhere (a Nix generation's wrapper, cargo's binary).
pub fn clear_env(c: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if is_cleared(&name) {
            c.env_remove(name);
        }
    }
    c
}

/// The workspace binary `tool` (built by cargo for this test) as
/// [`clean_command`] returns it.
#[must_use]
pub fn tool_command(tool: &str) -> Command {
    clean_command(assert_cmd::cargo::cargo_bin(tool))
}

fn is_cleared(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    CLEARED_PREFIXES
        .iter()
        .any(|p| name.starts_with(p.as_bytes()))
        || CLEARED_NAMES.iter().any(|n| name == n.as_bytes())
}

/// A scratch root and a work directory for one tool, removed on drop.
#[derive(Debug)]
pub struct Scenario {
    tool: String,
    program: PathBuf,
    root: PathBuf,
    work: PathBuf,
    _root_dir: tempfile::TempDir,
    _work_dir: tempfile::TempDir,
}

impl Scenario {
    /// The workspace binary `tool`, with a fresh root (`lb-root.*`) and a
    /// fresh work directory.
    #[must_use]
    pub fn new(tool: &str) -> Self {
        Self::with_root_prefix(tool, "lb-root.")
    }

    /// As [`Scenario::new`], the root's name starting with `prefix` (say,
    /// one with spaces, to see paths quoted).
    #[must_use]
    pub fn with_root_prefix(tool: &str, prefix: &str) -> Self {
        Self::build(tool, assert_cmd::cargo::cargo_bin(tool), prefix)
    }

    /// Any `program` under the name `tool` (the prefix of its errors), with
    /// a fresh root and work directory.
    #[must_use]
    pub fn with_program(tool: &str, program: impl Into<PathBuf>) -> Self {
        Self::build(tool, program.into(), "lb-root.")
    }

    fn build(tool: &str, program: PathBuf, prefix: &str) -> Self {
        let root_dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir()
            .expect("create scratch root");
        let work_dir = tempfile::Builder::new()
            .prefix(&format!("{tool}-work."))
            .tempdir()
            .expect("create work directory");
        // Canonical, as the tools print them (a /tmp behind a symlink).
        let root = std::fs::canonicalize(root_dir.path()).expect("canonical scratch root");
        let work = std::fs::canonicalize(work_dir.path()).expect("canonical work directory");
        Scenario {
            tool: tool.to_owned(),
            program,
            root,
            work,
            _root_dir: root_dir,
            _work_dir: work_dir,
        }
    }

    /// The tool's name, as it prefixes its errors.
    #[must_use]
    pub fn tool(&self) -> &str {
        &self.tool
    }

    /// The scratch root (canonical), given to the tool as `--root`.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The work directory (canonical), the tool's current directory.
    #[must_use]
    pub fn work(&self) -> &Path {
        &self.work
    }

    /// `rel` under the root: `path("etc/nix/nix.conf")`.
    #[must_use]
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel.trim_start_matches('/'))
    }

    /// Write `contents` to `rel` under the root, creating its directories;
    /// returns the path written.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().expect("a path under the root has a parent"))
            .unwrap_or_else(|e| panic!("create the directories of {}: {e}", p.display()));
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
        p
    }

    /// The text of `rel` under the root.
    #[must_use]
    pub fn read(&self, rel: &str) -> String {
        let p = self.path(rel);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
    }

    /// `text` with the root shown as `ROOT` and the work directory as
    /// `WORK`, for snapshots.
    #[must_use]
    pub fn redact(&self, text: &str) -> String {
        text.replace(&self.root.display().to_string(), "ROOT")
            .replace(&self.work.display().to_string(), "WORK")
    }

    /// The tool in the work directory with `LB_*` and `NIX_*` cleared, and
    /// no `--root`.
    #[must_use]
    pub fn bare(&self) -> Command {
        let mut c = clean_command(&self.program);
        c.current_dir(&self.work);
        c
    }

    /// [`Scenario::bare`] with `--root ROOT`: add the arguments, spawn it
    /// yourself (pipes, concurrent runs).
    #[must_use]
    pub fn command(&self) -> Command {
        let mut c = self.bare();
        c.arg("--root").arg(&self.root);
        c
    }

    /// [`Scenario::command`] as assert_cmd's command, for `write_stdin`,
    /// `timeout` and predicates.
    #[must_use]
    pub fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.command())
    }

    /// Run `tool --root ROOT ARGS` to its end.
    pub fn run<I, S>(&self, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command();
        c.args(args);
        self.outcome(&mut c)
    }

    /// As [`Scenario::run`] with the variables `env` set for this run.
    pub fn run_env<E, K, V, I, S>(&self, env: E, args: I) -> Outcome
    where
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command();
        c.envs(env).args(args);
        self.outcome(&mut c)
    }

    /// As [`Scenario::run`], the run failing the test (and killed) if it
    /// has not ended within `limit`: a hang is a failure, not a stuck suite.
    pub fn run_within<I, S>(&self, limit: Duration, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command();
        c.args(args);
        let line = command_line(&c);
        let mut child = c
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{line}: cannot start: {e}"));
        // Drain both pipes as the child writes, so a chatty child is not
        // mistaken for a hung one.
        let drain = |mut r: Box<dyn std::io::Read + Send>| {
            std::thread::spawn(move || {
                let mut buf = Vec::new();
                let _ = r.read_to_end(&mut buf);
                buf
            })
        };
        let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
        let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for the child") {
                break status;
            }
            if start.elapsed() > limit {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{line} did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        Outcome {
            tool: self.tool.clone(),
            line,
            output: Output {
                status,
                stdout: stdout.join().expect("stdout reader"),
                stderr: stderr.join().expect("stderr reader"),
            },
        }
    }

    /// Run a command built from [`Scenario::bare`] or
    /// [`Scenario::command`] (stdin closed) and keep its outcome.
    pub fn outcome(&self, c: &mut Command) -> Outcome {
        Outcome::of(&self.tool, c)
    }

    /// As [`Scenario::outcome`], with `input` on the command's stdin.
    pub fn outcome_with_stdin(&self, c: &mut Command, input: impl Into<Vec<u8>>) -> Outcome {
        Outcome::of_input(&self.tool, c, input.into())
    }

    /// Run `tool --root ROOT ARGS` with `input` on its stdin.
    pub fn run_stdin<I, S>(&self, input: impl Into<Vec<u8>>, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command();
        c.args(args);
        self.outcome_with_stdin(&mut c, input)
    }
}

/// How a run ended: its status, stdout and stderr, with assertions that
/// chain and say the command line, status and both streams when they fail.
#[derive(Debug)]
pub struct Outcome {
    tool: String,
    line: String,
    output: Output,
}

// The assertions return the outcome to chain on; a chain ending in `;`
// has asserted all it means to, so the returned value is not must-use.
#[allow(clippy::return_self_not_must_use, clippy::must_use_candidate)]
impl Outcome {
    /// Run `c` (stdin closed) to its end; `tool` prefixes its errors.
    pub fn of(tool: &str, c: &mut Command) -> Self {
        let line = command_line(c);
        let output = c
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{line}: cannot start: {e}"));
        Outcome {
            tool: tool.to_owned(),
            line,
            output,
        }
    }

    /// Run `c` with `input` on its stdin (closed after it; a child that
    /// stops reading early is not an error) to its end.
    pub fn of_input(tool: &str, c: &mut Command, input: Vec<u8>) -> Self {
        use std::io::Write as _;
        let line = command_line(c);
        let mut child = c
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{line}: cannot start: {e}"));
        let mut stdin = child.stdin.take().expect("piped stdin");
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let output = child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        writer.join().expect("stdin writer");
        Outcome {
            tool: tool.to_owned(),
            line,
            output,
        }
    }

    /// Stdout as text (lossy).
    #[must_use]
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Stderr as text (lossy).
    #[must_use]
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// The exit status code; `None` when a signal ended the run.
    #[must_use]
    pub fn status_code(&self) -> Option<i32> {
        self.output.status.code()
    }

    /// The raw output.
    #[must_use]
    pub fn output(&self) -> &Output {
        &self.output
    }

    /// Give up the outcome for its raw output.
    #[must_use]
    pub fn into_output(self) -> Output {
        self.output
    }

    /// Exit status 0.
    #[track_caller]
    pub fn success(self) -> Self {
        self.code(0)
    }

    /// Exit status `code`.
    #[track_caller]
    pub fn code(self, code: i32) -> Self {
        if self.output.status.code() != Some(code) {
            self.fail(&format!("exit status {code}"));
        }
        self
    }

    /// Any exit status but 0 (a signal included).
    #[track_caller]
    pub fn failure(self) -> Self {
        if self.output.status.success() {
            self.fail("a failing exit status");
        }
        self
    }

    /// Stdout is exactly `want`.
    #[track_caller]
    pub fn stdout_is(self, want: &str) -> Self {
        if self.stdout() != want {
            self.fail(&format!("stdout exactly {want:?}"));
        }
        self
    }

    /// Stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(self, needle: &str) -> Self {
        if !self.stdout().contains(needle) {
            self.fail(&format!("stdout containing {needle:?}"));
        }
        self
    }

    /// Stdout does not contain `needle`.
    #[track_caller]
    pub fn stdout_lacks(self, needle: &str) -> Self {
        if self.stdout().contains(needle) {
            self.fail(&format!("stdout without {needle:?}"));
        }
        self
    }

    /// Nothing on stdout.
    #[track_caller]
    pub fn stdout_empty(self) -> Self {
        if !self.output.stdout.is_empty() {
            self.fail("an empty stdout");
        }
        self
    }

    /// Stderr is exactly `want`.
    #[track_caller]
    pub fn stderr_is(self, want: &str) -> Self {
        if self.stderr() != want {
            self.fail(&format!("stderr exactly {want:?}"));
        }
        self
    }

    /// Stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(self, needle: &str) -> Self {
        if !self.stderr().contains(needle) {
            self.fail(&format!("stderr containing {needle:?}"));
        }
        self
    }

    /// Stderr does not contain `needle`.
    #[track_caller]
    pub fn stderr_lacks(self, needle: &str) -> Self {
        if self.stderr().contains(needle) {
            self.fail(&format!("stderr without {needle:?}"));
        }
        self
    }

    /// Stderr starts with `prefix`.
    #[track_caller]
    pub fn stderr_starts_with(self, prefix: &str) -> Self {
        if !self.stderr().starts_with(prefix) {
            self.fail(&format!("stderr starting with {prefix:?}"));
        }
        self
    }

    /// Nothing on stderr.
    #[track_caller]
    pub fn stderr_empty(self) -> Self {
        if !self.output.stderr.is_empty() {
            self.fail("an empty stderr");
        }
        self
    }

    /// The tools' bad-input and failure shape: exit status `code` and one
    /// line on stderr, `TOOL: error: ...`, that contains `needle`.
    #[track_caller]
    pub fn one_line_error(self, code: i32, needle: &str) -> Self {
        let err = self.stderr();
        let prefix = format!("{}: error: ", self.tool);
        if self.output.status.code() != Some(code)
            || err.lines().count() != 1
            || !err.starts_with(&prefix)
            || !err.contains(needle)
        {
            self.fail(&format!(
                "exit status {code} and one line {prefix:?}... containing {needle:?}"
            ));
        }
        self
    }

    #[track_caller]
    fn fail(&self, wanted: &str) -> ! {
        let mut msg = format!("{}\nwanted {wanted}, got ", self.line);
        match self.output.status.code() {
            Some(c) => {
                let _ = write!(msg, "exit status {c}");
            }
            None => {
                let _ = write!(msg, "{}", self.output.status);
            }
        }
        let _ = write!(
            msg,
            "\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout(),
            self.stderr()
        );
        panic!("{msg}");
    }
}

impl Deref for Outcome {
    type Target = Output;

    fn deref(&self) -> &Output {
        &self.output
    }
}

/// `program arg...` as a reader would type it (arguments with spaces or
/// quotes shell-quoted), for failure messages.
fn command_line(c: &Command) -> String {
    let name = Path::new(c.get_program())
        .file_name()
        .map_or_else(|| c.get_program().to_owned(), OsStr::to_owned);
    std::iter::once(name)
        .chain(c.get_args().map(OsStr::to_owned))
        .map(|a: OsString| {
            let a = a.to_string_lossy().into_owned();
            shell_quote(&a)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn shell_quote(a: &str) -> String {
    if !a.is_empty()
        && a.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&b))
    {
        a.to_owned()
    } else {
        format!("'{}'", a.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A stand-in tool: prints its arguments, its directory and (with
    /// `$SHOW_ENV`) the `LB_*`/`NIX_*`/`SCENARIO_*` variables it got, says `$ERR` on stderr
    /// and exits `$CODE`.
    fn fake_tool(dir: &Path) -> PathBuf {
        let p = dir.join("fake-tool");
        std::fs::write(
            &p,
            "#!/bin/sh\n\
             for a in \"$@\"; do printf 'arg %s\\n' \"$a\"; done\n\
             printf 'cwd %s\\n' \"$(pwd -P)\"\n\
             [ -n \"$SHOW_ENV\" ] && env | grep -E '^(LB_|NIX_|SCENARIO_|SUDO_USER)' | sort\n\
             [ -n \"$ERR\" ] && printf '%s\\n' \"$ERR\" >&2\n\
             exit \"${CODE:-0}\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    fn scenario() -> (tempfile::TempDir, Scenario) {
        let bin = tempfile::tempdir().unwrap();
        let s = Scenario::with_program("fake-tool", fake_tool(bin.path()));
        (bin, s)
    }

    #[test]
    fn lb_and_nix_variables_of_the_test_process_do_not_reach_the_tool() {
        std::env::set_var("LB_SCENARIO_TEST_FOO", "leaked");
        std::env::set_var("NIX_SCENARIO_TEST_BAR", "leaked");
        std::env::set_var("SCENARIO_TEST_KEPT", "kept");
        std::env::set_var("SUDO_USER", "leaked");
        let (_bin, s) = scenario();
        let mut c = s.command();
        c.env("SHOW_ENV", "1");
        let out = s.outcome(&mut c).success().stdout();
        assert!(!out.contains("LB_"), "{out}");
        assert!(!out.contains("NIX_"), "{out}");
        assert!(out.contains("SCENARIO_TEST_KEPT=kept"), "{out}");
        // Through every builder, and a variable the test sets itself wins.
        let mut bare = s.bare();
        bare.env("LB_CHOSEN", "1").env("SHOW_ENV", "1");
        let out = s.outcome(&mut bare).success().stdout();
        assert!(!out.contains("LEAKED") && !out.contains("leaked"), "{out}");
        assert!(out.contains("LB_CHOSEN=1"), "{out}");
        let out = s
            .run_env([("SHOW_ENV", "1"), ("LB_PLATFORM", "macos")], ["y"])
            .success()
            .stdout();
        assert!(
            out.contains("LB_PLATFORM=macos\n") && out.contains("arg y\n"),
            "{out}"
        );
        assert!(!out.contains("leaked"), "{out}");
        let out = s.cmd().env("SHOW_ENV", "1").output().unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.contains("SCENARIO_TEST_KEPT") && !out.contains("leaked"),
            "{out}"
        );
        let mut clean = clean_command(&s.program);
        clean.env("SHOW_ENV", "1");
        let out = Outcome::of("fake-tool", &mut clean).stdout();
        assert!(
            out.contains("SCENARIO_TEST_KEPT") && !out.contains("leaked"),
            "{out}"
        );
    }

    #[test]
    fn the_tool_runs_in_the_work_directory_with_root_first() {
        let (_bin, s) = scenario();
        assert_ne!(s.root(), s.work());
        assert!(!s.work().starts_with(s.root()));
        let want = format!(
            "arg --root\narg {}\narg install\narg a b\ncwd {}\n",
            s.root().display(),
            s.work().display()
        );
        s.run(["install", "a b"]).success().stdout_is(&want);
        s.outcome(&mut s.bare())
            .success()
            .stdout_is(&format!("cwd {}\n", s.work().display()));
    }

    #[test]
    fn the_directories_are_fresh_and_removed_on_drop() {
        let (_bin, s) = scenario();
        let (root, work) = (s.root().to_owned(), s.work().to_owned());
        assert_eq!(std::fs::read_dir(&root).unwrap().count(), 0);
        assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
        let p = s.write("/etc/nix/nix.conf", "x = 1\n");
        assert_eq!(p, root.join("etc/nix/nix.conf"));
        assert_eq!(s.read("etc/nix/nix.conf"), "x = 1\n");
        drop(s);
        assert!(!root.exists() && !work.exists());
        let bin = tempfile::tempdir().unwrap();
        let other = Scenario::build("fake-tool", fake_tool(bin.path()), "lb root with spaces.");
        assert!(other
            .root()
            .display()
            .to_string()
            .contains("lb root with spaces."));
    }

    #[test]
    fn redact_names_root_and_work() {
        let (_bin, s) = scenario();
        let text = format!("{}/etc and {}/keys", s.root().display(), s.work().display());
        assert_eq!(s.redact(&text), "ROOT/etc and WORK/keys");
    }

    #[test]
    fn chained_assertions_pass_on_what_they_claim() {
        let (_bin, s) = scenario();
        let mut c = s.command();
        c.env("ERR", "fake-tool: error: --key: bad")
            .env("CODE", "2");
        s.outcome(&mut c)
            .code(2)
            .failure()
            .stdout_has("arg --root")
            .stdout_lacks("arg --nope")
            .stderr_is("fake-tool: error: --key: bad\n")
            .stderr_has("--key")
            .stderr_lacks("warning")
            .stderr_starts_with("fake-tool: error: ")
            .one_line_error(2, "--key: bad");
        s.run(["x"]).success().stderr_empty();
        s.run(NO_ARGS).success().stdout_is(&format!(
            "arg --root\narg {}\ncwd {}\n",
            s.root().display(),
            s.work().display()
        ));
        let mut quiet = s.bare();
        quiet.arg("-q");
        assert_eq!(s.outcome(&mut quiet).status_code(), Some(0));
    }

    /// The message a failed assertion panics with.
    fn failure_of(f: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let e = std::panic::catch_unwind(f).expect_err("the assertion should fail");
        e.downcast_ref::<String>().cloned().unwrap_or_default()
    }

    #[test]
    fn a_failed_assertion_shows_the_command_status_and_both_streams() {
        let (_bin, s) = scenario();
        let root = s.root().display().to_string();
        let msg = failure_of(|| {
            let mut c = s.command();
            c.arg("it's").env("ERR", "boom").env("CODE", "1");
            let _ = s.outcome(&mut c).success();
        });
        assert!(
            msg.starts_with(&format!("fake-tool --root {root} 'it'\\''s'\n")),
            "{msg}"
        );
        assert!(
            msg.contains("wanted exit status 0, got exit status 1"),
            "{msg}"
        );
        assert!(msg.contains("--- stdout\narg --root\n"), "{msg}");
        assert!(msg.contains("--- stderr\nboom\n"), "{msg}");
        for (f, wanted) in [
            (
                Box::new(|o: Outcome| drop(o.stdout_has("nope"))) as Box<dyn Fn(Outcome)>,
                "stdout containing \"nope\"",
            ),
            (Box::new(|o| drop(o.stdout_lacks("arg"))), "stdout without"),
            (Box::new(|o| drop(o.stdout_empty())), "an empty stdout"),
            (Box::new(|o| drop(o.stdout_is(""))), "stdout exactly"),
            (Box::new(|o| drop(o.stderr_has("x"))), "stderr containing"),
            (Box::new(|o| drop(o.failure())), "a failing exit status"),
            (
                Box::new(|o| drop(o.one_line_error(0, "x"))),
                "one line \"fake-tool: error: \"",
            ),
        ] {
            let o = s.run(["y"]);
            let msg = failure_of(std::panic::AssertUnwindSafe(|| f(o)));
            assert!(msg.contains(wanted), "{wanted}: {msg}");
        }
        let mut c = s.command();
        c.env("ERR", "warning: x");
        let o = s.outcome(&mut c);
        let msg = failure_of(std::panic::AssertUnwindSafe(|| drop(o.stderr_empty())));
        assert!(
            msg.contains("an empty stderr") && msg.contains("warning: x"),
            "{msg}"
        );
    }

    #[test]
    fn one_line_error_wants_one_line_with_the_prefix() {
        let (_bin, s) = scenario();
        for (err, code) in [
            ("fake-tool: error: needle\nsecond line", "2"),
            ("other: error: needle", "2"),
            ("fake-tool: error: something else", "2"),
            ("fake-tool: error: needle", "1"),
        ] {
            let mut c = s.command();
            c.env("ERR", err).env("CODE", code);
            let o = s.outcome(&mut c);
            let msg = failure_of(std::panic::AssertUnwindSafe(|| {
                drop(o.one_line_error(2, "needle"));
            }));
            assert!(msg.contains("wanted exit status 2 and one line"), "{msg}");
        }
    }

    #[test]
    fn stdin_reaches_the_tool_and_a_tool_that_ignores_it_is_fine() {
        let bin = tempfile::tempdir().unwrap();
        let p = bin.path().join("cat-tool");
        std::fs::write(&p, "#!/bin/sh\n[ \"$1\" = --root ] && exec cat\nexit 0\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Scenario::with_program("cat-tool", &p);
        s.run_stdin("line one\nline two\n", ["x"])
            .success()
            .stdout_is("line one\nline two\n");
        // Stdin closed for an ordinary run: cat ends at once.
        s.run(["x"]).success().stdout_empty();
        // A tool that never reads a large input.
        s.outcome_with_stdin(&mut s.bare(), vec![b'x'; 1 << 20])
            .success()
            .stdout_empty();
    }

    #[test]
    fn a_run_past_its_limit_is_killed_and_fails() {
        let bin = tempfile::tempdir().unwrap();
        let p = bin.path().join("sleeper");
        std::fs::write(&p, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        let s = Scenario::with_program("sleeper", &p);
        let start = Instant::now();
        let msg = failure_of(std::panic::AssertUnwindSafe(|| {
            drop(s.run_within(Duration::from_millis(300), ["x"]));
        }));
        assert!(msg.contains("did not finish within 300ms"), "{msg}");
        assert!(start.elapsed() < Duration::from_secs(10));
        let (_bin, s) = scenario();
        s.run_within(Duration::from_secs(20), ["z"])
            .success()
            .stdout_has("arg z");
    }
}
