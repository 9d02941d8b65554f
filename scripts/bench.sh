#!/usr/bin/env bash
# Side-by-side benchmark of our pogocache against reference servers.
#
#   scripts/bench.sh [--pogocache PATH] [--redis] [--memcached] [bench.py options]
#
# Builds our release binaries, then runs scripts/bench.py with our server
# first (the baseline of every ratio) and each reference server asked for:
#   --pogocache PATH   a Pogocache binary you built by hand from its source
#   --redis            Debian's redis-server (RESP), no persistence
#   --memcached        Debian's memcached (Memcache), -t {threads}
#   --server N:P:CMD   any other server (see scripts/bench.py --help)
# Everything else goes to bench.py (--threads, --pipeline, --conns, --reps,
# --duration, --protos, --rss-items, --out, and --clients loadgen,memtier
# with --memtier PATH to drive memtier_benchmark as well, which you build
# by hand from RedisLabs/memtier_benchmark ...). Memory per item against
# value size, churn at a limit and Zipf hit ratio: scripts/bench-memory.py. Results: target/bench/
# summary.json; chart: python3 scripts/bench-chart.py target/bench/summary.json.
# This is a benchmark, not a test: nothing here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -q -p pogocache -p pogocache-loadgen
servers=(--server "pogocache-rs:resp,memcache:$PWD/target/release/pogocache -p {port} --threads {threads}")
rest=()
while [ $# -gt 0 ]; do
    case "$1" in
    --pogocache)
        servers+=(--server "pogocache:resp,memcache:$2 -p {port} --threads {threads}")
        shift 2 ;;
    --redis)
        servers+=(--server "redis:resp:redis-server --port {port} --save '' --appendonly no --bind 127.0.0.1")
        shift ;;
    --memcached)
        servers+=(--server "memcached:memcache:memcached -u $(id -un) -p {port} -l 127.0.0.1 -U 0 -t {threads} -m 4096")
        shift ;;
    *)
        rest+=("$1")
        shift ;;
    esac
done
exec python3 scripts/bench.py "${servers[@]}" "${rest[@]}"
