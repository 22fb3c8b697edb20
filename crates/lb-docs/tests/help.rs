//! The `--help` of every tool and every subcommand, snapshot-tested: a
//! change to a flag, a help line, a heading or an example shows up here
//! as a reviewed diff (`cargo insta review`).

/// Every (tool, subcommand path) with its rendered help, as a user sees it.
fn every_help() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (cmd, _) in lb_docs::tools() {
        let mut cmd = cmd.term_width(100);
        cmd.build();
        let mut stack = vec![(cmd.get_name().to_owned(), cmd)];
        while let Some((path, mut c)) = stack.pop() {
            out.push((path.clone(), c.render_long_help().to_string()));
            for sub in c.get_subcommands().filter(|s| s.get_name() != "help") {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_help_matches_its_snapshot() {
    // The environment shows in help (`[env: LB_PORT=31023]`), and the
    // Makefile exports LB_NAME, LB_PORT and LB_MAX_JOBS to `make test`:
    // render it as an unset environment would. This binary holds this one
    // test, so nothing else reads the environment meanwhile.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("LB_") {
            std::env::remove_var(k);
        }
    }
    let helps = every_help();
    assert!(helps.len() >= 30, "found only {} commands", helps.len());
    for (path, help) in helps {
        insta::assert_snapshot!(path.replace(' ', "__"), help);
    }
}
