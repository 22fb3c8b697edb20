//! lb-ping's command line in a scratch root: bad usage and bad
//! configuration exit 2 with one line naming the input.

use lb_testkit::{Scenario, NO_ARGS};

fn scratch() -> Scenario {
    Scenario::new("lb-ping")
}

fn write_conf(s: &Scenario, text: &str) {
    s.write("etc/nix/nix.conf", text);
}

#[test]
fn no_builder_configured_is_usage() {
    let s = scratch();
    s.run(NO_ARGS)
        .code(2)
        .stdout_empty()
        .stderr_has("no ssh-ng:// builder in")
        .stderr_has("lb-nixconf install");
}

#[test]
fn legacy_ssh_builders_are_skipped_with_a_warning() {
    let s = scratch();
    write_conf(&s, "builders = ssh://builder@old x86_64-linux\n");
    s.run(NO_ARGS)
        .code(2)
        .stderr_has("skipping ssh://builder@old: lb-ping speaks ssh-ng:// only");
}

#[test]
fn other_schemes_and_bad_names_are_usage() {
    let s = scratch();
    s.run(["ssh://builder@x"])
        .code(2)
        .stderr_has("ssh://builder@x: lb-ping speaks ssh-ng:// only");
    s.run(["a b"]).code(2);
    // A URI without a host, or with one ssh would read as an option.
    for uri in ["ssh-ng://", "ssh-ng://a@", "ssh-ng://-oProxyCommand=x"] {
        s.run([uri]).code(2).stderr_has("no usable host");
    }
}

#[test]
fn bad_host_key_in_the_builders_line_is_usage() {
    let s = scratch();
    write_conf(
        &s,
        "builders = ssh-ng://lb x86_64-linux - 1 1 - - notbase64!!\n",
    );
    s.run(NO_ARGS)
        .code(2)
        .stderr_has("nix.conf:1:")
        .stderr_has("notbase64!!");
}

#[test]
fn timeout_must_be_positive() {
    let s = scratch();
    s.run(["--timeout", "0", "x"])
        .code(2)
        .stderr_has("--timeout");
}

#[test]
fn json_and_explain_conflict() {
    let s = scratch();
    s.run(["--json", "--explain", "x"]).code(2);
}

#[test]
fn help_names_every_flag() {
    let s = scratch();
    let help = s.outcome(s.bare().arg("--help")).stdout();
    for flag in ["--timeout", "--json", "--explain", "--root", "NAME|URI"] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}
