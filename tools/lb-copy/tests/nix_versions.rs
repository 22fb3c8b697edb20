//! What each Nix generation's `nix build --json` and `nix path-info --json`
//! print, read by lb-copy running with that generation as the host's Nix
//! (its `nix`, `nix-store`, daemon and store): the real output of each
//! version, not fixtures. The shapes differ between versions (asserted
//! here, so a change shows), and lb-copy finds the same paths in all.

use std::path::Path;
use std::process::Output;

use lb_testkit::{nix_matrix, scratch_root, NixGen, NIX_TEST_OPTIONS};
use serde_json::Value;

fn write_exprs(dir: &Path) {
    std::fs::write(
        dir.join("one.nix"),
        "derivation { name = \"lb-shape-one\"; system = builtins.currentSystem; builder = \"/bin/sh\"; \
         args = [\"-c\" \"echo one > $out\"]; }\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("multi.nix"),
        "derivation { name = \"lb-shape-multi\"; system = builtins.currentSystem; builder = \"/bin/sh\"; \
         outputs = [\"out\" \"dev\"]; args = [\"-c\" \"echo out > $out; echo dev > $dev\"]; }\n",
    )
    .unwrap();
}

/// `nix ARGS` of this generation; its stdout.
fn nix(gen: NixGen, args: &[&str]) -> String {
    let out = gen
        .command("nix")
        .args(NIX_TEST_OPTIONS)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{gen}: nix {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// lb-copy of this generation's host side, `--json`, the text on stdin.
fn lb_copy(gen: NixGen, root: &Path, input: &str) -> Output {
    use std::io::Write;
    let mut child = gen
        .command(assert_cmd::cargo::cargo_bin("lb-copy"))
        .arg("--root")
        .arg(root)
        .args([
            "-v",
            "--json",
            "--from",
            "ssh-ng://builder@lbcopy-nowhere.invalid",
        ])
        .env_remove("NIX_CONF_DIR")
        .env_remove("NIX_REMOTE")
        .env_remove("NIX_DAEMON_SOCKET_PATH")
        .env_remove("NIX_SSHOPTS")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// lb-copy reads `input`, finds exactly `paths` (all valid here, asked of
/// this generation's daemon), copies nothing, and says so in --json.
fn reads_as(gen: NixGen, root: &Path, what: &str, input: &str, paths: &[&str]) -> Value {
    let out = lb_copy(gen, root, input);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{gen}, {what}: {err}\ninput: {input}");
    assert!(
        err.contains(&format!("all {} paths are already here", paths.len()))
            || (paths.len() == 1 && err.contains("already here; nothing copied")),
        "{gen}, {what}: {err}"
    );
    assert!(
        err.contains("the Nix daemon at /nix/var/nix/daemon-socket/socket has"),
        "{gen}, {what}: not asked of this generation's daemon: {err}"
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v.to_string();
    for p in paths {
        // Versioned path-info keys are base names.
        let base = p.rsplit('/').next().unwrap();
        assert!(text.contains(base), "{gen}, {what}: {p} missing in {text}");
    }
    assert!(!text.contains("\"copied\":true"), "{gen}, {what}: {text}");
    v
}

nix_matrix! {
    fn lb_copy_reads_every_json_shape_of_this_nix(gen) {
        gen.ensure_daemon();
        let root = scratch_root();
        let dir = root.path();
        write_exprs(dir);
        let one_nix = dir.join("one.nix");
        let multi_nix = dir.join("multi.nix");

        // nix build --json of a derivation: drvPath and outputs (2.26 adds
        // startTime/stopTime when it ran the build; 2.34 did not, seen here).
        let one = nix(gen, &["build", "--no-link", "--json", "-f", one_nix.to_str().unwrap()]);
        let v: Value = serde_json::from_str(&one).unwrap();
        let one_path = v[0]["outputs"]["out"].as_str().unwrap().to_owned();
        assert!(v[0]["drvPath"].is_string(), "{gen}: {one}");
        reads_as(gen, dir, "build --json", &one, &[&one_path]);

        // Two outputs: 2.8 builds and prints only `out` (a bare derivation
        // has no outputsToInstall); 2.26 and 2.34 build and print both.
        let multi = nix(gen, &["build", "--no-link", "--json", "-f", multi_nix.to_str().unwrap()]);
        let v: Value = serde_json::from_str(&multi).unwrap();
        let out = v[0]["outputs"]["out"].as_str().unwrap().to_owned();
        let dev = v[0]["outputs"]["dev"].as_str().map(str::to_owned);
        assert_eq!(dev.is_none(), gen == NixGen::V2_8, "{gen}: {multi}");
        let mut paths = vec![out.as_str()];
        paths.extend(dev.as_deref());
        let a = reads_as(gen, dir, "build --json, two outputs", &multi, &paths);
        assert_eq!(a[0]["copied"]["out"], false, "{a}");

        // A store-path installable: {"path": P} before 2.18, a bare string after.
        let sp = nix(gen, &["build", "--no-link", "--json", &one_path]);
        let v: Value = serde_json::from_str(&sp).unwrap();
        if gen == NixGen::V2_8 {
            assert_eq!(v[0]["path"], one_path.as_str(), "{gen}: {sp}");
        } else {
            assert_eq!(v[0], one_path.as_str(), "{gen}: {sp}");
        }
        reads_as(gen, dir, "build --json of a store path", &sp, &[&one_path]);

        // nix path-info --json: an array of objects with `path` up to 2.18;
        // an object keyed by path from 2.19 (2.33+: `version: 1` and
        // `storeDir` in each info, and a warning without --json-format).
        let pi = nix(gen, &["path-info", "--json", &one_path, &out]);
        let v: Value = serde_json::from_str(&pi).unwrap();
        match gen {
            NixGen::V2_8 => assert!(v.is_array() && v[0]["path"].is_string(), "{gen}: {pi}"),
            NixGen::V2_26 => {
                assert!(v[&one_path].is_object(), "{gen}: {pi}");
                assert!(v[&one_path].get("version").is_none(), "{gen}: {pi}");
            }
            NixGen::V2_34 => assert_eq!(v[&one_path]["version"], 1, "{gen}: {pi}"),
        }
        reads_as(gen, dir, "path-info --json", &pi, &[&one_path, &out]);

        // --json-format 2 (2.33+): {version, storeDir, info: {BASENAME: ...}}.
        if gen == NixGen::V2_34 {
            let v2 = nix(gen, &["path-info", "--json", "--json-format", "2", &one_path, &out]);
            let v: Value = serde_json::from_str(&v2).unwrap();
            assert_eq!(v["version"], 2, "{v2}");
            assert_eq!(v["storeDir"], "/nix/store", "{v2}");
            let base = one_path.trim_start_matches("/nix/store/");
            assert!(v["info"][base].is_object(), "{v2}");
            let a = reads_as(gen, dir, "path-info --json-format 2", &v2, &[&one_path, &out]);
            assert_eq!(a["info"][base]["copied"], false, "{a}");
        }
        // The outputs are in this generation's store, not another's.
        assert!(gen.is_valid(&one_path));
        assert!(gen.host_path(&one_path).exists());
    }
}
