#!/usr/bin/env bash
# Run every cargo-fuzz target in fuzz/ for a bounded time.
#
#   tests/fuzz.sh [SECONDS]     total fuzzing time, shared by the targets (default 150)
#
# Needs a nightly toolchain (libFuzzer's instrumentation); cargo-fuzz is
# installed when missing. Without nightly, only the fuzzing step is
# skipped, with a message. A finding (crash, leak, allocation over
# -rss_limit_mb, input slower than -timeout) fails the script; the input
# is left in fuzz/artifacts/TARGET/. The seed corpus in fuzz/corpus is read,
# never written: new inputs go to a temporary directory.
set -euo pipefail

total=${1:-150}
case $total in
    '' | *[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$total'" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/../fuzz"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz.sh: no nightly toolchain: skipping the fuzzing step (rustup toolchain install nightly to run it)" >&2
    exit 0
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --quiet cargo-fuzz
fi

start=$(date +%s)
# Build every target first, so the time below is spent fuzzing.
cargo +nightly fuzz build -O
built=$(date +%s)

mapfile -t targets < <(cargo +nightly fuzz list)
per=$(( total / ${#targets[@]} ))
(( per >= 1 )) || per=1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

failed=0
for t in "${targets[@]}"; do
    mkdir -p "$work/$t" "corpus/$t"
    echo "fuzz.sh: $t for ${per}s" >&2
    # -rss_limit_mb: an unbounded allocation is a finding; -timeout: so is a hang.
    status=0
    cargo +nightly fuzz run -O "$t" "$work/$t" "corpus/$t" -- \
        -max_total_time="$per" -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 \
        >"$work/$t.log" 2>&1 || status=$?
    grep -E '^(stat::number_of_executed_units|stat::new_units_added)' "$work/$t.log" >&2 || true
    if [ "$status" -ne 0 ]; then
        # The panic message and where the input was saved.
        grep -E -A3 "panicked at|ERROR: libFuzzer|Test unit written" "$work/$t.log" | cut -c1-400 >&2 || true
        echo "fuzz.sh: $t found a failing input (exit $status; see fuzz/artifacts/$t)" >&2
        failed=1
    fi
done
end=$(date +%s)
echo "fuzz.sh: ${#targets[@]} targets, ${per}s each; build $((built - start))s, total $((end - start))s" >&2
exit "$failed"
