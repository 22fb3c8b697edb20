#!/usr/bin/env bash
# lb-copy versus a hand-written `nix copy --from` of the same paths.
#
# Two workloads: 1 large output, and 50 small outputs. For each round the
# paths are deleted locally (`nix store delete`), then copied back by one
# of the two commands; the two alternate (ABAB...) so drift hits both.
# Prints the median wall time of each and the ratio lb-copy / nix copy.
#
# Source store: LB_BENCH_FROM (e.g. the test VM's ssh-ng URI, with
# NIX_SSHOPTS set for its alias) if given, else a local file:// binary
# cache this script fills, which measures lb-copy's own overhead with the
# transfer as cheap as it gets (the worst case for the ratio).
#
# A third row times lb-copy's fixed cost alone: the 50 small paths all
# present (nothing to copy: start, parse, one QueryValidPaths to the local
# daemon), beside `nix-store --check-validity` of the same paths, the
# process lb-copy used to start for that question.
#
# Env: LB_COPY (binary, default target/release/lb-copy, built if absent),
# ROUNDS (default 7), LARGE_MB (default 64).
set -euo pipefail
cd "$(dirname "$0")/.."
LB_COPY=${LB_COPY:-target/release/lb-copy}
ROUNDS=${ROUNDS:-7}
LARGE_MB=${LARGE_MB:-64}
NIXOPTS=(--option substituters "" --extra-experimental-features nix-command)
[ -x "$LB_COPY" ] || cargo build -q --release -p lb-copy
work=$(mktemp -d /tmp/lb-copy-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
stamp=$(date +%s%N)

cat >"$work/paths.nix" <<EOF
let mk = name: script: derivation {
  inherit name; system = builtins.currentSystem; builder = "/bin/sh";
  args = [ "-c" script ]; };
in {
  large = mk "lb-bench-large-$stamp" "$(command -v head) -c $((LARGE_MB * 1000000)) /dev/urandom > \$out";
  small = builtins.genList (i: mk "lb-bench-small-\${toString i}-$stamp" "echo \${toString i} > \$out") 50;
}
EOF
echo "building the outputs locally..." >&2
nix-build "${NIXOPTS[@]:0:3}" --no-out-link "$work/paths.nix" -A large >"$work/large.txt"
nix-build "${NIXOPTS[@]:0:3}" --no-out-link "$work/paths.nix" -A small >"$work/small.txt"

if [ -n "${LB_BENCH_FROM:-}" ]; then
  from=$LB_BENCH_FROM
else
  from="file://$work/cache"
  nix "${NIXOPTS[@]}" copy --to "$from?compression=none" $(cat "$work/large.txt" "$work/small.txt")
fi

now() { date +%s.%N; }
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }

run_one() { # which list
  local which=$1 list=$2 t0 t1
  if [ "$present" = 1 ]; then
    t0=$(now)
    if [ "$which" = nix ]; then
      nix-store --check-validity --print-invalid $(cat "$list")
    else
      "$LB_COPY" -q --from "$from" <"$list" >/dev/null
    fi
    t1=$(now)
    echo "$t1 - $t0" | bc
    return
  fi
  nix "${NIXOPTS[@]}" store delete $(cat "$list") >/dev/null 2>&1
  t0=$(now)
  if [ "$which" = nix ]; then
    nix "${NIXOPTS[@]}" copy --from "$from" --no-check-sigs $(cat "$list") 2>/dev/null
  else
    "$LB_COPY" -q --from "$from" --no-check-sigs <"$list" >/dev/null
  fi
  t1=$(now)
  nix-store --check-validity $(cat "$list")
  echo "$t1 - $t0" | bc
}

printf '%-22s %12s %12s %8s\n' workload "nix s" "lb-copy s" ratio
for w in large small present; do
  : >"$work/$w.nix.t"; : >"$work/$w.lb.t"
  list=$work/$w.txt present=0
  if [ $w = present ]; then
    list=$work/small.txt present=1
    nix-store --realise $(cat "$list") >/dev/null 2>&1 ||
      nix "${NIXOPTS[@]}" copy --from "$from" --no-check-sigs $(cat "$list") 2>/dev/null
  fi
  for ((r = 0; r < ROUNDS; r++)); do
    if ((r % 2)); then order="lb nix"; else order="nix lb"; fi
    for which in $order; do run_one "$which" "$list" >>"$work/$w.$which.t"; done
  done
  n=$(median <"$work/$w.nix.t"); l=$(median <"$work/$w.lb.t")
  case $w in
    large) label="1 x ${LARGE_MB} MB" ;;
    small) label="50 small" ;;
    present) label="50 present (fixed)" ;;
  esac
  printf '%-22s %12.3f %12.3f %8.3f\n' "$label" "$n" "$l" "$(echo "$l / $n" | bc -l)"
done
echo "source: $from; rounds: $ROUNDS (alternating), median wall time;" \
  "nix = nix copy --from, or nix-store --check-validity for the present row" >&2
nix "${NIXOPTS[@]}" store delete $(cat "$work/large.txt" "$work/small.txt") >/dev/null 2>&1 || true
