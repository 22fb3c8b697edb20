//! lb-ping and lb-doctor on a machine Determinate Nix manages: they only
//! read, and find the builders line lb-nixconf put in nix.custom.conf
//! through Determinate's `!include` of it (issue 14: every tool).

use lb_testkit::fleet::{run_tool, tool};
use lb_testkit::{free_port, scratch_root};

#[test]
fn readers_find_the_builder_in_determinates_custom_conf() {
    let bin = lb_testkit::tool_bin_dir();
    let dir = scratch_root();
    let root = std::fs::canonicalize(dir.path()).unwrap();
    lb_testkit::layouts::determinate(&root);
    let port = free_port().to_string();
    let install = run_tool(
        &bin,
        &root,
        "lb-nixconf",
        &["--name", "det-builder", "--port", &port, "install"],
    );
    assert!(install.status.success(), "{install:?}");
    assert!(
        std::fs::read_to_string(root.join("etc/nix/nix.custom.conf"))
            .unwrap()
            .contains("ssh-ng://builder@det-builder")
    );

    // Nothing listens: the builder is found, and named as down.
    let out = tool(&bin, &root, "lb-ping")
        .args(["--json", "--timeout", "2"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let reports: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["host"], "det-builder");

    let out = tool(&bin, &root, "lb-doctor")
        .args([
            "--json",
            "--no-vm",
            "--timeout",
            "2",
            "--name",
            "det-builder",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let builders = doc["builders"].as_array().unwrap();
    assert_eq!(builders.len(), 1, "{doc}");
    assert_eq!(builders[0]["uri"], "ssh-ng://builder@det-builder");
}
