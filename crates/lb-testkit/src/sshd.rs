//! A real OpenSSH server for one test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{keygen, KeyPair, BUILDER_USER, SETUP_HINT};

/// `sshd -D` on a free loopback port (or the address [`Sshd::start_at`]
/// is given); killed when dropped.
#[derive(Debug)]
pub struct Sshd {
    /// The address it listens on: 127.0.0.1 unless started with [`Sshd::start_at`].
    pub address: IpAddr,
    pub port: u16,
    /// The server's host key pair (public part: `host_key.public`).
    pub host_key: KeyPair,
    /// The directory holding its config, keys and log.
    pub dir: tempfile::TempDir,
    child: Child,
}

impl Sshd {
    /// Start a server that lets `builder` in with `authorized` (a `.pub`
    /// line, or none). Checks for the account first.
    #[must_use]
    pub fn start(authorized: Option<&str>) -> Self {
        Self::start_with(authorized, "")
    }

    /// As [`Sshd::start`], with extra sshd_config lines.
    #[must_use]
    pub fn start_with(authorized: Option<&str>, extra_config: &str) -> Self {
        let port = crate::free_port();
        Self::start_at((Ipv4Addr::LOCALHOST, port).into(), authorized, extra_config)
    }

    /// As [`Sshd::start_with`], listening on `listen`: a loopback address
    /// other than 127.0.0.1 (all of 127/8 is loopback) makes a host of its
    /// own, e.g. 127.0.0.2:22 for one builder of a fleet.
    #[must_use]
    pub fn start_at(listen: SocketAddr, authorized: Option<&str>, extra_config: &str) -> Self {
        crate::require_program("/usr/sbin/sshd", "openssh-server");
        require_builder_account();
        // sshd insists on its privilege-separation directory.
        std::fs::create_dir_all("/run/sshd").expect("create /run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("lb-sshd.")
            .tempdir()
            .expect("tempdir");
        // sshd (as root) and the builder user both read these.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let host_key = keygen(dir.path(), "host_ed25519");
        let auth = dir.path().join("authorized_keys");
        std::fs::write(
            &auth,
            authorized.map(|k| format!("{k}\n")).unwrap_or_default(),
        )
        .expect("write authorized_keys");
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress {listen}\nHostKey {hk}\nAuthorizedKeysFile {auth}\n\
                 PidFile {pid}\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nAllowUsers {BUILDER_USER}\nLogLevel VERBOSE\n\
                 Subsystem sftp internal-sftp\n{extra_config}\n",
                hk = host_key.private.display(),
                auth = auth.display(),
                pid = dir.path().join("sshd.pid").display(),
            ),
        )
        .expect("write sshd_config");
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("log");
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sshd");
        let sshd = Sshd {
            address: listen.ip(),
            port: listen.port(),
            host_key,
            dir,
            child,
        };
        if let Err(e) = crate::wait_for_ssh_banner_at(listen, Duration::from_secs(10)) {
            panic!("{e}\nsshd log:\n{}", sshd.log());
        }
        sshd
    }

    /// Where it listens.
    #[must_use]
    pub fn socket_addr(&self) -> SocketAddr {
        (self.address, self.port).into()
    }

    /// The listening process's id (to stop it with SIGSTOP: a builder that
    /// accepts connections and then never answers).
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Replace the authorized keys.
    pub fn authorize(&self, key_line: &str) {
        std::fs::write(
            self.dir.path().join("authorized_keys"),
            format!("{key_line}\n"),
        )
        .expect("write authorized_keys");
    }

    /// The server's log so far (for failure messages).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// A known_hosts file accepting this server under `alias`.
    #[must_use]
    pub fn known_hosts(&self, alias: &str) -> PathBuf {
        let p = self.dir.path().join(format!("known_hosts.{alias}"));
        std::fs::write(&p, format!("{alias} {}\n", self.host_key.public_line()))
            .expect("write known_hosts");
        p
    }

    /// An ssh_config with an alias for this server, for `ssh -F` and
    /// `NIX_SSHOPTS=-F...`.
    #[must_use]
    pub fn ssh_config(&self, alias: &str, identity: &Path) -> PathBuf {
        let p = self.dir.path().join(format!("ssh_config.{alias}"));
        std::fs::write(
            &p,
            format!(
                "Host {alias}\n  Hostname {address}\n  Port {port}\n  User {BUILDER_USER}\n  HostKeyAlias {alias}\n  \
                 IdentityFile {id}\n  UserKnownHostsFile {kh}\n  StrictHostKeyChecking yes\n  BatchMode yes\n",
                address = self.address,
                port = self.port,
                id = identity.display(),
                kh = self.known_hosts(alias).display(),
            ),
        )
        .expect("write ssh_config");
        p
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `builder` account must exist, be unlocked (sshd refuses `!` in
/// shadow) and reach the nix daemon socket (group nix-users on Debian).
fn require_builder_account() {
    let out = Command::new("id")
        .arg(BUILDER_USER)
        .output()
        .expect("run id");
    assert!(
        out.status.success(),
        "no `{BUILDER_USER}` account on this machine: {SETUP_HINT}"
    );
    let groups = String::from_utf8_lossy(&out.stdout);
    assert!(
        groups.contains("(nix-users)") || !Path::new("/nix/var/nix/daemon-socket").exists(),
        "`{BUILDER_USER}` is not in group nix-users and cannot reach the nix daemon: {SETUP_HINT}"
    );
}
