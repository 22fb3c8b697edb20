//! Man pages and shell completions for the six tools, generated from their
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

const SHARED_ENV: &[(&str, &str)] = &[
    (
        "LB_ROOT",
        "Same as --root: a directory treated as / for every system path.",
    ),
    ("LB_NAME", "Same as --name (default linux-builder)."),
    ("LB_USER", "Same as --user (default builder)."),
    ("LB_HOSTNAME", "Same as --hostname (default localhost)."),
    ("LB_PORT", "Same as --port (default 31022)."),
    (
        "LB_KEY",
        "Same as --key (default /etc/nix/builder_ed25519).",
    ),
    (
        "LB_HOST_KEY",
        "Same as --host-key (default: the nixpkgs builder's published host key).",
    ),
    (
        "LB_SYSTEM",
        "Same as --system (default: this machine's architecture with -linux).",
    ),
    ("LB_MAX_JOBS", "Same as --max-jobs (default 4)."),
    ("LB_QUIET", "Same as -q."),
    (
        "LB_PLATFORM",
        "macos or linux: act as on that platform (to print or test the other platform's commands).",
    ),
    ("NO_COLOR", "Never colour messages."),
];

/// The six tools with their hand-written sections.
#[must_use]
pub fn tools() -> Vec<(clap::Command, Extra)> {
    vec![
        (lb_keys::command(), extras::KEYS),
        (lb_vm::command(), extras::VM),
        (lb_sshcfg::command(), extras::SSHCFG),
        (lb_nixconf::command(), extras::NIXCONF),
        (lb_ping::command(), extras::PING),
        (lb_copy::command(), extras::COPY),
    ]
}

mod extras;

fn section(roff: &mut Roff, title: &str) {
    roff.control("SH", [title]);
}

fn render_extra(extra: &Extra) -> Roff {
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
        "lb-keys(1), lb-vm(1), lb-sshcfg(1), lb-nixconf(1), lb-ping(1), lb-copy(1), nix.conf(5), ssh_config(5)",
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
    out.extend_from_slice(render_extra(extra).render().as_bytes());
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
