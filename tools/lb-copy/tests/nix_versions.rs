//! What each Nix generation's `nix build --json` and `nix path-info --json`
//! print, read by lb-copy running with that generation as the host's Nix
//! (its `nix`, `nix-store`, daemon and store): the real output of each
//! version, not fixtures. The shapes differ between versions (asserted
//! here, so a change shows), and lb-copy finds the same paths in all.

use std::path::Path;
use std::process::Output;

use lb_common::nix_version::NixVersion;
use lb_copy::copy;
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
    lb_copy_with(gen, root, &["-v", "--json"], input)
}

/// lb-copy of this generation's host side with `args`, the text on stdin.
fn lb_copy_with(gen: NixGen, root: &Path, args: &[&str], input: &str) -> Output {
    use std::io::Write;
    let mut c = gen.command(assert_cmd::cargo::cargo_bin("lb-copy"));
    let mut child = lb_testkit::clear_env(&mut c)
        .arg("--root")
        .arg(root)
        .args(args)
        .args(["--from", "ssh-ng://builder@lbcopy-nowhere.invalid"])
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

nix_matrix! {
    fn many_paths_reach_nix_copy_the_way_this_nix_reads_them(gen) {
        gen.ensure_daemon();
        let root = scratch_root();
        // 20,000 paths (some 1.1 MB of them), none here: -n shows the
        // commands, with the version of this generation's nix asked.
        let paths: Vec<String> = (0..20_000)
            .map(|i| format!("/nix/store/{i:032}-lb-copy-many-{i}"))
            .collect();
        let out = lb_copy_with(gen, root.path(), &["-n"], &(paths.join("\n") + "\n"));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{gen}: {}", String::from_utf8_lossy(&out.stderr));
        let cmds: Vec<&str> = stdout.lines().filter(|l| l.contains(" copy --from ")).collect();
        if gen == NixGen::V2_8 {
            // No --stdin before 2.15: one nix copy per batch, all paths in order.
            assert!(cmds.len() > 1, "{gen}: {stdout:.300}");
            let mut seen = Vec::new();
            for c in &cmds {
                assert!(c.len() < copy::ARGV_BUDGET + 200, "{gen}: a line of {} bytes", c.len());
                seen.extend(c.split(' ').filter(|w| w.starts_with("/nix/store/")));
            }
            assert_eq!(seen, paths, "{gen}");
        } else {
            assert_eq!(cmds.len(), 1, "{gen}: {stdout:.300}");
            assert!(
                cmds[0].ends_with("--stdin  # the 20000 paths, one per line on stdin"),
                "{gen}: {}",
                cmds[0]
            );
            assert!(cmds[0].len() < 300, "{gen}: no path on the command line");
        }

        // The --stdin form, as lb-copy builds it, copies for real with this
        // Nix: a path put into a file:// cache, deleted here, copied back.
        let version = NixVersion::parse(&gen.version()).unwrap();
        if version < NixVersion::STDIN_INSTALLABLES {
            return;
        }
        let name = format!("lb-copy-stdin-{}", std::process::id());
        let path = gen.build_local(root.path(), &name);
        let cache = format!("file://{}/cache", root.path().display());
        nix(gen, &["copy", "--to", &cache, &path]);
        let deleted = gen.command("nix-store").args(["--delete", &path]).output().unwrap();
        assert!(deleted.status.success(), "{gen}: {}", String::from_utf8_lossy(&deleted.stderr));
        assert!(!gen.is_valid(&path), "{gen}: {path} still here");

        let cmds = copy::copy_commands(&copy::copy_base(&cache, true, None), &[&path], 0, || {
            Some(version)
        });
        assert_eq!(cmds.len(), 1);
        let c = &cmds[0];
        assert!(c.on_stdin, "{gen}: {}", c.display());
        let ran = {
            use std::io::Write;
            let mut child = gen
                .command(c.cmd.program())
                .args(NIX_TEST_OPTIONS)
                .args(c.cmd.get_args())
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(c.cmd.get_stdin().unwrap()).unwrap();
            child.wait_with_output().unwrap()
        };
        assert!(ran.status.success(), "{gen}: {}: {}", c.display(), String::from_utf8_lossy(&ran.stderr));
        assert!(gen.is_valid(&path), "{gen}: {path} not copied back by {}", c.display());
    }
}
