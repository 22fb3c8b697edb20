//! CLI tests in a scratch root: input shapes (fixtures captured from Nix
//! 2.8 and hand-written newer ones), bad input, the chosen source store,
//! paths already here, out-links, an unreachable builder.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use lb_testkit::{ensure_nix_daemon, scratch_root, NIX_TEST_OPTIONS};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn lb_copy(root: &Path) -> Command {
    let mut c = Command::cargo_bin("lb-copy").unwrap();
    c.arg("--root")
        .arg(root)
        .env_remove("NIX_CONF_DIR")
        .env_remove("NIX_SSHOPTS")
        .env_remove("NIX_STORE_DIR")
        .env_remove("LB_COPY_FROM");
    c
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Dry-run over a fixture: the command lists every path the parser found
/// (the fixtures' paths are not in this store: their test deleted them).
fn dry_run(root: &Path, args: &[&str]) -> String {
    ensure_nix_daemon();
    let out = lb_copy(root)
        .args(["-n", "--from", "ssh-ng://builder@lbcopy-test"])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

#[test]
fn captured_nix_2_8_shapes() {
    let root = scratch_root();
    let r = root.path();
    insta::assert_snapshot!(dry_run(r, &[fixture("nix-2.8-build-one.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(r, &[fixture("nix-2.8-build-multi.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/4v957viji88aglh02c4s24h78vr5i3r3-lb-fixture-multi-dev /nix/store/qdxd9wvhc4az5929329yyzwjsnfg4h2v-lb-fixture-multi-doc /nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(r, &["--output", "dev", "--output", "out", fixture("nix-2.8-build-multi.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/4v957viji88aglh02c4s24h78vr5i3r3-lb-fixture-multi-dev /nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(r, &[fixture("nix-2.8-build-store-path.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(r, &[fixture("nix-2.8-path-info.json").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    insta::assert_snapshot!(dry_run(r, &[fixture("nix-2.8-path-info.txt").to_str().unwrap()]), @"nix --extra-experimental-features nix-command copy --from ssh-ng://builder@lbcopy-test /nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
}

#[test]
fn newer_shapes_from_stdin() {
    ensure_nix_daemon();
    let root = scratch_root();
    for input in [
        // 2.12+ statistics, 2.18+ bare string
        r#"[{"drvPath":"/nix/store/bbx6yc4wrcriqnh4jgnkiiq3p2xry440-lb-fixture-one.drv","outputs":{"out":"/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one"},"startTime":1700000000,"stopTime":1700000001,"cpuUser":0.1,"cpuSystem":0.0},"/nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi"]"#,
        // 2.19+ path-info keyed by path
        r#"{"/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one":{"narSize":136},"/nix/store/bzfc1xc3zi97glpamy7y29z210aba4l4-lb-fixture-multi":null}"#,
    ] {
        let out = lb_copy(root.path())
            .args(["-n", "--from", "ssh-ng://b@h"])
            .write_stdin(input)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        let line = stdout(&out);
        assert!(
            line.contains("-lb-fixture-one") && line.contains("-lb-fixture-multi"),
            "{line}"
        );
        assert!(
            stderr(&out).contains("2 of 2 paths missing here"),
            "{}",
            stderr(&out)
        );
    }
}

#[test]
fn malformed_json_exits_2_with_line_and_column() {
    let root = scratch_root();
    lb_copy(root.path())
        .write_stdin("[{\"drvPath\": \"x\",\n  \"outputs\": {\"out\" \"/nix/store/x\"}}]\n")
        .assert()
        .code(2)
        .stdout("")
        .stderr("lb-copy: error: stdin:2:21: malformed JSON: expected `:`; pass the output of `nix build --json`, `nix path-info --json` or store paths one per line\n");
}

#[test]
fn other_shapes_and_foreign_paths_exit_2() {
    let root = scratch_root();
    lb_copy(root.path())
        .write_stdin("{\"outputs\": 3}")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("`outputs` is not an object"));
    lb_copy(root.path())
        .write_stdin("[{\"path\": \"/tmp/result\"}]")
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "\"/tmp/result\" is not a store path: it is outside the store /nix/store",
        ));
    lb_copy(root.path())
        .write_stdin("./result\n")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("outside the store"));
    // NIX_STORE_DIR moves the store.
    lb_copy(root.path())
        .env("NIX_STORE_DIR", "/my/store")
        .write_stdin("/nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one\n")
        .assert()
        .code(2)
        .stderr(predicates::str::contains("outside the store /my/store"));
    lb_copy(root.path())
        .args(["--output", "man"])
        .arg(fixture("nix-2.8-build-multi.json"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("--output man: no derivation in the input has that output (outputs seen: dev, doc, out)"));
    lb_copy(root.path())
        .arg(root.path().join("absent.json"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains("absent.json: cannot read"));
}

#[test]
fn empty_input_is_nothing_to_do() {
    let root = scratch_root();
    for input in ["", "\n\n", "[]"] {
        lb_copy(root.path())
            .write_stdin(input)
            .assert()
            .success()
            .stdout("")
            .stderr("lb-copy: nothing to copy: the input names no store paths\n");
    }
}

#[test]
fn default_source_is_first_ssh_ng_builder_with_its_keys() {
    ensure_nix_daemon();
    let root = scratch_root();
    let r = root.path();
    std::fs::create_dir_all(r.join("etc/nix")).unwrap();
    std::fs::create_dir_all(r.join("etc/ssh")).unwrap();
    std::fs::write(r.join("etc/ssh/ssh_config"), "Include /dev/null\n").unwrap();
    std::fs::write(
        r.join("etc/nix/nix.conf"),
        "builders = ssh://legacy x86_64-linux ; ssh-ng://builder@lb-alias x86_64-linux /etc/nix/k 4 1 - - c3NoLWVkMjU1MTkgQUFBQQo=\n",
    )
    .unwrap();
    let canon = std::fs::canonicalize(r).unwrap();
    let out = lb_copy(r)
        .arg("-n")
        .arg(fixture("nix-2.8-build-one.json"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out).replace(&canon.display().to_string(), "ROOT");
    insta::assert_snapshot!(line, @"NIX_SSHOPTS='-F ROOT/etc/ssh/ssh_config' nix --extra-experimental-features nix-command copy --from 'ssh-ng://builder@lb-alias?ssh-key=/etc/nix/k&base64-ssh-public-host-key=c3NoLWVkMjU1MTkgQUFBQQo=' /nix/store/f4gkzwzbf61pchg9nbg5h5dhl4gycjvn-lb-fixture-one");
    // By name, and the fallback when nothing is configured.
    let by_name = lb_copy(r)
        .args(["-n", "--from", "lb-alias"])
        .arg(fixture("nix-2.8-build-one.json"))
        .output()
        .unwrap();
    assert_eq!(stdout(&by_name), stdout(&out));
    lb_copy(r)
        .args(["-n", "--from", "nope"])
        .arg(fixture("nix-2.8-build-one.json"))
        .assert()
        .code(2)
        .stderr(predicates::str::contains(
            "--from nope: no builder of that name",
        ));
    let empty = scratch_root();
    let out = lb_copy(empty.path())
        .arg("-n")
        .arg(fixture("nix-2.8-build-one.json"))
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("copy --from ssh-ng://builder@linux-builder /nix/store/"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn paths_already_here_are_not_copied_and_get_out_links() {
    ensure_nix_daemon();
    let _ = NIX_TEST_OPTIONS;
    let root = scratch_root();
    let r = root.path();
    let p = lb_testkit::build_local(r, "lb-copy-cli-present");
    let input = format!(
        "[{{\"drvPath\":\"/nix/store/bbx6yc4wrcriqnh4jgnkiiq3p2xry440-x.drv\",\"outputs\":{{\"out\":\"{p}\"}}}},\"{p}\"]"
    );
    // The source is unreachable: nothing may try to connect.
    let out = lb_copy(r)
        .args([
            "--from",
            "ssh-ng://builder@lbcopy-nowhere.invalid",
            "--out-link",
        ])
        .arg(r.join("res"))
        .write_stdin(input.clone())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{p}\n"));
    assert!(stderr(&out).contains("all 1 paths are already here; nothing copied"));
    for link in ["res", "res-1"] {
        assert_eq!(
            std::fs::read_link(r.join(link)).unwrap(),
            Path::new(&p),
            "{link}"
        );
    }
    let json = lb_copy(r)
        .args([
            "--json",
            "--from",
            "ssh-ng://builder@lbcopy-nowhere.invalid",
        ])
        .write_stdin(input)
        .output()
        .unwrap();
    assert!(stderr(&json).contains("no GC root"), "{}", stderr(&json));
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v[0]["copied"]["out"], false);
    assert_eq!(v[1], serde_json::json!({"path": p, "copied": false}));
}

#[test]
fn unreachable_builder_exits_1_pointing_to_lb_ping() {
    ensure_nix_daemon();
    let root = scratch_root();
    let r = root.path();
    let port = lb_testkit::free_port();
    let cfg = r.join("ssh_config");
    std::fs::write(
        &cfg,
        format!("Host lbcopy-down\n  Hostname 127.0.0.1\n  Port {port}\n  BatchMode yes\n"),
    )
    .unwrap();
    // A path nobody has.
    let missing = "/nix/store/00000000000000000000000000000000-lb-copy-absent";
    lb_copy(r)
        .args(["--from", "ssh-ng://builder@lbcopy-down"])
        .env("NIX_SSHOPTS", format!("-F {}", cfg.display()))
        .write_stdin(missing)
        .assert()
        .code(1)
        .stdout("")
        .stderr(predicates::str::contains(
            "error: cannot reach the builder store ssh-ng://builder@lbcopy-down: ssh: connect to host 127.0.0.1",
        ))
        .stderr(predicates::str::contains("check the builder with `lb-ping ssh-ng://builder@lbcopy-down`"));
}

#[test]
fn harness_sshd_refusing_the_key_is_unreachable() {
    // A real sshd that lets nobody in: Nix's connection fails at auth.
    ensure_nix_daemon();
    let sshd = lb_testkit::Sshd::start(None);
    let root = scratch_root();
    let key = lb_testkit::keygen(root.path(), "id");
    let cfg = sshd.ssh_config("lbcopy-sshd", &key.private);
    lb_copy(root.path())
        .args(["--from", "ssh-ng://builder@lbcopy-sshd"])
        .env("NIX_SSHOPTS", format!("-F {}", cfg.display()))
        .write_stdin("/nix/store/00000000000000000000000000000000-lb-copy-absent\n")
        .assert()
        .code(1)
        .stderr(predicates::str::contains("Permission denied"))
        .stderr(predicates::str::contains(
            "cannot reach the builder store ssh-ng://builder@lbcopy-sshd",
        ));
}

/// `lb-copy` fed by a producer that would write `bytes` of `byte`: how it
/// ended and how much the producer managed to write before lb-copy hung up.
fn fed_endlessly(byte: u8, bytes: u64, args: &[&str]) -> (std::process::Output, u64) {
    use std::io::Write as _;
    let root = scratch_root();
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("lb-copy"))
        .arg("--root")
        .arg(root.path())
        .args(args)
        .env_remove("NIX_CONF_DIR")
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
