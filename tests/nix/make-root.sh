#!/usr/bin/env bash
# Make the Debian root that holds one Nix generation, for the test guests
# and the host-side Nix of the matrix (tests/nix/README.md).
#
#   tests/nix/make-root.sh SUITE [OUTDIR]     (root; OUTDIR: <repo>/target/nix/SUITE)
#
# SUITE is a Debian suite: bookworm (Nix 2.8), trixie (2.26), sid (2.34).
# bookworm is this machine's own release: its Nix is the host's, so no root
# is made and `/` is printed. For the others: `debootstrap --variant=minbase
# SUITE`, then `apt-get install nix-bin openssh-client` under chroot
# (debootstrap's own --include=nix-bin fails on the virtual package
# perl-dbdabi-94), then what Debian's nix-setup-systemd would do (groups
# nix-users and nixbld, build users) and a nix.conf for tests.
#
# stdout: exactly one line, the root's path. Progress goes to stderr.
# Idempotent: OUTDIR/stamp records the inputs (this script, the suite, the
# mirror); when it matches, the root is printed at once. A build happens in
# a temp dir next to the root and is renamed into place, so an interrupted
# build is never taken for a finished one. Every mount it makes is gone when
# it returns, also when it fails. Concurrent runs on one OUTDIR wait for
# each other.
#
# Environment: LB_NIX_MIRROR (Debian mirror, default deb.debian.org).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
suite=${1:-}
mirror=${LB_NIX_MIRROR:-http://deb.debian.org/debian}

say() { echo "nix-root: $*" >&2; }
die() { echo "nix-root: error: $*" >&2; exit "${2:-1}"; }

case $suite in
    bookworm)
        # The host's own release and Nix: nothing to make.
        [[ $(. /etc/os-release && echo "${VERSION_CODENAME:-}") == bookworm ]] ||
            say "note: this machine is not Debian 12 (bookworm); its own Nix stands in for 2.8"
        echo /
        exit 0
        ;;
    trixie | sid) ;;
    "") die "give a suite: bookworm, trixie or sid" 2 ;;
    *) die "unknown suite '$suite': give bookworm, trixie or sid" 2 ;;
esac

out=${2:-$repo/target/nix/$suite}
((EUID == 0)) || die "run as root (debootstrap and chroot need it): sudo $0 $suite"
for c in debootstrap chroot flock mount umount; do
    command -v "$c" >/dev/null || die "missing command $c; run: sudo make setup-host (installs debootstrap)"
done

mkdir -p "$out"
out=$(cd "$out" && pwd)
exec 9>"$out/.build.lock"
flock 9

# The inputs. Package versions inside the suite are not part of it: a
# suite moves, and a root that worked keeps working; delete OUTDIR (or
# touch this script) to take the suite's newer packages.
stamp=$(
    {
        echo "lb-nix-root stamp v1"
        sha256sum "$here/make-root.sh" | cut -d' ' -f1
        echo "suite $suite"
        echo "mirror $mirror"
    } | sha256sum | cut -d' ' -f1
)
if [[ -f $out/root/.lb-stamp && $(cat "$out/root/.lb-stamp") == "$stamp" ]]; then
    say "up to date ($out/root: $(cat "$out/root/.lb-nix-version"))"
    echo "$out/root"
    exit 0
fi

started=$SECONDS
# We hold the lock: an earlier temp root is left over from a killed run.
# Its mounts went with the run (see cleanup), but make sure before rm.
for old in "$out"/.tmp.*; do
    [[ -e $old ]] || continue
    if grep -q " $old/" /proc/mounts; then die "mounts remain under $old; unmount them first"; fi
    rm -rf --one-file-system "$old"
done
tmp=$(mktemp -d "$out/.tmp.XXXXXX")
chmod 755 "$tmp"
mounts=()
cleanup() {
    local rc=$? i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}" 2>/dev/null || true
    done
    if grep -q " $tmp/" /proc/mounts; then
        say "mounts remain under $tmp; not removing it"
    else
        rm -rf --one-file-system "$tmp"
    fi
    ((rc == 0)) || say "FAILED (exit $rc)"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "debootstrap --variant=minbase $suite ($mirror)"
log=$out/debootstrap.log
debootstrap --variant=minbase "$suite" "$tmp" "$mirror" >"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; die "debootstrap $suite failed (log: $log)"; }
say "debootstrap done in $((SECONDS - started)) s"

cp /etc/resolv.conf "$tmp/etc/resolv.conf"
# /proc: apt's maintainer scripts and nix-daemon's Boehm GC need it
# (without it: "GC Warning: pthread_getattr_np ... failed", then abort).
mount -t proc proc "$tmp/proc"
mounts+=("$tmp/proc")
mount --bind /dev "$tmp/dev"
mounts+=("$tmp/dev")
inside() { chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 HOME=/root DEBIAN_FRONTEND=noninteractive "$@"; }

t=$SECONDS
say "apt-get install nix-bin openssh-client (under chroot)"
# sid's Release is valid for a week only; a mirror snapshot (or a clock
# ahead of it) would make apt refuse it ("Release file ... is expired").
apt_opts=(-o Acquire::Check-Valid-Until=false)
inside apt-get "${apt_opts[@]}" update -q >>"$log" 2>&1 || { tail -n 20 "$log" >&2; die "apt-get update in $suite failed"; }
# openssh-client: the host-side Nix opens ssh-ng stores with ssh.
inside apt-get "${apt_opts[@]}" install -y -q --no-install-recommends \
    nix-bin openssh-client ca-certificates >>"$log" 2>&1 ||
    { tail -n 20 "$log" >&2; die "apt-get install nix-bin in $suite failed (log: $log)"; }
inside apt-get clean
say "packages installed in $((SECONDS - t)) s"

# What Debian's nix-setup-systemd does (only a Recommends of nix-bin).
inside groupadd --system nix-users
inside groupadd --system nixbld
for n in 1 2 3 4 5 6 7 8 9 10; do
    inside useradd --system --comment "Nix build user $n" --home-dir /var/empty \
        --gid nixbld --groups nixbld --no-user-group --shell /usr/sbin/nologin "nixbld$n"
done
install -d -m 0770 -g "$(chroot "$tmp" getent group nix-users | cut -d: -f3)" \
    "$tmp/nix/var/nix/daemon-socket"
install -d -m 1777 "$tmp/nix/var/nix/gcroots/per-user" "$tmp/nix/var/nix/profiles/per-user"
mkdir -p "$tmp/etc/nix"
cat >"$tmp/etc/nix/nix.conf" <<'EOF'
# Nix of the lb test matrix (tests/nix/make-root.sh): the host side.
build-users-group = nixbld
trusted-users = root
# Debian's setting: the sandbox has no /bin/sh here.
sandbox = false
# No binary cache is reachable from the tests.
substituters =
experimental-features = nix-command
EOF
# The paths the harness binds in (the workspace, /tmp) must exist inside.
mkdir -p "$tmp/tmp" && chmod 1777 "$tmp/tmp"

version=$(inside nix --version | sed -n 's/^nix (Nix) //p')
[[ -n $version ]] || die "nix --version printed no version inside the $suite root"
echo "$version" >"$tmp/.lb-nix-version"
inside dpkg-query -W nix-bin openssh-client >"$tmp/.lb-packages"

for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do umount "${mounts[i]}"; done
mounts=()
echo "$stamp" >"$tmp/.lb-stamp"
# Replace the old root (if any) only now that the new one is complete.
if [[ -d $out/root ]]; then
    grep -q " $out/root/" /proc/mounts && die "mounts remain under $out/root (a running test?); try again after it"
    mv "$out/root" "$tmp.old"
    rm -rf --one-file-system "$tmp.old"
fi
mv "$tmp" "$out/root"
say "made $out/root (Nix $version) in $((SECONDS - started)) s"
echo "$out/root"
