//! lb-vm's command line without booting anything: bad input, config,
//! service files, dry-run. Everything in a scratch --root and workdir.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use predicates::prelude::*;

struct Scratch {
    root: tempfile::TempDir,
    work: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

fn scratch() -> Scratch {
    let root = lb_testkit::scratch_root();
    let work = root.path().join("work");
    std::fs::create_dir_all(work.join("keys")).unwrap();
    // Stand-ins: these tests never boot them.
    let kernel = work.join("bzImage");
    let initrd = work.join("initrd");
    std::fs::write(&kernel, "k").unwrap();
    std::fs::write(&initrd, "i").unwrap();
    Scratch {
        root,
        work,
        kernel,
        initrd,
    }
}

fn lb_vm(s: &Scratch) -> Command {
    let mut c = Command::cargo_bin("lb-vm").unwrap();
    c.env_remove("LB_PLATFORM")
        .arg("--root")
        .arg(s.root.path())
        .arg("--workdir")
        .arg(rel(&s.work, s.root.path()))
        .current_dir(s.root.path());
    c
}

/// A relative workdir: used as given even under --root.
fn rel(p: &Path, base: &Path) -> PathBuf {
    p.strip_prefix(base).unwrap().to_path_buf()
}

fn boot_args(s: &Scratch) -> Vec<String> {
    vec![
        "--kernel".into(),
        s.kernel.display().to_string(),
        "--initrd".into(),
        s.initrd.display().to_string(),
    ]
}

#[test]
fn bad_input_exits_2_naming_it() {
    let s = scratch();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![
                "start".into(),
                "--kernel".into(),
                "/no/such/bzImage".into(),
                "--initrd".into(),
                s.initrd.display().to_string(),
            ],
            "--kernel /no/such/bzImage: no such file",
        ),
        (
            vec![
                "start".into(),
                "--kernel".into(),
                s.kernel.display().to_string(),
                "--initrd".into(),
                "/no/such/initrd".into(),
            ],
            "--initrd /no/such/initrd: no such file",
        ),
        (
            vec![
                "start".into(),
                "--runner".into(),
                "/no/such/run-nixos-vm".into(),
            ],
            "--runner /no/such/run-nixos-vm: no such file",
        ),
        (vec!["start".into()], "nothing to boot"),
        (
            [
                vec!["start".into(), "--memory".into(), "128".into()],
                boot_args(&s),
            ]
            .concat(),
            "--memory 128: below 256 MiB",
        ),
        (
            [
                vec!["start".into(), "--port".into(), "70000".into()],
                boot_args(&s),
            ]
            .concat(),
            "70000",
        ),
        (
            [
                vec!["start".into(), "--port".into(), "0".into()],
                boot_args(&s),
            ]
            .concat(),
            "--port",
        ),
        (
            [
                vec!["start".into(), "--accel".into(), "xen".into()],
                boot_args(&s),
            ]
            .concat(),
            "xen",
        ),
        (vec!["service".into()], "--launchd"),
    ];
    for (args, needle) in cases {
        lb_vm(&s)
            .args(&args)
            .assert()
            .code(2)
            .stderr(predicate::str::contains(needle))
            .stdout("");
    }
    // Nothing was started or written.
    let files: Vec<_> = std::fs::read_dir(&s.work)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut files = files;
    files.sort();
    assert_eq!(files, ["bzImage", "initrd", "keys"]);
}

#[test]
fn missing_keys_dir_is_bad_input() {
    let s = scratch();
    lb_vm(&s)
        .args(["start", "--accel", "tcg", "--keys", "/no/such/keys"])
        // A free port: the default 31022 may be another builder's.
        .args(["--port", &lb_testkit::free_port().to_string()])
        .args(boot_args(&s))
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--keys /no/such/keys: no such directory",
        ));
}

#[test]
fn no_qemu_names_the_package() {
    let s = scratch();
    // A PATH with everything but QEMU: an empty directory.
    let empty = s.root.path().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    lb_vm(&s)
        .env("PATH", &empty)
        .args([
            "start",
            "--accel",
            "tcg",
            "--port",
            &lb_testkit::free_port().to_string(),
        ])
        .args(boot_args(&s))
        .assert()
        .code(1)
        .stderr(predicate::str::contains("qemu-system-x86_64: not found"))
        .stderr(predicate::str::contains("apt-get install qemu-system-x86"));
    assert!(!s.work.join("linux-builder.pid").exists());
}

#[test]
fn config_json_shows_the_exact_command() {
    let s = scratch();
    let out = lb_vm(&s)
        .args([
            "config", "--json", "--accel", "tcg", "--memory", "1024", "--cpus", "2",
        ])
        .args(["--port", "31555", "--name", "b2"])
        .args(boot_args(&s))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let work = std::fs::canonicalize(&s.work).unwrap();
    assert_eq!(v["pid_file"], work.join("b2.pid").display().to_string());
    assert_eq!(v["disk"], work.join("b2.qcow2").display().to_string());
    assert_eq!(v["keys"], work.join("keys").display().to_string());
    assert_eq!(v["accel"], "tcg");
    assert_eq!(v["address"], "127.0.0.1:31555");
    let cmd = v["command"].as_str().unwrap();
    assert!(
        cmd.starts_with(
            "qemu-system-x86_64 -name b2 -machine pc -accel tcg -cpu max -m 1024 -smp 2 "
        ),
        "{cmd}"
    );
    assert!(cmd.contains("hostfwd=tcp:127.0.0.1:31555-:22"), "{cmd}");
    let args: Vec<&str> = v["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[args.len() - 2], "-serial");
    // Config changes nothing.
    assert!(!work.join("b2.qcow2").exists());
}

#[test]
fn config_on_a_mac_uses_hvf() {
    let s = scratch();
    let out = lb_vm(&s)
        .env("LB_PLATFORM", "macos")
        .args(["config", "--json"])
        .args(boot_args(&s))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["accel"], "hvf");
    assert_eq!(v["accel_settled"], true);
    let cmd = v["command"].as_str().unwrap();
    assert!(
        cmd.starts_with(
            "qemu-system-x86_64 -name linux-builder -machine q35 -accel hvf -accel tcg -cpu max -m 3072 "
        ),
        "{cmd}"
    );
}

#[test]
fn start_dry_run_prints_commands_and_starts_nothing() {
    let s = scratch();
    let port = lb_testkit::free_port();
    let out = lb_vm(&s)
        .args([
            "start",
            "-n",
            "--accel",
            "tcg",
            "--ephemeral",
            "--port",
            &port.to_string(),
        ])
        .args(boot_args(&s))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("rm -f "), "{text}");
    assert!(
        lines[1].starts_with("qemu-img create -q -f qcow2 "),
        "{text}"
    );
    assert!(lines[1].ends_with("linux-builder.qcow2 20480M"), "{text}");
    assert!(lines[2].starts_with("qemu-system-x86_64 "), "{text}");
    assert!(!s.work.join("linux-builder.qcow2").exists());
    assert!(!s.work.join("linux-builder.pid").exists());
    // --check: not running, so start would change something.
    lb_vm(&s)
        .args(["start", "--check", "--port", &port.to_string()])
        .args(boot_args(&s))
        .assert()
        .code(1);
}

#[test]
fn stopped_vm_status_and_stop() {
    let s = scratch();
    lb_vm(&s).args(["stop"]).assert().success();
    lb_vm(&s).args(["stop"]).assert().success();
    let out = lb_vm(&s)
        .args(["status", "--json"])
        .assert()
        .code(1)
        .get_output()
        .stdout
        .clone();
    let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(v["running"], false);
    assert_eq!(v["ready"], false);
    lb_vm(&s)
        .args(["wait", "--timeout", "1"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("not running"));
}

#[test]
fn stale_pid_file_of_another_process_is_cleaned() {
    let s = scratch();
    // A live process that is not QEMU: pid reuse must not fool status.
    let pid_file = s.work.join("linux-builder.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    std::fs::write(s.work.join("linux-builder.state.json"), "{}").unwrap();
    lb_vm(&s)
        .args(["status"])
        .assert()
        .code(1)
        .stdout(predicate::str::contains("running: no"))
        .stdout(predicate::str::contains(format!(
            "stale pid: {}",
            std::process::id()
        )));
    assert!(!pid_file.exists());
    assert!(!s.work.join("linux-builder.state.json").exists());
}

#[test]
fn service_files() {
    let s = scratch();
    let plist = lb_vm(&s)
        .env("LB_PLATFORM", "macos")
        .args(["service", "--launchd", "--memory", "4096"])
        .args(boot_args(&s))
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let plist = String::from_utf8(plist).unwrap();
    // Not nix-darwin's label: neither would overwrite the other.
    assert!(
        plist.contains("<string>org.lb-vm.linux-builder</string>"),
        "{plist}"
    );
    assert!(
        plist.contains("<string>/bin/wait4path /nix/store &amp;&amp; exec "),
        "{plist}"
    );
    assert!(
        plist.contains(" start --foreground --name linux-builder "),
        "{plist}"
    );
    assert!(plist.contains(" --memory 4096 "), "{plist}");
    assert!(
        plist.contains(
            "<key>KeepAlive</key>\n  <dict>\n    <key>SuccessfulExit</key>\n    <false/>"
        ),
        "{plist}"
    );
    // TMPDIR is the builder's own directory beside its files, not /tmp
    // (macOS cleans /tmp after 3 days).
    let work = std::fs::canonicalize(&s.work).unwrap();
    assert!(
        plist.contains(&format!(
            "<key>TMPDIR</key>\n    <string>{}/linux-builder.tmp</string>",
            work.display()
        )),
        "{plist}"
    );

    // --install writes into the root; a second run changes nothing.
    lb_vm(&s)
        .args(["service", "--systemd", "--install"])
        .args(boot_args(&s))
        .assert()
        .success()
        .stderr(predicate::str::contains("wrote"));
    let unit = s
        .root
        .path()
        .join("etc/systemd/system/linux-builder.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("Restart=on-failure"), "{text}");
    assert!(
        text.contains(" start --foreground --name linux-builder "),
        "{text}"
    );
    lb_vm(&s)
        .args(["service", "--systemd", "--install", "--check"])
        .args(boot_args(&s))
        .assert()
        .success();
    lb_vm(&s)
        .args(["service", "--launchd", "--install", "--check"])
        .args(boot_args(&s))
        .assert()
        .code(1);
    lb_vm(&s)
        .args(["service", "--launchd", "--install", "-n"])
        .args(boot_args(&s))
        .assert()
        .success()
        .stdout(
            predicate::str::contains("+<key>RunAtLoad</key>")
                .or(predicate::str::contains("+  <key>RunAtLoad</key>")),
        );
    assert!(!s
        .root
        .path()
        .join("Library/LaunchDaemons/org.lb-vm.linux-builder.plist")
        .exists());
}

#[test]
fn port_taken_names_the_process() {
    let s = scratch();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    lb_vm(&s)
        .args(["start", "--accel", "tcg", "--port", &port.to_string()])
        .args(boot_args(&s))
        .assert()
        .code(1)
        .stderr(predicate::str::contains(format!(
            "port {port} on 127.0.0.1 is taken by pid {} (",
            std::process::id()
        )));
    assert!(!s.work.join("linux-builder.pid").exists());
    drop(listener);
}
