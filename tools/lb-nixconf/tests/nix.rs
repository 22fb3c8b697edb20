//! The real Nix of each generation (lb_testkit::NixGen: 2.8, 2.26, 2.34)
//! reads the same files: `nix show-config` (2.8) or `nix config show`
//! (2.20+) with `NIX_CONF_DIR` pointing into a scratch root must report
//! what `install` wrote; the `builders` value it reports, parsed with the
//! shared machines parser, must be what `lb-nixconf show --json` says; and
//! the machines format must be read by each Nix as lb-common's parser reads
//! it for that version (the build hook lists the machines it parsed).

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use lb_common::conf::machines::{self, Dialect};
use lb_common::conf::Location;
use lb_testkit::{nix_matrix, NixGen};

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

/// `nix show-config` / `nix config show` of `gen` as a map, reading only
/// ROOT/etc/nix (no user files, no NIX_CONFIG).
fn show_config(gen: NixGen, root: &Path) -> std::collections::BTreeMap<String, String> {
    lb_testkit::require_program("nix", "nix-bin");
    let out = gen
        .command("nix")
        .args(gen.config_show())
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
        "{gen}: nix {:?}: {}",
        gen.config_show(),
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

nix_matrix! {
fn nix_reads_what_install_wrote(gen) {
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
    let nix = show_config(gen, &root);
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
    let nix = show_config(gen, &root);
    assert_eq!(
        nix["builders"],
        format!("@{}/etc/nix/machines", root.display())
    );
}
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

nix_matrix! {
fn show_json_matches_what_nix_reports(gen) {
    let (_dir, root) = scratch();
    let d = root.join("etc/nix");
    let machines_file = d.join("machines.more");
    std::fs::write(
        &machines_file,
        "# builders from a file\nssh://m1@file1 x86_64-linux,i686-linux /k1 2 3 nixos-test,kvm\n\n  ssh-ng://m2@file2 - - - - - benchmark # trailing\n",
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

    let nix = show_config(gen, &root);
    let value = &nix["builders"];
    let at = Location {
        file: "nix show-config".into(),
        line: 0,
    };
    let this_system = lb_common::platform::Platform::current()
        .unwrap()
        .nix_system();
    // The value as every generation reports it (the nix.conf layer:
    // include, !include, comments, the later assignment winning), read as
    // today's Nix reads it, like lb-nixconf does. Nix before 2.29 would
    // read its `; @FILE` as a machine named "@FILE" (the pieces were never
    // trimmed): nix_reads_the_machines_format_as_lb_common_does.
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
}

/// `builders` as `gen`'s `nix show-config`/`nix config show` reports it
/// with the user's layers: NIX_USER_CONF_FILES and NIX_CONFIG as given.
fn nix_builders(gen: NixGen, root: &Path, user_files: &str, nix_config: Option<&str>) -> String {
    let mut c = gen.command("nix");
    c.args(gen.config_show())
        .args(["--extra-experimental-features", "nix-command"])
        .env("NIX_CONF_DIR", root.join("etc/nix"))
        .env("NIX_USER_CONF_FILES", user_files)
        .env_remove("NIX_CONFIG");
    if let Some(text) = nix_config {
        c.env("NIX_CONFIG", text);
    }
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("builders = "))
        .unwrap_or_default()
        .to_owned()
}

nix_matrix! {
fn show_reads_the_user_files_and_nix_config_as_nix_does(gen) {
    let (_dir, root) = scratch();
    std::fs::write(root.join("etc/nix/nix.conf"), "substituters =\nbuilders = ssh-ng://b@system\n").unwrap();
    let (first, second) = (root.join("first.conf"), root.join("second.conf"));
    std::fs::write(&first, "builders = ssh-ng://b@first\n").unwrap();
    std::fs::write(&second, "builders = ssh-ng://b@second\n").unwrap();
    let files = format!("{}:{}", first.display(), second.display());
    let ours = |nix_config: Option<&str>| -> Vec<String> {
        let mut c = lb(&root);
        c.args(["show", "--json"]).env("NIX_USER_CONF_FILES", &files).env_remove("NIX_CONFIG");
        if let Some(text) = nix_config {
            c.env("NIX_CONFIG", text);
        }
        let out = c.output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .unwrap()
            .iter()
            .map(|m| m["uri"].as_str().unwrap().to_owned())
            .collect()
    };
    // The first user file has the last word, over nix.conf.
    assert_eq!(nix_builders(gen, &root, &files, None), "ssh-ng://b@first");
    assert_eq!(ours(None), ["ssh-ng://b@first"]);
    // NIX_CONFIG over every file.
    let env = "max-jobs = 1\nbuilders = ssh-ng://b@env";
    assert_eq!(nix_builders(gen, &root, &files, Some(env)), "ssh-ng://b@env");
    assert_eq!(ours(Some(env)), ["ssh-ng://b@env"]);
}
}

/// The machines each case's Nix lists when no machine fits the build
/// (build-remote.cc "Failed to find a machine for remote build!"), in its
/// own format: `(systems, maxjobs, supported, mandatory)`, the lists
/// joined with ", " and, from 2.20 on, in brackets; `None` when Nix
/// refused the builders value.
fn machines_nix_lists(gen: NixGen, root: &Path, machines_text: &str) -> Option<Vec<String>> {
    let d = root.join("etc/nix");
    std::fs::write(d.join("machines"), machines_text).unwrap();
    std::fs::write(
        d.join("nix.conf"),
        format!(
            "substituters =\nbuilders = @{}\nexperimental-features = nix-command\nsandbox = false\n",
            d.join("machines").display()
        ),
    )
    .unwrap();
    let expr = root.join("nowhere.nix");
    std::fs::write(
        &expr,
        format!(
            "derivation {{ name = \"lb-nowhere-{}\"; system = \"lb-nowhere-linux\"; builder = \"/bin/sh\"; }}\n",
            machines_text.len()
        ),
    )
    .unwrap();
    let out = gen
        .command("nix")
        .args(["build", "--max-jobs", "0", "--no-link", "-f"])
        .arg(&expr)
        .env("NIX_CONF_DIR", &d)
        .env("NIX_USER_CONF_FILES", root.join("no-user.conf"))
        .env("NO_COLOR", "1")
        .env_remove("NIX_CONFIG")
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "{gen}: a lb-nowhere-linux build succeeded"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    // No colour on a pipe, but make sure.
    let err: String = {
        let mut s = String::new();
        let mut esc = false;
        for c in err.chars() {
            match (esc, c) {
                (false, '\x1b') => esc = true,
                (true, c) if c.is_ascii_alphabetic() => esc = false,
                (true, _) => {}
                (false, c) => s.push(c),
            }
        }
        s
    };
    if err.contains("machine specification") || err.contains("speed factor must be") {
        return None;
    }
    // With no machine at all, Nix does not ask the build hook.
    let Some(at) = err.find("available machines:") else {
        assert!(
            err.contains("lb-nowhere-linux"),
            "{gen}: neither a machine list nor a refusal for {machines_text:?}:\n{err}"
        );
        return Some(Vec::new());
    };
    Some(
        err[at..]
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('('))
            .map(str::to_owned)
            .collect(),
    )
}

/// The same list from lb-common's parser, as that version prints it.
fn machines_we_list(gen: NixGen, machines_text: &str) -> Option<Vec<String>> {
    let at = Location {
        file: "machines".into(),
        line: 0,
    };
    let version = gen.version();
    let this_system = lb_common::platform::Platform::current()
        .unwrap()
        .nix_system();
    let parsed = machines::parse_as(
        machines_text,
        &this_system,
        &at,
        &machines::resolve_as_given,
        Dialect::for_version(&version),
    )
    .ok()?;
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v.join(", ")
    };
    Some(
        parsed
            .iter()
            .map(|m| {
                if gen == NixGen::V2_8 {
                    format!(
                        "({}, {}, {}, {})",
                        m.systems.join(", "),
                        m.max_jobs,
                        sorted(&m.supported_features),
                        sorted(&m.mandatory_features)
                    )
                } else {
                    format!(
                        "([{}], {}, [{}], [{}])",
                        m.systems.join(", "),
                        m.max_jobs,
                        sorted(&m.supported_features),
                        sorted(&m.mandatory_features)
                    )
                }
            })
            .collect(),
    )
}

nix_matrix! {
    /// Cases where versions differ (crates/lb-common/tests/
    /// nix_machines_cases.rs has Nix's own tests): each real Nix accepts or
    /// refuses them, and lists the same fields, as lb-common's parser does
    /// for its version.
    fn nix_reads_the_machines_format_as_lb_common_does(gen) {
        let (_dir, root) = scratch();
        let cases = [
            // Systems: a list as written before 2.20, a sorted set after.
            "nix@h1 x86_64-linux,i686-linux,x86_64-linux - 8 3 kvm,big-parallel benchmark\n",
            // A fractional speed factor: refused before 2.20.
            "nix@h2 - - 2 1.5\n",
            "nix@h9 - - 2 0\n",
            // `;` after `#`: an entry before 2.29, a comment after.
            "# comment ; nix@h3 aarch64-linux\n",
            "# c ; nix@h4 ; nix@h5 - - 3\nnix@h6\n",
            // A piece of only blanks: refused before 2.29 (never trimmed).
            "  # indented comment\nnix@h6\n",
            "nix@h6\n   \n",
            // `@FILE` after a blank: a machine called "@/..." before 2.29.
            "nix@h6 ; @/nonexistent/machines\n",
            // Nix's getMachinesWithCommentsAndSemicolonSeparator: refused
            // before 2.29 (the entry "this is still that comment").
            "# This is a comment ; this is still that comment\nnix@scratchy ; nix@itchy\n",
            // Refused by every version (getMachinesWithIncorrectFormat).
            "nix@h7 - - eight\n",
            "nix@h7 - - 8 -3\n",
            "nix@h7 - - 8 3 - - BAD_BASE64\n",
        ];
        for case in cases {
            let nix = machines_nix_lists(gen, &root, case);
            let ours = machines_we_list(gen, case);
            assert_eq!(ours, nix, "{gen} ({}) reads {case:?}", gen.version());
        }
    }
}
