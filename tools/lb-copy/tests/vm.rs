//! End to end against the test builder VM: outputs built on the guest's
//! store (absent here) come home through lb-copy. For each Nix generation
//! (lb_testkit::NixGen) on both sides: the guest runs that Nix's daemon, and
//! `nix build --store ssh-ng://...`, lb-copy and its `nix copy` run with
//! that Nix as the host's, into that generation's host store.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use lb_testkit::{nix_matrix, NixGen, Vm, NIX_TEST_OPTIONS};

const ALIAS: &str = "lbcopy-vm";

/// The store URI of a VM, with its host key as Nix wants it (base64 of the
/// whole `.pub` line including its newline).
fn uri(vm: &Vm) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{}\n", vm.host_key));
    format!("ssh-ng://builder@{ALIAS}?base64-ssh-public-host-key={b64}")
}

fn unique() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

/// Build `script` (its `$out` is the output) on the guest's store with
/// `gen`'s host-side nix; returns `nix build --json` output.
fn build_on_guest(gen: NixGen, vm: &Vm, dir: &Path, name: &str, script: &str) -> String {
    let expr = dir.join(format!("{name}.nix"));
    std::fs::write(
        &expr,
        format!(
            "derivation {{ name = \"{name}\"; system = \"x86_64-linux\"; builder = \"/bin/sh\"; \
             args = [\"-c\" {script:?}]; }}\n"
        ),
    )
    .unwrap();
    let out = gen
        .command("nix")
        .args(NIX_TEST_OPTIONS)
        .args([
            "build",
            "--eval-store",
            "auto",
            "--store",
            &uri(vm),
            "--json",
            "-f",
        ])
        .arg(&expr)
        .env(
            "NIX_SSHOPTS",
            format!("-F {}", vm.ssh_config(ALIAS).display()),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "build on the guest failed: {}\nconsole: {}",
        String::from_utf8_lossy(&out.stderr),
        vm.console()
    );
    String::from_utf8(out.stdout).unwrap()
}

fn out_path(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).unwrap();
    v[0]["outputs"]["out"].as_str().unwrap().to_owned()
}

fn lb_copy(gen: NixGen, vm: &Vm, root: &Path) -> Command {
    let mut c = gen.command(assert_cmd::cargo::cargo_bin("lb-copy"));
    c.arg("--root")
        .arg(root)
        .arg("--from")
        .arg(uri(vm))
        .env_remove("NIX_CONF_DIR")
        .env(
            "NIX_SSHOPTS",
            format!("-F {}", vm.ssh_config(ALIAS).display()),
        );
    c
}

/// Run with `input` on stdin.
trait Pipe {
    fn pipe(&mut self, input: &str) -> std::process::Output;
}

impl Pipe for Command {
    fn pipe(&mut self, input: &str) -> std::process::Output {
        assert_cmd::Command::from_std(std::mem::replace(self, Command::new("false")))
            .write_stdin(input.to_owned())
            .output()
            .unwrap()
    }
}

nix_matrix! {
fn copies_guest_outputs_home_once(gen) {
    gen.ensure_daemon();
    let vm = gen.vm();
    let valid_here = |p: &str| gen.is_valid(p);
    let root = lb_testkit::scratch_root();
    let content = format!("lb-copy e2e {}", unique());
    let json = build_on_guest(
        gen,
        vm,
        root.path(),
        "lb-copy-e2e",
        &format!("echo '{content}' > $out"),
    );
    let path = out_path(&json);
    assert!(!valid_here(&path), "{path} is already in the host store");

    // Unsigned paths are refused without --no-check-sigs, with the ways out.
    let refused = lb_copy(gen, vm, root.path()).pipe(&json);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{err}");
    // 2.8: "lacks a valid signature"; 2.26+: "lacks a signature by a trusted key".
    assert!(
        err.contains("lacks a valid signature") || err.contains("lacks a signature by a trusted key"),
        "{err}"
    );
    assert!(
        err.contains("nix store sign") && err.contains("require-sigs"),
        "{err}"
    );
    assert!(!valid_here(&path));

    let first = lb_copy(gen, vm, root.path()).arg("--no-check-sigs").pipe(&json);
    let err = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{err}");
    assert_eq!(String::from_utf8_lossy(&first.stdout), format!("{path}\n"));
    assert!(err.contains("copying 1 of 1 paths"), "{err}");
    assert!(err.contains("no GC root"), "{err}");
    assert!(valid_here(&path));
    // In this generation's host store (under its root for 2.26 and 2.34).
    assert_eq!(
        std::fs::read_to_string(gen.host_path(&path)).unwrap(),
        format!("{content}\n")
    );

    // Second run: nothing to copy, same stdout; --json says copied=false.
    let second = lb_copy(gen, vm, root.path())
        .args(["--no-check-sigs", "--json"])
        .pipe(&json);
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(second.status.success(), "{err}");
    assert!(err.contains("already here; nothing copied"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(v[0]["copied"]["out"], serde_json::Value::Bool(false));
    assert_eq!(v[0]["outputs"]["out"].as_str(), Some(path.as_str()));
}
}

nix_matrix! {
fn builder_dying_mid_copy_leaves_nothing_half_copied(gen) {
    gen.ensure_daemon();
    let (kernel, initrd) = gen.guest_images();
    let vm = Vm::boot_images(&kernel, &initrd);
    let valid_here = |p: &str| gen.is_valid(p);
    let root = lb_testkit::scratch_root();
    // ~200 MB: long enough over TCG to kill the VM in the middle, small
    // enough for the guest's 1 GiB RAM-backed store.
    let json = build_on_guest(
        gen,
        &vm,
        root.path(),
        "lb-copy-big",
        &format!("echo {}; head -c 200000000 /dev/zero > $out", unique()),
    );
    let path = out_path(&json);
    assert!(!valid_here(&path));
    let mut child = lb_copy(gen, &vm, root.path())
        .arg("--no-check-sigs")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(json.as_bytes()).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1500));
    vm.kill();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("lb-ping"), "{err}");
    assert!(out.stdout.is_empty());
    assert!(
        !valid_here(&path),
        "{path} became valid after the builder died"
    );
}
}
