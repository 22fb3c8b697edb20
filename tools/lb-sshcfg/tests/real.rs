//! Real parts: the real `ssh` logging into the harness sshd through the
//! alias, and the HostKeyAlias mismatch reproduced with `nix store ping`.

use std::path::{Path, PathBuf};
use std::process::Output;

use lb_testkit::{keygen, KeyPair, Sshd, NIX_TEST_OPTIONS};

/// A scratch root with the builder's key in ROOT/etc/nix, authorized on a
/// fresh sshd, and the alias NAME installed by lb-sshcfg.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    sshd: Sshd,
    key: KeyPair,
    name: &'static str,
}

impl Setup {
    fn new(name: &'static str) -> Self {
        let dir = lb_testkit::scratch_root();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(root.join("etc/nix")).unwrap();
        let key = keygen(&root.join("etc/nix"), "builder_ed25519");
        let sshd = Sshd::start(Some(&key.public_line()));
        let s = Setup {
            _dir: dir,
            root,
            sshd,
            key,
            name,
        };
        let o = s.lb(&["install"]);
        assert!(o.status.success(), "{}", text(&o.stderr));
        s
    }

    /// lb-sshcfg for this builder, with the sshd's real host key.
    fn lb(&self, args: &[&str]) -> Output {
        self.lb_with_host_key(&format!("@{}", self.sshd.host_key.public.display()), args)
    }

    /// lb-sshcfg for this builder (identity flags first, then `args`).
    fn lb_with_host_key(&self, host_key: &str, args: &[&str]) -> Output {
        let port = self.sshd.port.to_string();
        assert_cmd::Command::cargo_bin("lb-sshcfg")
            .unwrap()
            .env_remove("LB_HOST_KEY")
            .env_remove("LB_ROOT")
            .arg("--root")
            .arg(&self.root)
            .args([
                "--name",
                self.name,
                "--hostname",
                "127.0.0.1",
                "--port",
                &port,
            ])
            .args(["--key", "/etc/nix/builder_ed25519", "--host-key", host_key])
            .args(args)
            .output()
            .unwrap()
    }

    fn ssh_config(&self) -> PathBuf {
        self.root.join("etc/ssh/ssh_config")
    }

    fn conf(&self) -> PathBuf {
        self.root
            .join(format!("etc/ssh/ssh_config.d/100-{}.conf", self.name))
    }

    /// The real ssh through the alias: strict host key checking, no prompt,
    /// and no user known-hosts file, so only the file lb-sshcfg wrote can
    /// vouch for the host key.
    fn ssh_true(&self) -> Output {
        std::process::Command::new("ssh")
            .arg("-F")
            .arg(self.ssh_config())
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "UserKnownHostsFile=/dev/null",
                self.name,
                "true",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    /// `nix store ping` over `ssh-ng://builder@NAME`, the way the daemon
    /// would open it, with NIX_SSHOPTS pointing ssh at the scratch config.
    fn nix_store_ping(&self) -> Output {
        let host_key = lb_common::builder::HostKey::parse(&format!(
            "@{}",
            self.sshd.host_key.public.display()
        ))
        .unwrap();
        let uri = format!(
            "ssh-ng://{}@{}?base64-ssh-public-host-key={}",
            lb_testkit::BUILDER_USER,
            self.name,
            host_key.machines_base64()
        );
        std::process::Command::new("nix")
            .args(NIX_TEST_OPTIONS)
            .args(["store", "ping", "--store", &uri])
            // BatchMode: a host key ssh cannot verify fails instead of prompting.
            .env(
                "NIX_SSHOPTS",
                format!("-F {} -o BatchMode=yes", self.ssh_config().display()),
            )
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    }

    fn set_host_key_alias(&self, alias: &str) {
        let text = std::fs::read_to_string(self.conf()).unwrap();
        let edited = text.replace(
            &format!("HostKeyAlias {}\n", self.name),
            &format!("HostKeyAlias {alias}\n"),
        );
        assert_ne!(
            text,
            edited,
            "no HostKeyAlias line in {}",
            self.conf().display()
        );
        std::fs::write(self.conf(), edited).unwrap();
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_key_exists(p: &Path) {
    assert!(p.is_file(), "{}", p.display());
}

#[test]
fn real_ssh_logs_in_through_the_alias_with_strict_host_key_checking() {
    let s = Setup::new("lb-login");
    assert_key_exists(&s.key.private);
    let o = s.ssh_true();
    assert!(
        o.status.success(),
        "ssh through the alias failed: {}\nsshd log:\n{}",
        text(&o.stderr),
        s.sshd.log()
    );
    let check = s.lb(&["check"]);
    assert!(
        check.status.success(),
        "{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );

    // Negative control: the same login with another host key installed
    // must fail, or the test above proved nothing about verification.
    let o = s.lb_with_host_key(lb_common::builder::NIXPKGS_HOST_KEY, &["install"]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let o = s.ssh_true();
    assert!(!o.status.success());
    assert!(
        text(&o.stderr).contains("Host key verification failed"),
        "{}",
        text(&o.stderr)
    );
    let check = s.lb(&["check"]);
    assert_eq!(check.status.code(), Some(1));
    assert!(
        text(&check.stdout)
            .starts_with("known hosts: the entry for lb-login disagrees with --host-key"),
        "{}",
        text(&check.stdout)
    );
}

#[test]
fn host_key_alias_mismatch_fails_nix_store_ping_and_check_names_it() {
    lb_testkit::ensure_nix_daemon();
    let s = Setup::new("lb-nix");

    // As installed, Nix reaches the builder through the alias.
    let o = s.nix_store_ping();
    assert!(
        o.status.success(),
        "nix store ping through the alias failed: {}\nsshd log:\n{}",
        text(&o.stderr),
        s.sshd.log()
    );

    // The classic mistake (docs/reference.md): HostKeyAlias not the URI's host.
    s.set_host_key_alias("linux-builder");
    let o = s.nix_store_ping();
    assert!(!o.status.success(), "ping succeeded despite the mismatch");
    assert!(
        text(&o.stderr).contains("Host key verification failed"),
        "{}",
        text(&o.stderr)
    );
    let check = s.lb(&["check"]);
    assert_eq!(check.status.code(), Some(1), "{}", text(&check.stderr));
    let out = text(&check.stdout);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("HostKeyAlias: ssh uses linux-builder for lb-nix, expected lb-nix"),
        "{out}"
    );
    assert!(out.contains("Host key verification failed"), "{out}");

    // install puts it right again.
    assert!(s.lb(&["install"]).status.success());
    assert!(s.nix_store_ping().status.success());
}
