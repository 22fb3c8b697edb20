#!/usr/bin/env bash
# Prepare this Debian 12 machine for the test suite and the demo (run as
# root; idempotent; never prompts). It touches the real system on purpose
# and only here: the tests themselves write into scratch roots.
#
# What it changes on the machine (README, "What make setup-host changes"):
#   1. installs the Debian packages below (Nix 2.8, OpenSSH, QEMU, ...;
#      debootstrap makes the Debian trixie and sid roots holding Nix 2.26
#      and 2.34 for the test matrix and the demo, tests/nix/make-root.sh);
#   2. what Debian's nix-setup-systemd would give, which a fresh machine
#      lacks because it is only a Recommends of nix-bin: groups nix-users
#      and nixbld, build users nixbld1..nixbld10 (members of nixbld), and
#      the daemon's directories (daemon-socket root:nix-users 0770,
#      per-user gcroots and profiles 1777);
#   3. /etc/nix/nix.conf: created if missing; `sandbox = false` (as Debian
#      ships it: the sandbox has no /bin/sh here) and `substituters =` (no
#      binary cache is reachable here) added when the file does not set
#      them; any other line, and a value the user set, is kept;
#   4. the account `builder` (unlocked, in nix-users) that the harness sshd
#      lets in, and /run/sshd;
#   5. a nix daemon that started after all of the above: started if none
#      runs, restarted if one runs that predates nix.conf or the groups.
set -euo pipefail

say() { echo "setup-host: $*" >&2; }

if ((EUID != 0)); then
    say "run as root (it installs packages and creates groups and users): sudo make setup-host"
    exit 1
fi

packages=(nix-bin openssh-server openssh-client qemu-system-x86 qemu-utils busybox-static
          cpio kmod xz-utils zstd libssl-dev pkg-config ca-certificates make gcc libc6-dev
          procps util-linux passwd strace jq python3 git debootstrap sudo lsof)
find_missing() {
    missing=()
    local p
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
}
find_missing
updated=
# Twice at most: installing one package can make apt remove another that
# was installed (seen here: bookworm's qemu-system-x86 removed a
# backported qemu-utils it conflicts with); the second round puts back
# what the first took away, and a third would not do better.
for _ in 1 2; do
    ((${#missing[@]})) || break
    say "installing ${missing[*]}"
    [[ -n $updated ]] || { apt-get update -q; updated=1; }
    # --force-confold: keep a configuration file the user has (never prompt).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confold "${missing[@]}"
    find_missing
done
if ((${#missing[@]})); then
    say "still not installed after apt-get install: ${missing[*]}; install them by hand and run again"
    exit 1
fi

changed=0

# 2. The groups, build users and directories of Debian's nix-setup-systemd
# (its postinst and tmpfiles.d, done here without systemd).
for g in nix-users nixbld; do
    if ! getent group "$g" >/dev/null; then
        groupadd --system "$g"
        say "created group $g"
        changed=1
    fi
done
users=0
for n in $(seq 1 10); do
    if ! id "nixbld$n" >/dev/null 2>&1; then
        useradd --system --comment "Nix build user $n" --home-dir /var/empty \
            --gid nixbld --groups nixbld --no-user-group --shell /usr/sbin/nologin "nixbld$n"
        users=1
    elif ! id -nG "nixbld$n" | tr ' ' '\n' | grep -qx nixbld; then
        usermod -a -G nixbld "nixbld$n"
        users=1
    fi
done
if ((users)); then say "build users nixbld1..nixbld10 in group nixbld"; changed=1; fi
install -d -m 0770 -o root -g nix-users /nix/var/nix/daemon-socket
install -d -m 1777 /nix/var/nix/gcroots/per-user /nix/var/nix/profiles/per-user

# 3. nix.conf: keep what is there; add a setting only where the file has none.
conf=/etc/nix/nix.conf
install -d -m 0755 /etc/nix
if [[ ! -e $conf ]]; then
    printf '# see https://nixos.org/manual/nix/stable/command-ref/conf-file\n' > "$conf"
    chmod 0644 "$conf"
    say "created $conf"
    changed=1
fi
ensure_setting() { # ensure_setting NAME VALUE WHY
    local name=$1 value=$2 why=$3 current
    current=$(sed -nE "s/^[[:space:]]*$name[[:space:]]*=[[:space:]]*(.*[^[:space:]])?[[:space:]]*$/\1/p" "$conf" | tail -n 1)
    if ! grep -qE "^[[:space:]]*$name[[:space:]]*=" "$conf"; then
        printf '\n# %s (lb setup-host)\n%s =%s\n' "$why" "$name" "${value:+ $value}" >> "$conf"
        say "$conf: added '$name = $value'"
        changed=1
    elif [[ $current != "$value" ]]; then
        say "warning: $conf sets '$name = $current'; the tests need '$name = $value' ($why)"
    fi
}
ensure_setting sandbox false "Debian's setting: the sandbox has no /bin/sh on Debian"
ensure_setting substituters "" "no binary cache is reachable here"

# 4. The account the harness sshd lets in: unlocked ('*', not '!', or sshd
# refuses it) and in nix-users, which owns the daemon socket's directory.
if ! id builder >/dev/null 2>&1; then
    useradd --create-home --shell /bin/sh builder
    say "created account builder"
fi
usermod --password '*' builder
if ! id -nG builder | tr ' ' '\n' | grep -qx nix-users; then
    usermod -a -G nix-users builder
    changed=1
fi
mkdir -p /run/sshd

# 5. A nix daemon that started after all of the above (no systemd here:
# it runs detached). One that predates nix.conf or a change above is
# restarted, so that it reads the file and sees the build users.
ping_daemon() { nix store ping --store daemon --extra-experimental-features nix-command >/dev/null 2>&1; }
stale=0
here=$(stat -L -c %d:%i /)
for pid in $(pgrep -x nix-daemon 2>/dev/null || true); do
    # Only a daemon of this root: under chroot (the fresh-machine check) the
    # outer machine's daemon is visible too and must be left alone.
    [[ $(stat -L -c %d:%i "/proc/$pid/root" 2>/dev/null) == "$here" ]] || continue
    ppid=$(ps -o ppid= -p "$pid" | tr -d ' ') || continue
    # Only the listening daemon: its per-connection children have it as parent.
    [[ $(ps -o comm= -p "$ppid" 2>/dev/null) == nix-daemon ]] && continue
    started=$(( $(date +%s) - $(ps -o etimes= -p "$pid" | tr -d ' ') ))
    if ((changed)) || ((started < $(stat -c %Y "$conf"))); then
        say "restarting nix-daemon (pid $pid): it predates $conf or the build users"
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        stale=1
    fi
done
if ((stale)) || ! ping_daemon; then
    setsid -f nix-daemon </dev/null >/dev/null 2>&1
    for _ in $(seq 100); do ping_daemon && break; sleep 0.1; done
    ping_daemon || { say "nix-daemon did not answer on its socket after 10 s"; exit 1; }
    say "nix-daemon started"
fi
say "ready"
