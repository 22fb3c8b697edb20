//! The real Nix (2.8 here) reads the same files: `nix show-config` with
//! `NIX_CONF_DIR` pointing into a scratch root must report what `install`
//! wrote, and the `builders` value it reports, parsed with the shared
//! machines parser, must be what `lb-nixconf show --json` says.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use lb_common::conf::machines;
use lb_common::conf::Location;

fn lb(root: &Path) -> Command {
    let mut c = Command::cargo_bin("lb-nixconf").unwrap();
    for v in [
        "LB_ROOT",
        "LB_NAME",
        "LB_HOST_KEY",
        "LB_SYSTEM",
        "LB_KEY",
        "NIX_CONF_DIR",
    ] {
        c.env_remove(v);
    }
    c.arg("--root").arg(root).env("LB_PLATFORM", "linux");
    c
}

/// `nix show-config` as a map, reading only ROOT/etc/nix (no user files,
/// no NIX_CONFIG).
fn show_config(root: &Path) -> std::collections::BTreeMap<String, String> {
    lb_testkit::require_program("nix", "nix-bin");
    let out = std::process::Command::new("nix")
        .arg("show-config")
        .args(["--extra-experimental-features", "nix-command"])
        .env("NIX_CONF_DIR", root.join("etc/nix"))
        .env("NIX_USER_CONF_FILES", root.join("no-user.conf"))
        .env("XDG_CONFIG_HOME", root.join("xdg"))
        .env("XDG_CONFIG_DIRS", root.join("xdg"))
        .env_remove("NIX_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix show-config: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn scratch() -> (tempfile::TempDir, PathBuf) {
    let dir = lb_testkit::scratch_root();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    std::fs::create_dir_all(root.join("etc/nix")).unwrap();
    (dir, root)
}

#[test]
fn nix_reads_what_install_wrote() {
    let (_dir, root) = scratch();
    let conf = root.join("etc/nix/nix.conf");
    std::fs::write(&conf, "substituters =\ntrusted-users = root\n").unwrap();
    lb(&root)
        .args([
            "install",
            "--system",
            "aarch64-linux",
            "--trust-user",
            "alice",
        ])
        .assert()
        .success();
    lb(&root)
        .args([
            "install",
            "--name",
            "b2",
            "--features",
            "kvm",
            "--trust-user",
            "bob",
        ])
        .assert()
        .success();
    let text = std::fs::read_to_string(&conf).unwrap();
    let written = text
        .lines()
        .find_map(|l| l.strip_prefix("builders = "))
        .unwrap()
        .to_owned();
    let nix = show_config(&root);
    assert_eq!(nix["builders"], written);
    assert_eq!(nix["builders-use-substitutes"], "true");
    assert_eq!(nix["trusted-users"], "root alice bob");
    assert!(written.contains(" ; "), "{written}");
    let expected = format!(
        "ssh-ng://builder@linux-builder aarch64-linux {}/etc/nix/builder_ed25519 4 - - - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=",
        root.display()
    );
    assert_eq!(written.split(" ; ").next().unwrap(), expected);

    // After remove, Nix is back to its default (@CONF_DIR/machines).
    lb(&root).arg("remove").assert().success();
    lb(&root)
        .args(["remove", "--name", "b2"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(&conf).unwrap(),
        "substituters =\ntrusted-users = root\n"
    );
    let nix = show_config(&root);
    assert_eq!(
        nix["builders"],
        format!("@{}/etc/nix/machines", root.display())
    );
}

/// The fields both sides name, with feature sets sorted (Nix keeps them in
/// a std::set).
fn normalise(v: &serde_json::Value) -> serde_json::Value {
    let mut v = v.clone();
    let obj = v.as_object_mut().unwrap();
    obj.retain(|k, _| {
        [
            "uri",
            "systems",
            "ssh_key",
            "max_jobs",
            "speed_factor",
            "supported_features",
            "mandatory_features",
            "public_host_key",
        ]
        .contains(&k.as_str())
    });
    for k in ["supported_features", "mandatory_features"] {
        if let Some(serde_json::Value::Array(a)) = obj.get_mut(k) {
            a.sort_by_key(ToString::to_string);
        }
    }
    v
}

#[test]
fn show_json_matches_what_nix_reports() {
    let (_dir, root) = scratch();
    let d = root.join("etc/nix");
    let machines_file = d.join("machines.more");
    std::fs::write(
        &machines_file,
        "# builders from a file\nssh://m1@file1 x86_64-linux,i686-linux /k1 2 1.5 nixos-test,kvm\n\n  ssh-ng://m2@file2 - - - - - benchmark # trailing\n",
    )
    .unwrap();
    std::fs::create_dir_all(d.join("conf.d")).unwrap();
    std::fs::write(
        d.join("nix.conf"),
        "# hand-written\nsubstituters =\nbuilders = ssh-ng://early@overridden\ninclude conf.d/builders.conf\n!include conf.d/absent.conf\nmax-jobs = 0 # remote only\n",
    )
    .unwrap();
    std::fs::write(
        d.join("conf.d/builders.conf"),
        format!(
            "  builders   =  ssh-ng://a@h1   aarch64-linux /k 4 - big-parallel,kvm ;b@h2;; @{} # the rest\n",
            machines_file.display()
        ),
    )
    .unwrap();

    let nix = show_config(&root);
    let value = &nix["builders"];
    let at = Location {
        file: "nix show-config".into(),
        line: 0,
    };
    let this_system = lb_common::platform::Platform::current()
        .unwrap()
        .nix_system();
    let from_nix = machines::parse(value, &this_system, &at, &machines::resolve_as_given).unwrap();
    let from_nix: Vec<serde_json::Value> = from_nix
        .iter()
        .map(|m| normalise(&serde_json::to_value(m).unwrap()))
        .collect();

    let out = lb(&root).args(["show", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours: Vec<serde_json::Value> =
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .unwrap()
            .iter()
            .map(normalise)
            .collect();
    assert_eq!(ours, from_nix, "nix said builders = {value}");
    assert_eq!(ours.len(), 4);
    assert_eq!(ours[0]["uri"], "ssh-ng://a@h1");
    assert_eq!(ours[3]["uri"], "ssh-ng://m2@file2");
}
