//! Man pages and shell completions for the seven tools, generated from their
//! clap definitions plus hand-written EXIT STATUS, ENVIRONMENT, FILES and
//! EXAMPLES sections. `tests/drift.rs` fails when the committed files in
//! `man/` differ from what the code generates.

use std::path::{Path, PathBuf};

use clap_complete::Shell;
use roff::{bold, roman, Roff};

/// A generated file, relative to the man directory.
#[derive(Debug)]
pub struct Generated {
    pub path: PathBuf,
    pub contents: Vec<u8>,
}

/// Hand-written parts of one tool's page.
#[derive(Debug)]
pub struct Extra {
    /// Tool-specific exit status notes, after the shared table.
    pub exit_notes: &'static [&'static str],
    /// (variable, meaning) beyond the shared LB_* identity variables.
    pub environment: &'static [(&'static str, &'static str)],
    /// (path, meaning).
    pub files: &'static [(&'static str, &'static str)],
    /// (what, command lines).
    pub examples: &'static [(&'static str, &'static str)],
}

/// The workspace's top directory.
#[must_use]
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Variables every tool reads beyond its flags' own.
const SHARED_ENV: &[(&str, &str)] = &[
    (
        "LB_PLATFORM",
        "macos or linux: act as on that platform (to print or test the other platform's commands).",
    ),
    ("NO_COLOR", "Never colour messages."),
];

/// Every flag's environment variable, with the flag's help: read from the
/// clap definitions so the page cannot drift from the code.
fn flag_environment(cmd: &clap::Command) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut visit = vec![cmd];
    while let Some(c) = visit.pop() {
        for arg in c.get_arguments() {
            if let Some(env) = arg.get_env() {
                let name = env.to_string_lossy().into_owned();
                if out.iter().all(|(n, _)| *n != name) {
                    let flag = arg
                        .get_long()
                        .map_or_else(|| arg.get_id().to_string(), |l| format!("--{l}"));
                    let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                    out.push((name, format!("Same as {flag}: {help}")));
                }
            }
        }
        visit.extend(c.get_subcommands());
    }
    out.sort();
    out
}

/// The seven tools with their hand-written sections.
#[must_use]
pub fn tools() -> Vec<(clap::Command, Extra)> {
    vec![
        (lb_keys::command(), extras::KEYS),
        (lb_vm::command(), extras::VM),
        (lb_sshcfg::command(), extras::SSHCFG),
        (lb_nixconf::command(), extras::NIXCONF),
        (lb_ping::command(), extras::PING),
        (lb_copy::command(), extras::COPY),
        (lb_doctor::command(), extras::DOCTOR),
    ]
}

mod extras;

fn section(roff: &mut Roff, title: &str) {
    roff.control("SH", [title]);
}

fn render_extra(cmd: &clap::Command, extra: &Extra) -> Roff {
    let mut r = Roff::new();
    section(&mut r, "EXIT STATUS");
    for (code, meaning) in [
        ("0", "Done, including \"already as wanted\" (nothing needed changing)."),
        ("1", "The operation failed, or the answer is negative (a check found problems, a ping failed)."),
        ("2", "Bad usage or bad input."),
    ] {
        r.control("TP", []).text([bold(code)]).text([roman(meaning)]);
    }
    for note in extra.exit_notes {
        r.control("PP", []).text([roman(*note)]);
    }
    section(&mut r, "ENVIRONMENT");
    for (var, meaning) in flag_environment(cmd) {
        r.control("TP", [])
            .text([bold(var.as_str())])
            .text([roman(meaning.as_str())]);
    }
    for (var, meaning) in SHARED_ENV.iter().chain(extra.environment) {
        r.control("TP", [])
            .text([bold(*var)])
            .text([roman(*meaning)]);
    }
    if !extra.files.is_empty() {
        section(&mut r, "FILES");
        for (path, meaning) in extra.files {
            r.control("TP", [])
                .text([bold(*path)])
                .text([roman(*meaning)]);
        }
    }
    if !extra.examples.is_empty() {
        section(&mut r, "EXAMPLES");
        for (what, lines) in extra.examples {
            r.control("PP", []).text([roman(*what)]);
            r.control("PP", []).control("nf", []).control("RS", ["4"]);
            for line in lines.lines() {
                r.text([roman(line)]);
            }
            r.control("RE", []).control("fi", []);
        }
    }
    section(&mut r, "SEE ALSO");
    r.text([roman(
        "lb-keys(1), lb-vm(1), lb-sshcfg(1), lb-nixconf(1), lb-ping(1), lb-copy(1), lb-doctor(1), nix.conf(5), ssh_config(5)",
    )]);
    r
}

/// The man page of one tool.
pub fn man_page(cmd: &clap::Command, extra: &Extra) -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section("1")
        .manual("linux-builder tools");
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out)?;
        for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
            subcommand_details(&mut out, cmd.get_name(), sub);
        }
    }
    out.extend_from_slice(render_extra(cmd, extra).render().as_bytes());
    Ok(out)
}

/// One subsection per subcommand: its synopsis line, long help and options.
fn subcommand_details(out: &mut Vec<u8>, tool: &str, sub: &clap::Command) {
    let mut r = Roff::new();
    r.control("SS", [format!("{tool} {}", sub.get_name()).as_str()]);
    if let Some(about) = sub.get_long_about().or_else(|| sub.get_about()) {
        for para in about.to_string().split("\n\n") {
            r.control("PP", []).text([roman(para)]);
        }
    }
    for arg in sub
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !a.is_global_set())
    {
        let mut name = match (arg.get_short(), arg.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            (None, None) => arg.get_id().to_string().to_uppercase(),
        };
        if arg.get_action().takes_values() && arg.get_long().is_some() {
            if let Some(v) = arg.get_value_names().and_then(|v| v.first()) {
                name = format!("{name} {v}");
            }
        }
        r.control("TP", []).text([bold(name.as_str())]);
        let help = arg
            .get_long_help()
            .or_else(|| arg.get_help())
            .map(ToString::to_string)
            .unwrap_or_default();
        r.text([roman(help.as_str())]);
    }
    // Its examples (lb_common::cli puts them after the options of --help).
    if let Some(after) = sub.get_after_help() {
        let text = after.to_string();
        if let Some(examples) = text.split("Examples:\n").nth(1) {
            r.control("PP", []).text([bold("Examples:")]);
            r.control("PP", []).control("nf", []).control("RS", ["4"]);
            for line in examples.lines() {
                r.text([roman(line.trim_start())]);
            }
            r.control("RE", []).control("fi", []);
        }
    }
    out.extend_from_slice(r.render().as_bytes());
}

/// Every generated file: `lb-X.1` and `completions/{bash,zsh,fish}/...`.
pub fn generate() -> std::io::Result<Vec<Generated>> {
    let mut files = Vec::new();
    for (cmd, extra) in tools() {
        let name = cmd.get_name().to_owned();
        files.push(Generated {
            path: PathBuf::from(format!("{name}.1")),
            contents: man_page(&cmd, &extra)?,
        });
        for (shell, dir, file) in [
            (Shell::Bash, "bash", name.clone()),
            (Shell::Zsh, "zsh", format!("_{name}")),
            (Shell::Fish, "fish", format!("{name}.fish")),
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut cmd.clone(), name.as_str(), &mut buf);
            files.push(Generated {
                path: PathBuf::from("completions").join(dir).join(file),
                contents: buf,
            });
        }
    }
    Ok(files)
}
