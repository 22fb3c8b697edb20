//! The local store's validity, asked of the host's real Nix daemon over
//! its socket (`QueryValidPaths`), and the fall-backs to
//! `nix-store --check-validity` when the daemon is not the store in effect
//! or does not answer as one.

use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use assert_cmd::Command;
use lb_common::daemon;
use lb_testkit::{ensure_nix_daemon, scratch_root, NIX_DAEMON_SOCKET};

/// A path nobody has (valid syntax, hash of zeros).
const ABSENT: &str = "/nix/store/00000000000000000000000000000000-lb-copy-absent";

fn lb_copy(root: &Path) -> Command {
    let mut c = Command::from_std(lb_testkit::clean_command(assert_cmd::cargo::cargo_bin(
        "lb-copy",
    )));
    c.arg("--root")
        .arg(root)
        .args(["-v", "--from", "ssh-ng://builder@lbcopy-nowhere.invalid"]);
    c
}

// Each generation's host daemon (2.8: protocol 1.34; 2.26 and 2.34: 1.38,
// with the feature-set exchange) over its socket.
lb_testkit::nix_matrix! {
    fn host_daemon_answers_query_valid_paths(gen) {
        gen.ensure_daemon();
        let root = scratch_root();
        let present = gen.build_local(root.path(), "lb-copy-qvp-present");
        let stream = UnixStream::connect(gen.daemon_socket()).unwrap();
        let mut client = daemon::handshake(stream).unwrap();
        assert_eq!(daemon::version_string(client.info.daemon_version), gen.protocol());
        assert_eq!(client.info.nix_version.as_deref(), Some(gen.version().as_str()));
        assert_eq!(
            client
                .query_valid_paths(&[ABSENT, present.as_str()])
                .unwrap(),
            vec![present.clone()]
        );
        // The connection stays usable: a second question, and an empty one.
        assert!(client.query_valid_paths(&[ABSENT]).unwrap().is_empty());
        let none: [&str; 0] = [];
        assert!(client.query_valid_paths(&none).unwrap().is_empty());
        assert!(client.is_valid_path(&present).unwrap());
    }
}

#[test]
fn host_daemon_refuses_a_path_of_another_store() {
    ensure_nix_daemon();
    let stream = UnixStream::connect(NIX_DAEMON_SOCKET).unwrap();
    let mut client = daemon::handshake(stream).unwrap();
    let e = client
        .query_valid_paths(&["/elsewhere/00000000000000000000000000000000-x"])
        .unwrap_err();
    assert!(matches!(e, daemon::Error::Remote { .. }), "{e:?}");
}

/// With the daemon in effect, no process is started to learn that the
/// paths are here: lb-copy succeeds with no Nix program on PATH.
#[test]
fn present_paths_need_no_nix_process() {
    ensure_nix_daemon();
    let root = scratch_root();
    let r = root.path();
    let present = lb_testkit::build_local(r, "lb-copy-daemon-present");
    let out = lb_copy(r)
        .env("PATH", r.join("no-bin"))
        .env("NIX_DAEMON_SOCKET_PATH", NIX_DAEMON_SOCKET)
        .write_stdin(format!("{present}\n"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{present}\n"));
    assert!(
        err.contains(&format!(
            "the Nix daemon at {NIX_DAEMON_SOCKET} has 1 of 1 paths (0 more not in the store directory)"
        )),
        "{err}"
    );
    assert!(!err.contains("nix-store"), "{err}");
}

/// The daemon's answer decides what is copied: a dry run lists only the
/// absent path, found without nix-store.
#[test]
fn daemon_answer_picks_the_missing_paths() {
    ensure_nix_daemon();
    let root = scratch_root();
    let r = root.path();
    let present = lb_testkit::build_local(r, "lb-copy-daemon-mixed");
    let out = lb_copy(r)
        .arg("-n")
        .write_stdin(format!("{present}\n{ABSENT}\n"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // The absent path is not even asked about.
    assert!(
        err.contains("has 1 of 1 paths (1 more not in the store directory)"),
        "{err}"
    );
    assert!(err.contains(&format!("would copy {ABSENT}")), "{err}");
    assert!(!err.contains(&format!("would copy {present}")), "{err}");
    assert!(!err.contains("running: nix-store"), "{err}");
}

/// Another store in effect (`NIX_REMOTE=local`, or `store` in nix.conf):
/// nix-store answers, the daemon is not asked.
#[test]
fn other_store_in_effect_asks_nix_store() {
    ensure_nix_daemon();
    let root = scratch_root();
    let r = root.path();
    let present = lb_testkit::build_local(r, "lb-copy-nixstore-present");
    let check = |out: std::process::Output| {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{err}");
        assert!(err.contains("running: nix-store --check-validity"), "{err}");
        assert!(!err.contains("the Nix daemon at"), "{err}");
        assert!(err.contains("all 1 paths are already here"), "{err}");
    };
    // Needs write access to the store database, as Nix's local store does:
    // the tests run as root (tests/setup-host.sh).
    check(
        lb_copy(r)
            .env("NIX_REMOTE", "local")
            .write_stdin(format!("{present}\n"))
            .output()
            .unwrap(),
    );
    std::fs::create_dir_all(r.join("etc/nix")).unwrap();
    std::fs::write(
        r.join("etc/nix/nix.conf"),
        "store = unix:///nonexistent/socket\n",
    )
    .unwrap();
    // A daemon store whose socket does not answer: asked, then nix-store
    // (with the real configuration, which nix-store reads).
    let out = lb_copy(r)
        .write_stdin(format!("{present}\n"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("asking the Nix daemon at /nonexistent/socket: cannot connect"),
        "{err}"
    );
    assert!(err.contains("running: nix-store --check-validity"), "{err}");
}

/// Something that is not a daemon on the socket: lb-copy falls back to
/// nix-store and still gets the answer right.
#[test]
fn a_socket_that_is_not_a_daemon_falls_back() {
    ensure_nix_daemon();
    let root = scratch_root();
    let r = root.path();
    let present = lb_testkit::build_local(r, "lb-copy-fake-socket");
    let sock = r.join("fake.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut greeting = [0u8; 16];
        s.read_exact(&mut greeting).unwrap();
        s.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n").unwrap();
    });
    let out = lb_copy(r)
        .env("NIX_DAEMON_SOCKET_PATH", &sock)
        .write_stdin(format!("{present}\n{ABSENT}\n"))
        .arg("-n")
        .output()
        .unwrap();
    server.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("is not a Nix daemon"), "{err}");
    assert!(err.contains("asking nix-store instead"), "{err}");
    assert!(err.contains(&format!("would copy {ABSENT}")), "{err}");
    assert!(!err.contains(&format!("would copy {present}")), "{err}");
}

/// Paths absent from the store directory are missing without a question
/// to the daemon (none is asked here: the socket is a fake that would
/// fail the exchange) nor to nix-store.
#[test]
fn absent_paths_are_missing_without_asking() {
    let root = scratch_root();
    let r = root.path();
    let sock = r.join("silent.sock");
    let _listener = UnixListener::bind(&sock).unwrap();
    let out = lb_copy(r)
        .arg("-n")
        .env("PATH", r.join("no-bin"))
        .env("NIX_DAEMON_SOCKET_PATH", &sock)
        .write_stdin(format!("{ABSENT}\n"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("none of the 1 paths is in the store directory: all are missing"),
        "{err}"
    );
    assert!(err.contains(&format!("would copy {ABSENT}")), "{err}");
    assert!(!err.contains("Nix daemon at"), "{err}");
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("nix --extra-experimental-features nix-command copy"));
}
