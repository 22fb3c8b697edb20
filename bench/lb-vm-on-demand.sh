#!/usr/bin/env bash
# What the on-demand builder (`lb-vm start --on-demand`) costs, against the
# guest itself in the same runs:
#
# 1. Cold start: from the first connection to the SSH banner through the
#    listener, against the guest's own boot-to-sshd in the same boot: QEMU's
#    process start to the guest console's "sshd ready" line, both on the
#    host's clock (the console is a file QEMU writes as the guest prints).
#    The difference is what lb-vm adds: starting QEMU after the connection
#    (connection -> QEMU), then noticing sshd and relaying its banner
#    (sshd ready -> banner). That last part includes sshd's own greeting
#    time (its first connection forks, re-execs and may wait for the
#    kernel's RNG), which a direct client waits for too; the listener logs
#    it ("its greeting took"), and "lb-vm's own" is the rest.
# 2. Throughput: SIZE_MB (default 256) MB through `ssh builder 'cat >
#    /dev/null'` via the listener's relay, against the same through the
#    guest's own QEMU forward (its private port), alternating, same VM.
#
# usage: bench/lb-vm-on-demand.sh [RUNS]   (default 3; TCG boots take 10-20 s each)
set -euo pipefail
runs=${1:-3}
size_mb=${SIZE_MB:-256}
ws=$(cd "$(dirname "$0")/.." && pwd)
cargo build -q --release -p lb-vm --manifest-path "$ws/Cargo.toml"
lb_vm=$ws/target/release/lb-vm
out=$ws/target/guest
mkdir -p "$out"
mapfile -t imgs < <(bash "$ws/tests/guest/build.sh" "$out")
kernel=${imgs[0]} initrd=${imgs[1]}
work=$(mktemp -d /tmp/lbvm-od-bench.XXXXXX)
trap '"$lb_vm" --workdir "$work" -q stop --timeout 5 >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
mkdir "$work/keys"
ssh-keygen -q -t ed25519 -N "" -C bench -f "$work/keys/builder_ed25519"
printf 'lbvm-bench %s\n' "$(cat "$ws/tests/guest/ssh_host_ed25519_key.pub")" >"$work/known_hosts"
# The same accelerator as the other benchmarks and tests chose.
[[ -f $out/accel ]] && cp "$out/accel" "$work/linux-builder.accel"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ssh_to() { # ssh_to PORT CMD...
  local p=$1; shift
  ssh -F /dev/null -p "$p" -i "$work/keys/builder_ed25519" \
    -o UserKnownHostsFile="$work/known_hosts" -o HostKeyAlias=lbvm-bench \
    -o StrictHostKeyChecking=yes -o BatchMode=yes builder@127.0.0.1 "$@"
}
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
start_listener() {
  "$lb_vm" --workdir "$work" -q start --on-demand --idle 1h --kernel "$kernel" --initrd "$initrd" \
    --append "console=ttyS0 quiet panic=-1" --memory 1024 --cpus 2 --disk-size 1024 \
    --port "$port" --timeout 240 >/dev/null
}
status_field() { "$lb_vm" --workdir "$work" status --json 2>/dev/null | python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

# One cold start: prints "connect->banner qemu-start->sshd-ready connect->qemu sshd->banner greeting".
cold_start() {
  python3 - "$port" "$work/linux-builder.console.log" "$lb_vm" "$work" <<'EOF'
import json, os, re, socket, subprocess, sys, threading, time
port, console, lb_vm, work = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
sshd_ready = []
def watch():
    # The listener removes the old console log at boot; the guest's line
    # "sshd ready" appears in the new one.
    deadline = time.time() + 300
    while time.time() < deadline and not sshd_ready:
        try:
            with open(console, 'rb') as f:
                if b'sshd ready' in f.read():
                    sshd_ready.append(time.time())
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.002)
try:
    os.remove(console)
except FileNotFoundError:
    pass
w = threading.Thread(target=watch); w.start()
t0 = time.time()
s = socket.create_connection(('127.0.0.1', port))
banner = s.makefile('rb').readline().decode().strip()
t1 = time.time()
w.join()
assert banner.startswith('SSH-'), banner
st = json.loads(subprocess.run([lb_vm, '--workdir', work, 'status', '--json'],
                               capture_output=True, check=True).stdout)
pid = st['pid']
ticks = int(open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[19])
hz = os.sysconf('SC_CLK_TCK')
boot_epoch = time.time() - float(open('/proc/uptime').read().split()[0])
t_qemu = boot_epoch + ticks / hz
s.close()
log = open(os.path.join(work, 'linux-builder.on-demand.log')).read()
greeting = float(re.findall(r'its greeting took ([0-9.]+) s', log)[-1])
print('%.3f %.3f %.3f %.3f %.3f' % (t1 - t0, sshd_ready[0] - t_qemu, t_qemu - t0, t1 - sshd_ready[0], greeting))
EOF
}

cold=() guest=() spawn=() notice=() own=()
for i in $(seq "$runs"); do
  start_listener
  read -r c g sp no gr < <(cold_start)
  o=$(echo "$sp + $no - $gr" | bc -l)
  printf 'run %d: first connection -> banner %.2fs; guest QEMU start -> sshd ready %.2fs; overhead %.2fs (connection -> QEMU %.2fs, sshd ready -> banner %.2fs of which sshd greeting %.2fs); lb-vm own %.2fs\n' \
    "$i" "$c" "$g" "$(echo "$c - $g" | bc -l)" "$sp" "$no" "$gr" "$o" >&2
  cold+=("$c") guest+=("$g") spawn+=("$sp") notice+=("$no") own+=("$o")
  if ((i < runs)); then "$lb_vm" --workdir "$work" -q stop --timeout 20; fi
done
m_cold=$(printf '%s\n' "${cold[@]}" | median)
m_guest=$(printf '%s\n' "${guest[@]}" | median)
m_spawn=$(printf '%s\n' "${spawn[@]}" | median)
m_notice=$(printf '%s\n' "${notice[@]}" | median)
m_own=$(printf '%s\n' "${own[@]}" | median)
printf 'cold start: first connection -> banner median %.2fs; guest boot-to-sshd median %.2fs; overhead %.2fs (connection -> QEMU %.2fs, sshd ready -> banner %.2fs); lb-vm own (without sshd greeting) median %.2fs; over %d runs\n' \
  "$m_cold" "$m_guest" "$(echo "$m_cold - $m_guest" | bc -l)" "$m_spawn" "$m_notice" "$m_own" "$runs"

# Throughput on the VM the last run booted: relay against the guest's own forward.
guest_port=$(status_field "['on_demand']['guest_port']")
ssh_to "$port" true
relay_t=() direct_t=()
for i in 1 2 3; do
  for way in relay direct; do
    p=$port; [[ $way == direct ]] && p=$guest_port
    t0=$(date +%s.%N)
    head -c "${size_mb}M" /dev/zero | ssh_to "$p" 'cat > /dev/null'
    t=$(echo "$(date +%s.%N) - $t0" | bc -l)
    printf 'transfer %d %s: %d MB in %.2fs (%.1f MB/s)\n' "$i" "$way" "$size_mb" "$t" "$(echo "$size_mb / $t" | bc -l)" >&2
    if [[ $way == relay ]]; then relay_t+=("$t"); else direct_t+=("$t"); fi
  done
done
m_relay=$(printf '%s\n' "${relay_t[@]}" | median)
m_direct=$(printf '%s\n' "${direct_t[@]}" | median)
printf 'throughput: relay %.1f MB/s; direct QEMU forward %.1f MB/s; ratio %.3f (%d MB, median of 3 each)\n' \
  "$(echo "$size_mb / $m_relay" | bc -l)" "$(echo "$size_mb / $m_direct" | bc -l)" "$(echo "$m_direct / $m_relay" | bc -l)" "$size_mb"
# The listener's memory while the VM is off.
"$lb_vm" --workdir "$work" -q stop --timeout 20
start_listener
lpid=$(status_field "['on_demand']['listener_pid']")
printf 'idle listener (VM off): RSS %s kB, %s threads\n' "$(awk '/VmRSS/{print $2}' /proc/"$lpid"/status)" "$(awk '/Threads/{print $2}' /proc/"$lpid"/status)"
