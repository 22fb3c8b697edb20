//! lb-nixconf's command line in scratch roots: every command and the bad
//! input of the issue. The real Nix's view of the same files is in nix.rs.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use lb_testkit::{Outcome, Scenario};

/// The manual's line (nixpkgs manual, "Delegating builds to the remote
/// builder") with ${ARCH}=aarch64 and ${MAX_JOBS}=4.
const MANUAL_LINE: &str = "ssh-ng://builder@linux-builder aarch64-linux /etc/nix/builder_ed25519 4 - - - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=";
const NIXPKGS_KEY_LINE: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJBWcxb/Blaqt1auOtE+F8QUWrUotiC5qBJ+UuEWdVCb root@nixos";
const BEGIN: &str = "# BEGIN lb-nixconf (managed by lb-nixconf; edits inside are replaced)";

/// The tool with no ambient configuration and no root.
fn bare() -> Command {
    lb_testkit::tool_command("lb-nixconf")
}

fn outcome(c: &mut Command) -> Outcome {
    Outcome::of("lb-nixconf", c)
}

/// A scratch root holding an empty /etc/nix.
fn scratch() -> Scenario {
    let s = Scenario::new("lb-nixconf");
    std::fs::create_dir_all(s.path("etc/nix")).unwrap();
    s
}

/// lb-nixconf's nix.conf, and the tool run for one system.
trait NixconfScenario {
    fn conf(&self) -> PathBuf;
    fn conf_text(&self) -> String;
    /// `lb-nixconf --root ROOT --system aarch64-linux ARGS`.
    fn nixconf<I, S>(&self, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.nixconf_env([("", ""); 0], args)
    }
    /// As `nixconf`, with `env` set.
    fn nixconf_env<E, K, V, I, S>(&self, env: E, args: I) -> Outcome
    where
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>;
}

impl NixconfScenario for Scenario {
    fn conf(&self) -> PathBuf {
        self.path("etc/nix/nix.conf")
    }

    fn conf_text(&self) -> String {
        std::fs::read_to_string(self.conf()).unwrap()
    }

    fn nixconf_env<E, K, V, I, S>(&self, env: E, args: I) -> Outcome
    where
        E: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut c = self.command();
        c.envs(env).args(["--system", "aarch64-linux"]).args(args);
        self.outcome(&mut c)
    }
}

fn stdout(c: &mut Command) -> String {
    outcome(c).stdout()
}

#[test]
fn line_with_defaults_is_the_manuals() {
    let out = stdout(bare().args(["line", "--system", "aarch64-linux"]));
    assert_eq!(out, format!("{MANUAL_LINE}\n"));
}

#[test]
fn line_takes_every_host_key_form() {
    let tmp = tempfile::tempdir().unwrap();
    let pubfile = tmp.path().join("host.pub");
    std::fs::write(&pubfile, format!("{NIXPKGS_KEY_LINE}\n")).unwrap();
    let base64 = MANUAL_LINE.rsplit(' ').next().unwrap();
    for form in [
        NIXPKGS_KEY_LINE.to_owned(),
        base64.to_owned(),
        format!("@{}", pubfile.display()),
    ] {
        let out = stdout(bare().args(["line", "--system", "aarch64-linux", "--host-key", &form]));
        assert_eq!(out, format!("{MANUAL_LINE}\n"), "{form}");
    }
}

#[test]
fn line_with_every_field() {
    let out = stdout(bare().args([
        "line",
        "--system",
        "x86_64-linux",
        "--name",
        "b2",
        "--user",
        "nixbuild",
        "--max-jobs",
        "8",
        "--speed-factor",
        "3",
        "--features",
        "kvm,big-parallel",
        "--mandatory-features",
        "benchmark",
        "--key",
        "/etc/nix/other_ed25519",
    ]));
    insta::assert_snapshot!(out, @"ssh-ng://nixbuild@b2 x86_64-linux /etc/nix/other_ed25519 8 3 kvm,big-parallel benchmark c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=");
}

#[test]
fn fractional_speed_factor_warns_about_nix_before_2_20() {
    outcome(bare().args(["line", "--speed-factor", "1.5"]))
        .success()
        .stderr_has("--speed-factor 1.5: Nix before 2.20");
    outcome(bare().args(["line", "--speed-factor", "2"]))
        .success()
        .stderr_empty();
}

#[test]
fn bad_flags_exit_2_naming_them() {
    let cases: &[(&[&str], &str)] = &[
        (&["--host-key", "aGVsbG8gd29ybGQK"], "--host-key"),
        (&["--host-key", "not base64!"], "--host-key"),
        (
            &["--host-key", "@/nonexistent/key.pub"],
            "/nonexistent/key.pub",
        ),
        (&["--system", "linux"], "--system \"linux\""),
        (&["--name", "a b"], "--name"),
        (&["--speed-factor=-1"], "--speed-factor"),
        (&["--speed-factor", "0"], "--speed-factor"),
        (
            &["--speed-factor", "inf"],
            "--speed-factor inf: give a positive number",
        ),
        (&["--features", "a b"], "--features"),
        (&["--mandatory-features", "x;y"], "--mandatory-features"),
    ];
    for (args, needle) in cases {
        outcome(bare().arg("line").args(*args))
            .code(2)
            .stdout_empty()
            .stderr_has(needle)
            .stderr_starts_with("lb-nixconf: error:");
    }
    let s = scratch();
    s.nixconf(["install", "--key", "/etc/nix/my key"])
        .code(2)
        .stderr_has("--key");
    s.nixconf(["install", "--trust-user", "a b"]).code(2);
    assert!(!s.conf().exists(), "nothing written on bad input");
}

#[test]
fn install_writes_the_block_and_is_idempotent() {
    let s = scratch();
    let original = "# my settings\nmax-jobs = 0\n\n  sandbox = true   # trailing\nsubstituters =";
    s.write("etc/nix/nix.conf", original);
    s.nixconf(["install", "--trust-user", "alice"])
        .success()
        .stderr_has("updated");
    let text = s.conf_text();
    assert!(text.starts_with(original), "outside lines byte for byte");
    insta::assert_snapshot!(s.redact(&text), @r"
    # my settings
    max-jobs = 0

      sandbox = true   # trailing
    substituters =
    # BEGIN lb-nixconf (managed by lb-nixconf; edits inside are replaced) +newline
    builders = ssh-ng://builder@linux-builder aarch64-linux ROOT/etc/nix/builder_ed25519 4 - - - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=
    builders-use-substitutes = true
    extra-trusted-users = alice
    # END lb-nixconf
    ");

    // Again: nothing touched, mtime kept, --check agrees.
    let mtime = std::fs::metadata(s.conf()).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    s.nixconf(["install", "--trust-user", "alice"])
        .success()
        .stderr_has("already has builder linux-builder");
    assert_eq!(
        std::fs::metadata(s.conf()).unwrap().modified().unwrap(),
        mtime
    );
    s.nixconf(["install", "--check"]).success();

    // A second builder keeps the first; trusted users accumulate.
    s.nixconf(["install", "--check", "--name", "b2"]).code(1);
    s.nixconf([
        "install",
        "--name",
        "b2",
        "--trust-user",
        "bob",
        "--max-jobs",
        "2",
    ])
    .success();
    let text = s.conf_text();
    let body = text
        .split(BEGIN)
        .nth(1)
        .unwrap_or_else(|| text.split("+newline").nth(1).unwrap());
    assert!(
        body.contains("ssh-ng://builder@linux-builder aarch64-linux"),
        "{text}"
    );
    assert!(
        body.contains(" ; ssh-ng://builder@b2 aarch64-linux"),
        "{text}"
    );
    assert!(body.contains("extra-trusted-users = alice bob\n"), "{text}");
    // Reinstalling one replaces its entry in place.
    s.nixconf(["install", "--name", "b2", "--max-jobs", "3"])
        .success();
    let text = s.conf_text();
    assert_eq!(text.matches("builder@b2").count(), 1, "{text}");
    assert!(
        text.contains("builder@b2 aarch64-linux ") && text.contains("_ed25519 3 - - -"),
        "{text}"
    );
    assert!(text.starts_with(original));
}

#[test]
fn dry_run_shows_a_diff_and_writes_nothing() {
    let s = scratch();
    s.write("etc/nix/nix.conf", "a = 1\n");
    let out = s.nixconf(["install", "-n"]);
    assert_eq!(out.status.code(), Some(0));
    insta::assert_snapshot!(s.redact(&out.stdout()), @r"
    --- aROOT/etc/nix/nix.conf
    +++ bROOT/etc/nix/nix.conf
    @@ -1 +1,5 @@
     a = 1
    +# BEGIN lb-nixconf (managed by lb-nixconf; edits inside are replaced)
    +builders = ssh-ng://builder@linux-builder aarch64-linux ROOT/etc/nix/builder_ed25519 4 - - - c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=
    +builders-use-substitutes = true
    +# END lb-nixconf
    ");
    assert_eq!(s.conf_text(), "a = 1\n");
    s.nixconf(["install", "--check"]).code(1).stdout_empty();
    assert_eq!(s.conf_text(), "a = 1\n");
    // --restart under -n prints the restart command after the diff.
    let out = s.nixconf(["install", "-n", "--restart"]).stdout();
    assert!(out.ends_with("systemctl restart nix-daemon\n"), "{out}");
    assert_eq!(s.conf_text(), "a = 1\n");
}

#[test]
fn outside_builders_line_is_a_conflict_unless_forced() {
    let s = scratch();
    let original = "a = 1\nbuilders = ssh://me@old x86_64-linux - 2 ; @/etc/nix/machines\nb = 2\n";
    s.write("etc/nix/nix.conf", original);
    s.nixconf(["install"])
        .code(1)
        .stderr_has(&format!(
            "{}:2: `builders = ssh://me@old x86_64-linux - 2 ; @/etc/nix/machines` is set outside lb-nixconf's block",
            s.conf().display()
        ));
    assert_eq!(s.conf_text(), original);
    s.nixconf(["install", "--force"])
        .success()
        .stderr_has("nix.conf:2: moving this builders line");
    let text = s.conf_text();
    assert!(text.starts_with("a = 1\nb = 2\n"), "{text}");
    assert!(
        text.contains("/etc/nix/builder_ed25519 4 - - - c3No")
            && text.contains(
                "= ; ssh://me@old x86_64-linux - 2 ; @/etc/nix/machines\n".trim_start_matches("= ")
            ),
        "{text}"
    );
    // Moved once; the next run is quiet, and removing our builder leaves
    // the moved entries in the block.
    s.nixconf(["install"]).success();
    s.nixconf(["remove"]).success();
    let text = s.conf_text();
    assert!(
        text.contains("builders = ssh://me@old x86_64-linux - 2 ; @/etc/nix/machines\n"),
        "{text}"
    );
    assert!(!text.contains("linux-builder"), "{text}");

    // In an included file, --force cannot move it.
    let s = scratch();
    s.write("etc/nix/nix.conf", "include extra.conf\n");
    s.write("etc/nix/extra.conf", "builders = ssh-ng://x@y\n");
    s.nixconf(["install", "--force"])
        .code(1)
        .stderr_has("extra.conf:1:")
        .stderr_has("includes");
}

#[test]
fn remove_restores_the_file() {
    let s = scratch();
    let original = "keep = me\nno-newline = at end";
    s.write("etc/nix/nix.conf", original);
    s.nixconf(["install"]).success();
    s.nixconf(["install", "--name", "b2"]).success();
    s.nixconf(["remove", "--check"]).code(1);
    s.nixconf(["remove"]).success();
    let text = s.conf_text();
    assert!(
        text.contains("builder@b2") && !text.contains("linux-builder"),
        "{text}"
    );
    s.nixconf(["remove"])
        .success()
        .stderr_has("no builder linux-builder");
    s.nixconf(["remove", "--name", "b2", "-n"]).success();
    assert_eq!(s.conf_text(), text, "dry run");
    s.nixconf(["remove", "--name", "b2"]).success();
    assert_eq!(s.conf_text(), original);
    // Nothing there at all: fine, nothing created.
    let empty = scratch();
    empty.nixconf(["remove"]).success();
    assert!(!empty.conf().exists());
}

#[test]
fn nix_darwin_symlink_prints_the_snippet() {
    let s = scratch();
    std::os::unix::fs::symlink("/etc/static/nix/nix.conf", s.conf()).unwrap();
    let out = s
        .nixconf([
            "install",
            "--trust-user",
            "alice",
            "--features",
            "kvm,big-parallel",
        ])
        .code(1)
        .stderr_has("nix-darwin");
    insta::assert_snapshot!(out.stdout(), @r#"
    nix.linux-builder = {
      enable = true;
      supportedFeatures = [ "kvm" "big-parallel" ];
      systems = [ "aarch64-linux" ];
    };
    # or, for a builder you run yourself (lb-vm), instead:
    nix.buildMachines = [
      {
        hostName = "linux-builder";
        sshUser = "builder";
        sshKey = "/etc/nix/builder_ed25519";
        publicHostKey = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUpCV2N4Yi9CbGFxdDFhdU90RStGOFFVV3JVb3RpQzVxQkorVXVFV2RWQ2Igcm9vdEBuaXhvcwo=";
        protocol = "ssh-ng";
        maxJobs = 4;
        speedFactor = 1;
        supportedFeatures = [ "kvm" "big-parallel" ];
        mandatoryFeatures = [ ];
        systems = [ "aarch64-linux" ];
      }
    ];
    nix.distributedBuilds = true;
    nix.settings.builders-use-substitutes = true;
    nix.settings.extra-trusted-users = [ "alice" ];
    "#);
    // The link is untouched.
    assert_eq!(
        std::fs::read_link(s.conf()).unwrap(),
        Path::new("/etc/static/nix/nix.conf")
    );
    s.nixconf(["remove"]).code(1).stderr_has("nix-darwin");
}

#[test]
fn other_symlink_is_refused() {
    let s = scratch();
    let real = s.write("elsewhere/nix.conf", "a = 1\n");
    std::os::unix::fs::symlink(&real, s.conf()).unwrap();
    s.nixconf(["install"]).code(1).stderr_has("symlink");
    assert_eq!(std::fs::read_to_string(&real).unwrap(), "a = 1\n");
}

#[test]
fn malformed_configs_exit_2_with_file_and_line() {
    let cases: &[(&[(&str, &str)], &str)] = &[
        (
            &[("etc/nix/nix.conf", "a = 1\nbuilders=x\n")],
            "etc/nix/nix.conf:2:",
        ),
        (&[("etc/nix/nix.conf", "lonely\n")], "etc/nix/nix.conf:1:"),
        (
            &[
                ("etc/nix/nix.conf", "include a.conf\n"),
                ("etc/nix/a.conf", "include nix.conf\n"),
            ],
            "include loop",
        ),
        (
            &[("etc/nix/nix.conf", "x = 1\ninclude absent.conf\n")],
            "etc/nix/nix.conf:2: included file",
        ),
        (
            &[
                ("etc/nix/nix.conf", "include sub.conf\n"),
                ("etc/nix/sub.conf", "ok = 1\n\nbad line here\n"),
            ],
            "etc/nix/sub.conf:3:",
        ),
        (
            &[("etc/nix/nix.conf", "builders = a@b c d e f g h i j\n")],
            "9 fields, at most 8",
        ),
        (
            &[("etc/nix/nix.conf", "builders = a@b x86_64-linux - four\n")],
            "max jobs \"four\"",
        ),
    ];
    for (files, needle) in cases {
        let s = scratch();
        for (rel, text) in *files {
            s.write(rel, text);
        }
        let before = s.conf_text();
        // remove edits only the block, but still refuses a file that does
        // not parse; a bad entry outside the block is not its business.
        let syntax = !["fields", "max jobs", "base64"]
            .iter()
            .any(|n| needle.contains(n));
        for cmd in ["install", "show", "check", "remove"] {
            if cmd == "remove" && !syntax {
                continue;
            }
            let force = if cmd == "install" {
                &["--force"][..]
            } else {
                &[][..]
            };
            s.nixconf(std::iter::once(&cmd).chain(force))
                .code(2)
                .stderr_has(needle);
        }
        assert_eq!(s.conf_text(), before, "never rewritten: {needle}");
    }
    // An include that exists but cannot be read (a directory, since tests
    // may run as root): exit 2 naming it.
    let s = scratch();
    s.write("etc/nix/nix.conf", "include dir.conf\n");
    std::fs::create_dir(s.root().join("etc/nix/dir.conf")).unwrap();
    s.nixconf(["show"]).code(2).stderr_has("dir.conf");
}

#[test]
fn show_follows_includes_at_files_and_nix_conf_dir() {
    let s = scratch();
    let machines = s.write(
        "etc/nix/machines.extra",
        "# a machines file\nssh://m1@file1 x86_64-linux,i686-linux /k1 2 1.5 kvm,nixos-test\n\nssh-ng://m2@file2 - - - - - benchmark\n",
    );
    s.write(
        "etc/nix/nix.conf",
        "builders = ssh-ng://early@ignored\ninclude builders.conf\n!include absent.conf\n",
    );
    s.write(
        "etc/nix/builders.conf",
        format!("builders = ssh-ng://a@h1 aarch64-linux /k 4 ; b@h2 # comment\nbuilders = ssh-ng://a@h1 aarch64-linux /k 4 ; b@h2 ; @{} # comment\n", machines.display()),
    );
    let out = s.nixconf(["show", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["h1", "h2", "file1", "file2"]);
    let b = &v[1];
    assert_eq!(b["uri"], "b@h2");
    assert_eq!(b["effective_uri"], "ssh://b@h2");
    assert_eq!(b["max_jobs"], 1);
    assert_eq!(
        b["source"],
        format!("{}:2", s.root().join("etc/nix/builders.conf").display())
    );
    let f1 = &v[2];
    // A set, sorted, as Nix 2.20 and later read it.
    assert_eq!(
        f1["systems"],
        serde_json::json!(["i686-linux", "x86_64-linux"])
    );
    assert_eq!(f1["speed_factor"], 1.5);
    assert_eq!(f1["ssh_key"], "/k1");
    assert_eq!(
        f1["supported_features"],
        serde_json::json!(["kvm", "nixos-test"])
    );
    assert_eq!(v[3]["mandatory_features"], serde_json::json!(["benchmark"]));

    // NIX_CONF_DIR wins over the root, as for Nix.
    let other = scratch();
    other.write("etc/nix/nix.conf", "builders = ssh-ng://z@elsewhere\n");
    let out = s.nixconf_env(
        [("NIX_CONF_DIR", other.root().join("etc/nix"))],
        ["show", "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v[0]["host"], "elsewhere");

    // Unset builders: Nix's default @CONF_DIR/machines.
    let d = scratch();
    d.write("etc/nix/machines", "ssh-ng://u@from-default\n");
    let text = d.nixconf(["show"]).stdout();
    assert!(
        text.starts_with("ssh-ng://u@from-default\n  host: from-default\n"),
        "{text}"
    );
    assert!(text.contains("  source: "), "{text}");
}

fn age(path: &Path) {
    // Older than any daemon running now.
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(365 * 24 * 3600 * 20))
        .unwrap();
}

#[test]
fn check_reports_each_problem_on_its_line() {
    lb_testkit::ensure_nix_daemon();
    let s = scratch();
    let key = s.write("etc/nix/builder_ed25519", "not really a key\n");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    // The alias ssh reaches the builder by (lb-sshcfg's job).
    s.write(
        "etc/ssh/ssh_config",
        "Host linux-builder\n  Hostname 127.0.0.1\n  Port 31022\n",
    );
    s.nixconf(["install"]).success();

    // The machine's daemon reads /etc/nix, not this scratch root: its
    // start time says nothing about this nix.conf.
    s.nixconf(["check"]).success().stdout_empty();

    // A real nix-daemon that read this root's nix.conf (a --stdio one
    // serves no socket, so the machine's daemon is left alone), started
    // before the file's last change: the change is not in effect.
    age(&s.conf());
    let mut daemon = std::process::Command::new("nix-daemon")
        .arg("--stdio")
        .env("NIX_CONF_DIR", s.root().join("etc/nix"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    s.nixconf(["check"]).success().stdout_empty();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::File::options()
        .write(true)
        .open(s.conf())
        .unwrap()
        .set_modified(SystemTime::now())
        .unwrap();
    let out = s.nixconf(["check"]);
    let _ = daemon.kill();
    let _ = daemon.wait();
    let stdout = out.code(1).stdout();
    assert!(
        stdout.contains(&format!(
            "changed after the running nix-daemon (pid {})",
            daemon.id()
        )) && stdout.contains("systemctl restart nix-daemon"),
        "{stdout}"
    );
    age(&s.conf());

    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    s.nixconf(["check"]).code(1).stdout_has("mode 0644");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let conf = s.conf_text();
    std::fs::write(
        s.conf(),
        format!(
            "builders = ssh-ng://x@old\n{conf}builders = {}\n",
            [
                "user@bare x86_64-linux",
                "ssh-ng://u@badsys x86_64,aarch64-linux",
                "ssh-ng://u@badkey - - 1 - - - aGVsbG8gd29ybGQK",
                &format!("ssh-ng://u@nokey - {}/etc/nix/absent 1", s.root().display()),
                "local - - 1",
            ]
            .join(" ; ")
        ),
    )
    .unwrap();
    age(&s.conf());
    let out = s.nixconf(["check"]);
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(s.redact(&out.stdout()), @r#"
    builders is set 3 times (ROOT/etc/nix/nix.conf:1, ROOT/etc/nix/nix.conf:3, ROOT/etc/nix/nix.conf:6); only the last counts: keep one
    no builder linux-builder in builders (read ROOT/etc/nix/nix.conf); run lb-nixconf install
    ROOT/etc/nix/nix.conf:6: user@bare: a URI without a scheme means legacy ssh://; write ssh-ng://user@bare
    ROOT/etc/nix/nix.conf:6: badsys: system "x86_64" is malformed; give ARCH-OS such as aarch64-linux
    ROOT/etc/nix/nix.conf:6: badkey: host key is not valid: base64 decodes to no public key (Base64 encoding error: invalid Base64 encoding); give `ssh-ed25519 AAAA...`, its base64 form, or @FILE.pub
    ROOT/etc/nix/nix.conf:6: nokey: key file ROOT/etc/nix/absent is missing; install it with lb-keys install
    ROOT/etc/nix/nix.conf:6: local: a local store, not a remote builder; use ssh-ng://USER@HOST
    "#);
}

#[test]
fn restart_daemon_dry_run_per_platform() {
    let out = stdout(
        bare()
            .args(["restart-daemon", "-n"])
            .env("LB_PLATFORM", "linux"),
    );
    assert_eq!(out, "systemctl restart nix-daemon\n");
    let out = stdout(
        bare()
            .args(["restart-daemon", "-n"])
            .env("LB_PLATFORM", "macos"),
    );
    assert_eq!(out, "launchctl kickstart -k system/org.nixos.nix-daemon\n");
    outcome(bare().args(["restart-daemon", "--check"]))
        .success()
        .stdout_empty();
    outcome(
        bare()
            .args(["restart-daemon", "-n"])
            .env("LB_PLATFORM", "windows"),
    )
    .code(2);
}

/// `install --json`: one object saying what became of the entry; `-n`
/// prints no diff and exits 0, `--check` exits 1, neither writes.
#[test]
fn install_json_says_what_became_of_the_entry() {
    let s = scratch();
    let json = |o: Outcome| -> serde_json::Value { serde_json::from_str(&o.stdout()).unwrap() };
    let v = json(s.nixconf(["install", "--json"]).success());
    assert_eq!(v["result"], "changed", "{v}");
    assert_eq!(v["name"], "linux-builder");
    assert_eq!(v["file"], s.conf().display().to_string());
    assert_eq!(v["entry"]["max_jobs"], 4, "{v}");
    assert!(s.conf_text().contains(v["line"].as_str().unwrap()), "{v}");
    let written = s.conf_text();

    let v = json(s.nixconf(["install", "--json"]).success());
    assert_eq!(v["result"], "unchanged", "{v}");

    let v = json(
        s.nixconf(["install", "--json", "-n", "--max-jobs", "2"])
            .success(),
    );
    assert_eq!(v["result"], "would change", "{v}");
    assert_eq!(v["entry"]["max_jobs"], 2, "{v}");
    let v = json(
        s.nixconf(["install", "--json", "--check", "--max-jobs", "2"])
            .code(1),
    );
    assert_eq!(v["result"], "would change", "{v}");
    assert_eq!(s.conf_text(), written, "-n and --check wrote");

    let v = json(
        s.nixconf(["install", "--json", "--max-jobs", "2"])
            .success(),
    );
    assert_eq!(v["result"], "changed", "{v}");
    assert!(s.conf_text().contains(" 2 - - - "), "{}", s.conf_text());
}
