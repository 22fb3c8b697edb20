//! lb-vm's command line without booting anything: bad input, config,
//! service files, dry-run. Everything in a scratch --root and workdir.

use std::path::PathBuf;
use std::process::Command;

use lb_testkit::Scenario;

/// lb-vm's scratch: the root, and in the work directory its own working
/// directory `vm` (given relative: used as given even under --root)
/// holding `keys` and stand-in boot files.
fn scratch() -> Scenario {
    let s = Scenario::new("lb-vm");
    std::fs::create_dir_all(s.vm_dir().join("keys")).unwrap();
    // Stand-ins: these tests never boot them.
    std::fs::write(s.kernel(), "k").unwrap();
    std::fs::write(s.initrd(), "i").unwrap();
    s
}

/// Where lb-vm's files are, in a scenario.
trait VmScenario {
    fn vm_dir(&self) -> PathBuf;
    fn kernel(&self) -> PathBuf;
    fn initrd(&self) -> PathBuf;
}

impl VmScenario for Scenario {
    fn vm_dir(&self) -> PathBuf {
        self.work().join(WORKDIR)
    }

    fn kernel(&self) -> PathBuf {
        self.vm_dir().join("bzImage")
    }

    fn initrd(&self) -> PathBuf {
        self.vm_dir().join("initrd")
    }
}

/// The working directory, relative to the scenario's work directory.
const WORKDIR: &str = "vm";

/// `lb-vm --root ROOT --workdir vm`, to add arguments to.
fn lb_vm(s: &Scenario) -> Command {
    let mut c = s.command();
    c.args(["--workdir", WORKDIR]);
    c
}

fn boot_args(s: &Scenario) -> Vec<String> {
    vec![
        "--kernel".into(),
        s.kernel().display().to_string(),
        "--initrd".into(),
        s.initrd().display().to_string(),
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
                s.initrd().display().to_string(),
            ],
            "--kernel /no/such/bzImage: no such file",
        ),
        (
            vec![
                "start".into(),
                "--kernel".into(),
                s.kernel().display().to_string(),
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
        s.outcome(lb_vm(&s).args(&args))
            .code(2)
            .stderr_has(needle)
            .stdout_empty();
    }
    // Nothing was started or written.
    let files: Vec<_> = std::fs::read_dir(s.vm_dir())
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
    s.outcome(
        lb_vm(&s)
            .args(["start", "--accel", "tcg", "--keys", "/no/such/keys"])
            // A free port: the default 31022 may be another builder's.
            .args(["--port", &lb_testkit::free_port().to_string()])
            .args(boot_args(&s)),
    )
    .code(2)
    .stderr_has("--keys /no/such/keys: no such directory");
}

#[test]
fn no_qemu_names_the_package() {
    let s = scratch();
    // A PATH with everything but QEMU: an empty directory.
    let empty = s.root().join("empty-bin");
    std::fs::create_dir(&empty).unwrap();
    s.outcome(
        lb_vm(&s)
            .env("PATH", &empty)
            .args([
                "start",
                "--accel",
                "tcg",
                "--port",
                &lb_testkit::free_port().to_string(),
            ])
            .args(boot_args(&s)),
    )
    .code(1)
    .stderr_has("qemu-system-x86_64: not found")
    .stderr_has("apt-get install qemu-system-x86");
    assert!(!s.vm_dir().join("linux-builder.pid").exists());
}

#[test]
fn config_json_shows_the_exact_command() {
    let s = scratch();
    let out = s
        .outcome(
            lb_vm(&s)
                .args([
                    "config", "--json", "--accel", "tcg", "--memory", "1024", "--cpus", "2",
                ])
                .args(["--port", "31555", "--name", "b2"])
                .args(boot_args(&s)),
        )
        .success()
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let work = std::fs::canonicalize(s.vm_dir()).unwrap();
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
    let out = s
        .outcome(
            lb_vm(&s)
                .env("LB_PLATFORM", "macos")
                .args(["config", "--json"])
                .args(boot_args(&s)),
        )
        .success()
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
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
    let out = s
        .outcome(
            lb_vm(&s)
                .args([
                    "start",
                    "-n",
                    "--accel",
                    "tcg",
                    "--ephemeral",
                    "--port",
                    &port.to_string(),
                ])
                .args(boot_args(&s)),
        )
        .success()
        .stdout();
    let text = out;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("rm -f "), "{text}");
    assert!(
        lines[1].starts_with("qemu-img create -q -f qcow2 "),
        "{text}"
    );
    assert!(lines[1].ends_with("linux-builder.qcow2 20480M"), "{text}");
    assert!(lines[2].starts_with("qemu-system-x86_64 "), "{text}");
    assert!(!s.vm_dir().join("linux-builder.qcow2").exists());
    assert!(!s.vm_dir().join("linux-builder.pid").exists());
    // --check: not running, so start would change something.
    s.outcome(
        lb_vm(&s)
            .args(["start", "--check", "--port", &port.to_string()])
            .args(boot_args(&s)),
    )
    .code(1);
}

#[test]
fn stopped_vm_status_and_stop() {
    let s = scratch();
    s.outcome(lb_vm(&s).args(["stop"])).success();
    s.outcome(lb_vm(&s).args(["stop"])).success();
    let out = s
        .outcome(lb_vm(&s).args(["status", "--json"]))
        .code(1)
        .stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["running"], false);
    assert_eq!(v["ready"], false);
    s.outcome(lb_vm(&s).args(["wait", "--timeout", "1"]))
        .code(1)
        .stderr_has("not running");
}

#[test]
fn stale_pid_file_of_another_process_is_cleaned() {
    let s = scratch();
    // A live process that is not QEMU: pid reuse must not fool status.
    let pid_file = s.vm_dir().join("linux-builder.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).unwrap();
    std::fs::write(s.vm_dir().join("linux-builder.state.json"), "{}").unwrap();
    s.outcome(lb_vm(&s).args(["status"]))
        .code(1)
        .stdout_has("running: no")
        .stdout_has(&format!("stale pid: {}", std::process::id()));
    assert!(!pid_file.exists());
    assert!(!s.vm_dir().join("linux-builder.state.json").exists());
}

#[test]
fn service_files() {
    let s = scratch();
    let plist = s
        .outcome(
            lb_vm(&s)
                .env("LB_PLATFORM", "macos")
                .args(["service", "--launchd", "--memory", "4096"])
                .args(boot_args(&s)),
        )
        .success()
        .stdout();
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
    let work = std::fs::canonicalize(s.vm_dir()).unwrap();
    assert!(
        plist.contains(&format!(
            "<key>TMPDIR</key>\n    <string>{}/linux-builder.tmp</string>",
            work.display()
        )),
        "{plist}"
    );

    // --install writes into the root; a second run changes nothing.
    s.outcome(
        lb_vm(&s)
            .args(["service", "--systemd", "--install"])
            .args(boot_args(&s)),
    )
    .success()
    .stderr_has("wrote");
    let unit = s.root().join("etc/systemd/system/linux-builder.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("Restart=on-failure"), "{text}");
    assert!(
        text.contains(" start --foreground --name linux-builder "),
        "{text}"
    );
    s.outcome(
        lb_vm(&s)
            .args(["service", "--systemd", "--install", "--check"])
            .args(boot_args(&s)),
    )
    .success();
    s.outcome(
        lb_vm(&s)
            .args(["service", "--launchd", "--install", "--check"])
            .args(boot_args(&s)),
    )
    .code(1);
    let out = s
        .outcome(
            lb_vm(&s)
                .args(["service", "--launchd", "--install", "-n"])
                .args(boot_args(&s)),
        )
        .success()
        .stdout();
    assert!(
        out.contains("+<key>RunAtLoad</key>") || out.contains("+  <key>RunAtLoad</key>"),
        "{out}"
    );
    assert!(!s
        .root()
        .join("Library/LaunchDaemons/org.lb-vm.linux-builder.plist")
        .exists());
}

#[test]
fn port_taken_names_the_process() {
    let s = scratch();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    s.outcome(
        lb_vm(&s)
            .args(["start", "--accel", "tcg", "--port", &port.to_string()])
            .args(boot_args(&s)),
    )
    .code(1)
    .stderr_has(&format!(
        "port {port} on 127.0.0.1 is taken by pid {} (",
        std::process::id()
    ));
    assert!(!s.vm_dir().join("linux-builder.pid").exists());
    drop(listener);
}
