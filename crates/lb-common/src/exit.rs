//! The exit status table shared by all tools, and the `main` they share.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done, including "already as wanted" |
//! | 1 | the operation failed, or the answer is negative (a check found problems, a ping failed) |
//! | 2 | bad usage or bad input |
//!
//! Library errors carry their status through [`Classify`]; a tool's `run`
//! returns `anyhow::Result`, and [`main`] walks the error chain to find the
//! status, prints one line, and ends the process. A broken pipe on stdout
//! is not an error (`lb-x | head -1` must not complain).

use std::process::ExitCode;

/// One row of the exit status table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0: done, or already as wanted.
    Ok = 0,
    /// 1: the operation failed or the answer is negative.
    Failed = 1,
    /// 2: bad usage or bad input.
    Usage = 2,
}

impl From<Status> for ExitCode {
    fn from(status: Status) -> Self {
        ExitCode::from(status as u8)
    }
}

/// Errors that know which exit status they stand for.
pub trait Classify {
    fn status(&self) -> Status;
}

/// Bad usage or bad input that has no more specific type: exit status 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

impl Classify for UsageError {
    fn status(&self) -> Status {
        Status::Usage
    }
}

/// Builds an [`anyhow::Error`] that exits with status 2.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        ::anyhow::Error::new($crate::exit::UsageError(format!($($arg)*)))
    };
}

/// The exit status an error stands for: the first classified error in its
/// chain, else 1.
#[must_use]
pub fn status_of(error: &anyhow::Error) -> Status {
    for cause in error.chain() {
        if let Some(s) = classify(cause) {
            return s;
        }
    }
    Status::Failed
}

fn classify(cause: &(dyn std::error::Error + 'static)) -> Option<Status> {
    macro_rules! try_types {
        ($($t:ty),*) => {$(
            if let Some(e) = cause.downcast_ref::<$t>() {
                return Some(e.status());
            }
        )*};
    }
    try_types!(
        UsageError,
        crate::builder::Error,
        crate::fs::Error,
        crate::conf::Error,
        crate::cmd::Error,
        crate::paths::Error,
        crate::platform::UnknownPlatform,
        crate::privilege::NeedsRoot,
        crate::daemon::Error,
        crate::ssh::Error,
        crate::conf::escape::Unrepresentable,
        crate::privilege::CannotWrite
    );
    None
}

/// The one line an error is shown as: its chain joined with `: `, each
/// cause said once. Many errors carry their cause in their own text and
/// as their source too (`X: No space left on device`, then `No space left
/// on device`); a cause whose text is already in the line is left out.
#[must_use]
pub fn message(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line
}

/// True when the error is, at bottom, a broken pipe on our output.
#[must_use]
pub fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The shared `main`: parse the arguments, run, print the error as one line
/// on stderr, and map it to the exit status table.
pub fn main<C, F>(run: F) -> ExitCode
where
    C: clap::Parser + crate::cli::HasGlobal,
    F: FnOnce(C) -> anyhow::Result<Status>,
{
    let cli = match crate::cli::parse::<C>() {
        Ok(cli) => cli,
        // Help and version: clap prints them on stdout, exit 0.
        Err(crate::cli::ParseError::Display(e)) => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(crate::cli::ParseError::Usage(line)) => {
            eprintln!("{line}");
            return Status::Usage.into();
        }
    };
    crate::ui::init(cli.global());
    match run(cli) {
        Ok(status) => status.into(),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            crate::ui::error(&message(&e));
            status_of(&e).into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_found_through_context() {
        let e = crate::usage!("bad port {}", 0);
        let e = e.context("reading flags");
        assert_eq!(status_of(&e), Status::Usage);
        assert_eq!(format!("{e:#}"), "reading flags: bad port 0");
    }

    #[test]
    fn message_says_each_cause_once() {
        let io = std::io::Error::new(
            std::io::ErrorKind::StorageFull,
            "No space left on device (os error 28) at path /r/.x.tmp",
        );
        let e = anyhow::Error::new(crate::fs::Error::io(std::path::Path::new("/r/x"), io))
            .context("writing /r/x");
        assert_eq!(
            message(&e),
            "writing /r/x: /r/x: No space left on device (os error 28) at path /r/.x.tmp"
        );
        let e = anyhow::anyhow!("inner").context("outer");
        assert_eq!(message(&e), "outer: inner");
    }

    #[test]
    fn unclassified_is_failure() {
        assert_eq!(status_of(&anyhow::anyhow!("boom")), Status::Failed);
    }

    #[test]
    fn broken_pipe_detected_under_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = anyhow::Error::new(io).context("writing stdout");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&anyhow::anyhow!("x")));
    }

    #[test]
    fn status_codes_match_table() {
        assert_eq!(Status::Ok as u8, 0);
        assert_eq!(Status::Failed as u8, 1);
        assert_eq!(Status::Usage as u8, 2);
    }
}
