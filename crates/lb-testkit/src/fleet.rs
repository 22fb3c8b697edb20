//! A fleet of builders: each a host of its own on a loopback address
//! (127.0.0.2, .3, ...: all of 127/8 is loopback), with sshd on port 22,
//! its own host key, its own login key, and a Nix store of its own.
//!
//! A builder's own store matters: builders that share the client's store
//! deadlock, both sides locking the same outputs (docs/reference.md, "Learned
//! since"). Each builder's sshd gives its sessions `NIX_REMOTE=STORE` (a
//! chroot store owned by the `builder` account) and `NIX_CONF_DIR` (its own
//! nix.conf: no substituters, no builders of its own), so the
//! `nix-daemon --stdio` Nix runs there serves that store, as a separate
//! machine's daemon would. The client side needs nothing for it: the
//! builders line stays what the tools write. What a builder built is then
//! in its store ([`Member::built`]).
//!
//! [`Fleet::configure`] sets a scratch root up for the fleet with the
//! tools only (`lb-keys`, `lb-sshcfg`, `lb-nixconf`), as a user adding
//! builders would.

use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::{Sshd, BUILDER_USER};

/// One builder of a fleet, as the user describes it to the tools.
#[derive(Debug, Clone, PartialEq)]
pub struct Spec {
    /// `--name`: the ssh alias and the host of its `ssh-ng://` URI.
    pub name: String,
    /// `--hostname`: where its sshd listens (port 22).
    pub address: Ipv4Addr,
    pub max_jobs: u32,
    pub speed_factor: f64,
    /// `--features`: what derivations may require of it.
    pub features: Vec<String>,
}

impl Spec {
    #[must_use]
    pub fn new(
        name: &str,
        address: Ipv4Addr,
        max_jobs: u32,
        speed_factor: f64,
        features: &[&str],
    ) -> Self {
        Spec {
            name: name.to_owned(),
            address,
            max_jobs,
            speed_factor,
            features: features.iter().map(|&f| f.to_owned()).collect(),
        }
    }
}

/// The feature only one builder of [`eight`] has.
pub const RARE_FEATURE: &str = "fleet-gpu";

/// The fleet of the issue: eight builders on 127.0.0.2 to 127.0.0.9 with
/// different max-jobs (16 slots in all), speed factors and features; only
/// `fleet-8` has [`RARE_FEATURE`].
#[must_use]
pub fn eight() -> Vec<Spec> {
    let table: [(u32, f64, &[&str]); 8] = [
        (1, 1.0, &[]),
        (1, 1.0, &["big-parallel"]),
        (2, 2.0, &["kvm"]),
        (2, 1.0, &["kvm", "big-parallel"]),
        (3, 4.0, &[]),
        (2, 1.0, &["benchmark"]),
        (3, 2.0, &["big-parallel"]),
        (2, 1.0, &["kvm", RARE_FEATURE]),
    ];
    table
        .iter()
        .enumerate()
        .map(|(i, (jobs, speed, features))| {
            let n = i as u8 + 1;
            Spec::new(
                &format!("fleet-{n}"),
                Ipv4Addr::new(127, 0, 0, n + 1),
                *jobs,
                *speed,
                features,
            )
        })
        .collect()
}

/// A running builder of the fleet.
#[derive(Debug)]
pub struct Member {
    pub spec: Spec,
    pub sshd: Sshd,
    /// Its keys directory (as a VM's shared `keys`): `lb-keys install`
    /// generates the pair here and the builder accepts its `.pub`.
    pub keys: PathBuf,
    /// The root of its own Nix store (`STORE/nix/store`).
    pub store: PathBuf,
}

impl Member {
    /// The private key the client logs in with, as given to `--key`
    /// (under the scratch root).
    #[must_use]
    pub fn key_flag(&self) -> String {
        format!("/etc/nix/{}_ed25519", self.spec.name)
    }

    /// The public key line `lb-keys` generated for this builder.
    #[must_use]
    pub fn client_public_key(&self) -> String {
        std::fs::read_to_string(self.keys.join("builder_ed25519.pub"))
            .expect("read the builder's public key (run Fleet::configure first)")
            .trim()
            .to_owned()
    }

    /// Accept the key `lb-keys` generated (as the VM reads its keys dir).
    pub fn accept_client_key(&self) {
        self.sshd.authorize(&self.client_public_key());
    }

    /// The store path base names in this builder's own store whose name
    /// ends with `suffix` (e.g. a derivation's name): what it built or was sent.
    #[must_use]
    pub fn built(&self, suffix: &str) -> Vec<String> {
        let mut out: Vec<String> = std::fs::read_dir(self.store.join("nix/store"))
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.ends_with(suffix))
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid =
            nix::unistd::Pid::from_raw(i32::try_from(self.sshd.pid()).expect("a pid fits an i32"));
        nix::sys::signal::kill(pid, sig).expect("signal the builder's sshd");
    }

    /// Take the builder down: its sshd is killed, connections are refused.
    pub fn go_down(&self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }

    /// Make the builder hang: its sshd is stopped (SIGSTOP), so the kernel
    /// still accepts connections but nothing ever answers on them.
    pub fn hang(&self) {
        self.signal(nix::sys::signal::Signal::SIGSTOP);
    }

    /// Undo [`Member::hang`].
    pub fn resume(&self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }

    /// The derivations this builder ran, from its own build logs
    /// (`STORE/nix/var/log/nix/drvs/XX/REST.drv.bz2`): base names
    /// `HASH-NAME.drv`, sorted.
    #[must_use]
    pub fn logged_builds(&self) -> Vec<String> {
        let logs = self.store.join("nix/var/log/nix/drvs");
        let mut out = Vec::new();
        for prefix in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let head = prefix.file_name().to_string_lossy().into_owned();
            for log in std::fs::read_dir(prefix.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                let tail = log.file_name().to_string_lossy().into_owned();
                if let Some(tail) = tail.strip_suffix(".bz2") {
                    out.push(format!("{head}{tail}"));
                }
            }
        }
        out.sort();
        out
    }

    /// The flags naming this builder to every tool.
    #[must_use]
    pub fn identity_flags(&self) -> Vec<String> {
        vec![
            "--name".into(),
            self.spec.name.clone(),
            "--hostname".into(),
            self.spec.address.to_string(),
            "--port".into(),
            self.sshd.port.to_string(),
            "--key".into(),
            self.key_flag(),
            "--host-key".into(),
            format!("@{}", self.sshd.host_key.public.display()),
            "--system".into(),
            "x86_64-linux".into(),
            "--max-jobs".into(),
            self.spec.max_jobs.to_string(),
        ]
    }

    /// `lb-nixconf install`'s flags beyond the identity.
    #[must_use]
    pub fn line_flags(&self) -> Vec<String> {
        let mut v = vec!["--speed-factor".into(), self.spec.speed_factor.to_string()];
        if !self.spec.features.is_empty() {
            v.push("--features".into());
            v.push(self.spec.features.join(","));
        }
        v
    }
}

/// Builders started by [`Fleet::start`]; their sshd stop when dropped.
#[derive(Debug)]
pub struct Fleet {
    /// Holds the builders' keys dirs, stores and nix.conf files.
    pub work: tempfile::TempDir,
    pub members: Vec<Member>,
}

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The `builder` account's uid and gid.
fn builder_ids() -> (u32, u32) {
    let user = nix::unistd::User::from_name(BUILDER_USER)
        .expect("look up the builder account")
        .unwrap_or_else(|| panic!("no `{BUILDER_USER}` account: {}", crate::SETUP_HINT));
    (user.uid.as_raw(), user.gid.as_raw())
}

impl Fleet {
    /// Start one sshd per spec on `ADDRESS:22`, accepting no key yet (the
    /// keys come from `lb-keys` in [`Fleet::configure`]).
    ///
    /// A machine whose own sshd listens on port 22 of every address
    /// (0.0.0.0:22, as Debian's openssh-server does once started) leaves
    /// no 127.0.0.x:22 to bind: the fleet then uses one other port on
    /// every address, and says so on stderr. The builders stay hosts of
    /// their own, told apart by address, not by port.
    #[must_use]
    pub fn start(specs: Vec<Spec>) -> Self {
        let addrs: Vec<Ipv4Addr> = specs.iter().map(|s| s.address).collect();
        let free = |port: u16| addrs.iter().all(|a| TcpListener::bind((*a, port)).is_ok());
        let port = if free(22) {
            22
        } else {
            let port = (2200..2400)
                .find(|p| free(*p))
                .expect("no port free on every fleet address between 2200 and 2399");
            eprintln!(
                "lb-testkit: port 22 is taken on a fleet address (an sshd on 0.0.0.0:22?); \
                 the fleet's builders listen on port {port} of their addresses instead"
            );
            port
        };
        Self::start_on_port(specs, port)
    }

    /// As [`Fleet::start`], on another port of each address.
    #[must_use]
    pub fn start_on_port(specs: Vec<Spec>, port: u16) -> Self {
        let work = tempfile::Builder::new()
            .prefix("lb-fleet.")
            .tempdir()
            .expect("tempdir");
        // The builder account reads its nix.conf and writes its store here.
        chmod(work.path(), 0o755);
        let (uid, gid) = builder_ids();
        let members = specs
            .into_iter()
            .map(|spec| {
                let dir = work.path().join(&spec.name);
                let keys = dir.join("keys");
                let store = dir.join("store");
                let conf = dir.join("etc-nix");
                for d in [&dir, &keys, &store, &conf] {
                    std::fs::create_dir_all(d).expect("create the builder's directories");
                    chmod(d, 0o755);
                }
                std::os::unix::fs::chown(&store, Some(uid), Some(gid)).expect("chown the store");
                // A builder must itself claim the features the client's
                // builders line promises, or it refuses the build ("a
                // 'x86_64-linux' with features {...} is required", seen here).
                let features = if spec.features.is_empty() {
                    String::new()
                } else {
                    format!("system-features = {}\n", spec.features.join(" "))
                };
                std::fs::write(
                    conf.join("nix.conf"),
                    format!(
                        "# {name}'s own Nix: its own store, nothing fetched or passed on;\n\
                         # the login user trusted, as a builder's daemon trusts it\n\
                         substituters =\nbuilders =\nmax-jobs = {jobs}\n{features}\
                         trusted-users = root {user}\n\
                         experimental-features = nix-command\n",
                        name = spec.name,
                        jobs = spec.max_jobs,
                        user = BUILDER_USER,
                    ),
                )
                .expect("write the builder's nix.conf");
                let extra = format!(
                    "SetEnv NIX_REMOTE={} NIX_CONF_DIR={}",
                    store.display(),
                    conf.display()
                );
                let sshd = Sshd::start_at((spec.address, port).into(), None, &extra);
                Member {
                    spec,
                    sshd,
                    keys,
                    store,
                }
            })
            .collect();
        Fleet { work, members }
    }

    /// The member called `name`.
    #[must_use]
    pub fn member(&self, name: &str) -> &Member {
        self.members
            .iter()
            .find(|m| m.spec.name == name)
            .unwrap_or_else(|| panic!("no builder {name} in the fleet"))
    }

    /// Configure `root` for every builder with the tools in `bin` only:
    /// `lb-keys install` (the builder's pair generated in its keys dir,
    /// which the builder then accepts), `lb-sshcfg install`, `lb-nixconf
    /// install --trust-user root`.
    pub fn configure(&self, bin: &Path, root: &Path) {
        for m in &self.members {
            let id = m.identity_flags();
            let keys = m.keys.display().to_string();
            run_tool(
                bin,
                root,
                "lb-keys",
                &[&["install", &keys][..], &str_refs(&id)].concat(),
            );
            m.accept_client_key();
            run_tool(
                bin,
                root,
                "lb-sshcfg",
                &[&["install"][..], &str_refs(&id)].concat(),
            );
            let line = m.line_flags();
            run_tool(
                bin,
                root,
                "lb-nixconf",
                &[
                    &["install", "--trust-user", "root"][..],
                    &str_refs(&id),
                    &str_refs(&line),
                ]
                .concat(),
            );
        }
    }
}

fn str_refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Run tool `name` from `bin` in `root`; panics with its output unless it
/// succeeds.
#[allow(clippy::must_use_candidate)] // callers often want only the success check
pub fn run_tool(bin: &Path, root: &Path, name: &str, args: &[&str]) -> Output {
    let out = tool(bin, root, name)
        .args(args)
        .output()
        .expect("run a tool");
    assert!(
        out.status.success(),
        "{name} {args:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A tool from `bin` working in `root`, with no LB_* or NIX_* of the
/// caller's leaking in ([`crate::clean_command`]).
#[must_use]
pub fn tool(bin: &Path, root: &Path, name: &str) -> Command {
    let mut c = crate::clean_command(bin.join(name));
    c.arg("--root").arg(root);
    c
}
