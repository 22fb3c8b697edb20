//! `check` resolves the alias with the options Nix passes to ssh
//! (`NIX_SSHOPTS`): an option there that changes what ssh uses is a
//! problem named as coming from NIX_SSHOPTS.

use lb_testkit::Scenario;

fn port_problem(out: &str) -> Option<String> {
    out.lines()
        .find(|l| l.starts_with("Port:"))
        .map(str::to_owned)
}

#[test]
fn check_sees_the_port_nix_sshopts_gives_ssh() {
    lb_testkit::require_program("ssh", "openssh-client");
    let s = Scenario::new("lb-sshcfg");
    s.run(["-q", "install"]).success();
    let plain = s.run(["check"]);
    assert_eq!(port_problem(&plain.stdout()), None);
    let o = s
        .run_env(
            [("NIX_SSHOPTS", "-o BatchMode=yes -o Port=2222")],
            ["check"],
        )
        .code(1);
    let line = port_problem(&o.stdout()).expect("a Port problem");
    assert!(line.contains("ssh uses 2222"), "{line}");
    assert!(line.contains("set by NIX_SSHOPTS="), "{line}");
    // Its own -F: ssh reads that file, not the root's, so the alias is gone.
    s.run_env([("NIX_SSHOPTS", "-F /dev/null")], ["check"])
        .code(1)
        .stdout_has("Port: ssh uses 22 for linux-builder")
        .stdout_has("makes ssh read its own -F file");
}
