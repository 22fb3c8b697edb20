//! `make install` puts every tool, man page and completion under
//! DESTDIR/PREFIX with the modes a package would give, and `make
//! uninstall` removes exactly those files: what was there before (another
//! program's files) is left, byte for byte. The binaries are the ones
//! cargo built for this test (`BUILT=`, `CARGO=true` so no release build
//! runs); the recipes are the Makefile's.

use std::path::Path;
use std::process::{Command, Output};

use lb_testkit::tree::Tree;
use lb_testkit::{clean_command, scratch_root, tool_bin_dir, workspace_dir};

const PREFIX: &str = "usr/local";

fn make(target: &str, destdir: &Path) -> Output {
    let mut c: Command = clean_command("make");
    c.arg("-C")
        .arg(workspace_dir())
        .arg("--no-print-directory")
        .arg(target)
        .arg("CARGO=true")
        .arg(format!("BUILT={}", tool_bin_dir().display()))
        .arg(format!("DESTDIR={}", destdir.display()))
        .arg(format!("PREFIX=/{PREFIX}"))
        .stdin(std::process::Stdio::null());
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "make {target}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn make_install_then_uninstall_leaves_only_what_was_there() {
    lb_testkit::require_program("make", "make");
    let dest = scratch_root();
    let d = dest.path();
    // Another program's files in the same directories.
    for (rel, text) in [
        ("usr/local/bin/other-tool", "#!/bin/sh\n"),
        ("usr/local/share/man/man1/other-tool.1", ".TH OTHER 1\n"),
        (
            "usr/local/share/bash-completion/completions/other-tool",
            "# other\n",
        ),
    ] {
        let p = d.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let before = Tree::of(d);

    make("install", d);
    let installed = Tree::of(d);
    let new: Vec<String> = installed.files().differences(&before.files());
    let tools: Vec<String> = lb_docs::tools()
        .into_iter()
        .map(|(c, _)| c.get_name().to_owned())
        .collect();
    assert_eq!(tools.len(), 7, "{tools:?}");
    let mut want = Vec::new();
    for t in &tools {
        want.push(format!("{PREFIX}/bin/{t}"));
        want.push(format!("{PREFIX}/share/man/man1/{t}.1"));
        want.push(format!("{PREFIX}/share/bash-completion/completions/{t}"));
        want.push(format!("{PREFIX}/share/zsh/site-functions/_{t}"));
        want.push(format!("{PREFIX}/share/fish/vendor_completions.d/{t}.fish"));
    }
    // Every man page of a subcommand too (lb-vm-start.1...): all of man/.
    let man_pages: Vec<String> = std::fs::read_dir(workspace_dir().join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".1"))
        .collect();
    for m in &man_pages {
        let p = format!("{PREFIX}/share/man/man1/{m}");
        if !want.contains(&p) {
            want.push(p);
        }
    }
    want.sort();
    assert_eq!(new, want, "make install put these files");
    for path in &new {
        let e = &installed.0[Path::new(path)];
        let mode = if path.contains("/bin/") { 0o755 } else { 0o644 };
        assert_eq!(e.mode, mode, "{path}: mode {:o}", e.mode);
    }
    // The installed binaries run (the ones the test built, copied whole).
    for t in &tools {
        let out = Command::new(d.join(PREFIX).join("bin").join(t))
            .arg("--version")
            .output()
            .unwrap();
        assert!(out.status.success(), "{t} --version");
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(t.as_str()));
    }

    make("uninstall", d);
    let after = Tree::of(d);
    let left = before.files().differences(&after.files());
    assert!(left.is_empty(), "make uninstall left or removed: {left:?}");
    // The directories install made stay (shared with other software).
    assert!(d.join(PREFIX).join("share/zsh/site-functions").is_dir());
    // A second uninstall has nothing to do and succeeds.
    make("uninstall", d);
    assert_eq!(Tree::of(d), after);
}
