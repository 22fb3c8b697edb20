//! The only place other programs are run.
//!
//! A [`Cmd`] is a program with arguments, environment and working
//! directory. Running it logs the command line at `-v`, captures stdout and
//! stderr, and turns a non-zero exit into an [`Error`] carrying the end of
//! the child's stderr. [`Cmd::apply`] honours dry-run: it prints the command
//! line on stdout instead of running it.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};

use crate::fs::Apply;
use crate::status::{Classify, Status};

/// Why running a [`Cmd`] failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The program is not installed (not on PATH, or no such file).
    #[error("{program}: not found; {hint}")]
    NotFound {
        /// The program, as given to [`Cmd::new`].
        program: String,
        /// What to tell the user: the [`Cmd::hint`], or a generic one.
        hint: String,
    },
    /// The program ran and exited non-zero (or was killed by a signal).
    #[error("`{command}` failed ({status}){}", stderr_suffix(.stderr))]
    Failed {
        /// The command line, as [`Cmd::display`] shows it.
        command: String,
        /// How it ended, e.g. "exit status: 3".
        status: String,
        /// Everything it printed on stderr, lossily decoded.
        stderr: String,
    },
    /// The program could not be started, or its output not read or written.
    #[error("`{command}`: {source}")]
    Io {
        /// The command line, as [`Cmd::display`] shows it.
        command: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    match last_lines(stderr, 3).as_slice() {
        [] => String::new(),
        lines => format!(": {}", lines.join(" / ")),
    }
}

/// The last `n` non-empty lines of a program's output, trimmed: what an
/// error message quotes of a child's stderr or a log.
#[must_use]
pub fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

impl Classify for Error {
    fn status(&self) -> Status {
        Status::Failed
    }
}

/// What a finished command printed.
#[derive(Debug, Clone)]
pub struct Output {
    /// Everything it printed on stdout.
    pub stdout: Vec<u8>,
    /// Everything it printed on stderr.
    pub stderr: Vec<u8>,
}

impl Output {
    /// stdout as text, lossily.
    #[must_use]
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// A command line to run.
#[derive(Debug, Clone)]
pub struct Cmd {
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    dir: Option<PathBuf>,
    stdin: Option<Vec<u8>>,
    hint: Option<String>,
}

impl Cmd {
    /// A command running `program` (a name looked up on PATH, or a path)
    /// with no arguments, in this process's environment and directory.
    pub fn new(program: impl AsRef<OsStr>) -> Self {
        Cmd {
            program: program.as_ref().to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            dir: None,
            stdin: None,
            hint: None,
        }
    }

    /// A command from an argv vector (as [`crate::platform`] returns them).
    ///
    /// # Panics
    /// If `argv` is empty.
    #[must_use]
    pub fn from_argv<S: AsRef<OsStr>>(argv: &[S]) -> Self {
        let (first, rest) = argv.split_first().expect("argv has a program");
        Cmd::new(first).args(rest)
    }

    /// Add one argument.
    #[must_use]
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Add arguments, in order.
    #[must_use]
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Set an environment variable for the program, on top of this
    /// process's environment.
    #[must_use]
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// Run the program in `dir` instead of the current directory.
    #[must_use]
    pub fn dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.dir = Some(dir.as_ref().to_path_buf());
        self
    }

    /// Give the program `input` on stdin.
    #[must_use]
    pub fn stdin_bytes(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    /// What to tell the user when the program is not installed
    /// (e.g. "install it with apt-get install qemu-system-x86").
    #[must_use]
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// The program to run, as given to [`Cmd::new`].
    #[must_use]
    pub fn program(&self) -> &OsStr {
        &self.program
    }

    /// The arguments, without the program.
    #[must_use]
    pub fn get_args(&self) -> &[OsString] {
        &self.args
    }

    /// What the program is given on stdin, if [`Cmd::stdin_bytes`] set it.
    #[must_use]
    pub fn get_stdin(&self) -> Option<&[u8]> {
        self.stdin.as_deref()
    }

    /// The command as a shell line, environment first, quoted where needed.
    #[must_use]
    pub fn display(&self) -> String {
        let q = |s: &OsStr| {
            let s = s.to_string_lossy();
            shlex::try_quote(&s).map_or_else(|_| format!("{s:?}"), std::borrow::Cow::into_owned)
        };
        let mut parts: Vec<String> = self
            .env
            .iter()
            .map(|(k, v)| format!("{}={}", k.to_string_lossy(), q(v)))
            .collect();
        parts.push(q(&self.program));
        parts.extend(self.args.iter().map(|a| quote_arg(a, &q)));
        parts.join(" ")
    }

    /// The duct expression for this command, environment and directory
    /// applied: the runner's own building block, private to it. Callers
    /// use [`Cmd::run`], [`Cmd::apply`], [`Cmd::run_attached`],
    /// [`Cmd::lines`], [`Cmd::spawn`] or [`Cmd::replace_process`].
    fn expression(&self) -> duct::Expression {
        let mut e = duct::cmd(&self.program, &self.args);
        for (k, v) in &self.env {
            e = e.env(k, v);
        }
        if let Some(d) = &self.dir {
            e = e.dir(d);
        }
        if let Some(input) = &self.stdin {
            e = e.stdin_bytes(input.clone());
        }
        e
    }

    fn not_found(&self) -> Error {
        Error::NotFound {
            program: self.program.to_string_lossy().into_owned(),
            hint: self
                .hint
                .clone()
                .unwrap_or_else(|| "install it or put it on PATH".to_owned()),
        }
    }

    /// Map a spawn error to ours.
    #[must_use]
    pub fn spawn_error(&self, e: std::io::Error) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            self.not_found()
        } else {
            Error::Io {
                command: self.display(),
                source: e,
            }
        }
    }

    /// Run to completion, capturing output; non-zero exit is an error.
    ///
    /// # Errors
    /// The program could not be started ([`Error::NotFound`], [`Error::Io`])
    /// or exited non-zero ([`Error::Failed`]).
    pub fn run(&self) -> Result<Output, Error> {
        crate::ui::verbose(&format!("running: {}", self.display()));
        let out = self
            .expression()
            .stdout_capture()
            .stderr_capture()
            .unchecked()
            .run()
            .map_err(|e| self.spawn_error(e))?;
        if out.status.success() {
            Ok(Output {
                stdout: out.stdout,
                stderr: out.stderr,
            })
        } else {
            Err(Error::Failed {
                command: self.display(),
                status: out.status.to_string(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            })
        }
    }

    /// Run unless `apply` says not to: dry-run prints the command line on
    /// stdout, check does nothing. Returns the output when it ran.
    ///
    /// # Errors
    /// As [`Cmd::run`] when it runs; [`Error::Io`] when the dry-run line
    /// cannot be printed.
    pub fn apply(&self, apply: Apply) -> Result<Option<Output>, Error> {
        match apply {
            Apply::Write => self.run().map(Some),
            Apply::DryRun => {
                crate::ui::out(&self.display()).map_err(|source| Error::Io {
                    command: self.display(),
                    source,
                })?;
                Ok(None)
            }
            Apply::Check => Ok(None),
        }
    }

    /// Run with the terminal attached (stdin, stdout and stderr shared
    /// with this process): for a step that may prompt (sudo's password).
    /// A non-zero exit is returned, not an error.
    ///
    /// # Errors
    /// The program could not be started ([`Error::NotFound`], [`Error::Io`]).
    pub fn run_attached(&self) -> Result<std::process::ExitStatus, Error> {
        self.expression()
            .unchecked()
            .run()
            .map(|out| out.status)
            .map_err(|e| self.spawn_error(e))
    }

    /// Start the program with its stderr merged into its stdout, to read
    /// what it prints line by line as it runs (a progress display).
    ///
    /// # Errors
    /// The program could not be started ([`Error::NotFound`], [`Error::Io`]).
    pub fn lines(&self) -> Result<Lines, Error> {
        crate::ui::verbose(&format!("running: {}", self.display()));
        let reader = self
            .expression()
            .stderr_to_stdout()
            .unchecked()
            .reader()
            .map_err(|e| self.spawn_error(e))?;
        Ok(Lines {
            reader: std::io::BufReader::new(reader),
        })
    }
}

/// What a program started by [`Cmd::lines`] prints (stdout and stderr),
/// one line at a time without its newline; ends at its end (or at the
/// first read error).
#[derive(Debug)]
pub struct Lines {
    reader: std::io::BufReader<duct::ReaderHandle>,
}

impl Iterator for Lines {
    type Item = String;

    fn next(&mut self) -> Option<String> {
        let mut line = String::new();
        match std::io::BufRead::read_line(&mut self.reader, &mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches('\n').to_owned()),
        }
    }
}

impl Lines {
    /// Did the program exit 0? False while it still runs.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        matches!(self.reader.get_ref().try_wait(), Ok(Some(out)) if out.status.success())
    }
}

/// One argument as a shell word: a variable setting `NAME=VALUE` (sudo's
/// and env's; an upper-case NAME) with only its value quoted,
/// `LB_NAME='b 2'`: the same word as `'LB_NAME=b 2'`, easier to read.
fn quote_arg(arg: &OsStr, q: &dyn Fn(&OsStr) -> String) -> String {
    let text = arg.to_string_lossy();
    if let Some((name, value)) = text.split_once('=') {
        let is_name = name.starts_with(|c: char| c.is_ascii_uppercase() || c == '_')
            && name
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
        if is_name {
            return format!("{name}={}", q(OsStr::new(value)));
        }
    }
    q(arg)
}

/// Is `program` on PATH (or an existing path)?
#[must_use]
pub fn exists(program: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).is_file();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// Commands that keep running: [`Cmd::spawn`] and [`Cmd::replace_process`].
mod spawn;
pub use spawn::{Child, Sink};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_quotes_what_needs_it() {
        let c = Cmd::new("ssh")
            .arg("-o")
            .arg("Foo=a b")
            .env("NIX_SSHOPTS", "-F x");
        assert_eq!(c.display(), "NIX_SSHOPTS='-F x' ssh -o 'Foo=a b'");
        // A variable setting as an argument: only its value quoted.
        let c = Cmd::new("sudo").args(["LB_NAME=b 2", "LB_PORT=22", "X_1=", "lb-x"]);
        assert_eq!(c.display(), "sudo LB_NAME='b 2' LB_PORT=22 X_1='' lb-x");
        assert_eq!(
            shlex::split(&c.display()).unwrap(),
            ["sudo", "LB_NAME=b 2", "LB_PORT=22", "X_1=", "lb-x"]
        );
    }

    #[test]
    fn captures_stdout() {
        let out = Cmd::new("sh")
            .args(["-c", "echo hi; echo err >&2"])
            .run()
            .unwrap();
        assert_eq!(out.stdout_text(), "hi\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn failure_carries_stderr_tail() {
        let e = Cmd::new("sh")
            .args(["-c", "echo one >&2; echo two >&2; exit 3"])
            .run()
            .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("exit status: 3"), "{msg}");
        assert!(msg.ends_with(": one / two"), "{msg}");
        assert_eq!(e.status(), Status::Failed);
    }

    #[test]
    fn last_lines_skips_blanks() {
        assert_eq!(last_lines("a\n\n b \nc\n\n", 2), ["b", "c"]);
        assert!(last_lines("", 3).is_empty());
    }

    #[test]
    fn missing_program_names_hint() {
        let e = Cmd::new("lb-no-such-program")
            .hint("apt-get install nothing")
            .run()
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "lb-no-such-program: not found; apt-get install nothing"
        );
    }

    #[test]
    fn check_and_dry_run_do_not_run() {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("ran");
        let c = Cmd::new("touch").arg(&marker);
        assert!(c.apply(Apply::Check).unwrap().is_none());
        assert!(c.apply(Apply::DryRun).unwrap().is_none());
        assert!(!marker.exists());
        assert!(c.apply(Apply::Write).unwrap().is_some());
        assert!(marker.exists());
    }

    #[test]
    fn env_and_dir_are_applied() {
        let tmp = tempfile::tempdir().unwrap();
        let out = Cmd::new("sh")
            .args(["-c", "echo $LB_X; pwd"])
            .env("LB_X", "y")
            .dir(tmp.path())
            .run()
            .unwrap();
        let canon = std::fs::canonicalize(tmp.path()).unwrap();
        assert_eq!(out.stdout_text(), format!("y\n{}\n", canon.display()));
    }

    #[test]
    fn lines_stream_stdout_and_stderr_then_the_status() {
        let mut lines = Cmd::new("sh")
            .args(["-c", "echo one; echo two >&2"])
            .lines()
            .unwrap();
        let got: Vec<String> = lines.by_ref().collect();
        assert_eq!(got, ["one", "two"]);
        assert!(lines.succeeded());
        let mut failing = Cmd::new("sh").args(["-c", "exit 4"]).lines().unwrap();
        assert_eq!(failing.next(), None);
        assert!(!failing.succeeded());
        assert!(!Cmd::new("sh")
            .args(["-c", "exit 4"])
            .run_attached()
            .unwrap()
            .success());
        assert!(matches!(
            Cmd::new("lb-no-such-program").lines(),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn exists_finds_sh() {
        assert!(exists("sh"));
        assert!(!exists("lb-no-such-program"));
    }
}
