//! A test runner with the contract of nixpkgs' `create-builder` and
//! `run-nixos-vm` (nixos/modules/profiles/nix-builder-vm.nix,
//! nixos/modules/virtualisation/qemu-vm.nix), booting the test guest
//! (tests/guest) instead of NixOS. Written per test with the values the
//! real runner bakes in at build time: host port, memory, cores, disk size.
//!
//! The contract, as a Mac user's runner has it:
//! - `create-builder` runs in the caller's directory; `KEYS` (default
//!   `./keys`) holds `builder_ed25519{,.pub}`, generated with ssh-keygen
//!   when either is missing; when the public key differs from the
//!   installed one (`cmp`), it runs `sudo --reset-timestamp
//!   install-credentials KEYS`, which `install`s both into /etc/nix (here:
//!   the test's scratch root) group nixbld; then it runs `run-nixos-vm`
//!   with `KEYS` set (not exec: create-builder stays the parent).
//!   (The real one adds KEYS to the store first; here KEYS is used as is.)
//! - `run-nixos-vm` resolves `NIX_DISK_IMAGE` (default `./nixos.qcow2`)
//!   and creates it with qemu-img at the baked size when missing; makes its
//!   own TMPDIR unless both `TMPDIR` and `USE_TMPDIR` are set; puts a
//!   (stand-in) store image, `xchg/` and `certs/ca-certificates.crt` (a
//!   copy of `NIX_SSL_CERT_FILE`) there; `cd`s into it and execs QEMU with
//!   `-m`/`-smp` baked, `-netdev user,...,hostfwd=tcp::PORT-:22,"$QEMU_NET_OPTS"`
//!   (empty host address: all interfaces), 9p shares `keys` and `certs`,
//!   then `$QEMU_OPTS` word-split, then `"$@"`.

use std::path::{Path, PathBuf};

use crate::vm::guest_images;

/// What the runner has baked in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baked {
    /// The forwarded host port (nixpkgs: hostPort 31022).
    pub port: u16,
    /// MiB (nixpkgs: memorySize 3072).
    pub memory: u32,
    /// nixpkgs: virtualisation.cores 1.
    pub cores: u32,
    /// MiB (nixpkgs: diskSize 20480).
    pub disk_mib: u64,
    /// The installed private key create-builder compares with and
    /// installs to (`/etc/nix/builder_ed25519`; here under a scratch root).
    pub installed_key: PathBuf,
}

/// A runner written to disk.
#[derive(Debug, Clone)]
pub struct TestRunner {
    /// `DIR/bin/create-builder`: what `lb-vm start --runner` is given.
    pub create_builder: PathBuf,
    /// `DIR/vm/bin/run-nixos-vm`.
    pub run_vm: PathBuf,
    /// `DIR/install-credentials`.
    pub install_credentials: PathBuf,
    pub baked: Baked,
}

fn write_exec(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write runner script");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod runner script");
}

/// Single-quote for sh.
fn q(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

impl TestRunner {
    /// Write the three scripts under `dir` (a directory of the test's own,
    /// standing in for the store paths).
    #[must_use]
    pub fn write(dir: &Path, baked: Baked) -> Self {
        let (kernel, initrd) = guest_images();
        let accel = crate::vm::test_accel();
        let create_builder = dir.join("bin/create-builder");
        let run_vm = dir.join("vm/bin/run-nixos-vm");
        let install_credentials = dir.join("install-credentials");
        let private = &baked.installed_key;
        let public = PathBuf::from(format!("{}.pub", private.display()));
        write_exec(
            &install_credentials,
            &format!(
                r#"#!/bin/bash
set -euo pipefail

KEYS="${{1}}"
INSTALL=install
"${{INSTALL}}" -g nixbld -m 600 "${{KEYS}}/builder_ed25519" {private}
"${{INSTALL}}" -g nixbld -m 644 "${{KEYS}}/builder_ed25519.pub" {public}
"#,
                private = q(private),
                public = q(&public),
            ),
        );
        write_exec(
            &create_builder,
            &format!(
                r#"#!/bin/bash
set -euo pipefail
KEYS="${{KEYS:-./keys}}"
mkdir --parent "${{KEYS}}"
PRIVATE_KEY="${{KEYS}}/builder_ed25519"
PUBLIC_KEY="${{PRIVATE_KEY}}.pub"
if [ ! -e "${{PRIVATE_KEY}}" ] || [ ! -e "${{PUBLIC_KEY}}" ]; then
    rm --force -- "${{PRIVATE_KEY}}" "${{PUBLIC_KEY}}"
    ssh-keygen -q -f "${{PRIVATE_KEY}}" -t ed25519 -N "" -C 'builder@localhost'
fi
if ! cmp "${{PUBLIC_KEY}}" {public}; then
  (set -x; sudo --reset-timestamp {install} "${{KEYS}}")
fi
KEYS="$(realpath "$KEYS")" {run_vm}
"#,
                public = q(&public),
                install = q(&install_credentials),
                run_vm = q(&run_vm),
            ),
        );
        write_exec(
            &run_vm,
            &format!(
                r#"#!/bin/bash

set -e

NIX_DISK_IMAGE=$(readlink -f "${{NIX_DISK_IMAGE:-./nixos.qcow2}}") || test -z "$NIX_DISK_IMAGE"

if test -n "$NIX_DISK_IMAGE" && ! test -e "$NIX_DISK_IMAGE"; then
    echo "Disk image do not exist, creating the virtualisation disk image..."
    qemu-img create -f qcow2 "$NIX_DISK_IMAGE" "{disk}M"
    echo "Virtualisation disk image created."
fi

# Create a directory for storing temporary data of the running VM.
if [ -z "$TMPDIR" ] || [ -z "$USE_TMPDIR" ]; then
    TMPDIR=$(mktemp -d nix-vm.XXXXXXXXXX --tmpdir)
fi

# Stands for the Nix store image (hundreds of MB in the real runner).
head -c 1048576 /dev/zero >"$TMPDIR"/store.img

# Create a directory for exchanging data with the VM.
mkdir -p "$TMPDIR/xchg"

mkdir -p "$TMPDIR/certs"
if [ -e "$NIX_SSL_CERT_FILE" ]; then
  cp -L "$NIX_SSL_CERT_FILE" "$TMPDIR"/certs/ca-certificates.crt
else
  echo \$NIX_SSL_CERT_FILE should point to a valid file if virtualisation.useHostCerts is enabled.
fi

cd "$TMPDIR"

# Start QEMU.
exec qemu-system-x86_64 -machine accel={accel} -cpu max \
    -name nixos \
    -m {memory} \
    -smp {cores} \
    -device virtio-rng-pci \
    -net nic,netdev=user.0,model=virtio -netdev user,id=user.0,hostfwd=tcp::{port}-:22,"$QEMU_NET_OPTS" \
    -virtfs local,path="${{KEYS}}",security_model=none,mount_tag=keys \
    -virtfs local,path="$TMPDIR"/certs,security_model=none,mount_tag=certs \
    -virtfs local,path="$TMPDIR"/xchg,security_model=none,mount_tag=xchg \
    -drive cache=writeback,file="$NIX_DISK_IMAGE",id=drive1,if=none,index=1,werror=report -device virtio-blk-pci,bootindex=1,drive=drive1,serial=root \
    -kernel {kernel} -initrd {initrd} -append 'console=ttyS0 quiet panic=-1' \
    -nographic -no-reboot \
    $QEMU_OPTS \
    "$@"
"#,
                disk = baked.disk_mib,
                memory = baked.memory,
                cores = baked.cores,
                port = baked.port,
                kernel = q(&kernel),
                initrd = q(&initrd),
            ),
        );
        TestRunner {
            create_builder,
            run_vm,
            install_credentials,
            baked,
        }
    }
}
