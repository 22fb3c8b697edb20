//! lb-sshcfg in scratch roots: every command, idempotence, byte-for-byte
//! uninstall, several builders side by side, and bad input.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

const OTHER_KEY: &str =
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDpXJUcSlyks5WWd6Q+iRez0FCnyJEUQDICEmBeTzlq7 other";

struct Scratch {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Scratch {
    fn new() -> Self {
        let dir = lb_testkit::scratch_root();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        Scratch { _dir: dir, root }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn main(&self) -> PathBuf {
        self.path("etc/ssh/ssh_config")
    }

    fn conf(&self, name: &str) -> PathBuf {
        self.path(&format!("etc/ssh/ssh_config.d/100-{name}.conf"))
    }

    fn known_hosts(&self, name: &str) -> PathBuf {
        self.path(&format!("etc/ssh/ssh_config.d/100-{name}.known_hosts"))
    }

    /// lb-sshcfg with `--root`, no identity from the environment.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::cargo_bin("lb-sshcfg").unwrap();
        for v in [
            "LB_NAME",
            "LB_USER",
            "LB_HOSTNAME",
            "LB_PORT",
            "LB_KEY",
            "LB_HOST_KEY",
            "LB_ROOT",
            "LB_QUIET",
        ] {
            c.env_remove(v);
        }
        c.arg("--root").arg(&self.root).args(args);
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Text with the scratch root replaced by `ROOT`, for snapshots.
    fn redact(&self, text: &str) -> String {
        text.replace(&self.root.display().to_string(), "ROOT")
    }

    fn read(&self, path: &Path) -> String {
        self.redact(&std::fs::read_to_string(path).unwrap())
    }

    /// Every file under the root, relative, sorted.
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
        walk(&self.root, &self.root, &mut out);
        out.sort();
        out
    }

    fn key(&self) -> PathBuf {
        let dir = self.path("etc/nix");
        std::fs::create_dir_all(&dir).unwrap();
        lb_testkit::keygen(&dir, "builder_ed25519").private
    }
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exactly one line on stderr, an error naming `needle`.
fn one_line_error(o: &Output, status: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(code(o), status, "stderr: {err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("lb-sshcfg: error: "), "{err}");
    assert!(err.contains(needle), "{needle:?} not in {err}");
}

fn mtime(p: &Path) -> std::time::SystemTime {
    std::fs::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn install_writes_alias_known_hosts_and_include() {
    let s = Scratch::new();
    let o = s.run(&["install"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        format!("{}\n", s.conf("linux-builder").display())
    );
    assert!(stderr(&o).contains("does not exist yet"), "{}", stderr(&o));
    insta::assert_snapshot!(s.read(&s.conf("linux-builder")), @r"
    # Written by lb-sshcfg for builder linux-builder; remove with `lb-sshcfg uninstall --name linux-builder`.
    Host linux-builder
      Hostname localhost
      User builder
      HostKeyAlias linux-builder
      Port 31022
      IdentityFile ROOT/etc/nix/builder_ed25519
      GlobalKnownHostsFile ROOT/etc/ssh/ssh_config.d/100-linux-builder.known_hosts
    ");
    insta::assert_snapshot!(s.read(&s.known_hosts("linux-builder")), @"linux-builder ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJBWcxb/Blaqt1auOtE+F8QUWrUotiC5qBJ+UuEWdVCb");
    insta::assert_snapshot!(s.read(&s.main()), @r"
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
    let s = Scratch::new();
    s.key();
    assert_eq!(code(&s.run(&["install", "--check"])), 1);
    assert_eq!(
        s.files(),
        ["etc/nix/builder_ed25519", "etc/nix/builder_ed25519.pub"]
    );
    assert_eq!(code(&s.run(&["install"])), 0);
    let before: Vec<_> = [
        s.conf("linux-builder"),
        s.known_hosts("linux-builder"),
        s.main(),
    ]
    .iter()
    .map(|p| (std::fs::read(p).unwrap(), mtime(p)))
    .collect();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let o = s.run(&["install"]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        stdout(&o),
        format!("{}\n", s.conf("linux-builder").display())
    );
    assert!(stderr(&o).contains("already as wanted"), "{}", stderr(&o));
    let after: Vec<_> = [
        s.conf("linux-builder"),
        s.known_hosts("linux-builder"),
        s.main(),
    ]
    .iter()
    .map(|p| (std::fs::read(p).unwrap(), mtime(p)))
    .collect();
    assert_eq!(before, after);
    assert_eq!(code(&s.run(&["install", "--check"])), 0);
    // A changed port is a change to make.
    assert_eq!(code(&s.run(&["--port", "2222", "install", "--check"])), 1);
}

#[test]
fn dry_run_prints_diff_and_writes_nothing() {
    let s = Scratch::new();
    let o = s.run(&["install", "-n"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(s.files().is_empty(), "{:?}", s.files());
    insta::assert_snapshot!(s.redact(&stdout(&o)), @r"
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
    let s = Scratch::new();
    let o = s.run(&[
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
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(s.files().is_empty());
    insta::assert_snapshot!(s.redact(&stdout(&o)), @r"
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
fn dash_g(s: &Scratch, name: &str) -> lb_common::ssh::Resolved {
    let out = std::process::Command::new("ssh")
        .arg("-G")
        .arg("-F")
        .arg(s.main())
        .arg(name)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    lb_common::ssh::parse_dash_g(&stdout(&out))
}

#[test]
fn ssh_dash_g_resolves_the_alias() {
    let s = Scratch::new();
    let o = s.run(&[
        "--name",
        "b1",
        "--hostname",
        "127.0.0.2",
        "--port",
        "31044",
        "--user",
        "nixb",
        "install",
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
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
    let s = Scratch::new();
    let original = "# site config\nHost *\n  ServerAliveInterval 30";
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    std::fs::write(s.main(), original).unwrap();
    assert_eq!(
        code(&s.run(&["--name", "a", "--port", "2201", "install"])),
        0
    );
    let with_include = std::fs::read(s.main()).unwrap();
    assert_eq!(
        code(&s.run(&["--name", "b", "--port", "2202", "install"])),
        0
    );
    assert_eq!(
        std::fs::read(s.main()).unwrap(),
        with_include,
        "second install touched ssh_config"
    );
    assert_eq!((dash_g(&s, "a").port, dash_g(&s, "b").port), (2201, 2202));

    // Removing a keeps b working: its files and the Include stay.
    let o = s.run(&["--name", "a", "uninstall"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!s.conf("a").exists() && !s.known_hosts("a").exists());
    assert_eq!(std::fs::read(s.main()).unwrap(), with_include);
    assert_eq!(dash_g(&s, "b").port, 2202);
    assert_eq!(dash_g(&s, "a").hostname, "a");

    // Removing the last one gives ssh_config back byte for byte.
    assert_eq!(code(&s.run(&["--name", "b", "uninstall"])), 0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), original);
    assert_eq!(s.files(), ["etc/ssh/ssh_config"]);
    // And again: nothing to do.
    let o = s.run(&["--name", "b", "uninstall"]);
    assert_eq!(code(&o), 0);
    assert!(stderr(&o).contains("nothing to remove"), "{}", stderr(&o));
}

#[test]
fn uninstall_deletes_an_ssh_config_it_created() {
    let s = Scratch::new();
    assert_eq!(code(&s.run(&["install"])), 0);
    assert_eq!(code(&s.run(&["uninstall", "--check"])), 1);
    let o = s.run(&["uninstall", "-n"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("-Include "), "{}", stdout(&o));
    assert_eq!(s.files().len(), 3, "dry-run removed something");
    assert_eq!(code(&s.run(&["uninstall"])), 0);
    assert!(s.files().is_empty(), "{:?}", s.files());
}

#[test]
fn uninstall_keeps_an_ssh_config_it_created_once_edited() {
    let s = Scratch::new();
    assert_eq!(code(&s.run(&["install"])), 0);
    let mut text = std::fs::read_to_string(s.main()).unwrap();
    text.push_str("Host *\n  ForwardAgent no\n");
    std::fs::write(s.main(), &text).unwrap();
    assert_eq!(code(&s.run(&["uninstall"])), 0);
    assert_eq!(
        std::fs::read_to_string(s.main()).unwrap(),
        "Host *\n  ForwardAgent no\n"
    );
}

#[test]
fn existing_include_is_left_alone_and_empty_file_survives() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    let text = "Include ssh_config.d/*.conf\n";
    std::fs::write(s.main(), text).unwrap();
    let before = mtime(&s.main());
    assert_eq!(code(&s.run(&["install"])), 0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), text);
    assert_eq!(mtime(&s.main()), before);
    assert_eq!(code(&s.run(&["uninstall"])), 0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), text);

    // An empty ssh_config that was there before is kept, empty.
    std::fs::write(s.main(), "").unwrap();
    assert_eq!(code(&s.run(&["install"])), 0);
    assert!(!std::fs::read_to_string(s.main())
        .unwrap()
        .contains("created this file"));
    assert_eq!(code(&s.run(&["uninstall"])), 0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), "");
}

#[test]
fn debian_include_of_real_etc_is_not_enough_under_a_root() {
    // Debian's default names /etc/ssh/..., not ROOT/etc/ssh/...: the block
    // goes on top, before the first Host line, and comes off cleanly.
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    let debian =
        "# defaults\n\nInclude /etc/ssh/ssh_config.d/*.conf\n\nHost *\n    SendEnv LANG LC_*\n";
    std::fs::write(s.main(), debian).unwrap();
    assert_eq!(code(&s.run(&["install"])), 0);
    insta::assert_snapshot!(s.read(&s.main()), @r"
    # BEGIN lb-sshcfg (managed by lb-sshcfg; edits inside are replaced)
    Include ROOT/etc/ssh/ssh_config.d/*.conf
    # END lb-sshcfg
    # defaults

    Include /etc/ssh/ssh_config.d/*.conf

    Host *
        SendEnv LANG LC_*
    ");
    assert_eq!(code(&s.run(&["uninstall"])), 0);
    assert_eq!(std::fs::read_to_string(s.main()).unwrap(), debian);
}

#[test]
fn check_passes_after_install_with_key() {
    let s = Scratch::new();
    s.key();
    assert_eq!(code(&s.run(&["install"])), 0);
    let o = s.run(&["check"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    assert_eq!(stdout(&o), "");
}

#[test]
fn check_on_empty_root_names_each_missing_piece() {
    let s = Scratch::new();
    let o = s.run(&["check"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(s.redact(&stdout(&o)), @r"
    ROOT/etc/ssh/ssh_config: absent, so ssh never reads ROOT/etc/ssh/ssh_config.d; run `lb-sshcfg install`
    ROOT/etc/ssh/ssh_config.d/100-linux-builder.conf: absent; run `lb-sshcfg install --name linux-builder`
    cannot resolve linux-builder as ssh does: `ssh -F ROOT/etc/ssh/ssh_config -G -- linux-builder` failed (exit status: 255): Can't open user config file ROOT/etc/ssh/ssh_config: No such file or directory
    ");
}

#[test]
fn check_names_include_missing_and_unresolved_alias() {
    let s = Scratch::new();
    s.key();
    assert_eq!(code(&s.run(&["install"])), 0);
    std::fs::write(s.main(), "Host *\n  ServerAliveInterval 30\n").unwrap();
    let o = s.run(&["check"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(s.redact(&stdout(&o)), @r"
    ROOT/etc/ssh/ssh_config: no `Include ROOT/etc/ssh/ssh_config.d/*.conf` before its first Host block, so ssh never reads the alias; run `lb-sshcfg install`
    linux-builder: not resolved: no Host block ssh reads sets its Hostname (ssh would look up linux-builder in DNS); run `lb-sshcfg install`
    ");
}

#[test]
fn check_names_an_earlier_block_that_overrides() {
    let s = Scratch::new();
    s.key();
    assert_eq!(code(&s.run(&["install"])), 0);
    std::fs::write(
        s.path("etc/ssh/ssh_config.d/050-early.conf"),
        "Host linux-*\n  Port 22\n  User root\n  Hostname 10.1.1.1\n",
    )
    .unwrap();
    let o = s.run(&["check"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(s.redact(&stdout(&o)), @r"
    Hostname: ssh uses 10.1.1.1 for linux-builder, expected localhost (set at ROOT/etc/ssh/ssh_config.d/050-early.conf:4; ssh takes the first value it reads: remove or narrow that line, or run `lb-sshcfg install` if it is in the alias file)
    Port: ssh uses 22 for linux-builder, expected 31022 (set at ROOT/etc/ssh/ssh_config.d/050-early.conf:2; ssh takes the first value it reads: remove or narrow that line, or run `lb-sshcfg install` if it is in the alias file)
    User: ssh uses root for linux-builder, expected builder (set at ROOT/etc/ssh/ssh_config.d/050-early.conf:3; ssh takes the first value it reads: remove or narrow that line, or run `lb-sshcfg install` if it is in the alias file)
    ");
}

#[test]
fn check_names_host_key_alias_known_hosts_and_identity_problems() {
    let s = Scratch::new();
    // Installed with one host key; checked against another, and with a
    // HostKeyAlias edited by hand; the key never installed.
    assert_eq!(code(&s.run(&["--name", "lbx", "install"])), 0);
    let conf = s.conf("lbx");
    let text = std::fs::read_to_string(&conf)
        .unwrap()
        .replace("HostKeyAlias lbx", "HostKeyAlias linux-builder");
    std::fs::write(&conf, text).unwrap();
    let o = s.run(&["--name", "lbx", "--host-key", OTHER_KEY, "check"]);
    assert_eq!(code(&o), 1);
    insta::assert_snapshot!(s.redact(&stdout(&o)), @r#"
    HostKeyAlias: ssh uses linux-builder for lbx, expected lbx (set at ROOT/etc/ssh/ssh_config.d/100-lbx.conf:5): Nix stores the host key under the URI's host (ssh-ng://builder@lbx), so ssh fails with "Host key verification failed"
    IdentityFile ROOT/etc/nix/builder_ed25519: absent; install the builder's key (`lb-keys install`) or pass --key
    known hosts: the entry for lbx disagrees with --host-key SHA256:bxTotUs7ATG7W9rrgDXpEn0hLsOMd8dYOHUyJhAjhZA: ROOT/etc/ssh/ssh_config.d/100-lbx.known_hosts:1 has SHA256:73nCAX7tESRWJ4ZN8RkOlqB+0bgxKVmbNRUcFPbXMkE; run `lb-sshcfg install` or pass the right --host-key
    "#);
}

#[test]
fn foreign_alias_file_is_not_replaced_or_removed_without_force() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("etc/ssh/ssh_config.d")).unwrap();
    let by_hand = "Host linux-builder\n  Hostname localhost\n  Port 31022\n";
    std::fs::write(s.conf("linux-builder"), by_hand).unwrap();
    one_line_error(&s.run(&["install"]), 1, "not written by lb-sshcfg");
    assert_eq!(s.files(), ["etc/ssh/ssh_config.d/100-linux-builder.conf"]);
    one_line_error(&s.run(&["uninstall"]), 1, "not written by lb-sshcfg");
    assert_eq!(
        std::fs::read_to_string(s.conf("linux-builder")).unwrap(),
        by_hand
    );
    assert_eq!(code(&s.run(&["install", "--force"])), 0);
    assert!(std::fs::read_to_string(s.conf("linux-builder"))
        .unwrap()
        .starts_with("# Written by lb-sshcfg"));
}

#[test]
fn bad_names_ports_and_host_keys_exit_2_writing_nothing() {
    let s = Scratch::new();
    for name in ["a b", "lb*", "l?b", "!lb", "a,b", "-lb", "a\"b", "a=b", ""] {
        for cmd in ["install", "print", "check", "uninstall"] {
            let o = s.run(&[&format!("--name={name}"), cmd]);
            one_line_error(&o, 2, "--name");
        }
    }
    for port in ["0", "70000", "-1", "x"] {
        let o = s.run(&[&format!("--port={port}"), "install"]);
        assert_eq!(code(&o), 2, "{port}: {}", stderr(&o));
        assert!(stderr(&o).contains("--port"), "{}", stderr(&o));
    }
    for key in [
        "not base64!",
        "aGVsbG8gd29ybGQK",
        "ssh-ed25519 AAAAnotakey",
        "@/nonexistent/k.pub",
    ] {
        one_line_error(&s.run(&["--host-key", key, "install"]), 2, "--host-key");
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
        let s = Scratch::new();
        std::fs::create_dir_all(s.path("etc/ssh/ssh_config.d")).unwrap();
        let elsewhere = s.path("elsewhere");
        std::fs::write(&elsewhere, "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, s.path(target)).unwrap();
        one_line_error(&s.run(&["install"]), 1, "symlink");
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
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    let real = s.path("static_ssh_config");
    std::fs::write(&real, "Include ssh_config.d/*.conf\n").unwrap();
    std::os::unix::fs::symlink(&real, s.main()).unwrap();
    assert_eq!(code(&s.run(&["install"])), 0);
    assert_eq!(code(&s.run(&["uninstall"])), 0);
    assert!(s.main().is_symlink());
}

#[test]
fn ssh_config_that_is_a_directory_fails_with_nothing_written() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.main()).unwrap();
    one_line_error(&s.run(&["install"]), 1, "ssh_config");
    assert!(s.files().is_empty(), "{:?}", s.files());
    one_line_error(&s.run(&["check"]), 1, "ssh_config");
}

#[test]
fn non_utf8_ssh_config_is_bad_input() {
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("etc/ssh")).unwrap();
    std::fs::write(s.main(), b"Host \xff\n").unwrap();
    one_line_error(&s.run(&["install"]), 2, "not UTF-8");
    assert_eq!(s.files(), ["etc/ssh/ssh_config"]);
}

#[test]
fn unreadable_ssh_config_as_unprivileged_user_fails_with_nothing_written() {
    assert!(
        lb_common::privilege::is_root(),
        "this test switches to the builder account; run it as root"
    );
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("etc/ssh/ssh_config.d")).unwrap();
    for d in [
        s.root.clone(),
        s.path("etc"),
        s.path("etc/ssh"),
        s.path("etc/ssh/ssh_config.d"),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::write(s.main(), "Host *\n").unwrap();
    std::fs::set_permissions(s.main(), std::fs::Permissions::from_mode(0o600)).unwrap();
    // The temp dir above the root must be traversable too.
    let exe = assert_cmd::cargo::cargo_bin("lb-sshcfg");
    let o = std::process::Command::new("runuser")
        .args(["-u", lb_testkit::BUILDER_USER, "--"])
        .arg(&exe)
        .arg("--root")
        .arg(&s.root)
        .arg("install")
        .env_remove("LB_ROOT")
        .output()
        .unwrap();
    one_line_error(&o, 1, "ssh_config: Permission denied");
    assert_eq!(s.files(), ["etc/ssh/ssh_config"]);
}

#[test]
fn unprivileged_install_into_root_owned_dirs_names_the_sudo_command() {
    assert!(
        lb_common::privilege::is_root(),
        "this test switches to the builder account; run it as root"
    );
    let s = Scratch::new();
    std::fs::create_dir_all(s.path("etc/ssh/ssh_config.d")).unwrap();
    for d in [
        s.root.clone(),
        s.path("etc"),
        s.path("etc/ssh"),
        s.path("etc/ssh/ssh_config.d"),
    ] {
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let o = std::process::Command::new("runuser")
        .args(["-u", lb_testkit::BUILDER_USER, "--"])
        .arg(assert_cmd::cargo::cargo_bin("lb-sshcfg"))
        .arg("--root")
        .arg(&s.root)
        .arg("install")
        .env_remove("LB_ROOT")
        .output()
        .unwrap();
    one_line_error(&o, 1, "needs root; run: sudo --reset-timestamp ");
    assert!(stderr(&o).contains("lb-sshcfg --root"), "{}", stderr(&o));
    assert!(s.files().is_empty(), "{:?}", s.files());
    // Dry-run needs no privilege.
    let o = std::process::Command::new("runuser")
        .args(["-u", lb_testkit::BUILDER_USER, "--"])
        .arg(assert_cmd::cargo::cargo_bin("lb-sshcfg"))
        .arg("--root")
        .arg(&s.root)
        .args(["install", "-n"])
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(s.files().is_empty());
}
