#!/usr/bin/env bash
# Benchmark: lb-ping vs `nix store ping --store ssh-ng://...` on the same
# target, run alternately in one session. Prints the median wall time of
# each, the ratio, and where lb-ping's time goes (median per stage from
# --json).
#
# Target: a harness-like sshd on a free loopback port (as in lb-testkit:
# the host's `builder` account runs the host's `nix-daemon --stdio`), or
# an existing alias with  TARGET_ROOT=DIR TARGET=ssh-ng://alias  (DIR is a
# --root holding etc/ssh/ssh_config and etc/nix/nix.conf for it).
#
# Usage: sudo bench/lb-ping.sh [RUNS]     (default 20; needs root for sshd)
set -euo pipefail
RUNS=${1:-20}
cd "$(dirname "$0")/.."
cargo build -q --release -p lb-ping
LB_PING=$PWD/target/release/lb-ping
command -v nix >/dev/null || { echo "nix is not installed" >&2; exit 1; }

work=$(mktemp -d /tmp/lb-ping-bench.XXXXXX)
chmod 755 "$work"
sshd_pid=
cleanup() { [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

if [ -z "${TARGET:-}" ]; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  ssh-keygen -q -t ed25519 -N "" -C bench-host -f "$work/host"
  ssh-keygen -q -t ed25519 -N "" -C bench-client -f "$work/client"
  cp "$work/client.pub" "$work/authorized_keys"
  mkdir -p /run/sshd
  cat > "$work/sshd_config" <<CFG
ListenAddress 127.0.0.1:$port
HostKey $work/host
AuthorizedKeysFile $work/authorized_keys
PidFile $work/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowUsers builder
CFG
  /usr/sbin/sshd -D -e -f "$work/sshd_config" 2>"$work/sshd.log" &
  sshd_pid=$!
  for _ in $(seq 50); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1
  done
  root=$work/root
  mkdir -p "$root/etc/ssh" "$root/etc/nix"
  echo "lb-bench $(cut -d' ' -f1,2 "$work/host.pub")" > "$work/known_hosts"
  cat > "$root/etc/ssh/ssh_config" <<CFG
Host lb-bench
  Hostname 127.0.0.1
  Port $port
  User builder
  HostKeyAlias lb-bench
  IdentityFile $work/client
  UserKnownHostsFile $work/known_hosts
  StrictHostKeyChecking yes
  BatchMode yes
CFG
  hk=$(base64 -w0 < "$work/host.pub")
  echo "builders = ssh-ng://lb-bench x86_64-linux $work/client 1 1 - - $hk" > "$root/etc/nix/nix.conf"
  TARGET=ssh-ng://lb-bench
  TARGET_ROOT=$root
fi

now() { date +%s%N; }
lb_times=() nix_times=()
: > "$work/stages.jsonl"
for i in $(seq "$RUNS"); do
  t0=$(now)
  "$LB_PING" --root "$TARGET_ROOT" --json "$TARGET" > "$work/out.json" || { cat "$work/out.json"; exit 1; }
  t1=$(now)
  NIX_SSHOPTS="-F $TARGET_ROOT/etc/ssh/ssh_config" nix store ping --store "$TARGET" \
    --option substituters "" --extra-experimental-features nix-command 2>"$work/nix.err" \
    || { cat "$work/nix.err"; exit 1; }
  t2=$(now)
  lb_times+=($(( (t1 - t0) / 1000 ))) nix_times+=($(( (t2 - t1) / 1000 )))
  python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))[0]))' "$work/out.json" >> "$work/stages.jsonl"
done

python3 - "$RUNS" "$work/stages.jsonl" "${lb_times[*]}" "${nix_times[*]}" <<'PY'
import json, statistics as st, sys
runs, stages_file, lb, nx = sys.argv[1], sys.argv[2], sys.argv[3].split(), sys.argv[4].split()
lb = [int(x) / 1000 for x in lb]; nx = [int(x) / 1000 for x in nx]
ml, mn = st.median(lb), st.median(nx)
print(f"runs: {runs} each, alternating")
print(f"lb-ping          median {ml:8.1f} ms  (min {min(lb):.1f}, max {max(lb):.1f})")
print(f"nix store ping   median {mn:8.1f} ms  (min {min(nx):.1f}, max {max(nx):.1f})")
print(f"ratio lb-ping / nix store ping: {ml / mn:.2f}")
reps = [json.loads(l) for l in open(stages_file)]
print("lb-ping stages (median ms, from --json):")
names = [s["stage"] for s in reps[0]["stages"]]
for n in names:
    v = [s["ms"] for r in reps for s in r["stages"] if s["stage"] == n]
    print(f"  {n:<17} {st.median(v):8.1f}")
tot = [r["total_ms"] for r in reps]
print(f"  {'in-process total':<17} {st.median(tot):8.1f}   (wall minus this: process start, teardown)")
PY
