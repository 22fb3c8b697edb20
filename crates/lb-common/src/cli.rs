//! Flags every tool shares, as clap structs to flatten.

use std::path::PathBuf;

/// `-v`, `-q` and `--root`: accepted by every tool, before or after the
/// subcommand.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Global {
    /// Say more on stderr (repeat for more); shows every command run
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Say nothing on stderr but errors; no progress display
    #[arg(short, long, global = true, env = "LB_QUIET")]
    pub quiet: bool,
    /// Treat DIR as `/` for every system path read or written (a scratch prefix)
    #[arg(long, value_name = "DIR", global = true, env = "LB_ROOT")]
    pub root: Option<PathBuf>,
}

/// `-n/--dry-run` and `--check`, for commands that change things.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct Change {
    /// Show what would change (a diff or the commands) and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Change nothing; exit 1 if a change would be made
    #[arg(long, conflicts_with = "dry_run")]
    pub check: bool,
}

impl Change {
    /// True when nothing may be written.
    #[must_use]
    pub fn read_only(self) -> bool {
        self.dry_run || self.check
    }
}

/// Implemented by each tool's top-level parser so the shared `main` can set
/// up messages before running.
pub trait HasGlobal {
    /// Examples shown in `--help`: (subcommand path, lines); `""` is the
    /// tool itself, `"service"` or `"service install"` a subcommand.
    const EXAMPLES: Examples = &[];

    /// Which builder identity flags each subcommand reads: (subcommand
    /// name, ids as in [`BUILDER_IDS`]). A subcommand listed here shows
    /// only those under [`BUILDER_HEADING`]; the others are still accepted
    /// (a Makefile may pass the same flags, or `LB_*` variables, to every
    /// command) and change nothing. A tool with subcommands lists each.
    const BUILDER_FLAGS: BuilderFlags = &[];

    /// The parsed [`Global`] flags.
    fn global(&self) -> &Global;
}

/// See [`HasGlobal::BUILDER_FLAGS`].
pub type BuilderFlags = &'static [(&'static str, &'static [&'static str])];

/// The ids of the builder identity flags ([`crate::builder::BuilderArgs`]),
/// in their order: `--name`, `--user`, `--hostname`, `--port`, `--key`,
/// `--host-key`, `--system`, `--max-jobs`.
pub const BUILDER_IDS: &[&str] = &[
    "name", "user", "hostname", "port", "key", "host_key", "system", "max_jobs",
];

/// The help heading of `-v`, `-q` and `--root`, which every command takes.
pub const COMMON_HEADING: &str = "Common options";

/// The help heading of the builder's identity flags ([`crate::builder::BuilderArgs`]),
/// apart from each command's own options.
pub const BUILDER_HEADING: &str = "Builder identity (every tool; also LB_* variables)";

/// One subcommand's examples: the subcommand's name (`""` for the tool
/// itself) and the lines shown under "Examples:" in its `--help`.
pub type Examples = &'static [(&'static str, &'static str)];

/// A tool's clap command with the conventions every tool shares applied:
///
/// - a boolean flag read from a variable (`LB_QUIET`, `LB_NO_SUDO`...)
///   takes what a shell user writes: `1`/`0`, `yes`/`no`, `on`/`off`,
///   `true`/`false` (clap's boolish values);
/// - `--help` shows each command's own options first, then the
///   [`COMMON_HEADING`] ones (`-v`, `-q`, `--root`), then the builder's
///   identity under [`BUILDER_HEADING`];
/// - each subcommand named in [`HasGlobal::EXAMPLES`] shows them after its options;
/// - each subcommand named in [`HasGlobal::BUILDER_FLAGS`] shows only the
///   builder flags it reads.
///
/// Each tool's `command()` returns this, so `--help`, the man pages and
/// the parser are one definition.
#[must_use]
pub fn command<C: clap::CommandFactory + HasGlobal>() -> clap::Command {
    let cmd = conventions(C::command(), C::EXAMPLES, "");
    hide_unread_builder_flags(cmd, C::BUILDER_FLAGS)
}

/// Hide, in each subcommand `flags` names, the builder flags it does not
/// read. clap copies a global flag into each subcommand unless the
/// subcommand has its own of that id: each such subcommand gets its own
/// copies of the global flags, in their order (so the headings keep
/// theirs), the unread builder flags hidden (a value given there still
/// reaches the tool as before).
fn hide_unread_builder_flags(mut cmd: clap::Command, flags: BuilderFlags) -> clap::Command {
    if !flags.is_empty() {
        for sub in cmd.get_subcommands() {
            assert!(
                flags.iter().any(|(name, _)| *name == sub.get_name()),
                "{}'s BUILDER_FLAGS does not say which builder flags {} reads",
                cmd.get_name(),
                sub.get_name()
            );
        }
    }
    for (sub, reads) in flags {
        assert!(
            cmd.find_subcommand(sub).is_some(),
            "BUILDER_FLAGS names {sub:?}, which {} does not have",
            cmd.get_name()
        );
        // Every global flag, in its order, so the headings keep theirs.
        let copies: Vec<clap::Arg> = cmd
            .get_arguments()
            .filter(|a| a.is_global_set())
            .map(|a| {
                let id = a.get_id().as_str();
                let unread = BUILDER_IDS.contains(&id) && !reads.contains(&id);
                a.clone().hide(unread)
            })
            .collect();
        cmd = cmd.mut_subcommand(sub, |s| s.args(copies));
    }
    cmd
}

fn conventions(cmd: clap::Command, examples: Examples, path: &str) -> clap::Command {
    use clap::Args;
    let ids = |c: clap::Command| -> Vec<String> {
        c.get_arguments().map(|a| a.get_id().to_string()).collect()
    };
    let common = ids(Global::augment_args(clap::Command::new("common")));
    let builder = ids(crate::builder::BuilderArgs::augment_args(
        clap::Command::new("builder"),
    ));
    let mut cmd = cmd.mut_args(|arg| {
        let id = arg.get_id().as_str();
        let arg = if common.iter().any(|c| c == id) {
            arg.help_heading(COMMON_HEADING)
        } else if builder.iter().any(|b| b == id) {
            arg.help_heading(BUILDER_HEADING)
        } else {
            arg
        };
        let flag = matches!(
            arg.get_action(),
            clap::ArgAction::SetTrue | clap::ArgAction::SetFalse
        );
        if flag && arg.get_env().is_some() {
            arg.value_parser(clap::builder::BoolishValueParser::new())
        } else {
            arg
        }
    });
    if let Some((_, text)) = examples.iter().find(|(name, _)| *name == path) {
        let help = match cmd.get_after_help() {
            Some(before) => format!("{before}\n\n{}", examples_help(text)),
            None => examples_help(text),
        };
        cmd = cmd.after_help(help);
    }
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_owned())
        .collect();
    for name in subs {
        let sub_path = if path.is_empty() {
            name.clone()
        } else {
            format!("{path} {name}")
        };
        cmd = cmd.mut_subcommand(&name, |sub| conventions(sub, examples, &sub_path));
    }
    cmd
}

fn examples_help(text: &str) -> String {
    let mut out = String::from("Examples:\n");
    for line in text.lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// Parses the command line and the `LB_*` variables into `C`.
///
/// # Errors
///
/// The usage error to print, as one line prefixed with the tool's name
/// (`lb-x: invalid value ...`, clap's own "error:" replaced); help and
/// version requests come back as errors too (clap prints those itself, exit
/// 0). A bad value that came from a variable names the variable.
pub fn parse<C>() -> Result<C, ParseError>
where
    C: clap::CommandFactory + clap::FromArgMatches + HasGlobal,
{
    parse_from(
        command::<C>(),
        std::env::args_os(),
        &|name: &std::ffi::OsStr| std::env::var_os(name),
    )
}

/// Why the command line did not parse.
#[derive(Debug)]
pub enum ParseError {
    /// `--help` or `--version`: clap prints it on stdout, exit 0.
    Display(clap::Error),
    /// A usage error: this one line (no trailing newline), exit 2.
    Usage(String),
}

fn parse_from<C, I, T>(
    mut cmd: clap::Command,
    args: I,
    env: &dyn Fn(&std::ffi::OsStr) -> Option<std::ffi::OsString>,
) -> Result<C, ParseError>
where
    C: clap::FromArgMatches,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let tool = cmd.get_name().to_owned();
    let result = cmd
        .try_get_matches_from_mut(args)
        .and_then(|mut m| C::from_arg_matches_mut(&mut m));
    match result {
        Ok(c) => Ok(c),
        Err(e) if !e.use_stderr() => Err(ParseError::Display(e)),
        Err(e) => {
            let line = env_culprit(&cmd, &e, env).unwrap_or_else(|| clap_line(&e));
            Err(ParseError::Usage(format!("{tool}: error: {line}")))
        }
    }
}

/// clap's message as one line of ours: "error: " dropped, its tip kept.
fn clap_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more"));
    let first = lines.next().unwrap_or("bad usage");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let rest: Vec<&str> = lines.collect();
    let mut line = first.to_owned();
    if !rest.is_empty() {
        line.push_str(" (");
        line.push_str(&rest.join("; "));
        line.push(')');
    }
    line.push_str("; see --help");
    line
}

/// When clap refused a value and a variable supplied it, the message that
/// names the variable: `LB_PORT=abc: invalid digit found in string (it
/// stands for --port; unset it or fix it)`.
fn env_culprit(
    cmd: &clap::Command,
    e: &clap::Error,
    env: &dyn Fn(&std::ffi::OsStr) -> Option<std::ffi::OsString>,
) -> Option<String> {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if !matches!(
        e.kind(),
        ErrorKind::InvalidValue | ErrorKind::ValueValidation
    ) {
        return None;
    }
    let refused = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return None,
    };
    let value = match e.get(ContextKind::InvalidValue) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => return None,
    };
    let mut visit = vec![cmd];
    while let Some(c) = visit.pop() {
        for arg in c.get_arguments() {
            let (Some(var), Some(long)) = (arg.get_env(), arg.get_long()) else {
                continue;
            };
            let flag = format!("--{long}");
            let named = refused == flag || refused.starts_with(&format!("{flag} "));
            if !named || env(var).is_none_or(|v| v.to_string_lossy() != value) {
                continue;
            }
            let reason = match e.get(ContextKind::ValidValue) {
                Some(ContextValue::Strings(v)) => format!("expected one of {}", v.join(", ")),
                _ => std::error::Error::source(e)
                    .map_or_else(|| "invalid value".to_owned(), ToString::to_string),
            };
            let var = var.to_string_lossy();
            return Some(format!(
                "{var}={}: {reason} (it stands for {flag}; fix it or unset {var})",
                crate::text::excerpt_n(&value, 60)
            ));
        }
        visit.extend(c.get_subcommands());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn builder_ids_are_the_builder_args() {
        use clap::Args;
        let cmd = crate::builder::BuilderArgs::augment_args(clap::Command::new("b"));
        let ids: Vec<&str> = cmd.get_arguments().map(|a| a.get_id().as_str()).collect();
        assert_eq!(ids, BUILDER_IDS);
    }

    /// A tool as small as can be: a variable-backed flag, a typed value, a subcommand.
    #[derive(Debug, clap::Parser)]
    #[command(name = "lb-t")]
    struct T {
        #[command(flatten)]
        global: Global,
        #[command(flatten)]
        builder: crate::builder::BuilderArgs,
        #[arg(long, env = "LB_T_BOOLISH_FLAG")]
        flag: bool,
        #[arg(long, env = "LB_T_BAD_COUNT")]
        count: Option<u16>,
        #[arg(long, env = "LB_T_WINS_COUNT")]
        count2: Option<u16>,
        #[command(subcommand)]
        sub: Option<Sub>,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        /// Do it
        Go {
            #[arg(long, env = "LB_T_BAD_MODE", value_parser = ["fast", "slow"])]
            mode: Option<String>,
        },
    }

    impl HasGlobal for T {
        const EXAMPLES: Examples = &[("", "lb-t go"), ("go", "lb-t go --mode fast")];
        fn global(&self) -> &Global {
            &self.global
        }
    }

    /// `T`'s shape, its subcommand reading two builder flags.
    #[derive(Debug, clap::Parser)]
    #[command(name = "lb-u")]
    struct U {
        #[command(flatten)]
        global: Global,
        #[command(flatten)]
        builder: crate::builder::BuilderArgs,
        #[command(subcommand)]
        sub: Sub,
    }

    impl HasGlobal for U {
        const EXAMPLES: Examples = &[("go", "lb-u go")];
        const BUILDER_FLAGS: BuilderFlags = &[("go", &["name", "port"])];
        fn global(&self) -> &Global {
            &self.global
        }
    }

    #[test]
    fn a_subcommand_shows_the_builder_flags_it_reads_and_takes_all() {
        let mut cmd = command::<U>();
        cmd.build();
        let help = cmd
            .find_subcommand_mut("go")
            .unwrap()
            .render_help()
            .to_string();
        let common = help.find(COMMON_HEADING).unwrap();
        let builder = help.find(BUILDER_HEADING).unwrap();
        assert!(common < builder, "{help}");
        assert!(
            help[builder..].contains("--name") && help[builder..].contains("--port"),
            "{help}"
        );
        for hidden in [
            "--user",
            "--hostname",
            "--key ",
            "--host-key",
            "--system",
            "--max-jobs",
        ] {
            assert!(!help.contains(hidden), "{hidden}: {help}");
        }
        // A hidden flag still parses, before or after the subcommand.
        for args in [
            &["go", "--user", "u2", "--name", "n2"][..],
            &["--user", "u2", "go", "--name", "n2"],
        ] {
            let line = std::iter::once("lb-u").chain(args.iter().copied());
            let u: U = parse_from(command::<U>(), line, &|_: &OsStr| None).unwrap();
            assert_eq!(
                (u.builder.user.as_str(), u.builder.name.as_str()),
                ("u2", "n2")
            );
        }
    }

    #[test]
    #[should_panic(expected = "does not say which builder flags go reads")]
    fn a_subcommand_missing_from_builder_flags_is_a_bug() {
        #[derive(Debug, clap::Parser)]
        struct V {
            #[command(flatten)]
            builder: crate::builder::BuilderArgs,
            #[command(subcommand)]
            sub: Sub,
        }
        impl HasGlobal for V {
            const BUILDER_FLAGS: BuilderFlags = &[("other", &[])];
            fn global(&self) -> &Global {
                unreachable!()
            }
        }
        let _ = command::<V>();
    }

    /// Parses with variables set in this process: one parse at a time (a
    /// parse reads every variable of `T`), and only these tests use the
    /// `LB_T_*` names.
    fn parse_with(args: &[&str], vars: &[(&str, &str)]) -> Result<T, ParseError> {
        static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _guard = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for (k, v) in vars {
            std::env::set_var(k, v);
        }
        let r = parse_from(
            command::<T>(),
            std::iter::once("lb-t").chain(args.iter().copied()),
            &|name: &OsStr| std::env::var_os(name),
        );
        for (k, _) in vars {
            std::env::remove_var(k);
        }
        r
    }

    fn usage(r: Result<T, ParseError>) -> String {
        match r {
            Err(ParseError::Usage(line)) => line,
            other => panic!("expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn boolish_values_for_variable_backed_flags() {
        for v in ["1", "yes", "on", "true", "TRUE"] {
            assert!(
                parse_with(&[], &[("LB_T_BOOLISH_FLAG", v)]).unwrap().flag,
                "{v}"
            );
        }
        for v in ["0", "no", "off", "false"] {
            assert!(
                !parse_with(&[], &[("LB_T_BOOLISH_FLAG", v)]).unwrap().flag,
                "{v}"
            );
        }
    }

    #[test]
    fn a_bad_variable_is_named() {
        let line = usage(parse_with(&[], &[("LB_T_BAD_COUNT", "abc")]));
        assert!(
            line.starts_with("lb-t: error: LB_T_BAD_COUNT=abc: "),
            "{line}"
        );
        assert!(
            line.contains("--count") && line.contains("unset LB_T_BAD_COUNT"),
            "{line}"
        );
        let line = usage(parse_with(&["go"], &[("LB_T_BAD_MODE", "warp")]));
        assert!(
            line.contains("LB_T_BAD_MODE=warp: expected one of fast, slow"),
            "{line}"
        );
    }

    #[test]
    fn the_flag_wins_over_a_bad_variable_and_is_blamed_itself() {
        let line = usage(parse_with(
            &["--count2", "x"],
            &[("LB_T_WINS_COUNT", "abc")],
        ));
        assert!(!line.contains("LB_T_WINS_COUNT"), "{line}");
        assert!(
            line.starts_with("lb-t: error: invalid value 'x' for '--count2 <COUNT2>'"),
            "{line}"
        );
    }

    #[test]
    fn clap_errors_are_one_line_with_our_prefix() {
        let line = usage(parse_with(&["--bogus"], &[]));
        assert!(
            line.starts_with("lb-t: error: unexpected argument '--bogus'"),
            "{line}"
        );
        assert!(
            !line.contains('\n') && line.ends_with("see --help"),
            "{line}"
        );
    }

    #[test]
    fn help_is_not_an_error() {
        assert!(matches!(
            parse_with(&["--help"], &[]),
            Err(ParseError::Display(_))
        ));
    }

    #[test]
    fn headings_and_examples() {
        let mut cmd = command::<T>();
        let help = cmd.render_help().to_string();
        let own = help.find("--flag").unwrap();
        let common = help.find(COMMON_HEADING).unwrap();
        let builder = help.find(BUILDER_HEADING).unwrap();
        assert!(own < common && common < builder, "{help}");
        assert!(help[common..builder].contains("--root"), "{help}");
        assert!(help[builder..].contains("--port"), "{help}");
        assert!(help.trim_end().ends_with("Examples:\n  lb-t go"), "{help}");
        let go = cmd.find_subcommand_mut("go").unwrap();
        assert!(go
            .render_help()
            .to_string()
            .contains("Examples:\n  lb-t go --mode fast"));
    }
}
