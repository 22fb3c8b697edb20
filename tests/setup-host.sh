#!/usr/bin/env bash
# Prepare this Debian 12 machine for the test suite and the demo (run as
# root; idempotent): the packages with the real parts (nix, sshd, qemu),
# the `builder` account the harness sshd logs in, and a running nix daemon.
# It touches the real system on purpose and only here: the tests themselves
# write into scratch roots.
set -euo pipefail

packages=(nix-bin openssh-server openssh-client qemu-system-x86 qemu-utils busybox-static
          cpio kmod xz-utils zstd libssl-dev pkg-config ca-certificates make gcc procps
          util-linux strace jq python3)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup-host: installing ${missing[*]}" >&2
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# The account the harness sshd lets in: unlocked ('*', not '!', or sshd
# refuses it) and in nix-users, which owns the nix daemon socket's directory.
if ! id builder >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh builder
fi
usermod --password '*' builder
getent group nix-users >/dev/null && usermod -a -G nix-users builder

# sshd wants its privilege separation directory.
mkdir -p /run/sshd

# No binary cache is reachable here: the host's Nix must not try one.
if ! grep -qE '^substituters *=' /etc/nix/nix.conf 2>/dev/null; then
    printf '\n# No network beyond package registries here (lb tests)\nsubstituters =\n' >> /etc/nix/nix.conf
fi

# A nix daemon (no systemd here): start one if none answers.
if ! nix store ping --store daemon --extra-experimental-features nix-command >/dev/null 2>&1; then
    setsid -f nix-daemon </dev/null >/dev/null 2>&1
    for _ in $(seq 50); do
        nix store ping --store daemon --extra-experimental-features nix-command >/dev/null 2>&1 && break
        sleep 0.2
    done
fi
echo "setup-host: ready" >&2
