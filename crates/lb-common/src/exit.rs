//! The `main` every tool shares: parse, run, print the error as one line,
//! and end the process with the error's status.
//!
//! The status table and the error that carries its status are in
//! [`crate::status`]; this module only reads the status off the error. A
//! broken pipe on stdout is not an error (`lb-x | head -1` must not
//! complain).

use std::process::ExitCode;

use crate::status::Error;
pub use crate::status::{Classify, Status, UsageError};

/// The exit status an error stands for (the one it carries).
#[must_use]
pub fn status_of(error: &Error) -> Status {
    error.status()
}

/// The one line an error is shown as: its chain joined with `: `, each
/// cause said once. Many errors carry their cause in their own text and
/// as their source too (`X: No space left on device`, then `No space left
/// on device`); a cause whose text is already in the line is left out.
#[must_use]
pub fn message(error: &Error) -> String {
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
pub fn is_broken_pipe(error: &Error) -> bool {
    error.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The shared `main`: parse the arguments, run, print the error as one line
/// on stderr, and end with the status the error carries (or the one `run`
/// returns).
pub fn main<C, F, E>(run: F) -> ExitCode
where
    C: clap::Parser + crate::cli::HasGlobal,
    F: FnOnce(C) -> Result<Status, E>,
    E: Into<Error>,
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
    match run(cli).map_err(Into::into) {
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
    use crate::status::Context;

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
        let e = Err::<(), _>(crate::fs::Error::io(std::path::Path::new("/r/x"), io))
            .context("writing /r/x")
            .unwrap_err();
        assert_eq!(
            message(&e),
            "writing /r/x: /r/x: No space left on device (os error 28) at path /r/.x.tmp"
        );
        let e = Error::from(anyhow::anyhow!("inner").context("outer"));
        assert_eq!(message(&e), "outer: inner");
    }

    #[test]
    fn unclassified_is_failure() {
        assert_eq!(
            status_of(&Error::from(anyhow::anyhow!("boom"))),
            Status::Failed
        );
    }

    #[test]
    fn broken_pipe_detected_under_context() {
        let io = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        let e = Error::from(io).context("writing stdout");
        assert!(is_broken_pipe(&e));
        assert!(!is_broken_pipe(&crate::failed!("x")));
    }

    #[test]
    fn status_codes_match_table() {
        assert_eq!(Status::Ok as u8, 0);
        assert_eq!(Status::Failed as u8, 1);
        assert_eq!(Status::Usage as u8, 2);
    }
}
