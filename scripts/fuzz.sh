#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ for a bounded time each.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 30 s, every target)
#   FUZZ_RUNS=10000000 scripts/fuzz.sh 0 resp  (a fixed number of runs)
#
# Each target starts from its committed seeds (fuzz/seeds/<target>) plus
# the corpus earlier runs grew (fuzz/corpus/<target>, not committed), with
# its keyword dictionary (fuzz/dict/<target>.dict). A crash stops the
# script with the reproducer in fuzz/artifacts/<target>/; turn it into a
# regular test in the crate that owns the code, then fix it. Needs the
# nightly toolchain; installs cargo-fuzz when it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(resp memcache http postgres sniff snapshot store repl)
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
cd fuzz
# Build every target once (ASan, release, debug assertions).
cargo +nightly fuzz build -O --debug-assertions --target-dir ../target/fuzz
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    dict=()
    [ -f "dict/$t.dict" ] && dict=("-dict=dict/$t.dict")
    limit=("-max_total_time=$secs")
    [ -n "${FUZZ_RUNS:-}" ] && limit=("-runs=$FUZZ_RUNS")
    echo "== fuzz $t (${FUZZ_RUNS:+$FUZZ_RUNS runs}${FUZZ_RUNS:-$secs s})"
    log="corpus/$t.log"
    rc=0
    cargo +nightly fuzz run -O --debug-assertions --target-dir ../target/fuzz "$t" "corpus/$t" "seeds/$t" -- \
        "${limit[@]}" "${dict[@]}" -max_len=4096 -print_final_stats=1 >"$log" 2>&1 || rc=$?
    grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|SUMMARY)|panicked|ERROR|Done [0-9]+ runs" "$log" || true
    if [ "$rc" -ne 0 ]; then
        tail -40 "$log" >&2
        echo "fuzz $t failed (exit $rc): reproducer in fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "fuzz: all ${#targets[@]} targets clean"
