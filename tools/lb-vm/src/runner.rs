//! What a nixpkgs runner has baked in, read from its scripts.
//!
//! `nix build nixpkgs#darwin.linux-builder` gives `create-builder`
//! (nixos/modules/profiles/nix-builder-vm.nix), which ends by running
//! `/nix/store/...-nixos-vm/bin/run-nixos-vm` (qemu-vm.nix's startVM).
//! Memory (`-m 3072`), cores (`-smp 1`), the disk size (`"20480M"` where
//! the missing disk is created) and the host port
//! (`hostfwd=tcp::31022-:22`, empty address: all interfaces) are fixed in
//! that script at build time. create-builder also compares
//! `KEYS/builder_ed25519.pub` with an installed key (`cmp "${PUBLIC_KEY}"
//! /etc/nix/builder_ed25519.pub`) and asks sudo for `install-credentials`
//! when they differ.
//!
//! lb-vm reads those values so that `--memory`/`--cpus` can be applied
//! (QEMU takes the last `-m`/`-smp`, and `QEMU_OPTS` comes last), a disk
//! size it cannot apply is refused, the baked port is checked before
//! starting, and the sudo prompt (which has no terminal under lb-vm) is
//! replaced by a clear error.

use std::path::{Path, PathBuf};

/// The nixpkgs builder's defaults, for a runner whose scripts say nothing
/// (nix-builder-vm.nix: hostPort, memorySize, cores, diskSize).
pub const DEFAULT_PORT: u16 = 31022;

/// What the runner fixes at build time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baked {
    /// The host port its own forward listens on.
    pub port: Option<u16>,
    /// The forward's host address (`None` or empty: all interfaces).
    pub port_address: Option<String>,
    pub memory: Option<u32>,
    pub cores: Option<u32>,
    pub disk_mib: Option<u64>,
    /// The installed public key create-builder compares KEYS with; `None`
    /// for a bare run-nixos-vm (it installs nothing).
    pub installed_pub: Option<PathBuf>,
    /// The VM script the runner runs (itself for run-nixos-vm).
    pub vm_script: PathBuf,
}

/// The most of a script lb-vm reads (a runner is a few KiB).
const MAX_SCRIPT: u64 = 1 << 20;

fn read_script(path: &Path) -> Option<String> {
    use std::io::Read as _;
    let f = std::fs::File::open(path).ok()?;
    let mut buf = Vec::new();
    f.take(MAX_SCRIPT).read_to_end(&mut buf).ok()?;
    // A binary is no script to read.
    (!buf.contains(&0)).then(|| String::from_utf8_lossy(&buf).into_owned())
}

/// Words of a shell script with quotes and line continuations removed:
/// enough to find `-m 3072` and friends.
fn words(text: &str) -> Vec<String> {
    text.replace("\\\n", " ")
        .split_whitespace()
        .map(|w| {
            w.trim_end_matches(';')
                .trim_matches(|c| c == '"' || c == '\'')
                .to_owned()
        })
        .collect()
}

/// The value after `flag` in the exec line's words.
fn after<T: std::str::FromStr>(words: &[String], flag: &str) -> Option<T> {
    words
        .windows(2)
        .find(|w| w[0] == flag)
        .and_then(|w| w[1].parse().ok())
}

/// `hostfwd=tcp:ADDR:PORT-GUEST:22` forwards to the guest's sshd: (ADDR, PORT).
fn ssh_forward(text: &str) -> Option<(String, u16)> {
    for (i, _) in text.match_indices("hostfwd=tcp:") {
        let rest = &text[i + "hostfwd=tcp:".len()..];
        let spec: String = rest
            .chars()
            .take_while(|c| !matches!(c, ',' | '"' | '\'' | ' ' | '\n' | '\\'))
            .collect();
        let Some((host, guest)) = spec.split_once('-') else {
            continue;
        };
        if guest.rsplit(':').next() != Some("22") {
            continue;
        }
        let Some((addr, port)) = host.rsplit_once(':') else {
            continue;
        };
        if let Ok(p) = port.parse() {
            return Some((addr.to_owned(), p));
        }
    }
    None
}

/// The disk size where the script creates a missing `$NIX_DISK_IMAGE`:
/// the `"NNNNM"` word on that line.
fn disk_size(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| l.contains("NIX_DISK_IMAGE") && !l.trim_start().starts_with('#'))
        .flat_map(|l| words(l).into_iter())
        .find_map(|w| w.strip_suffix('M').and_then(|n| n.parse().ok()))
}

/// The installed public key after `cmp "${PUBLIC_KEY}"`.
fn installed_pub(text: &str) -> Option<PathBuf> {
    let w = words(text);
    w.windows(3).find_map(|x| {
        (x[0].ends_with("cmp") && x[1].contains("PUBLIC_KEY"))
            .then(|| PathBuf::from(x[2].trim_end_matches(';')))
    })
}

/// The VM script create-builder runs: a word ending in `bin/run-*-vm`.
fn vm_script_of(text: &str) -> Option<PathBuf> {
    words(text).into_iter().find_map(|w| {
        let name = Path::new(&w).file_name()?.to_str()?.to_owned();
        (w.starts_with('/') && name.starts_with("run-") && name.ends_with("-vm"))
            .then(|| PathBuf::from(w))
    })
}

/// Read what `runner` (create-builder or run-nixos-vm) bakes in. Missing
/// facts stay `None`: a runner of another shape still starts, with the
/// nixpkgs defaults assumed where a check needs a value.
#[must_use]
pub fn read(runner: &Path) -> Baked {
    let text = read_script(runner).unwrap_or_default();
    let installed = installed_pub(&text);
    let vm_script = vm_script_of(&text)
        .filter(|p| p != runner)
        .unwrap_or_else(|| runner.to_path_buf());
    let vm_text = if vm_script == runner {
        text.clone()
    } else {
        read_script(&vm_script).unwrap_or_default()
    };
    let w = words(&vm_text);
    let fwd = ssh_forward(&vm_text);
    Baked {
        port: fwd.as_ref().map(|f| f.1),
        port_address: fwd.map(|f| f.0),
        memory: after(&w, "-m"),
        cores: after(&w, "-smp"),
        disk_mib: disk_size(&vm_text),
        installed_pub: installed,
        vm_script,
    }
}

impl Baked {
    /// The port the runner's own forward listens on (nixpkgs' default if unread).
    #[must_use]
    pub fn port_or_default(&self) -> u16 {
        self.port.unwrap_or(DEFAULT_PORT)
    }

    /// Does the forward listen on every interface (empty host address)?
    #[must_use]
    pub fn all_interfaces(&self) -> bool {
        self.port_address
            .as_deref()
            .is_none_or(|a| a.is_empty() || a == "0.0.0.0")
    }
}

/// The settings a runner boots with once lb-vm's flags are applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settled {
    pub memory: u32,
    pub cpus: u32,
    pub disk_mib: u64,
    /// `-m N`/`-smp N` for QEMU_OPTS where a flag differs from the baked value.
    pub qemu_opts: Vec<String>,
}

/// Apply `--memory`/`--cpus` through QEMU_OPTS (QEMU takes the last
/// `-m`/`-smp`, and the runner appends QEMU_OPTS last); refuse
/// `--disk-size`, which the runner fixes where it creates the disk.
pub fn settle(
    baked: &Baked,
    memory: Option<u32>,
    cpus: Option<u32>,
    disk: Option<u64>,
) -> Result<Settled, lb_common::Error> {
    let mut qemu_opts = Vec::new();
    if let Some(m) = memory.filter(|m| baked.memory != Some(*m)) {
        qemu_opts.extend(["-m".to_owned(), m.to_string()]);
    }
    if let Some(c) = cpus.filter(|c| baked.cores != Some(*c)) {
        qemu_opts.extend(["-smp".to_owned(), c.to_string()]);
    }
    if let Some(d) = disk.filter(|d| baked.disk_mib != Some(*d)) {
        let have = baked.disk_mib.map_or_else(
            || "a size lb-vm could not read".to_owned(),
            |b| format!("{b} MiB"),
        );
        return Err(lb_common::usage!(
            "--disk-size {d}: the runner creates its disk at the size built into it ({have}), and a disk already made keeps its size; build the runner with virtualisation.darwin-builder.diskSize = {d} (nix-darwin: nix.linux-builder.config.virtualisation.darwin-builder.diskSize), delete the old disk (--ephemeral), or drop --disk-size"
        ));
    }
    Ok(Settled {
        memory: memory.or(baked.memory).unwrap_or(3072),
        cpus: cpus.or(baked.cores).unwrap_or(1),
        disk_mib: disk.or(baked.disk_mib).unwrap_or(20480),
        qemu_opts,
    })
}

/// The CA bundle to share into the guest: `NIX_SSL_CERT_FILE` as the user
/// has it, else the first that exists of the usual places (nix-darwin and
/// Debian, macOS, a Nix profile).
#[must_use]
pub fn cert_file() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os("NIX_SSL_CERT_FILE").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(v));
    }
    [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/ssl/cert.pem",
        "/nix/var/nix/profiles/default/etc/ssl/certs/ca-bundle.crt",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.is_file())
}

/// create-builder would ask sudo to install `keys` (it compares the public
/// keys with `cmp`): the reason, or `None` when they match.
#[must_use]
pub fn credentials_differ(keys: &Path, installed_pub: &Path) -> Option<String> {
    let ours = keys.join("builder_ed25519.pub");
    if !keys.join("builder_ed25519").exists() || !ours.exists() {
        return Some(format!(
            "{} has no key pair, so the runner would make one and ask sudo to install it",
            keys.display()
        ));
    }
    match (std::fs::read(&ours), std::fs::read(installed_pub)) {
        (Ok(a), Ok(b)) if a == b => None,
        (Ok(_), Ok(_)) => Some(format!(
            "{} differs from {}, so the runner would ask sudo to install the keys",
            ours.display(),
            installed_pub.display()
        )),
        _ => Some(format!(
            "{} is not installed (no readable {}), so the runner would ask sudo to install it",
            ours.display(),
            installed_pub.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape of nixpkgs' scripts (nix-builder-vm.nix, qemu-vm.nix).
    const CREATE_BUILDER: &str = r#"#!/nix/store/x-bash/bin/bash
set -euo pipefail
KEYS="${KEYS:-./keys}"
/nix/store/c-coreutils/bin/mkdir --parent "${KEYS}"
PRIVATE_KEY="${KEYS}/builder_ed25519"
PUBLIC_KEY="${PRIVATE_KEY}.pub"
if [ ! -e "${PRIVATE_KEY}" ] || [ ! -e "${PUBLIC_KEY}" ]; then
    /nix/store/c-coreutils/bin/rm --force -- "${PRIVATE_KEY}" "${PUBLIC_KEY}"
    /nix/store/o-openssh/bin/ssh-keygen -q -f "${PRIVATE_KEY}" -t ed25519 -N "" -C 'builder@localhost'
fi
if ! /nix/store/d-diffutils/bin/cmp "${PUBLIC_KEY}" /etc/nix/builder_ed25519.pub; then
  (set -x; sudo --reset-timestamp /nix/store/i-install-credentials "${KEYS}")
fi
KEYS="$(/nix/store/n-nix/bin/nix-store --add "$KEYS")" /nix/store/v-nixos-vm/bin/run-nixos-vm
"#;

    const RUN_NIXOS_VM: &str = r#"#! /nix/store/x-bash/bin/bash
NIX_DISK_IMAGE=$(readlink -f "${NIX_DISK_IMAGE:-./nixos.qcow2}") || test -z "$NIX_DISK_IMAGE"
if test -n "$NIX_DISK_IMAGE" && ! test -e "$NIX_DISK_IMAGE"; then
    # Create an empty disk image
    createEmptyFilesystemImage "$NIX_DISK_IMAGE" "20480M"
fi
cd "$TMPDIR"
exec /nix/store/q-qemu/bin/qemu-system-aarch64 -machine virt,gic-version=2,accel=hvf:tcg -cpu max \
    -name nixos \
    -m 3072 \
    -smp 1 \
    -device virtio-rng-pci \
    -net nic,netdev=user.0,model=virtio -netdev user,id=user.0,hostfwd=tcp::31022-:22,"$QEMU_NET_OPTS" \
    $QEMU_OPTS \
    "$@"
"#;

    #[test]
    fn reads_nixpkgs_shapes() {
        let tmp = tempfile::tempdir().unwrap();
        let vm = tmp.path().join("run-nixos-vm");
        std::fs::write(&vm, RUN_NIXOS_VM).unwrap();
        let cb = tmp.path().join("create-builder");
        std::fs::write(
            &cb,
            CREATE_BUILDER.replace(
                "/nix/store/v-nixos-vm/bin/run-nixos-vm",
                &vm.display().to_string(),
            ),
        )
        .unwrap();
        let b = read(&cb);
        assert_eq!(
            b,
            Baked {
                port: Some(31022),
                port_address: Some(String::new()),
                memory: Some(3072),
                cores: Some(1),
                disk_mib: Some(20480),
                installed_pub: Some(PathBuf::from("/etc/nix/builder_ed25519.pub")),
                vm_script: vm.clone(),
            }
        );
        assert!(b.all_interfaces());
        // run-nixos-vm on its own: no credentials step.
        let b = read(&vm);
        assert_eq!(b.installed_pub, None);
        assert_eq!(b.memory, Some(3072));
        assert_eq!(b.vm_script, vm);
    }

    #[test]
    fn flags_against_baked_values() {
        let baked = Baked {
            port: Some(31022),
            port_address: Some(String::new()),
            memory: Some(3072),
            cores: Some(1),
            disk_mib: Some(20480),
            installed_pub: None,
            vm_script: PathBuf::from("/x"),
        };
        let s = settle(&baked, None, None, None).unwrap();
        assert_eq!((s.memory, s.cpus, s.disk_mib), (3072, 1, 20480));
        assert!(s.qemu_opts.is_empty());
        let s = settle(&baked, Some(1536), Some(4), Some(20480)).unwrap();
        assert_eq!(s.qemu_opts, ["-m", "1536", "-smp", "4"]);
        assert_eq!((s.memory, s.cpus), (1536, 4));
        // Equal to the baked value: nothing to override.
        assert!(settle(&baked, Some(3072), Some(1), None)
            .unwrap()
            .qemu_opts
            .is_empty());
        let e = settle(&baked, None, None, Some(4096))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--disk-size 4096: the runner creates its disk at the size built into it (20480 MiB)"), "{e}");
    }

    #[test]
    fn forwards() {
        assert_eq!(
            ssh_forward("-netdev user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22,"),
            Some(("127.0.0.1".to_owned(), 2222))
        );
        assert_eq!(
            ssh_forward("hostfwd=tcp::8080-:80,hostfwd=tcp::31023-:22"),
            Some((String::new(), 31023))
        );
        assert_eq!(ssh_forward("nothing"), None);
        let unknown = read(Path::new("/no/such/runner"));
        assert_eq!(unknown.port, None);
        assert_eq!(unknown.port_or_default(), 31022);
    }
}
