//! Every macOS command line and file lb-vm makes, printed here with
//! `LB_PLATFORM` set to a Mac's Nix system and snapshot-tested: the hvf
//! QEMU lines for aarch64-darwin and x86_64-darwin, a nixpkgs runner's
//! environment, the launchd plist and the launchctl commands of install,
//! stop and uninstall. (launchctl and HVF cannot run here; this is the
//! exact text a Mac would get.)

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use lb_testkit::Scenario;
use predicates::prelude::*;

/// A Mac's layout in a scratch root: the builder's working directory is
/// ROOT/var/lib/linux-builder, with keys and stand-in boot files.
fn mac() -> Scenario {
    let m = Scenario::new("lb-vm");
    let work = m.vm_work();
    std::fs::create_dir_all(work.join("keys")).unwrap();
    for f in ["bzImage", "initrd"] {
        std::fs::write(work.join(f), f).unwrap();
    }
    m
}

trait Mac {
    fn vm_work(&self) -> PathBuf;
    fn lb_vm(&self, system: &str) -> Command;
    fn kernel(&self) -> [String; 4];
    fn runner(&self) -> PathBuf;
    fn clean(&self, text: &[u8]) -> String;
}

impl Mac for Scenario {
    fn vm_work(&self) -> PathBuf {
        self.path("var/lib/linux-builder")
    }

    /// `lb-vm --root ROOT --workdir ROOT/var/lib/linux-builder` as on a
    /// Mac running `system`.
    fn lb_vm(&self, system: &str) -> Command {
        let mut c = Command::from_std(self.command());
        c.env("LB_PLATFORM", system)
            .env("NIX_SSL_CERT_FILE", "/etc/ssl/certs/ca-certificates.crt")
            .arg("--workdir")
            .arg(self.vm_work());
        c
    }

    fn kernel(&self) -> [String; 4] {
        [
            "--kernel".into(),
            self.vm_work().join("bzImage").display().to_string(),
            "--initrd".into(),
            self.vm_work().join("initrd").display().to_string(),
        ]
    }

    /// nixpkgs' create-builder and run-nixos-vm as they are shaped (never run).
    fn runner(&self) -> PathBuf {
        let vm = self.root().join("nix/store/v-nixos-vm/bin/run-nixos-vm");
        std::fs::create_dir_all(vm.parent().unwrap()).unwrap();
        std::fs::write(
            &vm,
            "#!/bin/sh\nNIX_DISK_IMAGE=$(readlink -f \"${NIX_DISK_IMAGE:-./nixos.qcow2}\")\nif test -n \"$NIX_DISK_IMAGE\" && ! test -e \"$NIX_DISK_IMAGE\"; then\n  createEmptyFilesystemImage \"$NIX_DISK_IMAGE\" \"20480M\"\nfi\ncd \"$TMPDIR\"\nexec qemu-system-aarch64 -machine virt,gic-version=2,accel=hvf:tcg -cpu max \\\n    -m 3072 \\\n    -smp 1 \\\n    -netdev user,id=user.0,hostfwd=tcp::31022-:22,\"$QEMU_NET_OPTS\" \\\n    $QEMU_OPTS \"$@\"\n",
        )
        .unwrap();
        let cb = self
            .root()
            .join("nix/store/c-create-builder/bin/create-builder");
        std::fs::create_dir_all(cb.parent().unwrap()).unwrap();
        std::fs::write(
            &cb,
            format!(
                "#!/bin/sh\nif ! cmp \"${{PUBLIC_KEY}}\" /etc/nix/builder_ed25519.pub; then\n  (set -x; sudo --reset-timestamp /nix/store/i-install-credentials \"${{KEYS}}\")\nfi\nKEYS=\"$(nix-store --add \"$KEYS\")\" {}\n",
                vm.display()
            ),
        )
        .unwrap();
        cb
    }

    fn clean(&self, text: &[u8]) -> String {
        let exe = assert_cmd::cargo::cargo_bin("lb-vm");
        String::from_utf8_lossy(text)
            .replace(&exe.display().to_string(), "[LB-VM]")
            .replace(&self.root().display().to_string(), "[ROOT]")
    }
}

fn config(m: &Scenario, system: &str, args: &[&str]) -> serde_json::Value {
    let out = m
        .lb_vm(system)
        .args(["config", "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&m.clean(&out.stdout)).unwrap()
}

fn lines(cmd: &str) -> String {
    cmd.replace(" -", "\n  -")
}

#[allow(clippy::many_single_char_names)]
#[test]
fn hvf_lines() {
    let m = mac();
    let k = m.kernel();
    let k: Vec<&str> = k.iter().map(String::as_str).collect();
    let a = config(
        &m,
        "aarch64-darwin",
        &[&k[..], &["--system", "aarch64-linux", "--cpus", "8"]].concat(),
    );
    assert_eq!(a["accel"], "hvf");
    insta::assert_snapshot!(lines(a["command"].as_str().unwrap()), @r"
    qemu-system-aarch64
      -name linux-builder
      -machine 'virt,gic-version=2'
      -accel hvf
      -accel tcg
      -cpu max
      -m 3072
      -smp 8
      -display none
      -monitor none
      -no-reboot
      -kernel [ROOT]/var/lib/linux-builder/bzImage
      -initrd [ROOT]/var/lib/linux-builder/initrd
      -append 'console=ttyAMA0 panic=-1'
      -drive 'file=[ROOT]/var/lib/linux-builder/linux-builder.qcow2,format=qcow2,if=virtio'
      -netdev 'user,id=n0,hostfwd=tcp:127.0.0.1:31022-:22'
      -device 'virtio-net-pci,netdev=n0'
      -virtfs 'local,path=[ROOT]/var/lib/linux-builder/keys,security_model=none,mount_tag=keys,readonly=on'
      -qmp 'unix:[ROOT]/var/lib/linux-builder/linux-builder.qmp,server=on,wait=off'
      -serial file:[ROOT]/var/lib/linux-builder/linux-builder.console.log
    ");
    let x = config(
        &m,
        "x86_64-darwin",
        &[&k[..], &["--system", "x86_64-linux", "--cpus", "12"]].concat(),
    );
    insta::assert_snapshot!(lines(x["command"].as_str().unwrap()), @r"
    qemu-system-x86_64
      -name linux-builder
      -machine q35
      -accel hvf
      -accel tcg
      -cpu max
      -m 3072
      -smp 12
      -display none
      -monitor none
      -no-reboot
      -kernel [ROOT]/var/lib/linux-builder/bzImage
      -initrd [ROOT]/var/lib/linux-builder/initrd
      -append 'console=ttyS0 panic=-1'
      -drive 'file=[ROOT]/var/lib/linux-builder/linux-builder.qcow2,format=qcow2,if=virtio'
      -netdev 'user,id=n0,hostfwd=tcp:127.0.0.1:31022-:22'
      -device 'virtio-net-pci,netdev=n0'
      -virtfs 'local,path=[ROOT]/var/lib/linux-builder/keys,security_model=none,mount_tag=keys,readonly=on'
      -qmp 'unix:[ROOT]/var/lib/linux-builder/linux-builder.qmp,server=on,wait=off'
      -serial file:[ROOT]/var/lib/linux-builder/linux-builder.console.log
    ");
    // An x86_64 guest on Apple Silicon can only be emulated.
    let e = config(
        &m,
        "aarch64-darwin",
        &[&k[..], &["--system", "x86_64-linux"]].concat(),
    );
    assert_eq!(e["accel"], "tcg");
    // gic-version=2 addresses 8 vCPUs: more is refused; the default is capped.
    m.lb_vm("aarch64-darwin")
        .args(["config", "--system", "aarch64-linux", "--cpus", "12"])
        .args(m.kernel())
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "--cpus 12: QEMU's virt machine with gic-version=2 (what HVF needs on Apple Silicon) takes at most 8 vCPUs",
        ));
    let d = config(
        &m,
        "aarch64-darwin",
        &[&k[..], &["--system", "aarch64-linux"]].concat(),
    );
    assert!(d["cpus"].as_u64().unwrap() <= 8, "{d}");
}

#[test]
fn runner_environment() {
    let m = mac();
    let r = m.runner();
    let v = config(
        &m,
        "aarch64-darwin",
        &[
            "--runner",
            &r.display().to_string(),
            "--memory",
            "8192",
            "--cpus",
            "4",
        ],
    );
    assert_eq!(
        (v["memory_mib"].as_u64(), v["cpus"].as_u64()),
        (Some(8192), Some(4))
    );
    assert_eq!(v["disk_size_mib"], 20480);
    insta::assert_snapshot!(v["command"].as_str().unwrap().replace("' ", "'\n").replace(" KEYS", "\nKEYS"), @r"
    KEYS=[ROOT]/var/lib/linux-builder/keys NIX_DISK_IMAGE=[ROOT]/var/lib/linux-builder/linux-builder.qcow2 TMPDIR=[ROOT]/var/lib/linux-builder/linux-builder.tmp USE_TMPDIR=1 QEMU_OPTS='-qmp unix:[ROOT]/var/lib/linux-builder/linux-builder.qmp,server=on,wait=off -m 8192 -smp 4'
    NIX_SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt [ROOT]/nix/store/c-create-builder/bin/create-builder
    ");
    // Its baked values, read from its scripts.
    let v = config(
        &m,
        "aarch64-darwin",
        &["--runner", &r.display().to_string()],
    );
    assert_eq!(
        (v["memory_mib"].as_u64(), v["cpus"].as_u64()),
        (Some(3072), Some(1))
    );
    assert!(!v["command"].as_str().unwrap().contains("-m 3072"), "{v}");
}

// The plist's life in one scratch root: print, install, stop, uninstall.
#[allow(clippy::too_many_lines)]
#[test]
fn launchd_plist_and_launchctl() {
    let m = mac();
    let r = m.runner();
    let r = r.display().to_string();
    let plist = m
        .lb_vm("aarch64-darwin")
        .args(["service", "--launchd", "--runner", &r, "--memory", "4096"])
        .output()
        .unwrap();
    assert!(plist.status.success());
    insta::assert_snapshot!(m.clean(&plist.stdout), @r#"
    <?xml version="1.0" encoding="UTF-8"?>
    <!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">
    <plist version="1.0">
    <dict>
      <key>Label</key>
      <string>org.lb-vm.linux-builder</string>
      <key>ProgramArguments</key>
      <array>
        <string>/bin/sh</string>
        <string>-c</string>
        <string>/bin/wait4path /nix/store &amp;&amp; exec [LB-VM] start --foreground --name linux-builder --workdir [ROOT]/var/lib/linux-builder --port 31022 --system aarch64-linux --runner [ROOT]/nix/store/c-create-builder/bin/create-builder --memory 4096 --disk [ROOT]/var/lib/linux-builder/linux-builder.qcow2 --keys [ROOT]/var/lib/linux-builder/keys</string>
      </array>
      <key>WorkingDirectory</key>
      <string>[ROOT]/var/lib/linux-builder</string>
      <key>EnvironmentVariables</key>
      <dict>
        <key>TMPDIR</key>
        <string>[ROOT]/var/lib/linux-builder/linux-builder.tmp</string>
        <key>PATH</key>
        <string>/nix/var/nix/profiles/default/bin:/run/current-system/sw/bin:/opt/homebrew/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin</string>
        <key>NIX_SSL_CERT_FILE</key>
        <string>/etc/ssl/certs/ca-certificates.crt</string>
      </dict>
      <key>KeepAlive</key>
      <dict>
        <key>SuccessfulExit</key>
        <false/>
      </dict>
      <key>RunAtLoad</key>
      <true/>
      <key>StandardOutPath</key>
      <string>/var/log/org.lb-vm.linux-builder.log</string>
      <key>StandardErrorPath</key>
      <string>/var/log/org.lb-vm.linux-builder.log</string>
    </dict>
    </plist>
    "#);
    // Installed: written under the root, then bootstrapped (named only,
    // for a scratch root).
    let out = m
        .lb_vm("aarch64-darwin")
        .args([
            "service",
            "--launchd",
            "--install",
            "--runner",
            &r,
            "--memory",
            "4096",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(m.clean(&out.stderr), @"lb-vm: wrote [ROOT]/Library/LaunchDaemons/org.lb-vm.linux-builder.plist; --root is a scratch root, so not running: launchctl enable system/org.lb-vm.linux-builder && launchctl bootstrap system /Library/LaunchDaemons/org.lb-vm.linux-builder.plist");
    let file = m
        .root()
        .join("Library/LaunchDaemons/org.lb-vm.linux-builder.plist");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        plist.stdout,
        "the installed plist is the printed one"
    );

    // stop knows the service: after the power button, launchd's bootout
    // (KeepAlive would restart a killed VM).
    let qmp = m.vm_work().join("linux-builder.qmp");
    let mut fake = std::process::Command::new("sh")
        .arg("-c")
        .arg("sleep 120")
        .arg(&qmp)
        .spawn()
        .unwrap();
    std::fs::write(
        m.vm_work().join("linux-builder.pid"),
        format!("{}\n", fake.id()),
    )
    .unwrap();
    let out = m
        .lb_vm("aarch64-darwin")
        .args(["stop", "-n"])
        .output()
        .unwrap();
    let _ = fake.kill();
    let _ = fake.wait();
    assert!(out.status.success());
    insta::assert_snapshot!(m.clean(&out.stdout).replace(&fake.id().to_string(), "[PID]"), @"
    qmp [ROOT]/var/lib/linux-builder/linux-builder.qmp system_powerdown
    after 30s, if still running (its service would restart a killed VM):
    launchctl bootout system/org.lb-vm.linux-builder
    after 30s: kill -TERM [PID]; after 30s: kill -KILL [PID]
    ");

    // Uninstall: bootout, then the file goes.
    let out = m
        .lb_vm("aarch64-darwin")
        .args(["service", "--launchd", "--uninstall", "-n"])
        .output()
        .unwrap();
    assert!(out.status.success());
    insta::assert_snapshot!(m.clean(&out.stdout).lines().next().unwrap(), @"launchctl bootout system/org.lb-vm.linux-builder");
    assert!(file.exists());
    m.lb_vm("aarch64-darwin")
        .args(["service", "--launchd", "--uninstall"])
        .assert()
        .success();
    assert!(!file.exists());
}

#[test]
fn nix_darwins_builder_plist_is_never_replaced() {
    let m = mac();
    lb_testkit::layouts::nix_darwin(m.root());
    let plist = m
        .root()
        .join("Library/LaunchDaemons/org.nixos.linux-builder.plist");
    let before = std::fs::read(&plist).unwrap();
    m.lb_vm("aarch64-darwin")
        .args([
            "service",
            "--launchd",
            "--install",
            "--label",
            "org.nixos.linux-builder",
        ])
        .args(m.kernel())
        .assert()
        .code(1)
        .stderr(predicate::str::contains("nix-darwin wrote this plist"));
    assert_eq!(std::fs::read(&plist).unwrap(), before);
    // Its own label: beside nix-darwin's, with a note that that one runs.
    m.lb_vm("aarch64-darwin")
        .args(["service", "--launchd", "--install"])
        .args(m.kernel())
        .assert()
        .success();
    assert!(Path::new(
        &m.root()
            .join("Library/LaunchDaemons/org.lb-vm.linux-builder.plist")
    )
    .exists());
}
