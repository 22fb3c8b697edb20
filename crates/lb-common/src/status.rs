//! Exit statuses, and the error that carries its own.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | done, including "already as wanted" |
//! | 1 | the operation failed, or the answer is negative (a check found problems, a ping failed) |
//! | 2 | bad usage or bad input |
//!
//! A typed error says which row it stands for by implementing
//! [`Classify`]. When it becomes an [`Error`] (the error every tool's code
//! returns, through `?` or [`Context`]) the status is read once and travels
//! with it from then on: context added on the way up keeps it, and the
//! shared `main` ([`crate::exit::main`]) only asks the [`Error`] for it. No
//! list of error types is kept anywhere; a tool's own error type takes part
//! by implementing [`Classify`] like the shared ones.
//!
//! This module depends on nothing else in the crate (every module that
//! defines an error depends on it, not the other way round).

use std::fmt::{self, Debug, Display};
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
    /// The row of the exit status table this error stands for.
    fn status(&self) -> Status;
}

/// An error with its exit status attached: a chain of causes (an
/// [`anyhow::Error`] inside) and the [`Status`] it was given when it was
/// made. Made from any [`Classify`] error (`?` does it), from a message
/// with [`Error::msg`] or the [`usage!`](crate::usage) and
/// [`failed!`](crate::failed) macros, and from the few foreign error types
/// the tools meet (I/O, JSON), which stand for failures.
pub struct Error {
    status: Status,
    chain: anyhow::Error,
}

/// `Result` with [`Error`]: what a tool's functions return.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error from a message, standing for `status`.
    #[must_use]
    pub fn msg<M>(status: Status, message: M) -> Self
    where
        M: Display + Debug + Send + Sync + 'static,
    {
        Error {
            status,
            chain: anyhow::Error::msg(message),
        }
    }

    /// An error from any error value, standing for `status` whatever the
    /// value's own type would say.
    #[must_use]
    pub fn with_status<E>(status: Status, error: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error {
            status,
            chain: anyhow::Error::new(error),
        }
    }

    /// The exit status this error stands for.
    #[must_use]
    pub fn status(&self) -> Status {
        self.status
    }

    /// This error with `context` said before it; the status is kept.
    #[must_use]
    pub fn context<C>(self, context: C) -> Self
    where
        C: Display + Send + Sync + 'static,
    {
        Error {
            status: self.status,
            chain: self.chain.context(context),
        }
    }

    /// The causes, outermost first (as [`anyhow::Error::chain`]).
    #[must_use]
    pub fn chain(&self) -> anyhow::Chain<'_> {
        self.chain.chain()
    }

    /// The innermost cause.
    #[must_use]
    pub fn root_cause(&self) -> &(dyn std::error::Error + 'static) {
        self.chain.root_cause()
    }

    /// The typed error this was made from (or one of its context
    /// values), when it is a `T`.
    #[must_use]
    pub fn downcast_ref<T>(&self) -> Option<&T>
    where
        T: Display + Debug + Send + Sync + 'static,
    {
        self.chain.downcast_ref::<T>()
    }
}

impl<E> From<E> for Error
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    fn from(error: E) -> Self {
        Error {
            status: error.status(),
            chain: anyhow::Error::new(error),
        }
    }
}

/// An [`anyhow::Error`] from code that does not know the table (a
/// dependency, a test helper): the status of the first [`Error`] nested
/// in its chain, else a failure.
impl From<anyhow::Error> for Error {
    fn from(chain: anyhow::Error) -> Self {
        let status = chain
            .chain()
            .find_map(|c| c.downcast_ref::<Error>().map(Error::status))
            .unwrap_or(Status::Failed);
        Error { status, chain }
    }
}

/// Foreign errors the tools pass on with `?`: each one a failure (1).
/// An input error is turned into a typed error of the tool (with its
/// [`Classify`]) where it is read, not here.
macro_rules! failures {
    ($($t:ty),* $(,)?) => {$(
        impl From<$t> for Error {
            fn from(error: $t) -> Self {
                Error::with_status(Status::Failed, error)
            }
        }
    )*};
}

failures!(
    std::io::Error,
    serde_json::Error,
    std::fmt::Error,
    std::string::FromUtf8Error,
);

impl Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Debug::fmt(&self.chain, f)
    }
}

/// `{}` shows the outermost cause, `{:#}` the chain joined with `: `
/// (as [`anyhow::Error`]).
impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Display::fmt(&self.chain, f)
    }
}

/// So an [`Error`] can sit inside an [`anyhow::Error`] (and come out of
/// it with its status, see `From<anyhow::Error>`).
impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.chain.source()
    }
}

/// `.context(...)` and `.with_context(|| ...)` on a `Result` whose error
/// becomes an [`Error`], and on an `Option` (a `None` is a failure): the
/// status of the error underneath is kept.
pub trait Context<T> {
    /// Say `context` before the error.
    ///
    /// # Errors
    /// The error underneath (or, for `None`, `context` itself), with
    /// `context` said first.
    fn context<C>(self, context: C) -> Result<T>
    where
        C: Display + Send + Sync + 'static;

    /// Say what `f` returns before the error; `f` runs only on an error.
    ///
    /// # Errors
    /// As [`Context::context`].
    fn with_context<C, F>(self, f: F) -> Result<T>
    where
        C: Display + Send + Sync + 'static,
        F: FnOnce() -> C;
}

impl<T, E> Context<T> for std::result::Result<T, E>
where
    E: Into<Error>,
{
    fn context<C>(self, context: C) -> Result<T>
    where
        C: Display + Send + Sync + 'static,
    {
        self.map_err(|e| e.into().context(context))
    }

    fn with_context<C, F>(self, f: F) -> Result<T>
    where
        C: Display + Send + Sync + 'static,
        F: FnOnce() -> C,
    {
        self.map_err(|e| e.into().context(f()))
    }
}

impl<T> Context<T> for Option<T> {
    fn context<C>(self, context: C) -> Result<T>
    where
        C: Display + Send + Sync + 'static,
    {
        self.ok_or_else(|| Error::msg(Status::Failed, context.to_string()))
    }

    fn with_context<C, F>(self, f: F) -> Result<T>
    where
        C: Display + Send + Sync + 'static,
        F: FnOnce() -> C,
    {
        self.ok_or_else(|| Error::msg(Status::Failed, f().to_string()))
    }
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

/// Builds an [`Error`] that exits with status 2, from a `format!` message:
/// for usage mistakes found by a tool's own checks (two flags that do not
/// go together). A typed error that stands for bad input says so with
/// [`Classify`] instead.
#[macro_export]
macro_rules! usage {
    ($($arg:tt)*) => {
        $crate::status::Error::from($crate::status::UsageError(format!($($arg)*)))
    };
}

/// Builds an [`Error`] that exits with status 1, from a `format!` message.
#[macro_export]
macro_rules! failed {
    ($($arg:tt)*) => {
        $crate::status::Error::msg($crate::status::Status::Failed, format!($($arg)*))
    };
}

/// Returns early with [`failed!`](crate::failed)'s error.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return ::std::result::Result::Err($crate::failed!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("bad thing {0}")]
    struct Bad(u8);

    impl Classify for Bad {
        fn status(&self) -> Status {
            Status::Usage
        }
    }

    fn typed() -> std::result::Result<(), Bad> {
        Err(Bad(7))
    }

    fn passes_on() -> Result<()> {
        typed()?;
        Ok(())
    }

    #[test]
    fn question_mark_keeps_a_tools_own_status() {
        let e = passes_on().unwrap_err();
        assert_eq!(e.status(), Status::Usage);
        assert_eq!(e.to_string(), "bad thing 7");
    }

    #[test]
    fn context_keeps_the_status() {
        let e = typed().context("reading flags").unwrap_err();
        assert_eq!(e.status(), Status::Usage);
        assert_eq!(format!("{e:#}"), "reading flags: bad thing 7");
        assert!(e.downcast_ref::<Bad>().is_some());
    }

    #[test]
    fn nested_in_anyhow_comes_out_with_its_status() {
        let inner = crate::usage!("no such flag");
        let a = anyhow::Error::new(inner).context("outer");
        assert_eq!(Error::from(a).status(), Status::Usage);
        assert_eq!(Error::from(anyhow::anyhow!("x")).status(), Status::Failed);
    }

    #[test]
    fn foreign_errors_and_none_are_failures() {
        let io = Error::from(std::io::Error::other("disk"));
        assert_eq!(io.status(), Status::Failed);
        let none: Option<u8> = None;
        let e = none.context("no value").unwrap_err();
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (Status::Failed, "no value")
        );
    }

    #[test]
    fn macros_say_their_status() {
        fn early() -> Result<u8> {
            crate::bail!("stop {}", 2);
        }
        assert_eq!(crate::usage!("u {}", 1).status(), Status::Usage);
        assert_eq!(crate::failed!("f").status(), Status::Failed);
        let e = early().unwrap_err();
        assert_eq!(
            (e.status(), e.to_string().as_str()),
            (Status::Failed, "stop 2")
        );
    }

    #[test]
    fn status_codes_match_table() {
        assert_eq!(Status::Ok as u8, 0);
        assert_eq!(Status::Failed as u8, 1);
        assert_eq!(Status::Usage as u8, 2);
    }
}
