#!/usr/bin/env bash
# The nixpkgs linux-builder walkthrough, end to end, with the tools only,
# inside a scratch root: nothing outside it (no real /etc) is touched, and
# nothing is left running, also when a step fails.
#
#   demo/run.sh            (make demo does the set-up first)
#
# Environment: LB_NIX (the Nix generation on both ends: 2.34, the default,
# 2.26 or 2.8; the builder guest's nix-daemon and the host's nix, lb-copy's
# Nix and store are that Debian release's, tests/nix/README.md),
# LB_DEMO_ROOT (keep the scratch root there instead of a temp dir),
# LB_DEMO_PORT (default: a free port), LB_DEMO_KEEP=1 (leave the root).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
bin=${LB_BIN:-$top/target/release}
export PATH="$bin:$PATH"
gen=${LB_NIX:-2.34}
case $gen in
    2.8 | 2.26 | 2.34) ;;
    *) echo "demo: LB_NIX=$gen: give 2.8, 2.26 or 2.34" >&2; exit 2 ;;
esac
# The host's Nix of that generation: its nix, nix-store and store (2.8:
# this machine's own; 2.26, 2.34: a Debian root under chroot).
hostnix() { bash "$top/tests/nix/host.sh" "$gen" "$@"; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
declare -a step_names=() step_ms=()
now_ms() { date +%s%3N; }
step() { # step NAME CMD...: run, time, record
    local name=$1; shift
    say "$name: $*"
    local t0; t0=$(now_ms)
    "$@"
    step_names+=("$name"); step_ms+=($(( $(now_ms) - t0 )))
}

root=${LB_DEMO_ROOT:-$(mktemp -d /tmp/lb-demo.XXXXXX)}
mkdir -p "$root"
root=$(cd "$root" && pwd)
work=$root/var/lib/linux-builder
mkdir -p "$work"
port=${LB_DEMO_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}

# The builder's identity, shared by every tool through LB_* variables.
export LB_ROOT=$root LB_NAME=linux-builder LB_USER=builder LB_HOSTNAME=127.0.0.1
export LB_PORT=$port LB_SYSTEM=x86_64-linux LB_MAX_JOBS=2
# The test guest's fixed host key (the nixpkgs builder's is the default).
export LB_HOST_KEY=@$top/tests/guest/ssh_host_ed25519_key.pub

daemon_pid=
cleanup() {
    local rc=$?
    lb-vm stop --workdir "$work" >/dev/null 2>&1 || true
    if [[ -n $daemon_pid ]]; then kill "$daemon_pid" 2>/dev/null || true; wait "$daemon_pid" 2>/dev/null || true; fi
    if [[ -z ${LB_DEMO_KEEP:-} && -z ${LB_DEMO_ROOT:-} ]]; then rm -rf "$root"; fi
    if ((rc)); then echo "demo: FAILED (exit $rc); nothing is left running" >&2; fi
    exit $rc
}
trap cleanup EXIT INT TERM

t_start=$(now_ms)
say "scratch root: $root (stands in for /); Nix $gen on both ends (LB_NIX)"
# The scratch root must be visible to the host-side Nix under chroot.
export LB_NIX_BIND=$root:$bin${LB_NIX_BIND:+:$LB_NIX_BIND}
hostnix true # makes the generation's root once (cached under target/nix)
read -r kernel initrd < <(bash "$top/tests/guest/build.sh" --nix "$gen" | paste - -)
# That generation's nix-daemon on the host side (lb-copy asks it which
# paths are here); 2.8 is the machine's own daemon, started by setup-host.
if [[ $gen != 2.8 ]]; then
    # Not through the function: $! must be host.sh itself, which execs
    # down to nix-daemon.
    bash "$top/tests/nix/host.sh" "$gen" nix-daemon </dev/null >/dev/null 2>&1 &
    daemon_pid=$!
fi

# The machine's own nix.conf before the walkthrough: no binary cache here.
mkdir -p "$root/etc/nix"
printf 'substituters =\nexperimental-features = nix-command\nsandbox = false\n' > "$root/etc/nix/nix.conf"

step "1. keys"      lb-keys install "$work/keys"
step "2. boot VM"   lb-vm start --workdir "$work" --kernel "$kernel" --initrd "$initrd" \
                        --keys "$work/keys" --memory 1024 --cpus 2
step "3. ssh alias" lb-sshcfg install
step "4. nix.conf"  lb-nixconf install --trust-user root
step "5. ping"      lb-ping --explain

# From here on the host's Nix reads the scratch configuration.
export NIX_CONF_DIR=$root/etc/nix
export NIX_SSHOPTS="-F $root/etc/ssh/ssh_config"
stamp=$(date +%s%N)

build_delegated() {
    # Nix 2.8 has no --print-out-paths: take the path from --json.
    hostnix nix build --max-jobs 0 --no-link --json -f "$top/demo/builder-uname.nix" \
        --argstr stamp "delegated-$stamp" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["outputs"]["out"])' > "$root/delegated.out"
}
step "6. build --max-jobs 0" build_delegated

build_remote_and_copy() {
    hostnix nix build --eval-store auto --store "ssh-ng://builder@linux-builder" --json \
        -f "$top/demo/builder-uname.nix" --argstr stamp "remote-$stamp" \
        | hostnix "$bin/lb-copy" --no-check-sigs > "$root/copied.out"
}
step "7. build on builder | lb-copy" build_remote_and_copy
doctor() { make -s -C "$top" doctor BIN="$bin/" WORKDIR="$work" KEYS="$work/keys"; }
step "8. make doctor" doctor
step "9. stop VM"   lb-vm stop --workdir "$work"

say "make doctor, with the VM stopped (expected to report it down)"
if doctor; then echo "demo: doctor should have found the VM down" >&2; exit 1; fi

say "results (Nix $gen on both ends)"
for f in delegated copied; do
    p=$(head -n1 "$root/$f.out")
    printf '%-10s %s\n           %s\n' "$f:" "$p" "$(hostnix cat "$p")"
done
total=$(( $(now_ms) - t_start ))
say "timing"
for i in "${!step_names[@]}"; do
    printf '%-32s %7d ms  %3d%%\n' "${step_names[$i]}" "${step_ms[$i]}" $(( step_ms[i] * 100 / total ))
done
printf '%-32s %7d ms\n' "total (with guest build check)" "$total"
