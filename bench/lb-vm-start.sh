#!/usr/bin/env bash
# Start-to-ready time of `lb-vm start` against the guest's own
# boot-to-sshd time: the overhead lb-vm adds (QEMU start, disk check,
# readiness polling, its own exit).
#
# The guest's time is its /proc/uptime read over ssh the moment lb-vm
# reports ready (time since the kernel started, so it excludes QEMU's own
# start-up), minus the ssh round trip measured right after. A third figure
# needs no guest clock: the host's time from the guest console's "sshd
# ready" line (QEMU writes the console to a file as the guest prints) to
# lb-vm's return, which includes sshd's own first greeting (its first
# connection forks, re-execs and may wait for the kernel's RNG: any client
# waits that too); lb-vm -v says how long that greeting took, and the rest
# is lb-vm's own.
#
# usage: bench/lb-vm-start.sh [RUNS]   (default 5; TCG boots take ~15 s each)
#        LB_VM=/path/to/lb-vm bench/lb-vm-start.sh   (another build, to compare)
set -euo pipefail
runs=${1:-5}
ws=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${LB_VM:-} ]]; then cargo build -q -p lb-vm --manifest-path "$ws/Cargo.toml"; fi
lb_vm=${LB_VM:-$ws/target/debug/lb-vm}
out=$ws/target/guest
mkdir -p "$out"
mapfile -t imgs < <(bash "$ws/tests/guest/build.sh" "$out")
kernel=${imgs[0]} initrd=${imgs[1]}
work=$(mktemp -d /tmp/lbvm-bench.XXXXXX)
trap '"$lb_vm" --workdir "$work" -q stop --timeout 5 >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir "$work/keys"
# The accelerator the tests chose: no KVM probe boot inside the first run.
[[ -f $out/accel ]] && cp "$out/accel" "$work/linux-builder.accel"
ssh-keygen -q -t ed25519 -N "" -C bench -f "$work/keys/builder_ed25519"
printf 'lbvm-bench %s\n' "$(cat "$ws/tests/guest/ssh_host_ed25519_key.pub")" >"$work/known_hosts"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ssh_guest() {
  ssh -F /dev/null -p "$port" -i "$work/keys/builder_ed25519" \
    -o UserKnownHostsFile="$work/known_hosts" -o HostKeyAlias=lbvm-bench \
    -o StrictHostKeyChecking=yes -o BatchMode=yes builder@127.0.0.1 "$@"
}
now() { date +%s.%N; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
# Prints the host time when FILE first holds "sshd ready".
watch_console() {
  python3 -c '
import sys, time
deadline = time.time() + 300
while time.time() < deadline:
    try:
        if b"sshd ready" in open(sys.argv[1], "rb").read():
            print("%.3f" % time.time()); break
    except FileNotFoundError:
        pass
    time.sleep(0.002)' "$1"
}
lbvm_times=() guest_times=() after_times=() own_times=()
for i in $(seq "$runs"); do
  rm -f "$work/linux-builder.console.log"
  watch_console "$work/linux-builder.console.log" >"$work/sshd-ready" &
  watcher=$!
  t0=$(now)
  "$lb_vm" --workdir "$work" -v start --kernel "$kernel" --initrd "$initrd" \
    --append "console=ttyS0 quiet panic=-1" --memory 1024 --cpus 2 --disk-size 1024 \
    --port "$port" --timeout 180 >/dev/null 2>"$work/start.log"
  t1=$(now)
  # Builds from before the greeting was reported say nothing: 0.
  greeting=$(sed -n 's/.*its greeting took \([0-9.]*\) s.*/\1/p' "$work/start.log" | tail -n1)
  greeting=${greeting:-0}
  wait "$watcher"
  after=$(echo "$t1 - $(cat "$work/sshd-ready")" | bc -l)
  s0=$(now)
  up=$(ssh_guest "cut -d' ' -f1 /proc/uptime")
  s1=$(now)
  # The uptime was read somewhere inside the ssh call; take off the round trip.
  rtt=$(echo "$s1 - $s0" | bc -l)
  ready=$(echo "$t1 - $t0" | bc -l)
  guest=$(echo "$up - $rtt" | bc -l)
  own=$(echo "$after - $greeting" | bc -l)
  printf 'run %d: lb-vm start-to-ready %.2fs, guest boot-to-sshd %.2fs (ssh %.2fs); console "sshd ready" to return %.2fs (sshd greeting %.2fs, lb-vm own %.2fs)\n' "$i" "$ready" "$guest" "$rtt" "$after" "$greeting" "$own" >&2
  lbvm_times+=("$ready") guest_times+=("$guest") after_times+=("$after") own_times+=("$own")
  "$lb_vm" --workdir "$work" -q stop --timeout 5
done
m_lbvm=$(printf '%s\n' "${lbvm_times[@]}" | median)
m_guest=$(printf '%s\n' "${guest_times[@]}" | median)
m_after=$(printf '%s\n' "${after_times[@]}" | median)
m_own=$(printf '%s\n' "${own_times[@]}" | median)
printf 'lb-vm start-to-ready median %.2fs; guest boot-to-sshd median %.2fs; ratio %.3f (overhead %.2fs); console "sshd ready" to return median %.2fs (lb-vm own %.2fs); over %d runs\n' \
  "$m_lbvm" "$m_guest" "$(echo "$m_lbvm / $m_guest" | bc -l)" "$(echo "$m_lbvm - $m_guest" | bc -l)" "$m_after" "$m_own" "$runs"
