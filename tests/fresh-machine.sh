#!/usr/bin/env bash
# The fresh-machine check: does the README's set-up work on a new Debian 12?
#
#   tests/fresh-machine.sh [REV]        (root; .ci/run calls it; REV: HEAD)
#
# Makes a new minimal Debian 12 root (debootstrap --variant=minbase), clones
# commit REV of this repository into it, and runs the README's main command,
# `make demo`, inside it (its own mount namespace, pivot_root): set-up, build, boot the builder,
# configure it in a scratch prefix, build on it, copy back. Nothing of this
# machine's Nix, groups or accounts is inside; only the Rust toolchain is
# made visible (bound read-only). With LB_FRESH_TEST=1 it runs `make test`
# there too. Every mount and process it started is gone when it returns,
# also when it fails. Each phase's wall time is printed; nothing is cached.
#
# Environment: LB_FRESH_MIRROR (Debian mirror), LB_FRESH_KEEP=1 (keep the
# root, for a look inside; mounts and processes are still cleaned up).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
rev=${1:-HEAD}
mirror=${LB_FRESH_MIRROR:-http://deb.debian.org/debian}

say() { printf 'fresh-machine: %s\n' "$*" >&2; }
if ((EUID != 0)); then say "run as root (debootstrap, mounts, pivot_root)"; exit 1; fi
command -v debootstrap >/dev/null || {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
}
sha=$(git -C "$top" rev-parse --verify "$rev^{commit}")
sysroot=$(rustc --print sysroot)

root=$(mktemp -d "${TMPDIR:-/var/tmp}/lb-fresh.XXXXXX")
# mktemp made it 0700; a machine's / is 0755 (build users and the sshd's
# accounts must reach /bin/sh).
chmod 0755 "$root"
log=$root.log
root_id=$(stat -c %d:%i "$root")
cleanup() {
    local rc=$?
    # Every process living in the fresh root (daemons, sshd, QEMU): its
    # root directory is the fresh root's inode. When the last one is gone,
    # the mount namespace with the root's mounts goes with it.
    local pids=() p
    for p in /proc/[0-9]*; do
        [[ $(stat -L -c %d:%i "$p/root" 2>/dev/null) == "$root_id" ]] && pids+=("${p#/proc/}")
    done
    if ((${#pids[@]})); then
        kill "${pids[@]}" 2>/dev/null || true
        sleep 1
        kill -9 "${pids[@]}" 2>/dev/null || true
        sleep 0.5
    fi
    if grep -q " $root[/ ]" /proc/mounts; then
        say "mounts under $root remain; not removing it"
        rc=1
    elif [[ -z ${LB_FRESH_KEEP:-} ]]; then
        rm -rf --one-file-system "$root" "$log"
    else
        say "kept $root"
    fi
    ((rc)) && say "FAILED (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT INT TERM

phase() { # phase NAME CMD...: run and report its wall time
    local name=$1 t0=$SECONDS; shift
    say "$name ..."
    "$@"
    say "$name: $((SECONDS - t0)) s"
}

t_all=$SECONDS
phase "debootstrap bookworm (minbase)" \
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.debootstrap.log" 2>&1 \
    || { tail -n 20 "$root.debootstrap.log" >&2; exit 1; }
rm -f "$root.debootstrap.log"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# A new machine of this place trusts what this one trusts locally (an
# egress proxy's CA, say): update-ca-certificates picks these up when
# set-up installs ca-certificates. Nothing else of the machine goes in.
if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$root/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
fi

git clone -q --no-hardlinks "$top" "$root/src"
git -C "$root/src" checkout -q --detach "$sha"
say "commit under test: $(git -C "$root/src" log -1 --format='%h %s')"

# The fresh root becomes the root of a mount namespace of its own
# (pivot_root, not chroot): Nix 2.8 re-enters its saved mount namespace
# before it runs ssh for a remote build, which leaves a chroot and then
# cannot find its temp files ("opening file '/tmp/nix-N-0/host-key'", seen
# here). Inside: /proc, /sys, /dev, /dev/shm, and the machine's Rust
# toolchain read-only at /opt/rust. The mounts live in that namespace
# only; they go when its last process does.
enter=$(cat <<'SH'
set -e
root=$1 sysroot=$2; shift 2
mount --make-rprivate /
mount --bind "$root" "$root"
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/dev/shm"
mkdir -p "$root/opt/rust" "$root/.old-root"
mount --bind "$sysroot" "$root/opt/rust"
mount -o remount,bind,ro "$root/opt/rust"
cd "$root"
pivot_root . .old-root
umount -l /.old-root
rmdir /.old-root
exec /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    CARGO_HOME=/root/.cargo /bin/bash -c "cd /src && $1"
SH
)
inside() { # inside CMD [LINES]: run CMD in the fresh root as a new login would
    # The whole output goes to a log; its last LINES are shown (all of the
    # demo's summary), or more of it when the command fails.
    if unshare --mount --fork bash -c "$enter" enter "$root" "$sysroot" "$1" >"$log" 2>&1; then
        tail -n "${2:-0}" "$log" >&2
    else
        local rc=$?
        tail -n 60 "$log" >&2
        say "'$1' failed (exit $rc)"
        return "$rc"
    fi
}
# The README's set-up lines: make (the one package the commands need before
# they can install the rest), then the main command.
phase "apt-get install make" inside \
    "apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends make >/dev/null"
phase "make demo (set-up, build, walkthrough)" inside "make demo" 30
if [[ -n ${LB_FRESH_TEST:-} ]]; then
    phase "make test" inside "make test" 15
fi
say "passed in $((SECONDS - t_all)) s"
