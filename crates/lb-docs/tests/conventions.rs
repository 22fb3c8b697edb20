//! The conventions every tool keeps, checked over every tool and every
//! subcommand from their clap definitions (one table: `lb_docs::tools()`),
//! by running the built binaries. A new tool or subcommand is covered
//! without a line here.

use std::path::{Path, PathBuf};
use std::process::Output;

fn bin_dir() -> PathBuf {
    lb_testkit::tool_bin_dir()
}

/// Every subcommand path of every tool: `["lb-vm", "service"]`, the tool
/// itself as `["lb-vm"]`, clap's `help` left out.
fn every_command() -> Vec<(Vec<String>, clap::Command)> {
    let mut out = Vec::new();
    for (mut cmd, _) in lb_docs::tools() {
        cmd.build();
        let mut stack = vec![(vec![cmd.get_name().to_owned()], cmd)];
        while let Some((path, c)) = stack.pop() {
            for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
                let mut p = path.clone();
                p.push(sub.get_name().to_owned());
                stack.push((p, sub.clone()));
            }
            out.push((path, c));
        }
    }
    out
}

/// Runs `path[0] path[1..] args` with no LB_* or NIX_* variable of the
/// caller's, and a scratch --root.
fn run(bin: &Path, path: &[String], root: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut c = lb_testkit::clean_command(bin.join(&path[0]));
    c.arg("--root").arg(root).args(&path[1..]).args(args);
    c.envs(vars.iter().copied());
    c.stdin(std::process::Stdio::null());
    c.output().unwrap()
}

/// Whether `arg`'s own parser takes `value` from a variable, as clap
/// parses a variable (a flag's value can come only from one): the arg
/// alone in a command of its own, read from a variable of this test's.
fn takes(arg: &clap::Arg, value: &str) -> bool {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let var = format!(
        "LB_DOCS_PROBE_{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    // Only this test binary reads LB_DOCS_PROBE_*; children never see them.
    std::env::set_var(&var, value);
    let var: &'static str = Box::leak(var.into_boxed_str());
    let probe = clap::Command::new("probe").arg(
        clap::Arg::new("probe")
            .long("probe")
            .action(arg.get_action().clone())
            .value_parser(arg.get_value_parser().clone())
            .env(var),
    );
    let ok = probe.try_get_matches_from(["probe"]).is_ok();
    std::env::remove_var(var);
    ok
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Bad usage: exit 2 and exactly one line on stderr, `TOOL: error: ...`,
/// nothing on stdout.
fn assert_usage_line(o: &Output, tool: &str, what: &str) -> String {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{what}: exit status; stderr: {err}"
    );
    assert_eq!(
        err.lines().count(),
        1,
        "{what}: one line on stderr, got:\n{err}"
    );
    assert!(
        err.starts_with(&format!("{tool}: error: ")),
        "{what}: prefix: {err}"
    );
    assert!(o.stdout.is_empty(), "{what}: nothing on stdout");
    err
}

#[test]
fn an_unknown_flag_is_one_prefixed_line_with_status_2() {
    let bin = bin_dir();
    let root = tempfile::tempdir().unwrap();
    for (path, _) in every_command() {
        let what = path.join(" ");
        let o = run(&bin, &path, root.path(), &["--no-such-flag"], &[]);
        let err = assert_usage_line(&o, &path[0], &what);
        assert!(
            err.contains("--no-such-flag"),
            "{what}: names the flag: {err}"
        );
    }
}

#[test]
fn a_missing_root_is_named_with_what_to_do() {
    let bin = bin_dir();
    for (path, _) in every_command()
        .into_iter()
        .filter(|(_, c)| c.get_subcommands().next().is_none())
    {
        let what = path.join(" ");
        let o = run(&bin, &path, Path::new("/nonexistent/lb-root"), &[], &[]);
        // A subcommand with required arguments stops at those first; that
        // is one usage line too.
        let err = assert_usage_line(&o, &path[0], &what);
        if !err.contains("required") {
            assert!(err.contains("--root /nonexistent/lb-root"), "{what}: {err}");
        }
    }
}

/// Each variable with a typed value (a number, a choice, a boolean): set
/// to a value its parser refuses, the tool exits 2 with one line that
/// names the variable, not only the flag.
#[test]
fn a_bad_variable_is_named() {
    let bin = bin_dir();
    let root = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for (path, cmd) in every_command() {
        for arg in cmd.get_arguments() {
            let Some(var) = arg.get_env().map(|v| v.to_string_lossy().into_owned()) else {
                continue;
            };
            let bad = "not-a-value";
            if takes(arg, bad) {
                continue; // any text is a value (a name, a path)
            }
            let what = format!("{} with {var}={bad}", path.join(" "));
            let o = run(&bin, &path, root.path(), &[], &[(var.as_str(), bad)]);
            let err = assert_usage_line(&o, &path[0], &what);
            if err.contains("required") {
                continue; // clap stopped at a missing argument first
            }
            assert!(err.contains(&format!("{var}={bad}")), "{what}: {err}");
            checked += 1;
        }
    }
    // LB_PORT, LB_MAX_JOBS, LB_QUIET... in every tool.
    assert!(checked >= 7 * 3, "only {checked} variables checked");
}

/// Each boolean flag read from a variable takes what shells write:
/// `1`, `yes`, `on`, `true` and their opposites; nothing else.
#[test]
fn boolean_variables_are_boolish() {
    let mut checked = 0;
    for (path, cmd) in every_command() {
        for arg in cmd.get_arguments() {
            let flag = matches!(arg.get_action(), clap::ArgAction::SetTrue);
            let (true, Some(_)) = (flag, arg.get_env()) else {
                continue;
            };
            for v in ["1", "yes", "on", "true", "0", "no", "off", "false"] {
                assert!(
                    takes(arg, v),
                    "{} --{}: refuses {v}",
                    path.join(" "),
                    arg.get_id()
                );
            }
            assert!(
                !takes(arg, "maybe"),
                "{} --{}: takes maybe",
                path.join(" "),
                arg.get_id()
            );
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} boolean variables checked");
}

/// Every `--help` shows an example, the command's own options apart from
/// the common ones and the builder's identity.
#[test]
fn every_help_has_examples_and_headings() {
    for (path, mut cmd) in every_command() {
        let what = path.join(" ");
        let help = cmd.render_help().to_string();
        assert!(
            help.contains("\nExamples:\n  "),
            "{what}: no example:\n{help}"
        );
        let ex = &help[help.find("\nExamples:\n").unwrap()..];
        assert!(
            ex.contains(&path[0]),
            "{what}: the example does not run {}",
            path[0]
        );
        if let Some(common) = help.find(&format!("\n{}:\n", lb_common::cli::COMMON_HEADING)) {
            assert!(
                help[common..].contains("--root"),
                "{what}: --root under {}",
                lb_common::cli::COMMON_HEADING
            );
            if let Some(b) = help.find(&format!("\n{}:\n", lb_common::cli::BUILDER_HEADING)) {
                assert!(
                    b > common,
                    "{what}: builder identity after the common options"
                );
                // The builder flags it shows, all under that heading.
                let shown: Vec<String> = cmd
                    .get_arguments()
                    .filter(|a| {
                        !a.is_hide_set()
                            && lb_common::cli::BUILDER_IDS.contains(&a.get_id().as_str())
                    })
                    .map(|a| format!("      --{} ", a.get_long().unwrap()))
                    .collect();
                assert!(!shown.is_empty(), "{what}: an empty builder heading");
                for flag in &shown {
                    assert!(help[b..].contains(flag.as_str()), "{what}: {flag}");
                    assert!(
                        !help[..b].contains(flag.as_str()),
                        "{what}: {flag} under its heading"
                    );
                }
            }
        } else {
            panic!(
                "{what}: no {} heading:\n{help}",
                lb_common::cli::COMMON_HEADING
            );
        }
    }
}

/// Every command with `--json` prints JSON on stdout (nothing else), or
/// fails with one error line; run in an empty scratch root, where
/// each reports its (absent) state or refuses with a usage error.
#[test]
fn every_json_output_parses() {
    let bin = bin_dir();
    let mut checked = 0;
    for (path, cmd) in every_command() {
        if !cmd.get_arguments().any(|a| a.get_long() == Some("json")) {
            continue;
        }
        // With -n too where the command changes things: JSON still, no diff.
        let dry = cmd.get_arguments().any(|a| a.get_long() == Some("dry-run"));
        for flags in [&["--json"][..], &["-n", "--json"]] {
            if flags.len() == 2 && !dry {
                continue;
            }
            checked += json_parses(&bin, &path, flags);
        }
    }
    // Checks, status, config, show, pubkey-less runs...: most of them.
    assert!(checked >= 8, "only {checked} --json outputs parsed");
}

/// One run of `path FLAGS` in an empty scratch root: 1 when it printed
/// JSON, 0 when it refused (a usage error, or one error line).
fn json_parses(bin: &Path, path: &[String], flags: &[&str]) -> usize {
    let root = tempfile::tempdir().unwrap();
    let what = format!("{} {}", path.join(" "), flags.join(" "));
    let o = run(
        bin,
        path,
        root.path(),
        flags,
        &[("LB_VM_WORKDIR", root.path().to_str().unwrap())],
    );
    if o.status.code() == Some(2) {
        return 0; // bad usage here (a required input): nothing to report
    }
    let out = String::from_utf8_lossy(&o.stdout);
    if out.trim().is_empty() {
        // A failure (nothing installed to report): one error line.
        assert_ne!(
            o.status.code(),
            Some(0),
            "{what}: exit 0 and nothing on stdout"
        );
        assert!(stderr(&o).contains("error: "), "{what}: {}", stderr(&o));
        return 0;
    }
    let values: Result<Vec<serde_json::Value>, _> = serde_json::Deserializer::from_str(&out)
        .into_iter()
        .collect();
    let values = values.unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {out}"));
    assert!(!values.is_empty(), "{what}: {out}");
    1
}

/// A builder flag a subcommand's `--help` hides is one it does not read:
/// given a value other than its default, the subcommand prints and exits
/// exactly as without it (each run in a new empty scratch root, `-n`
/// where the subcommand changes things).
#[test]
fn hidden_builder_flags_change_nothing() {
    let other: &[(&str, &str)] = &[
        ("name", "other-builder"),
        ("user", "someone"),
        ("hostname", "example.invalid"),
        ("port", "2222"),
        ("key", "/etc/nix/other_ed25519"),
        (
            "host_key",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl",
        ),
        ("system", "aarch64-linux"),
        ("max_jobs", "7"),
    ];
    assert_eq!(
        other.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        lb_common::cli::BUILDER_IDS
    );
    let bin = bin_dir();
    let mut compared = 0;
    for (path, cmd) in every_command() {
        let hidden: Vec<&clap::Arg> = cmd
            .get_arguments()
            .filter(|a| {
                a.is_hide_set() && lb_common::cli::BUILDER_IDS.contains(&a.get_id().as_str())
            })
            .collect();
        let dry: &[&str] = if cmd.get_arguments().any(|a| a.get_long() == Some("dry-run")) {
            &["-n"]
        } else {
            &[]
        };
        let outcome = |extra: &[&str]| {
            let root = tempfile::tempdir().unwrap();
            let mut args = dry.to_vec();
            args.extend_from_slice(extra);
            let o = run(
                &bin,
                &path,
                root.path(),
                &args,
                &[("LB_VM_WORKDIR", root.path().to_str().unwrap())],
            );
            let text = |b: &[u8]| {
                String::from_utf8_lossy(b).replace(root.path().to_str().unwrap(), "ROOT")
            };
            (o.status.code(), text(&o.stdout), text(&o.stderr))
        };
        let plain = outcome(&[]);
        for arg in hidden {
            let id = arg.get_id().as_str();
            let value = other.iter().find(|(i, _)| *i == id).unwrap().1;
            let flag = format!("--{}", arg.get_long().unwrap());
            assert_eq!(
                outcome(&[&flag, value]),
                plain,
                "{} {flag} {value}: hidden in its --help, yet it changes what the command does",
                path.join(" ")
            );
            compared += 1;
        }
    }
    assert!(compared >= 100, "only {compared} hidden flags compared");
}
