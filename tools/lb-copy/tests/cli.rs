//! CLI tests in a scratch root: input shapes (fixtures captured from Nix
//! 2.8 and hand-written newer ones), bad input, the chosen source store,
//! paths already here, out-links, an unreachable builder.

use std::path::{Path, PathBuf};
use std::process::Command;

use lb_testkit::{ensure_nix_daemon, Scenario, NIX_TEST_OPTIONS};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn scratch() -> Scenario {
    Scenario::new("lb-copy")
}

/// `lb-copy --root ROOT`, to add arguments to.
fn lb_copy(s: &Scenario) -> Command {
    s.command()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Dry-run over a fixture: the command lists every path the parser found
/// (the fixtures' paths are not in this store: their test deleted them).
fn dry_run(s: &Scenario, args: &[&str]) -> String {
    ensure_nix_daemon();
    let out = s
        .outcome(
            lb_copy(s)
                .args(["-n", "--from", "ssh-ng://builder@lbcopy-test"])
                .args(args),
        )
        .success();
    out.stdout()
}

#[test]
fn captured_nix_2_8_shapes() {
    let s = scratch();
    insta::assert_snapshot!(dry_run(&s, &[fixture("nix-2.8-build-one.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(&s, &[fixture("nix-2.8-build-multi.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/4v957viji88aglh02c4s24h78vr5i3r3-lb-fixture-multi-dev /nix/store/qdxd9wvhc4az5929329yyzwjsnfg4h2v-lb-fixture-multi-doc /nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(&s, &["--output", "dev", "--output", "out", fixture("nix-2.8-build-multi.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/4v957viji88aglh02c4s24h78vr5i3r3-lb-fixture-multi-dev /nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(&s, &[fixture("nix-2.8-build-store-path.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(&s, &[fixture("nix-2.8-path-info.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(&s, &[fixture("nix-2.8-path-info.txt").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
}

#[test]
fn dry_run_json_says_what_would_be_copied() {
    ensure_nix_daemon();
    let s = scratch();
    let out = s
        .outcome(
            lb_copy(&s)
                .args(["-n", "--json", "--from", "ssh-ng://builder@lbcopy-test"])
                .arg(fixture("nix-2.8-build-one.json")),
        )
        .success()
        .stdout();
    // JSON only: no command line among it.
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert!(!out.contains("nix --extra-experimental-features"), "{out}");
    // The fixture's path is not in this store: it would be copied.
    assert_eq!(v[0]["copied"]["out"], true, "{v}");
    assert_eq!(
        v[0]["outputs"]["out"],
        "/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one"
    );
}

#[test]
fn newer_shapes_from_stdin() {
    ensure_nix_daemon();
    let s = scratch();
    for input in [
        // 2.12+ statistics, 2.18+ bare string
        r#"[{"drvPath":"/nix/store/bbx6yc4wrcriqnh4jgnkiiq3p2xry440-lb-fixture-one.drv","outputs":{"out":"/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one"},"startTime":1700000000,"stopTime":1700000001,"cpuUser":0.1,"cpuSystem":0.0},"/nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi"]"#,
        // 2.19+ path-info keyed by path
        r#"{"/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one":{"narSize":136},"/nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi":null}"#,
    ] {
        let out = s
            .outcome_with_stdin(lb_copy(&s).args(["-n", "--from", "ssh-ng://b@h"]), input)
            .success();
        let line = out.stdout();
        assert!(
            line.contains("-lb-fixture-one") && line.contains("-lb-fixture-multi"),
            "{line}"
        );
        assert!(
            out.stderr().contains("2 of 2 paths missing here"),
            "{}",
            out.stderr()
        );
    }
}

#[test]
fn malformed_json_exits_2_with_line_and_column() {
    let s = scratch();
    s.outcome_with_stdin(&mut lb_copy(&s), "[{\"drvPath\": \"x\",\n  \"outputs\": {\"out\" \"/nix/store/x\"}}]\n")
        .code(2)
        .stdout_empty()
        .stderr_is("lb-copy: error: stdin:2:21: malformed JSON: expected `:`; pass the output of `nix build --json`, `nix path-info --json` or store paths one per line\n");
}

#[test]
fn other_shapes_and_foreign_paths_exit_2() {
    let s = scratch();
    s.outcome_with_stdin(&mut lb_copy(&s), "{\"outputs\": 3}")
        .code(2)
        .stderr_has("`outputs` is not an object");
    s.outcome_with_stdin(&mut lb_copy(&s), "[{\"path\": \"/tmp/result\"}]")
        .code(2)
        .stderr_has("\"/tmp/result\" is not a store path: it is outside the store /nix/store");
    s.outcome_with_stdin(&mut lb_copy(&s), "./result\n")
        .code(2)
        .stderr_has("outside the store");
    // NIX_STORE_DIR moves the store.
    s.outcome_with_stdin(
        lb_copy(&s).env("NIX_STORE_DIR", "/my/store"),
        "/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one\n",
    )
    .code(2)
    .stderr_has("outside the store /my/store");
    s.outcome(
        lb_copy(&s)
            .args(["--output", "man"])
            .arg(fixture("nix-2.8-build-multi.json")),
    )
    .code(2)
    .stderr_has(
        "--output man: no derivation in the input has that output (outputs seen: dev, doc, out)",
    );
    s.outcome(lb_copy(&s).arg(s.root().join("absent.json")))
        .code(2)
        .stderr_has("absent.json: cannot read");
}

#[test]
fn empty_input_is_nothing_to_do() {
    let s = scratch();
    for input in ["", "\n\n", "[]"] {
        s.outcome_with_stdin(&mut lb_copy(&s), input)
            .success()
            .stdout_empty()
            .stderr_is("lb-copy: nothing to copy: the input names no store paths\n");
    }
}

#[test]
fn default_source_is_first_ssh_ng_builder_with_its_keys() {
    ensure_nix_daemon();
    let s = scratch();
    let r = s.root();
    std::fs::create_dir_all(r.join("etc/nix")).unwrap();
    std::fs::create_dir_all(r.join("etc/ssh")).unwrap();
    std::fs::write(r.join("etc/ssh/ssh_config"), "Include /dev/null\n").unwrap();
    std::fs::write(
        r.join("etc/nix/nix.conf"),
        "builders = ssh://legacy x86_64-linux ; ssh-ng://builder@lb-alias x86_64-linux /etc/nix/k 4 1 - - c3NoLWVkMjU1MTkgQUFBQQo=\n",
    )
    .unwrap();
    let canon = std::fs::canonicalize(r).unwrap();
    let out = s
        .outcome(lb_copy(&s).arg("-n").arg(fixture("nix-2.8-build-one.json")))
        .success();
    let line = out.stdout().replace(&canon.display().to_string(), "ROOT");
    insta::assert_snapshot!(line, @"NIX_SSHOPTS='-F ROOT/etc/ssh/ssh_config' nix --extra-experimental-features nix-command copy --from 'ssh-ng://builder@lb-alias?ssh-key=/etc/nix/k&base64-ssh-public-host-key=c3NoLWVkMjU1MTkgQUFBQQo=' /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    // By name, and the fallback when nothing is configured.
    let by_name = s.outcome(
        lb_copy(&s)
            .args(["-n", "--from", "lb-alias"])
            .arg(fixture("nix-2.8-build-one.json")),
    );
    assert_eq!(by_name.stdout(), out.stdout());
    s.outcome(
        lb_copy(&s)
            .args(["-n", "--from", "nope"])
            .arg(fixture("nix-2.8-build-one.json")),
    )
    .code(2)
    .stderr_has("--from nope: no builder of that name");
    let empty = scratch();
    let out = empty.outcome(
        lb_copy(&empty)
            .arg("-n")
            .arg(fixture("nix-2.8-build-one.json")),
    );
    assert!(
        out.stdout()
            .contains("copy --from ssh-ng://builder@linux-builder /nix/store/"),
        "{}",
        out.stdout()
    );
}

#[test]
fn paths_already_here_are_not_copied_and_get_out_links() {
    ensure_nix_daemon();
    let _ = NIX_TEST_OPTIONS;
    let s = scratch();
    let r = s.root();
    let p = lb_testkit::build_local(r, "lb-copy-cli-present");
    let input = format!(
        "[{{\"drvPath\":\"/nix/store/bbx6yc4wrcriqnh4jgnkiiq3p2xry440-x.drv\",\"outputs\":{{\"out\":\"{p}\"}}}},\"{p}\"]"
    );
    // The source is unreachable: nothing may try to connect.
    let out = s
        .outcome_with_stdin(
            lb_copy(&s)
                .args([
                    "--from",
                    "ssh-ng://builder@lbcopy-nowhere.invalid",
                    "--out-link",
                ])
                .arg(r.join("res")),
            input.clone(),
        )
        .success();
    assert_eq!(out.stdout(), format!("{p}\n"));
    assert!(out
        .stderr()
        .contains("all 1 paths are already here; nothing copied"));
    for link in ["res", "res-1"] {
        assert_eq!(
            std::fs::read_link(r.join(link)).unwrap(),
            Path::new(&p),
            "{link}"
        );
    }
    let json = s.outcome_with_stdin(
        lb_copy(&s).args([
            "--json",
            "--from",
            "ssh-ng://builder@lbcopy-nowhere.invalid",
        ]),
        input,
    );
    assert!(json.stderr().contains("no GC root"), "{}", json.stderr());
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["copied"]["out"], false);
    assert_eq!(v[1], serde_json::json!({"path": p, "copied": false}));
}

#[test]
fn unreachable_builder_exits_1_pointing_to_lb_ping() {
    ensure_nix_daemon();
    let s = scratch();
    let r = s.root();
    let port = lb_testkit::free_port();
    let cfg = r.join("ssh_config");
    std::fs::write(
        &cfg,
        format!("Host lbcopy-down\n  Hostname 127.0.0.1\n  Port {port}\n  BatchMode yes\n"),
    )
    .unwrap();
    // A path nobody has.
    let missing = "/nix/store/00000000000000000000000000000000-lb-copy-absent";
    s.outcome_with_stdin(lb_copy(&s)
        .args(["--from", "ssh-ng://builder@lbcopy-down"])
        .env("NIX_SSHOPTS", format!("-F {}", cfg.display())), missing)
        .code(1)
        .stdout_empty()
        .stderr_has("error: cannot reach the builder store ssh-ng://builder@lbcopy-down: ssh: connect to host 127.0.0.1")
        .stderr_has("check the builder with `lb-ping ssh-ng://builder@lbcopy-down`");
}

#[test]
fn harness_sshd_refusing_the_key_is_unreachable() {
    // A real sshd that lets nobody in: Nix's connection fails at auth.
    ensure_nix_daemon();
    let sshd = lb_testkit::Sshd::start(None);
    let s = scratch();
    let key = lb_testkit::keygen(s.root(), "id");
    let cfg = sshd.ssh_config("lbcopy-sshd", &key.private);
    s.outcome_with_stdin(
        lb_copy(&s)
            .args(["--from", "ssh-ng://builder@lbcopy-sshd"])
            .env("NIX_SSHOPTS", format!("-F {}", cfg.display())),
        "/nix/store/00000000000000000000000000000000-lb-copy-absent\n",
    )
    .code(1)
    .stderr_has("Permission denied")
    .stderr_has("cannot reach the builder store ssh-ng://builder@lbcopy-sshd");
}

/// `lb-copy` fed by a producer that would write `bytes` of `byte`: how it
/// ended and how much the producer managed to write before lb-copy hung up.
fn fed_endlessly(byte: u8, bytes: u64, args: &[&str]) -> (std::process::Output, u64) {
    use std::io::Write as _;
    let s = scratch();
    let mut child = lb_copy(&s)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let chunk = vec![byte; 1 << 16];
        let mut sent = 0u64;
        while sent < bytes {
            if stdin.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len() as u64;
        }
        sent
    });
    let out = child.wait_with_output().unwrap();
    (out, writer.join().unwrap())
}

#[test]
fn a_gigabyte_of_brackets_fails_at_the_start_without_reading_it_all() {
    let (out, sent) = fed_endlessly(b'[', 1 << 30, &["-n"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("lb-copy: error: stdin:1:"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("recursion limit"), "{}", stderr(&out));
    // lb-copy stopped reading at once: the pipe filled and broke long
    // before the gigabyte (the old reader took 980 MB first).
    assert!(sent < 16 << 20, "the producer wrote {sent} bytes");
}

#[test]
fn endless_nul_bytes_are_refused_early() {
    let (out, sent) = fed_endlessly(0, 1 << 30, &["-n"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("longer than"), "{}", stderr(&out));
    assert!(sent < 16 << 20, "the producer wrote {sent} bytes");
}
