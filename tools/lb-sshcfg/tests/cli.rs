//! lb-sshcfg in scratch roots: every command, idempotence, byte-for-byte
//! uninstall, several builders side by side, and bad input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use lb_testkit::{clean_command, Outcome, Scenario};

const OTHER_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpXJUcSlyks5WWd6Q+iRez0FCnyJEUQDICEmBeTzlq7 other";

fn scratch() -> Scenario {
    Scenario::new("lb-sshcfg")
}

/// lb-sshcfg's files in a scenario.
trait SshScenario {
    fn main(&self) -> PathBuf;
    fn conf(&self, name: &str) -> PathBuf;
    fn known_hosts(&self, name: &str) -> PathBuf;
    /// The text of `path` with the root shown as `ROOT`, for snapshots.
    fn read_redacted(&self, path: &Path) -> String;
    /// Every file under the root, relative, sorted.
    fn files(&self) -> Vec<String>;
    fn key(&self) -> PathBuf;
}

impl SshScenario for Scenario {
    fn main(&self) -> PathBuf {
        self.path("etc/ssh/ssh_config")
    }

    fn conf(&self, name: &str) -> PathBuf {
        self.path(&format!("etc/ssh/ssh_config.d/100-{name}.conf"))
    }

    fn known_hosts(&self, name: &str) -> PathBuf {
        self.path(&format!("etc/ssh/ssh_config.d/100-{name}.known_hosts"))
    }

    fn read_redacted(&self, path: &Path) -> String {
        self.redact(&std::fs::read_to_string(path).unwrap())
    }

    fn files(&self) -> Vec<String> {
        fn walk(dir: &Path, base: &Path, out: &mut Vec<String>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() && !p.is_symlink() {
                    walk(&p, base, out);
                } else {
                    out.push(p.strip_prefix(base).unwrap().display().to_string());
                }
            }
        }
        let mut out = Vec::new();
        walk(self.root(), self.root(), &mut out);
        out.sort();
        out
    }

    fn key(&self) -> PathBuf {
        let dir = self.path("etc/nix");
        std::fs::create_dir_all(&dir).unwrap();
        lb_testkit::keygen(&dir, "builder_ed25519").private
    }
}

/// `runuser -u builder -- lb-sshcfg --root ROOT ARGS`.
fn as_builder(s: &Scenario, args: &[&str]) -> Outcome {
    let mut c = clean_command("runuser");
    c.args(["-u", lb_testkit::BUILDER_USER, "--"])
        .arg(assert_cmd::cargo::cargo_bin("lb-sshcfg"))
        .arg("--root")
        .arg(s.root())
        .args(args);
    Outcome::of("lb-sshcfg", &mut c)
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn install_writes_alias_known_hosts_and_include() {
    let s = scratch();
    let o = s.run(["install"]).code(0);
    assert_eq!(
        o.stdout(),
        format!("{}\n", s.conf("linux-builder").display())
    );
    assert!(o.stderr().contains("does not exist yet"), "{}", o.stderr());
    insta::assert_snapshot!(s.read_redacted(&s.conf("linux-builder")), @r"
    # Written by lb-sshcfg for builder linux-builder; remove with `lb-sshcfg uninstall --name linux-builder`.
    Host linux-builder
      Hostname localhost
      User builder
      HostKeyAlias linux-builder
      Port 31022
      IdentityFile ROOT/etc/nix/builder_ed25519
      GlobalKnownHostsFile ROOT/etc/ssh/ssh_config.d/100-linux-builder.known_hosts
    ");
    insta::assert_snapshot!(s.read_redacted(&s.known_hosts("linux-builder")), @"linux-builder ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJBWcxb/Blaqt1auOtE+F8QUWrUotiC5qBJ+UuEWdVCb");
    insta::assert_snapshot!(s.read_redacted(&s.main()), @r"
    # BEGIN lb-sshcfg (managed by lb-sshcfg; edits inside are replaced)
    # lb-sshcfg created this file; uninstall deletes it if nothing else is left
    Include ROOT/etc/ssh/ssh_config.d/*.conf
    # END lb-sshcfg
    ");
    for f in [
        s.conf("linux-builder"),
        s.known_hosts("linux-builder"),
        s.main(),
    ] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "{}", f.display());
    }
}

#[test]
fn install_is_idempotent_and_check_flag_reports_changes() {
    let s = scratch();
    s.key();
    s.run(["install", "--check"]).code(1);
    assert_eq!(
        s.files(),
        ["etc/nix/builder_ed25519", "etc/nix/builder_ed25519.pub"]
    );
    s.run(["install"]).code(0);
    let before: Vec<_> = [
        s.conf("linux-builder"),
        s.known_hosts("linux-builder"),
        s.main(),
    ]
    .iter()
    .map(|p| (std::fs::read(p).unwrap(), mtime(p)))
    .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let o = s.run(["install"]).code(0);
    assert_eq!(
        o.stdout(),
        format!("{}\n", s.conf("linux-builder").display())
    );
    assert!(o.stderr().contains("already as wanted"), "{}", o.stderr());
    let after: Vec<_> = [
        s.conf("linux-builder"),
        s.known_hosts("linux-builder"),
        s.main(),
    ]
    .iter()
    .map(|p| (std::fs::read(p).unwrap(), mtime(p)))
    .collect();
    assert_eq!(before, after);
    s.run(["install", "--check"]).code(0);
    // A changed port is a change to make.
    s.run(["--port", "2222", "install", "--check"]).code(1);
}

#[test]
fn dry_run_prints_diff_and_writes_nothing() {
    let s = scratch();
    let o = s.run(["install", "-n"]).code(0);
    assert!(s.files().is_empty(), "{:?}", s.files());
    insta::assert_snapshot!(s.redact(&o.stdout()), @r"
    --- /dev/null
    +++ bROOT/etc/ssh/ssh_config.d/100-linux-builder.known_hosts
    @@ -0,0 +1 @@
    +linux-builder ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJBWcxb/Blaqt1auOtE+F8QUWrUotiC5qBJ+UuEWdVCb
    --- /dev/null
    +++ bROOT/etc/ssh/ssh_config.d/100-linux-builder.conf
    @@ -0,0 +1,8 @@
    +# Written by lb-sshcfg for builder linux-builder; remove with `lb-sshcfg uninstall --name linux-builder`.
    +Host linux-builder
    +  Hostname localhost
    +  User builder
    +  HostKeyAlias linux-builder
    +  Port 31022
    +  IdentityFile ROOT/etc/nix/builder_ed25519
    +  GlobalKnownHostsFile ROOT/etc/ssh/ssh_config.d/100-linux-builder.known_hosts
    --- /dev/null
    +++ bROOT/etc/ssh/ssh_config
    @@ -0,0 +1,4 @@
    +# BEGIN lb-sshcfg (managed by lb-sshcfg; edits inside are replaced)
    +# lb-sshcfg created this file; uninstall deletes it if nothing else is left
    +Include ROOT/etc/ssh/ssh_config.d/*.conf
    +# END lb-sshcfg
    ");
}

#[test]
fn print_shows_the_block_and_writes_nothing() {
    let s = scratch();
    let o = s
        .run([
            "--name",
            "vm2",
            "--user",
            "nixbuild",
            "--hostname",
            "10.0.0.5",
            "--port",
            "2202",
            "--key",
            "/etc/nix/vm2_ed25519",
            "print",
        ])
        .code(0);
    assert!(s.files().is_empty());
    insta::assert_snapshot!(s.redact(&o.stdout()), @r"
    # Written by lb-sshcfg for builder vm2; remove with `lb-sshcfg uninstall --name vm2`.
    Host vm2
      Hostname 10.0.0.5
      User nixbuild
      HostKeyAlias vm2
      Port 2202
      IdentityFile ROOT/etc/nix/vm2_ed25519
      GlobalKnownHostsFile ROOT/etc/ssh/ssh_config.d/100-vm2.known_hosts
    ");
}

/// What `ssh -G` reports for `name` through the scratch ssh_config.
fn dash_g(s: &Scenario, name: &str) -> lb_common::ssh::Resolved {
    let out = std::process::Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(s.main())
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    lb_common::ssh::parse_dash_g(&String::from_utf8_lossy(&out.stdout))
}

#[test]
fn ssh_dash_g_resolves_the_alias() {
    let s = scratch();
    s.run([
        "--name",
        "b1",
        "--hostname",
        "127.0.0.2",
        "--port",
        "31044",
        "--user",
        "nixb",
        "install",
    ])
    .code(0);
    let r = dash_g(&s, "b1");
    assert_eq!(r.hostname, "127.0.0.2");
    assert_eq!(r.port, 31044);
    assert_eq!(r.user, "nixb");
    assert_eq!(r.host_key_alias.as_deref(), Some("b1"));
    assert_eq!(r.identity_files, [s.path("etc/nix/builder_ed25519")]);
    assert_eq!(r.global_known_hosts_files, [s.known_hosts("b1")]);
    // Another name is untouched by the alias.
    assert_eq!(dash_g(&s, "b1x").hostname, "b1x");
}

#[test]
fn builders_side_by_side_do_not_disturb_each_other() {
    let s = scratch();
    let original = "# site config\nHost *\n  ServerAliveInterval 30";
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    std::fs::write(s.main(), original).unwrap();
    s.run(["--name", "a", "--port", "2201", "install"]).code(0);
    let with_include = std::fs::read(s.main()).unwrap();
    s.run(["--name", "b", "--port", "2202", "install"]).code(0);
    assert_eq!(
        std::fs::read(s.main()).unwrap(),
        with_include,
        "second install touched ssh_config"
    );
    assert_eq!((dash_g(&s, "a").port, dash_g(&s, "b").port), (2201, 2202));

    // Removing a keeps b working: its files and the Include stay.
    s.run(["--name", "a", "uninstall"]).code(0);
    assert!(!s.conf("a").exists() && !s.known_hosts("a").exists());
    assert_eq!(std::fs::read(s.main()).unwrap(), with_include);
    assert_eq!(dash_g(&s, "b").port, 2202);
    assert_eq!(dash_g(&s, "a").hostname, "a");

    // Removing the last one gives ssh_config back byte for byte.
    s.run(["--name", "b", "uninstall"]).code(0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), original);
    assert_eq!(s.files(), ["etc/ssh/ssh_config"]);
    // And again: nothing to do.
    let o = s.run(["--name", "b", "uninstall"]).code(0);
    assert!(o.stderr().contains("nothing to remove"), "{}", o.stderr());
}

#[test]
fn uninstall_deletes_an_ssh_config_it_created() {
    let s = scratch();
    s.run(["install"]).code(0);
    s.run(["uninstall", "--check"]).code(1);
    let o = s.run(["uninstall", "-n"]).code(0);
    assert!(o.stdout().contains("-Include "), "{}", o.stdout());
    assert_eq!(s.files().len(), 3, "dry-run removed something");
    s.run(["uninstall"]).code(0);
    assert!(s.files().is_empty(), "{:?}", s.files());
}

#[test]
fn uninstall_keeps_an_ssh_config_it_created_once_edited() {
    let s = scratch();
    s.run(["install"]).code(0);
    let mut text = std::fs::read_to_string(s.main()).unwrap();
    text.push_str("Host *\n  ForwardAgent no\n");
    std::fs::write(s.main(), &text).unwrap();
    s.run(["uninstall"]).code(0);
    assert_eq!(
        std::fs::read_to_string(s.main()).unwrap(),
        "Host *\n  ForwardAgent no\n"
    );
}

#[test]
fn existing_include_is_left_alone_and_empty_file_survives() {
    let s = scratch();
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    let text = "Include ssh_config.d/*.conf\n";
    std::fs::write(s.main(), text).unwrap();
    let before = mtime(&s.main());
    s.run(["install"]).code(0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), text);
    assert_eq!(mtime(&s.main()), before);
    s.run(["uninstall"]).code(0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), text);

    // An empty ssh_config that was there before is kept, empty.
    std::fs::write(s.main(), "").unwrap();
    s.run(["install"]).code(0);
    assert!(!std::fs::read_to_string(s.main())
        .unwrap()
        .contains("created this file"));
    s.run(["uninstall"]).code(0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), "");
}

#[test]
fn debian_include_of_real_etc_is_not_enough_under_a_root() {
    // Debian's default names /etc/ssh/..., not ROOT/etc/ssh/...: the block
    // goes on top, before the first Host line, and comes off cleanly.
    let s = scratch();
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    let debian =
        "# defaults\n\nInclude /etc/ssh/ssh_config.d/*.conf\n\nHost *\n    SendEnv LANG LC_*\n";
    std::fs::write(s.main(), debian).unwrap();
    s.run(["install"]).code(0);
    insta::assert_snapshot!(s.read_redacted(&s.main()), @r"
    # BEGIN lb-sshcfg (managed by lb-sshcfg; edits inside are replaced)
    Include ROOT/etc/ssh/ssh_config.d/*.conf
    # END lb-sshcfg
    # defaults

    Include /etc/ssh/ssh_config.d/*.conf

    Host *
        SendEnv LANG LC_*
    ");
    s.run(["uninstall"]).code(0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), debian);
}

#[test]
fn check_passes_after_install_with_key() {
    let s = scratch();
    s.key();
    s.run(["install"]).code(0);
    let o = s.run(["check"]).code(0);
    assert_eq!(o.stdout(), "");
}

#[test]
fn check_on_empty_root_names_each_missing_piece() {
    let s = scratch();
    let o = s.run(["check"]).code(1);
    insta::assert_snapshot!(s.redact(&o.stdout()), @r"
    ROOT/etc/ssh/ssh_config: absent, so ssh never reads ROOT/etc/ssh/ssh_config.d; run `lb-sshcfg install`
    ROOT/etc/ssh/ssh_config.d/100-linux-builder.conf: absent; run `lb-sshcfg install --name linux-builder`
    cannot resolve linux-builder as ssh does: `ssh -F ROOT/etc/ssh/ssh_config -G -- linux-builder` failed (exit status: 255): Can't open user config file ROOT/etc/ssh/ssh_config: No such file or directory
    ");
}

#[test]
fn check_names_include_missing_and_unresolved_alias() {
    let s = scratch();
    s.key();
    s.run(["install"]).code(0);
    std::fs::write(s.main(), "Host *\n  ServerAliveInterval 30\n").unwrap();
    let o = s.run(["check"]).code(1);
    insta::assert_snapshot!(s.redact(&o.stdout()), @r"
    ROOT/etc/ssh/ssh_config: no `Include ROOT/etc/ssh/ssh_config.d/*.conf` before its first Host block, so ssh never reads the alias; run `lb-sshcfg install`
    linux-builder: not resolved: no Host block ssh reads sets its Hostname (ssh would look up linux-builder in DNS); run `lb-sshcfg install`
    ");
}

#[test]
fn check_names_an_earlier_block_that_overrides() {
    let s = scratch();
    s.key();
    s.run(["install"]).code(0);
    std::fs::write(
        s.path("etc/ssh/ssh_config.d/050-early.conf"),
        "Host linux-*\n  Port 22\n  User root\n  Hostname 10.1.1.1\n",
    )
    .unwrap();
    let o = s.run(["check"]).code(1);
    insta::assert_snapshot!(s.redact(&o.stdout()), @r"
    Hostname: ssh uses 10.1.1.1 for linux-builder, expected localhost (set at ROOT/etc/ssh/ssh_config.d/050-early.conf:4; ssh takes the first value it reads: remove or narrow that line, or run `lb-sshcfg install` if it is in the alias file)
    Port: ssh uses 22 for linux-builder, expected 31022 (set at ROOT/etc/ssh/ssh_config.d/050-early.conf:2; ssh takes the first value it reads: remove or narrow that line, or run `lb-sshcfg install` if it is in the alias file)
    User: ssh uses root for linux-builder, expected builder (set at ROOT/etc/ssh/ssh_config.d/050-early.conf:3; ssh takes the first value it reads: remove or narrow that line, or run `lb-sshcfg install` if it is in the alias file)
    ");
}

#[test]
fn check_names_host_key_alias_known_hosts_and_identity_problems() {
    let s = scratch();
    // Installed with one host key; checked against another, and with a
    // HostKeyAlias edited by hand; the key never installed.
    s.run(["--name", "lbx", "install"]).code(0);
    let conf = s.conf("lbx");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("HostKeyAlias lbx", "HostKeyAlias linux-builder");
    std::fs::write(&conf, text).unwrap();
    let o = s
        .run(["--name", "lbx", "--host-key", OTHER_KEY, "check"])
        .code(1);
    insta::assert_snapshot!(s.redact(&o.stdout()), @r#"
    HostKeyAlias: ssh uses linux-builder for lbx, expected lbx (set at ROOT/etc/ssh/ssh_config.d/100-lbx.conf:5): Nix stores the host key under the URI's host (ssh-ng://builder@lbx), so ssh fails with "Host key verification failed"
    IdentityFile ROOT/etc/nix/builder_ed25519: absent; install the builder's key (`lb-keys install`) or pass --key
    known hosts: the entry for lbx disagrees with --host-key SHA256:bxTotUs7ATG7W9rrgDXpEn0hLsOMd8dYOHUyJhAjhZA: ROOT/etc/ssh/ssh_config.d/100-lbx.known_hosts:1 has SHA256:73nCAX7tESRWJ4ZN8RkOlqB+0bgxKVmbNRUcFPbXMkE; run `lb-sshcfg install` or pass the right --host-key
    "#);
}

#[test]
fn foreign_alias_file_is_not_replaced_or_removed_without_force() {
    let s = scratch();
    std::fs::create_dir_all(s.path("etc/ssh/ssh_config.d")).unwrap();
    let by_hand = "Host linux-builder\n  Hostname localhost\n  Port 31022\n";
    std::fs::write(s.conf("linux-builder"), by_hand).unwrap();
    s.run(["install"])
        .one_line_error(1, "not written by lb-sshcfg");
    assert_eq!(s.files(), ["etc/ssh/ssh_config.d/100-linux-builder.conf"]);
    s.run(["uninstall"])
        .one_line_error(1, "not written by lb-sshcfg");
    assert_eq!(
        std::fs::read_to_string(s.conf("linux-builder")).unwrap(),
        by_hand
    );
    s.run(["install", "--force"]).code(0);
    assert!(std::fs::read_to_string(s.conf("linux-builder"))
        .unwrap()
        .starts_with("# Written by lb-sshcfg"));
}

#[test]
fn bad_names_ports_and_host_keys_exit_2_writing_nothing() {
    let s = scratch();
    for name in ["a b", "lb*", "l?b", "!lb", "a,b", "-lb", "a\"b", "a=b", ""] {
        for cmd in ["install", "print", "check", "uninstall"] {
            s.run([&format!("--name={name}"), cmd])
                .one_line_error(2, "--name");
        }
    }
    for port in ["0", "70000", "-1", "x"] {
        let o = s.run([&format!("--port={port}"), "install"]).code(2);
        assert!(o.stderr().contains("--port"), "{}", o.stderr());
    }
    for key in [
        "not base64!",
        "aGVsbG8gd29ybGQK",
        "ssh-ed25519 AAAAnotakey",
        "@/nonexistent/k.pub",
    ] {
        s.run(["--host-key", key, "install"])
            .one_line_error(2, "--host-key");
    }
    assert!(s.files().is_empty(), "{:?}", s.files());
}

#[test]
fn symlink_at_a_target_fails_with_nothing_written() {
    for target in [
        "etc/ssh/ssh_config.d/100-linux-builder.conf",
        "etc/ssh/ssh_config.d/100-linux-builder.known_hosts",
        "etc/ssh/ssh_config",
    ] {
        let s = scratch();
        std::fs::create_dir_all(s.path("etc/ssh/ssh_config.d")).unwrap();
        let elsewhere = s.path("elsewhere");
        std::fs::write(&elsewhere, "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, s.path(target)).unwrap();
        s.run(["install"]).one_line_error(1, "symlink");
        let mut files = s.files();
        files.retain(|f| f != target);
        assert_eq!(files, ["elsewhere"], "{target}");
        assert_eq!(
            std::fs::read(&elsewhere).unwrap(),
            b"",
            "wrote through {target}"
        );
    }
}

#[test]
fn symlinked_ssh_config_that_already_includes_is_fine() {
    // nix-darwin links /etc/ssh/ssh_config into /etc/static; reading it is
    // fine as long as it needs no change.
    let s = scratch();
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    let real = s.path("static_ssh_config");
    std::fs::write(&real, "Include ssh_config.d/*.conf\n").unwrap();
    std::os::unix::fs::symlink(&real, s.main()).unwrap();
    s.run(["install"]).code(0);
    s.run(["uninstall"]).code(0);
    assert!(s.main().is_symlink());
}

#[test]
fn ssh_config_that_is_a_directory_fails_with_nothing_written() {
    let s = scratch();
    std::fs::create_dir_all(s.main()).unwrap();
    s.run(["install"]).one_line_error(1, "ssh_config");
    assert!(s.files().is_empty(), "{:?}", s.files());
    s.run(["check"]).one_line_error(1, "ssh_config");
}

#[test]
fn non_utf8_ssh_config_is_bad_input() {
    let s = scratch();
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    std::fs::write(s.main(), b"Host \xff\n").unwrap();
    s.run(["install"]).one_line_error(2, "not UTF-8");
    assert_eq!(s.files(), ["etc/ssh/ssh_config"]);
}

#[test]
fn unreadable_ssh_config_as_unprivileged_user_fails_with_nothing_written() {
    assert!(
        lb_common::privilege::is_root(),
        "this test switches to the builder account; run it as root"
    );
    let s = scratch();
    std::fs::create_dir_all(s.path("etc/ssh/ssh_config.d")).unwrap();
    for d in [
        s.root().to_owned(),
        s.path("etc"),
        s.path("etc/ssh"),
        s.path("etc/ssh/ssh_config.d"),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::write(s.main(), "Host *\n").unwrap();
    std::fs::set_permissions(s.main(), std::fs::Permissions::from_mode(0o600)).unwrap();
    // The temp dir above the root must be traversable too.
    as_builder(&s, &["install"]).one_line_error(1, "ssh_config: Permission denied");
    assert_eq!(s.files(), ["etc/ssh/ssh_config"]);
}

#[test]
fn unprivileged_install_into_root_owned_dirs_names_the_sudo_command() {
    assert!(
        lb_common::privilege::is_root(),
        "this test switches to the builder account; run it as root"
    );
    let s = scratch();
    std::fs::create_dir_all(s.path("etc/ssh/ssh_config.d")).unwrap();
    for d in [
        s.root().to_owned(),
        s.path("etc"),
        s.path("etc/ssh"),
        s.path("etc/ssh/ssh_config.d"),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let o =
        as_builder(&s, &["install"]).one_line_error(1, "needs root; run: sudo --reset-timestamp ");
    assert!(o.stderr().contains("lb-sshcfg --root"), "{}", o.stderr());
    assert!(s.files().is_empty(), "{:?}", s.files());
    // Dry-run needs no privilege.
    as_builder(&s, &["install", "-n"]).success();
    assert!(s.files().is_empty());

    // A setting given as a variable is in the sudo command (sudo resets
    // the environment), and that command, run as root, installs with it.
    let mut c = clean_command("runuser");
    c.args(["-u", lb_testkit::BUILDER_USER, "--", "env", "LB_PORT=2222"])
        .arg(assert_cmd::cargo::cargo_bin("lb-sshcfg"))
        .arg("--root")
        .arg(s.root())
        .arg("install");
    let o = Outcome::of("lb-sshcfg", &mut c).one_line_error(1, "needs root; run: ");
    let command = o.stderr();
    let command = command.split_once("needs root; run: ").unwrap().1.trim();
    let argv = shlex::split(command).unwrap();
    assert_eq!(
        &argv[..3],
        ["sudo", "--reset-timestamp", "LB_PORT=2222"],
        "{command}"
    );
    let status = clean_command("env").args(&argv[2..]).status().unwrap();
    assert!(status.success(), "{command}");
    assert!(s
        .read(
            &s.conf("linux-builder")
                .strip_prefix(s.root())
                .unwrap()
                .to_string_lossy()
        )
        .contains("Port 2222"));
}
