#!/usr/bin/env bash
# Benchmark: lb-ping of a fleet in parallel (one run naming 1, 8 or 32
# builders) against the same builders pinged one after another (one
# lb-ping run per builder, in a row), alternating, in one session.
#
# Each builder is a host of its own on a loopback address (all of 127/8 is
# loopback): sshd on ADDRESS:22 with its own host key, letting the host's
# `builder` account in with the key lb-keys generated for it; its
# `nix-daemon --stdio` answers through the host's nix daemon. The scratch
# root is configured with the tools only (lb-keys, lb-sshcfg, lb-nixconf).
# The builders' sshd and daemons share the machine's cores with lb-ping, as
# in the tests.
#
# Prints per fleet size the median wall time of both ways, the ratio
# (targets: 8 at most 0.5, 32 at most 0.3), lb-ping's cpu (user+system of
# lb-ping and the `ssh -G` it runs per builder) per builder, and peak
# memory (the largest process's maximum RSS).
#
# Usage: sudo bench/lb-ping-fleet.sh [RUNS]   (default 5; root for sshd on port 22)
#   FIRST=100  builders use 127.0.0.FIRST .. 127.0.0.(FIRST+31)
#   PORT=22    their sshd port; when the machine's own sshd holds 0.0.0.0:22,
#              the first port from 2200 free on every address is used (and said)
set -euo pipefail
RUNS=${1:-5}
FIRST=${FIRST:-100}
MAX=32
cd "$(dirname "$0")/.."
cargo build -q --release -p lb-ping -p lb-keys -p lb-sshcfg -p lb-nixconf
BIN=$PWD/target/release
[ "$(id -u)" = 0 ] || { echo "run as root (sshd on port 22): sudo $0" >&2; exit 2; }
id builder >/dev/null 2>&1 || { echo "no builder account: sudo make setup-host" >&2; exit 1; }
[ $((FIRST + MAX - 1)) -le 254 ] || { echo "FIRST=$FIRST: give at most $((255 - MAX))" >&2; exit 2; }

free_on_all() {
  python3 - "$1" "$FIRST" "$MAX" <<'PY'
import socket, sys
port, first, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
for i in range(n):
    s = socket.socket()
    try:
        s.bind((f"127.0.0.{first + i}", port))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
PY
}
if [ -z "${PORT:-}" ]; then
  PORT=22
  if ! free_on_all 22; then
    for PORT in $(seq 2200 2399); do free_on_all "$PORT" && break; done
    echo "port 22 is taken on a fleet address (an sshd on 0.0.0.0:22?): using port $PORT" >&2
  fi
fi

work=$(mktemp -d /tmp/lb-ping-fleet.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/root
mkdir -p /run/sshd "$root"

for i in $(seq "$MAX"); do
  name=pf-$i addr=127.0.0.$((FIRST + i - 1)) d=$work/b$i
  mkdir -p "$d/keys"
  chmod 755 "$d" "$d/keys"
  ssh-keygen -q -t ed25519 -N "" -C "$name-host" -f "$d/host"
  id=(--root "$root" --name "$name" --hostname "$addr" --port "$PORT" --key "/etc/nix/${name}_ed25519"
      --host-key "@$d/host.pub" --system x86_64-linux --max-jobs $(( i % 4 + 1 )))
  "$BIN/lb-keys" -q install "$d/keys" "${id[@]}" >/dev/null
  "$BIN/lb-sshcfg" -q install "${id[@]}" >/dev/null
  "$BIN/lb-nixconf" -q install "${id[@]}" --speed-factor $(( i % 3 + 1 )) >/dev/null
  cat > "$d/sshd_config" <<CFG
ListenAddress $addr:$PORT
HostKey $d/host
AuthorizedKeysFile $d/keys/builder_ed25519.pub
PidFile $d/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
AllowUsers builder
CFG
  /usr/sbin/sshd -D -e -f "$d/sshd_config" 2>"$d/sshd.log" &
  pids+=($!)
done
for i in $(seq "$MAX"); do
  addr=127.0.0.$((FIRST + i - 1))
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/$addr/$PORT") 2>/dev/null && break; sleep 0.1
  done
done
# Every builder answers before anything is timed.
"$BIN/lb-ping" --root "$root" >/dev/null || { "$BIN/lb-ping" --root "$root"; exit 1; }

python3 - "$BIN/lb-ping" "$root" "$RUNS" "$MAX" <<'PY'
import os, statistics as st, subprocess, sys, time
lb_ping, root, runs, most = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
sizes = [n for n in (1, 8, 32) if n <= most]

def run(names):
    """One lb-ping run: wall s, cpu s (it and its children), max RSS KiB."""
    t = time.monotonic()
    p = subprocess.Popen([lb_ping, "--root", root, "--json", *names],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"lb-ping {' '.join(names)} failed: {p.stderr.read().decode()}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss

res = {n: {"par": [], "seq": []} for n in sizes}
for _ in range(runs):
    for n in sizes:
        names = [f"pf-{i}" for i in range(1, n + 1)]
        res[n]["par"].append(run(names))
        one = [run([x]) for x in names]
        res[n]["seq"].append((sum(r[0] for r in one), sum(r[1] for r in one), max(r[2] for r in one)))

targets = {8: 0.5, 32: 0.3}
print(f"runs: {runs} per size, parallel and in a row alternating; medians")
print(f"{'builders':>8} {'parallel':>10} {'in a row':>10} {'ratio':>6} {'target':>7}"
      f" {'cpu/builder par':>16} {'cpu/builder row':>16} {'peak RSS par':>13} {'row':>8}")
for n in sizes:
    pw = st.median(r[0] for r in res[n]["par"]); sw = st.median(r[0] for r in res[n]["seq"])
    pc = st.median(r[1] for r in res[n]["par"]) / n; sc = st.median(r[1] for r in res[n]["seq"]) / n
    pm = max(r[2] for r in res[n]["par"]); sm = max(r[2] for r in res[n]["seq"])
    ratio = pw / sw
    tgt = targets.get(n)
    mark = "-" if tgt is None else (f"<={tgt} " + ("ok" if ratio <= tgt else "MISSED"))
    print(f"{n:>8} {pw*1000:>8.0f}ms {sw*1000:>8.0f}ms {ratio:>6.2f} {mark:>7}"
          f" {pc*1000:>14.1f}ms {sc*1000:>14.1f}ms {pm/1024:>10.1f}MiB {sm/1024:>5.1f}MiB")
PY
