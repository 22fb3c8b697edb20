//! `lb-vm start --on-demand` against real QEMU booting the test builder VM
//! (tests/guest) and the real ssh client: connections held during a boot,
//! the idle power-off, a connection during that power-off, a failed boot
//! and its retry through a runner, SIGTERM as a service manager sends it.
//! (The `nix build --max-jobs 0` through the listener is in tests/e2e.)

use std::io::{BufRead as _, BufReader};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use predicates::prelude::*;

use lb_testkit::vm::guest_host_key;

mod common;
use common::{kernel_args, lb_vm, lb_vm_std, pid_alive, setup, status_json, Setup};

/// Poll `status --json` until `done` holds (or panic after `timeout`).
fn status_until(
    s: &Setup,
    name: &str,
    timeout: Duration,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let (_, v) = status_json(s, name);
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "status never got there: {v}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Connect to the listener and read the first line (the SSH banner, or
/// nothing when the listener closes the connection).
fn connect(port: u16) -> (TcpStream, BufReader<TcpStream>) {
    let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(240))).unwrap();
    let r = BufReader::new(c.try_clone().unwrap());
    (c, r)
}

fn first_line(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    let _ = r.read_line(&mut line);
    line.trim_end().to_owned()
}

/// Log in through `port` with the real ssh client, checking the guest's
/// fixed host key.
fn ssh_guest(s: &Setup, port: u16, command: &str) -> std::process::Output {
    let kh = s.sc.work().join("known_hosts");
    std::fs::write(&kh, format!("lbod-test {}\n", guest_host_key())).unwrap();
    StdCommand::new("ssh")
        .args(["-F", "/dev/null", "-p", &port.to_string()])
        .arg("-i")
        .arg(&s.key.private)
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", kh.display()))
        .args([
            "-o",
            "HostKeyAlias=lbod-test",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "BatchMode=yes",
            "builder@127.0.0.1",
            command,
        ])
        .output()
        .unwrap()
}

/// Stops the listener and the VM even when an assertion fails midway.
struct StopOnDrop<'a>(&'a Setup, &'a str);
impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        let _ = lb_vm(self.0)
            .args(["--name", self.1, "stop", "--timeout", "5"])
            .output();
    }
}

#[test]
fn four_connections_in_one_boot_idle_power_off_and_a_connection_during_it() {
    let s = setup();
    let port = lb_testkit::free_port();
    let w = s.sc.work();
    let _guard = StopOnDrop(&s, "od");
    lb_vm(&s)
        .args(["--name", "od", "start", "--on-demand", "--idle", "3s"])
        .args(["--timeout", "240"])
        .args(kernel_args(&s, port))
        .assert()
        .success()
        .stdout(format!("127.0.0.1:{port}\n"));
    let (code, v) = status_json(&s, "od");
    assert_eq!(code, 0, "{v}");
    assert_eq!(
        (
            &v["mode"],
            &v["running"],
            &v["vm_up"],
            &v["on_demand"]["vm"]
        ),
        (
            &"on-demand".into(),
            &true.into(),
            &false.into(),
            &"off".into()
        ),
        "{v}"
    );
    assert!(
        !w.join("od.pid").exists(),
        "the VM runs before any connection"
    );
    // `check` (and lb-doctor through it) finds an off VM behind a
    // listener healthy, without booting it.
    lb_vm(&s)
        .args(["--name", "od", "--port", &port.to_string(), "check"])
        .args(["--disk-size", "1024"])
        .assert()
        .success()
        .stdout("");
    assert_eq!(status_json(&s, "od").1["on_demand"]["vm"], "off");

    // Four connections opened together: all held during the one boot.
    let mut conns: Vec<_> = (0..4).map(|_| connect(port)).collect();
    let v = status_until(&s, "od", Duration::from_secs(10), |v| {
        v["on_demand"]["waiting"] == 4
    });
    assert_eq!(v["on_demand"]["vm"], "booting", "{v}");
    assert_eq!(v["connections"], 4, "{v}");
    for (_, r) in &mut conns {
        let banner = first_line(r);
        assert!(banner.starts_with("SSH-2.0-OpenSSH"), "{banner:?}");
    }
    let (_, v) = status_json(&s, "od");
    let od = &v["on_demand"];
    assert_eq!(
        (&od["vm"], &od["boots"], &od["served"], &od["boot_failures"]),
        (&"up".into(), &1.into(), &4.into(), &0.into()),
        "{v}"
    );
    assert_eq!(
        (&v["vm_up"], &v["power_off_in_secs"]),
        (&true.into(), &serde_json::Value::Null),
        "connections are open: no power-off due: {v}"
    );
    let first_vm = v["pid"].as_u64().unwrap();
    // The guest's forward is on a private port, not the builder's.
    let guest_port = od["guest_port"].as_u64().unwrap();
    assert_ne!(guest_port, u64::from(port));
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(w.join("od.state.json")).unwrap()).unwrap();
    assert_eq!(state["port"], guest_port, "{state}");
    // A whole ssh session through the relay.
    let out = ssh_guest(&s, port, "uname -n");
    assert!(
        out.status.success(),
        "ssh through the listener: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "lb-test-guest");
    drop(conns);

    // No connection for 3 s: the VM powers off cleanly (the power button);
    // a connection arriving during that shutdown waits for the next boot.
    let v = status_until(&s, "od", Duration::from_secs(60), |v| {
        v["on_demand"]["vm"] == "stopping"
    });
    let (held, mut reader) = connect(port);
    let banner = first_line(&mut reader);
    assert!(
        banner.starts_with("SSH-2.0-OpenSSH"),
        "lost during shutdown: {banner:?} (status before: {v})"
    );
    let (_, v) = status_json(&s, "od");
    let od = &v["on_demand"];
    assert_eq!(
        (&od["held_over_shutdown"], &od["boots"], &od["vm"]),
        (&1.into(), &2.into(), &"up".into()),
        "{v}"
    );
    assert!(!pid_alive(first_vm), "the first VM {first_vm} still runs");
    assert_ne!(v["pid"].as_u64().unwrap(), first_vm);
    let console = std::fs::read_to_string(w.join("od.on-demand.log")).unwrap();
    assert!(
        console.contains("the VM is down (powered down)"),
        "{console}"
    );
    drop((held, reader));
    stop_ends_listener_and_vm(&s, "od", port, &v);
}

/// `stop` ends the listener and the VM; the port is free again.
fn stop_ends_listener_and_vm(s: &Setup, name: &str, port: u16, v: &serde_json::Value) {
    let listener = v["on_demand"]["listener_pid"].as_u64().unwrap();
    let vm = v["pid"].as_u64().unwrap();
    lb_vm(s).args(["--name", name, "stop"]).assert().success();
    assert!(!pid_alive(listener) && !pid_alive(vm));
    for f in ["pid", "ctl", "listener.pid", "state.json"] {
        let f = s.sc.work().join(format!("{name}.{f}"));
        assert!(!f.exists(), "{} left behind", f.display());
    }
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
    let (code, v) = status_json(s, name);
    assert_eq!((code, &v["running"]), (1, &false.into()), "{v}");
}

/// A stand-in for nixpkgs' run-nixos-vm: the same environment contract,
/// a forward of its own baked in (on loopback here), real QEMU with the
/// test guest. It fails on its first run, to prove a failed boot is
/// reported and retried.
fn failing_once_runner(s: &Setup, image_port: u16) -> PathBuf {
    let runner = s.sc.work().join("run-test-vm");
    std::fs::write(
        &runner,
        format!(
            r#"#!/bin/sh
set -eu
n=$(cat runner.count 2>/dev/null || echo 0); n=$((n + 1)); echo $n > runner.count
env | grep -E '^(KEYS|NIX_DISK_IMAGE|TMPDIR|QEMU_NET_OPTS|QEMU_OPTS)=' | sort > runner.env.$n
if [ "$n" = 1 ]; then echo "run-test-vm: simulated failure of the first boot" >&2; exit 3; fi
[ -e "$NIX_DISK_IMAGE" ] || qemu-img create -q -f qcow2 "$NIX_DISK_IMAGE" 1G
exec qemu-system-x86_64 -accel tcg -m 1024 -smp 2 -display none -no-reboot \
  -kernel {kernel} -initrd {initrd} -append "console=ttyS0 quiet panic=-1" \
  -netdev "user,id=n0,hostfwd=tcp:127.0.0.1:{image_port}-:22,${{QEMU_NET_OPTS:-}}" \
  -device virtio-net-pci,netdev=n0 \
  -virtfs "local,path=$KEYS,security_model=none,mount_tag=keys,readonly=on" \
  -serial file:runner-console.log ${{QEMU_OPTS:-}}
"#,
            kernel = s.kernel.display(),
            initrd = s.initrd.display(),
        ),
    )
    .unwrap();
    std::fs::set_permissions(&runner, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    runner
}

/// What a service manager runs: `start --foreground --on-demand`, here
/// with a runner. The first boot fails (the connection is closed and the
/// log says why), the next connection boots it through the runner with the
/// private forward in QEMU_NET_OPTS, and SIGTERM powers the VM off and
/// ends lb-vm cleanly.
#[test]
fn runner_failed_boot_retry_and_sigterm() {
    let s = setup();
    let port = lb_testkit::free_port();
    let image_port = lb_testkit::free_port();
    let w = s.sc.work();
    let runner = failing_once_runner(&s, image_port);
    let _guard = StopOnDrop(&s, "rb");
    let log = std::fs::File::create(w.join("listener.log")).unwrap();
    let mut child = lb_vm_std(&s)
        .args(["--name", "rb", "start", "--foreground", "--on-demand"])
        .arg("--runner")
        .arg(&runner)
        .arg("--keys")
        .arg(&s.keys)
        .args(["--port", &port.to_string(), "--timeout", "240"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let v = status_until(&s, "rb", Duration::from_secs(20), |v| {
        v["mode"] == "on-demand"
    });
    assert_eq!(v["on_demand"]["listener_pid"], child.id(), "{v}");

    // The first boot fails: the waiting connection is closed, no banner.
    let (_c, mut r) = connect(port);
    assert_eq!(first_line(&mut r), "");
    let (_, v) = status_json(&s, "rb");
    let od = &v["on_demand"];
    assert_eq!(
        (&od["vm"], &od["boot_failures"], &od["boots"]),
        (&"off".into(), &1.into(), &0.into()),
        "{v}"
    );
    assert!(
        od["last_error"]
            .as_str()
            .unwrap()
            .contains("exited during the boot")
            || od["last_error"].as_str().unwrap().contains("QEMU exited"),
        "{v}"
    );
    let text = std::fs::read_to_string(w.join("listener.log")).unwrap();
    assert!(
        text.contains("run-test-vm: simulated failure of the first boot"),
        "the log does not say why: {text}"
    );
    assert!(text.contains("boot failed"), "{text}");

    // The next connection tries again, and a whole ssh session goes through.
    let out = ssh_guest(&s, port, "uname -n");
    assert!(
        out.status.success(),
        "ssh after the retry: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "lb-test-guest");
    let (_, v) = status_json(&s, "rb");
    let od = &v["on_demand"];
    assert_eq!(
        (&od["vm"], &od["boots"], &od["boot_failures"]),
        (&"up".into(), &1.into(), &1.into()),
        "{v}"
    );
    // The runner got the private forward in QEMU_NET_OPTS, spliced into its
    // own -netdev beside the baked-in one; the QMP socket in QEMU_OPTS.
    let guest_port = od["guest_port"].as_u64().unwrap();
    let env = std::fs::read_to_string(w.join("runner.env.2")).unwrap();
    assert!(
        env.contains(&format!(
            "QEMU_NET_OPTS=hostfwd=tcp:127.0.0.1:{guest_port}-:22\n"
        )),
        "{env}"
    );
    assert!(env.contains("QEMU_OPTS=-qmp unix:"), "{env}");
    assert_ne!(guest_port, u64::from(port));
    let vm = v["pid"].as_u64().unwrap();

    // SIGTERM (systemd's stop with KillMode=mixed, launchd's unload): the
    // VM is powered off cleanly and lb-vm exits 0, leaving nothing.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "lb-vm ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    assert!(!pid_alive(vm), "the VM {vm} outlived the listener");
    let text = std::fs::read_to_string(w.join("listener.log")).unwrap();
    assert!(
        text.contains("the VM is down (powered down)"),
        "not a clean power-off: {text}"
    );
    for f in ["rb.pid", "rb.ctl", "rb.listener.pid", "rb.qmp"] {
        assert!(!w.join(f).exists(), "{f} left behind");
    }
    assert!(std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
}

/// Refusals and renderings that need no VM.
#[test]
fn refusals_dry_run_and_service_files() {
    let s = setup();
    let baked = lb_testkit::free_port();
    let runner = failing_once_runner(&s, baked);
    // The runner's baked-in port (read from its script) cannot be the
    // listener's port.
    lb_vm(&s)
        .args([
            "start",
            "--on-demand",
            "--port",
            &baked.to_string(),
            "--runner",
        ])
        .arg(&runner)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("baked in"));
    lb_vm(&s)
        .args([
            "service",
            "--systemd",
            "--on-demand",
            "--port",
            &baked.to_string(),
            "--runner",
        ])
        .arg(&runner)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("another --port"));
    let port = lb_testkit::free_port();
    lb_vm(&s)
        .args(["start", "--on-demand", "--idle", "0s"])
        .args(kernel_args(&s, port))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("--idle 0s"));
    lb_vm(&s)
        .args(["start", "--on-demand", "--idle", "soon"])
        .args(kernel_args(&s, port))
        .assert()
        .code(2);
    // Dry run: the listener and the boot, with the forward on another port.
    let out = lb_vm(&s)
        .args(["start", "--on-demand", "--idle", "5m", "-n"])
        .args(kernel_args(&s, port))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        format!("listen on 127.0.0.1:{port} (on demand; power off after 5m idle)")
    );
    let boot = lines.next().unwrap();
    assert!(boot.contains("hostfwd=tcp:127.0.0.1:"), "{boot}");
    assert!(!boot.contains(&format!(":{port}-:22")), "{boot}");
    assert!(!s.sc.work().join("linux-builder.ctl").exists());
    // --check: not listening, so start would change something.
    lb_vm(&s)
        .args(["start", "--on-demand", "--check"])
        .args(kernel_args(&s, port))
        .assert()
        .code(1);
    // The service runs the listener in the foreground.
    let out = lb_vm(&s)
        .args(["service", "--systemd", "--on-demand", "--idle", "90m"])
        .args(kernel_args(&s, port))
        .output()
        .unwrap();
    let unit = String::from_utf8_lossy(&out.stdout);
    assert!(
        unit.contains(" start --foreground --on-demand --idle 1h 30m ")
            || unit.contains(" start --foreground --on-demand --idle \"1h 30m\" "),
        "{unit}"
    );
    assert!(unit.contains("\nKillMode=mixed\n"), "{unit}");
    let out = lb_vm(&s)
        .args(["service", "--launchd", "--on-demand"])
        .args(kernel_args(&s, port))
        .output()
        .unwrap();
    let plist = String::from_utf8_lossy(&out.stdout);
    assert!(
        plist.contains(" start --foreground --on-demand --idle 3h "),
        "{plist}"
    );
    assert!(plist.contains("<key>ExitTimeOut</key>"), "{plist}");
}
