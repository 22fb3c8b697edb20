//! The Nix generations every real-parts test runs against, on both sides
//! (tests/nix/README.md):
//!
//! | generation | Debian | worker protocol |
//! |---|---|---|
//! | 2.8  | bookworm (this machine's `nix-bin`) | 1.34 |
//! | 2.26 | trixie | 1.38 |
//! | 2.34 | sid | 1.38 |
//!
//! For each: the builder side is a test guest whose nix-daemon and build
//! hook are that release's ([`NixGen::vm`]); the host side is that
//! release's `nix`, `nix-store` and `nix-daemon` with a store of their own
//! ([`NixGen::command`], [`NixGen::ensure_daemon`]): this machine's own for
//! 2.8, a Debian root under chroot (`tests/nix/host.sh`) for the others.
//! [`nix_matrix!`](crate::nix_matrix) turns one test body into one test per
//! generation.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};

use crate::{workspace_dir, Vm, SETUP_HINT};

/// One Nix generation of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NixGen {
    /// Debian 12's nix-bin 2.8.0 (2022): this machine's own.
    V2_8,
    /// Debian 13 (trixie) nix-bin 2.26.3.
    V2_26,
    /// Debian sid nix-bin 2.34.x.
    V2_34,
}

impl NixGen {
    /// Every generation, oldest first.
    pub const ALL: [NixGen; 3] = [NixGen::V2_8, NixGen::V2_26, NixGen::V2_34];

    /// `2.8`, `2.26`, `2.34`: what `tests/nix/host.sh`, `tests/guest/build.sh
    /// --nix` and the demo's `LB_NIX` take.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            NixGen::V2_8 => "2.8",
            NixGen::V2_26 => "2.26",
            NixGen::V2_34 => "2.34",
        }
    }

    /// The generation named `2.8`, `2.26` or `2.34`.
    #[must_use]
    pub fn parse(name: &str) -> Option<NixGen> {
        NixGen::ALL.into_iter().find(|g| g.name() == name)
    }

    /// The Debian suite its nix-bin comes from.
    #[must_use]
    pub fn suite(self) -> &'static str {
        match self {
            NixGen::V2_8 => "bookworm",
            NixGen::V2_26 => "trixie",
            NixGen::V2_34 => "sid",
        }
    }

    /// The worker protocol its daemon speaks: `PROTOCOL_VERSION` in
    /// src/libstore/worker-protocol.hh of the tag (2.8.0: `1 << 8 | 34`;
    /// 2.26.3: `1 << 8 | 38`; 2.34: `1.38` as `WorkerProto::Version::latest`).
    #[must_use]
    pub fn protocol(self) -> &'static str {
        match self {
            NixGen::V2_8 => "1.34",
            NixGen::V2_26 | NixGen::V2_34 => "1.38",
        }
    }

    /// Does its daemon tell a client whether it trusts it (protocol 1.35)?
    #[must_use]
    pub fn reports_trust(self) -> bool {
        self != NixGen::V2_8
    }

    /// The root holding this generation (`/` for 2.8), made by
    /// `tests/nix/make-root.sh` once and cached under `target/nix`.
    #[must_use]
    pub fn root(self) -> PathBuf {
        static ROOTS: OnceLock<Mutex<HashMap<NixGen, PathBuf>>> = OnceLock::new();
        let roots = ROOTS.get_or_init(Mutex::default);
        let mut roots = roots.lock().expect("roots");
        roots
            .entry(self)
            .or_insert_with(|| {
                let out = Command::new("bash")
                    .arg(workspace_dir().join("tests/nix/make-root.sh"))
                    .arg(self.suite())
                    .stderr(Stdio::inherit())
                    .output()
                    .expect("run tests/nix/make-root.sh");
                assert!(
                    out.status.success(),
                    "tests/nix/make-root.sh {} failed ({}); {SETUP_HINT}",
                    self.suite(),
                    out.status
                );
                PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
            })
            .clone()
    }

    /// `PROGRAM` as this generation's host-side Nix runs it: as is for 2.8,
    /// through `tests/nix/host.sh GEN` (chroot of its root, the workspace
    /// and /tmp bound in) for the others. Environment and working
    /// directory pass through.
    #[must_use]
    pub fn command(self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        if self == NixGen::V2_8 {
            return Command::new(program);
        }
        // Made here, with its progress shown, not inside host.sh.
        let _ = self.root();
        let mut c = Command::new("bash");
        c.arg(workspace_dir().join("tests/nix/host.sh"))
            .arg(self.name())
            .arg(program);
        c
    }

    /// A host path as this generation's Nix sees it (its store is under
    /// its root).
    #[must_use]
    pub fn host_path(self, path: &str) -> PathBuf {
        self.root().join(path.trim_start_matches('/'))
    }

    /// What `nix --version` of this generation says, e.g. `2.34.8`.
    #[must_use]
    pub fn version(self) -> String {
        static VERSIONS: OnceLock<Mutex<HashMap<NixGen, String>>> = OnceLock::new();
        let versions = VERSIONS.get_or_init(Mutex::default);
        let mut versions = versions.lock().expect("versions");
        versions
            .entry(self)
            .or_insert_with(|| {
                crate::require_program("nix", "nix-bin");
                let out = self
                    .command("nix")
                    .arg("--version")
                    .output()
                    .expect("nix --version");
                let text = String::from_utf8_lossy(&out.stdout);
                let v = text
                    .trim()
                    .rsplit(' ')
                    .next()
                    .unwrap_or_default()
                    .to_owned();
                assert!(
                    v.starts_with(&format!("{}.", self.name())),
                    "Nix {} says {text:?}",
                    self.name()
                );
                v
            })
            .clone()
    }

    /// The daemon socket of this generation's host-side store, as a path
    /// on this machine.
    #[must_use]
    pub fn daemon_socket(self) -> PathBuf {
        self.host_path(crate::NIX_DAEMON_SOCKET)
    }

    /// Make sure this generation's host-side nix-daemon answers on its
    /// socket: the machine's for 2.8 ([`crate::ensure_nix_daemon`]); for the
    /// others, one started in its root for this test process (killed when
    /// the process ends), unless one already answers.
    pub fn ensure_daemon(self) {
        static DAEMONS: OnceLock<Mutex<HashMap<NixGen, Option<Child>>>> = OnceLock::new();
        if self == NixGen::V2_8 {
            crate::ensure_nix_daemon();
            return;
        }
        let daemons = DAEMONS.get_or_init(Mutex::default);
        let mut daemons = daemons.lock().expect("daemons");
        let socket = self.daemon_socket();
        let answers = || std::os::unix::net::UnixStream::connect(&socket).is_ok();
        if answers() {
            return;
        }
        // As for the VM: a lifeline shell kills the daemon when this
        // process ends and its stdin closes; host.sh execs down to
        // nix-daemon, so $! is the daemon itself.
        let child = Command::new("sh")
            .arg("-c")
            .arg(r#""$@" </dev/null >/dev/null 2>&1 & d=$!; read -r _; kill $d 2>/dev/null; wait $d"#)
            .arg("lifeline")
            .arg("bash")
            .arg(workspace_dir().join("tests/nix/host.sh"))
            .arg(self.name())
            .arg("nix-daemon")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the nix-daemon lifeline");
        daemons.insert(self, Some(child));
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if answers() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "Nix {}'s nix-daemon did not answer on {}",
            self.name(),
            socket.display()
        );
    }

    /// The guest images with this generation's Nix, built (or found up to
    /// date) by `tests/guest/build.sh --nix GEN`.
    #[must_use]
    pub fn guest_images(self) -> (PathBuf, PathBuf) {
        if self == NixGen::V2_8 {
            return crate::vm::guest_images();
        }
        let ws = workspace_dir();
        let out = ws.join(format!("target/guest-nix-{}", self.name()));
        std::fs::create_dir_all(&out).expect("create the guest directory");
        let lock = std::fs::File::create(out.join(".lock")).expect("lock file");
        let _lock = Flock::lock(lock, FlockArg::LockExclusive).expect("lock the guest directory");
        let result = Command::new("bash")
            .arg(ws.join("tests/guest/build.sh"))
            .args(["--nix", self.name()])
            .arg(&out)
            .stderr(Stdio::inherit())
            .output()
            .expect("run tests/guest/build.sh");
        assert!(
            result.status.success(),
            "tests/guest/build.sh --nix {} failed ({}); {SETUP_HINT}",
            self.name(),
            result.status
        );
        let text = String::from_utf8_lossy(&result.stdout);
        let mut lines = text.lines();
        let kernel = PathBuf::from(lines.next().expect("build.sh prints the kernel path"));
        let initrd = PathBuf::from(lines.next().expect("build.sh prints the initrd path"));
        (kernel, initrd)
    }

    /// The test builder VM with this generation's Nix, shared by every
    /// test of this process. Boots are one at a time: TCG guests booting
    /// side by side on two cores only slow each other down.
    pub fn vm(self) -> &'static Vm {
        static VMS: [OnceLock<Vm>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        static BOOTING: Mutex<()> = Mutex::new(());
        let i = NixGen::ALL.iter().position(|g| *g == self).expect("listed");
        VMS[i].get_or_init(|| {
            let _one = BOOTING
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (kernel, initrd) = self.guest_images();
            Vm::boot_images(&kernel, &initrd)
        })
    }

    /// Build a one-line derivation named `name` in this generation's host
    /// store (no substituters); returns its output path.
    #[must_use]
    pub fn build_local(self, dir: &Path, name: &str) -> String {
        let expr = dir.join(format!("{name}.nix"));
        std::fs::write(
            &expr,
            format!(
                "derivation {{ name = \"{name}\"; system = builtins.currentSystem; builder = \"/bin/sh\"; \
                 args = [\"-c\" \"echo {name} > $out\"]; }}"
            ),
        )
        .expect("write the derivation");
        let out = self
            .command("nix-build")
            .args(["--option", "substituters", "", "--no-out-link"])
            .arg(&expr)
            .output()
            .expect("run nix-build");
        assert!(
            out.status.success(),
            "nix-build ({}): {}",
            self.name(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// Is `path` valid in this generation's host store?
    #[must_use]
    pub fn is_valid(self, path: &str) -> bool {
        self.command("nix-store")
            .args(["--check-validity", path])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run nix-store --check-validity")
            .success()
    }

    /// `nix config show` where this generation has it (2.20 on), else
    /// `nix show-config`: the subcommand words.
    #[must_use]
    pub fn config_show(self) -> &'static [&'static str] {
        match self {
            NixGen::V2_8 => &["show-config"],
            NixGen::V2_26 | NixGen::V2_34 => &["config", "show"],
        }
    }
}

impl std::fmt::Display for NixGen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Nix {}", self.name())
    }
}

/// One test per Nix generation from one body:
///
/// ```ignore
/// lb_testkit::nix_matrix! {
///     fn pings_the_builder(gen) {
///         let vm = gen.vm();
///         // ...
///     }
/// }
/// ```
///
/// makes `pings_the_builder::nix_2_8`, `::nix_2_26` and `::nix_2_34`
/// (select one with `cargo test ... nix_2_34`).
#[macro_export]
macro_rules! nix_matrix {
    ($(#[$meta:meta])* fn $name:ident($gen:ident) $body:block) => {
        $(#[$meta])*
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            fn body($gen: $crate::NixGen) $body

            #[test]
            fn nix_2_8() {
                body($crate::NixGen::V2_8);
            }

            #[test]
            fn nix_2_26() {
                body($crate::NixGen::V2_26);
            }

            #[test]
            fn nix_2_34() {
                body($crate::NixGen::V2_34);
            }
        }
    };
}
