//! The manual's walkthrough, chained through the six tools in a scratch
//! root against the test builder VM, asserting on real state after every
//! step; then the chain again (nothing changes), then uninstall (the root
//! is back to what it was). Once per Nix generation (lb_testkit::NixGen)
//! on both sides: the guest's daemon, and the host's `nix` and lb-copy
//! with that generation's Nix and store.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use lb_testkit::tree::Tree;
use lb_testkit::{free_port, nix_matrix, scratch_root, workspace_dir, NixGen, NIX_TEST_OPTIONS};

fn bin_dir() -> PathBuf {
    lb_testkit::tool_bin_dir()
}

struct Chain {
    gen: NixGen,
    root: tempfile::TempDir,
    work: tempfile::TempDir,
    port: u16,
    bin: PathBuf,
    kernel: PathBuf,
    initrd: PathBuf,
}

/// What a file looked like: bytes, mode, mtime.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Chain {
    fn new(gen: NixGen) -> Self {
        let (kernel, initrd) = gen.guest_images();
        Chain {
            gen,
            root: scratch_root(),
            work: tempfile::Builder::new()
                .prefix("lb-e2e-work.")
                .tempdir()
                .unwrap(),
            port: free_port(),
            bin: bin_dir(),
            kernel,
            initrd,
        }
    }

    fn root(&self) -> &Path {
        self.root.path()
    }

    fn keys(&self) -> PathBuf {
        self.work.path().join("keys")
    }

    /// A tool with the builder's identity in LB_* variables, as the demo
    /// and the Makefile pass it.
    fn tool(&self, name: &str) -> Command {
        let mut c = Command::new(self.bin.join(name));
        self.identity(&mut c);
        c
    }

    /// A tool that runs Nix (lb-copy), with this generation as the host's
    /// Nix: its nix, nix-store, daemon and store.
    fn nix_tool(&self, name: &str) -> Command {
        let mut c = self.gen.command(self.bin.join(name));
        self.identity(&mut c);
        c
    }

    fn identity(&self, c: &mut Command) {
        c.env("LB_ROOT", self.root())
            .env("LB_NAME", "linux-builder")
            .env("LB_HOSTNAME", "127.0.0.1")
            .env("LB_PORT", self.port.to_string())
            .env("LB_SYSTEM", "x86_64-linux")
            .env("LB_MAX_JOBS", "2")
            .env(
                "LB_HOST_KEY",
                format!(
                    "@{}",
                    workspace_dir()
                        .join("tests/guest/ssh_host_ed25519_key.pub")
                        .display()
                ),
            )
            .env_remove("NIX_CONF_DIR");
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        let out = self.tool(name).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
            out.status,
            text(&out.stdout),
            text(&out.stderr)
        );
        out
    }

    /// This generation's host-side nix.
    fn nix(&self) -> Command {
        let mut c = self.gen.command("nix");
        c.args(NIX_TEST_OPTIONS)
            .env("NIX_CONF_DIR", self.root().join("etc/nix"))
            .env(
                "NIX_SSHOPTS",
                format!("-F {}", self.root().join("etc/ssh/ssh_config").display()),
            );
        c
    }

    fn vm_args(&self) -> Vec<String> {
        vec![
            "--workdir".into(),
            self.work.path().display().to_string(),
            "--kernel".into(),
            self.kernel.display().to_string(),
            "--initrd".into(),
            self.initrd.display().to_string(),
            "--keys".into(),
            self.keys().display().to_string(),
            "--memory".into(),
            "1024".into(),
            "--cpus".into(),
            "2".into(),
        ]
    }

    /// Steps 1 to 5 of the walkthrough (files and the VM).
    fn configure(&self) {
        // 1. keys
        let out = self.run("lb-keys", &["install", self.keys().to_str().unwrap()]);
        let key = self.root().join("etc/nix/builder_ed25519");
        assert_eq!(text(&out.stdout).trim(), key.display().to_string());
        let m = std::fs::metadata(&key).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, 0o600);
        let nixbld = Command::new("getent")
            .args(["group", "nixbld"])
            .output()
            .unwrap();
        let gid: u32 = text(&nixbld.stdout)
            .split(':')
            .nth(2)
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(m.gid(), gid);
        let pubm = std::fs::metadata(self.root().join("etc/nix/builder_ed25519.pub")).unwrap();
        assert_eq!(pubm.permissions().mode() & 0o777, 0o644);
        assert_eq!(
            std::fs::read(self.keys().join("builder_ed25519.pub")).unwrap(),
            std::fs::read(self.root().join("etc/nix/builder_ed25519.pub")).unwrap()
        );

        // 2. the VM
        let mut args = vec!["start".to_owned(), "--if-not-running".to_owned()];
        args.extend(self.vm_args());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = self.run("lb-vm", &args);
        assert_eq!(text(&out.stdout).trim(), format!("127.0.0.1:{}", self.port));
        let status = self.run(
            "lb-vm",
            &[
                "status",
                "--json",
                "--workdir",
                self.work.path().to_str().unwrap(),
            ],
        );
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(status["running"], true, "{status}");
        assert_eq!(status["ready"], true, "{status}");

        // 3. the ssh alias, as ssh itself resolves it
        self.run("lb-sshcfg", &["install"]);
        let g = Command::new("ssh")
            .arg("-F")
            .arg(self.root().join("etc/ssh/ssh_config"))
            .args(["-G", "linux-builder"])
            .output()
            .unwrap();
        let g = text(&g.stdout);
        for want in [
            "hostname 127.0.0.1".to_owned(),
            format!("port {}", self.port),
            "user builder".to_owned(),
            "hostkeyalias linux-builder".to_owned(),
            format!("identityfile {}", key.display()),
        ] {
            assert!(g.lines().any(|l| l == want), "ssh -G lacks {want:?}:\n{g}");
        }

        // 4. nix.conf, as Nix reads it
        self.run("lb-nixconf", &["install", "--trust-user", "root"]);
        let line = self.run("lb-nixconf", &["line"]);
        let line = text(&line.stdout).trim().to_owned();
        assert!(
            line.starts_with("ssh-ng://builder@linux-builder x86_64-linux "),
            "{line}"
        );
        let cfg = self.nix().args(self.gen.config_show()).output().unwrap();
        assert!(cfg.status.success(), "{}", text(&cfg.stderr));
        let cfg = text(&cfg.stdout);
        assert!(
            cfg.lines().any(|l| l == format!("builders = {line}")),
            "{cfg}"
        );
        assert!(
            cfg.lines().any(|l| l == "builders-use-substitutes = true"),
            "{cfg}"
        );

        // 5. ping, as the daemon would connect
        let ping = self.run("lb-ping", &["--json"]);
        let ping: serde_json::Value = serde_json::from_slice(&ping.stdout).unwrap();
        assert_eq!(ping[0]["ok"], true, "{ping}");
        assert_eq!(
            ping[0]["nix_version"],
            self.gen.version().as_str(),
            "{ping}"
        );
        assert_eq!(ping[0]["protocol"], self.gen.protocol(), "{ping}");
        let trusted = if self.gen.reports_trust() {
            "yes"
        } else {
            "unknown"
        };
        assert_eq!(ping[0]["trusted"], trusted, "{ping}");
    }

    /// Steps 6 and 7: a delegated build, and a build on the builder's store
    /// copied back through lb-copy. Returns the two outputs' contents.
    fn build(&self, stamp: &str) -> (String, String) {
        let nixfile = workspace_dir().join("demo/builder-uname.nix");
        // 6. the host's Nix with --max-jobs 0 hands the build to the builder
        let out = self
            .nix()
            .args(["build", "--max-jobs", "0", "--no-link", "--json", "-f"])
            .arg(&nixfile)
            .args(["--argstr", "stamp", &format!("delegated-{stamp}")])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "delegated build: {}",
            text(&out.stderr)
        );
        // Nix 2.8 has no --print-out-paths; its --json names the outputs.
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let delegated = json[0]["outputs"]["out"].as_str().unwrap();
        let delegated = std::fs::read_to_string(self.gen.host_path(delegated)).unwrap();

        // 7. built on the builder's store, absent here until lb-copy
        let build = self
            .nix()
            .args([
                "build",
                "--eval-store",
                "auto",
                "--store",
                "ssh-ng://builder@linux-builder",
                "--json",
                "-f",
            ])
            .arg(&nixfile)
            .args(["--argstr", "stamp", &format!("remote-{stamp}")])
            .output()
            .unwrap();
        assert!(
            build.status.success(),
            "remote build: {}",
            text(&build.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&build.stdout).unwrap();
        let path = json[0]["outputs"]["out"].as_str().unwrap().to_owned();
        assert!(
            !self.gen.host_path(&path).exists(),
            "{path} should exist only on the builder"
        );
        // lb-copy with this generation as the host's Nix (its nix copy,
        // daemon and store).
        self.gen.ensure_daemon();
        let mut copy = self
            .nix_tool("lb-copy")
            .arg("--no-check-sigs")
            .env("NIX_CONF_DIR", self.root().join("etc/nix"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(copy.stdin.as_mut().unwrap(), &build.stdout).unwrap();
        drop(copy.stdin.take());
        let out = copy.wait_with_output().unwrap();
        assert!(out.status.success(), "lb-copy: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), path);
        let copied = std::fs::read_to_string(self.gen.host_path(&path)).unwrap();
        (delegated, copied)
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        // Never leave the VM running, whatever failed.
        let _ = self
            .tool("lb-vm")
            .args(["stop", "--workdir", self.work.path().to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

nix_matrix! {
fn walkthrough_end_to_end_then_again_then_uninstalled(gen) {
    gen.ensure_daemon();
    let chain = Chain::new(gen);
    // The machine's configuration before the walkthrough.
    std::fs::create_dir_all(chain.root().join("etc/nix")).unwrap();
    std::fs::write(
        chain.root().join("etc/nix/nix.conf"),
        "substituters =\nexperimental-features = nix-command\nsandbox = false\n",
    )
    .unwrap();
    std::fs::create_dir_all(chain.root().join("etc/ssh")).unwrap();
    std::fs::write(
        chain.root().join("etc/ssh/ssh_config"),
        "Host *\n    SendEnv LANG LC_*\n",
    )
    .unwrap();
    let before = Tree::of(chain.root()).files();

    chain.configure();
    let host = text(&Command::new("uname").arg("-n").output().unwrap().stdout)
        .trim()
        .to_owned();
    let stamp = format!(
        "{:?}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let (delegated, copied) = chain.build(&stamp);
    for out in [&delegated, &copied] {
        assert!(out.starts_with("built on "), "{out}");
        assert!(
            !out.starts_with(&format!("built on {host}:")),
            "built on the host, not the builder: {out}"
        );
    }

    // The chain again: nothing changes.
    let configured = Tree::of(chain.root()).files();
    chain.configure();
    let rewritten = configured.rewritten(&Tree::of(chain.root()).files());
    assert!(rewritten.is_empty(), "a second run changed files: {rewritten:?}");

    // Stop, then uninstall: the root is as it was.
    chain.run(
        "lb-vm",
        &["stop", "--workdir", chain.work.path().to_str().unwrap()],
    );
    let status = chain
        .tool("lb-vm")
        .args([
            "status",
            "--json",
            "--workdir",
            chain.work.path().to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["running"], false, "{status}");
    chain.run("lb-nixconf", &["remove"]);
    chain.run("lb-sshcfg", &["uninstall"]);
    chain.run("lb-keys", &["uninstall"]);
    let left = before.differences(&Tree::of(chain.root()).files());
    assert!(left.is_empty(), "uninstall did not restore the root: {left:?}");
}
}
