//! Messages on stderr, prefixed with the tool's name (`lb-keys: ...`).
//!
//! stdout carries data only; everything for a person goes through here.
//! `error:` and `warning:` are coloured only when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::OnceLock;

#[derive(Debug)]
struct Settings {
    tool: String,
    verbose: u8,
    quiet: bool,
    color: bool,
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Set the verbosity once, at start-up. The tool name comes from `argv[0]`.
pub fn init(global: &crate::cli::Global) {
    let tool = std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|f| f.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "lb".to_owned());
    let _ = SETTINGS.set(Settings {
        tool,
        verbose: global.verbose,
        quiet: global.quiet,
        color: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    });
}

fn settings() -> &'static Settings {
    SETTINGS.get_or_init(|| Settings {
        tool: "lb".to_owned(),
        verbose: 0,
        quiet: false,
        color: false,
    })
}

fn emit(label: Option<(&str, &str)>, msg: &str) {
    let s = settings();
    let mut err = std::io::stderr().lock();
    let label = match label {
        Some((text, colour)) if s.color => format!("\x1b[{colour}m{text}:\x1b[0m "),
        Some((text, _)) => format!("{text}: "),
        None => String::new(),
    };
    let _ = writeln!(err, "{}: {label}{msg}", s.tool);
}

/// A normal progress or result message; hidden by `-q`.
pub fn note(msg: &str) {
    if !settings().quiet {
        emit(None, msg);
    }
}

/// A message shown only with `-v`.
pub fn verbose(msg: &str) {
    if settings().verbose > 0 && !settings().quiet {
        emit(None, msg);
    }
}

/// Something the user should know; hidden by `-q`, which promises nothing
/// on stderr but errors.
pub fn warn(msg: &str) {
    if !settings().quiet {
        emit(Some(("warning", "33")), msg);
    }
}

/// The one line an error is printed as.
pub fn error(msg: &str) {
    emit(Some(("error", "31")), msg);
}

/// True when long waits may draw progress on stderr.
#[must_use]
pub fn progress_allowed() -> bool {
    !settings().quiet && std::io::stderr().is_terminal()
}

/// Print one line of data on stdout. A closed pipe surfaces as an error the
/// shared `main` turns into exit 0.
///
/// # Errors
/// Writing or flushing stdout failed (a closed pipe included).
pub fn out(line: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{line}")?;
    o.flush()
}
