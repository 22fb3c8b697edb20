//! The whole set-up and its undo, as a user runs them: `make setup` (the
//! manual's walkthrough with the tools: key, group, alias, nix.conf, the
//! VM from a nixpkgs-contract runner, a ping) in a scratch root, then
//! `make unsetup`; the root is then byte-identical to what it was, every
//! file and directory with its mode.

use std::path::Path;
use std::process::Command;

use lb_testkit::runner::{Baked, TestRunner};
use lb_testkit::tree::Tree;
use lb_testkit::{clean_command, free_port, scratch_root, tool_bin_dir, workspace_dir};

fn make(target: &str, vars: &[(String, String)], root: &Path) -> std::process::Output {
    let mut c: Command = clean_command("make");
    c.arg("-C")
        .arg(workspace_dir())
        .arg("--no-print-directory")
        .arg(target);
    for (k, v) in vars {
        c.arg(format!("{k}={v}"));
    }
    c.env("LB_ROOT", root)
        .env("LB_HOSTNAME", "127.0.0.1")
        .env("LB_SYSTEM", "x86_64-linux")
        .stdin(std::process::Stdio::null());
    c.output().unwrap()
}

#[test]
fn make_setup_then_unsetup_leaves_the_root_as_it_was() {
    lb_testkit::require_program("make", "make");
    let bin = tool_bin_dir();
    let dir = scratch_root();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    // The machine before: a nix.conf and an ssh_config of its own, the
    // build users' group, and the directories every such machine has
    // (/etc/ssh/ssh_config.d, empty, as Debian's and macOS's ssh ship it;
    // /var/lib): the undo leaves directories it did not create alone, and
    // cannot tell those from its own.
    let w = |rel: &str, text: &str| {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    w("etc/nix/nix.conf", "substituters =\nsandbox = false\n");
    w("etc/ssh/ssh_config", "Host *\n    SendEnv LANG LC_*\n");
    w("etc/group", "root:x:0:\nnixbld:x:30000:nixbld1\n");
    std::fs::create_dir_all(root.join("var/lib")).unwrap();
    std::fs::create_dir_all(root.join("etc/ssh/ssh_config.d")).unwrap();
    let before = Tree::of(&root);

    let port = free_port();
    let runner_dir = tempfile::tempdir().unwrap();
    let runner = TestRunner::write(
        runner_dir.path(),
        Baked {
            port,
            memory: 1024,
            cores: 1,
            disk_mib: 1024,
            installed_key: root.join("etc/nix/builder_ed25519"),
        },
    );
    let workdir = root.join("var/lib/linux-builder");
    let vars: Vec<(String, String)> = [
        ("BIN", format!("{}/", bin.display())),
        ("RUNNER", runner.create_builder.display().to_string()),
        ("WORKDIR", workdir.display().to_string()),
        ("KEYS", workdir.join("keys").display().to_string()),
        ("PORT", port.to_string()),
        ("TRUST_USER", "alice".to_owned()),
        (
            "HOST_KEY",
            format!(
                "@{}",
                workspace_dir()
                    .join("tests/guest/ssh_host_ed25519_key.pub")
                    .display()
            ),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();

    let setup = make("setup", &vars, &root);
    let say = |o: &std::process::Output| {
        format!(
            "{}\nstdout:\n{}\nstderr:\n{}",
            o.status,
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    };
    if !setup.status.success() {
        let _ = make("unsetup", &vars, &root);
        panic!("make setup failed: {}", say(&setup));
    }
    // It did the walkthrough: the alias, the builder, the member, the ping.
    let conf = std::fs::read_to_string(root.join("etc/nix/nix.conf")).unwrap();
    assert!(conf.contains("extra-trusted-users = alice"), "{conf}");
    let group = std::fs::read_to_string(root.join("etc/group")).unwrap();
    assert!(group.contains("nixbld:x:30000:nixbld1,alice"), "{group}");
    assert!(root
        .join("etc/ssh/ssh_config.d/100-linux-builder.conf")
        .is_file());
    assert!(workdir.join("linux-builder.qcow2").is_file());

    let unsetup = make("unsetup", &vars, &root);
    assert!(
        unsetup.status.success(),
        "make unsetup failed: {}",
        say(&unsetup)
    );
    let changed = before.differences(&Tree::of(&root));
    assert!(
        changed.is_empty(),
        "unsetup left the root changed: {changed:?}\n{}",
        say(&unsetup)
    );
}
