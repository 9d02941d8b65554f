#!/usr/bin/env bash
# How cost grows with the work: ours against Pogocache's release build,
# Pogocache on libc malloc, Redis and Memcached, one workload at a time.
#
#   scripts/bench-scale.sh --pogocache PATH [--pogocache-libc PATH] \
#       [--memtier PATH] [--rows base,confirm,keys10m,v16k,v256k,conns5k,conns20k] \
#       [--reps N] [--duration S] [--out DIR]
#
# PATH are Pogocache binaries you built by hand from its source (the
# release build links mimalloc and liburing; Debian's libmimalloc-dev and
# liburing-dev make that possible), and memtier_benchmark is built by hand
# from RedisLabs/memtier_benchmark. No build recipe for either lives here.
#
# Each row is one scripts/bench.py run with every server live side by side
# and repetitions interleaved, so each ratio is a same-run ratio:
#   base      100,000 keys, 100 B, 50 conns, pipeline 1 and 16, uniform and
#             Zipf(0.99) keys, loadgen and memtier (the headline table)
#   confirm   the Memcache pipeline-16 goal row again, ours and Pogocache's
#             release build only (use --reps 7)
#   keys10m   10,000,000 keys, 100 B: RSS per item after the load, then GETs
#             spread over the whole key space (uniform) and Zipf(0.99)
#   v16k      16 KiB values, pipeline 1 and 16
#   v256k     256 KiB values, pipeline 1
#   conns5k   5,000 connections: RSS per idle connection, CPU and p99
#   conns20k  19,500 connections (this machine's hard limit on open files is
#             20,000 per process, so 20,000 client sockets cannot be opened)
# Results: DIR/<row>/summary.json (default target/bench-scale); then
#   python3 scripts/bench-scale-report.py DIR docs/bench/scale.json --chart docs/bench/scale.png
# merges them and prints BENCHMARKS.md's tables. This is a benchmark, not a
# test: nothing here asserts a timing.
set -euo pipefail
cd "$(dirname "$0")/.."

pogo="" pogo_libc="" memtier_bin="memtier_benchmark"
rows="base,keys10m,v16k,v256k,conns5k,conns20k"
reps=5 duration=3 out="target/bench-scale"
while [ $# -gt 0 ]; do
    case "$1" in
    --pogocache) pogo="$2"; shift 2 ;;
    --pogocache-libc) pogo_libc="$2"; shift 2 ;;
    --memtier) memtier_bin="$2"; shift 2 ;;
    --rows) rows="$2"; shift 2 ;;
    --reps) reps="$2"; shift 2 ;;
    --duration) duration="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
    esac
done
[ -n "$pogo" ] || { echo "--pogocache PATH (Pogocache's release build) is required" >&2; exit 2; }

cargo build --release -q -p pogocache -p pogocache-loadgen
# Every server may take 20,000 connections (Pogocache's default is 1,024,
# Redis's 10,000, Memcached's 1,024); limits above the process's open-file
# limit are lowered by the servers themselves.
servers=(
    --server "pogocache-rs:resp,memcache:$PWD/target/release/pogocache -p {port} --threads {threads} --maxconns 20000"
    --server "pogocache:resp,memcache:$pogo -p {port} --threads {threads} --maxconns 20000"
)
[ -z "$pogo_libc" ] || servers+=(--server "pogocache-libc:resp,memcache:$pogo_libc -p {port} --threads {threads} --maxconns 20000")
servers+=(
    --server "redis:resp:redis-server --port {port} --save '' --appendonly no --bind 127.0.0.1 --maxclients 20000"
    --server "memcached:memcache:memcached -u $(id -un) -p {port} -l 127.0.0.1 -U 0 -t {threads} -m 8192 -c 19900"
)
common=(--threads 1 --reps "$reps" --duration "$duration" --rss-items 0 --memtier "$memtier_bin")

row() {
    local name="$1"; shift
    echo "== $name"
    python3 scripts/bench.py "${servers[@]}" "${common[@]}" --label "$name" --out "$out/$name" "$@"
}

for r in ${rows//,/ }; do
    case "$r" in
    base) row base --clients loadgen,memtier --pipeline 1,16 --conns 50 --zipf 0,0.99 ;;
    confirm)
        echo "== confirm"
        python3 scripts/bench.py "${servers[@]:0:4}" "${common[@]}" --label confirm \
            --out "$out/confirm" --protos memcache --clients memtier --pipeline 16 --conns 50 ;;
    keys10m) row keys10m --clients memtier --pipeline 1,16 --conns 50 --keys 10000000 --zipf 0,0.99 ;;
    v16k) row v16k --clients memtier --pipeline 1,16 --conns 50 --keys 20000 --value 16384 ;;
    v256k) row v256k --clients memtier --pipeline 1 --conns 50 --keys 2000 --value 262144 ;;
    conns5k) row conns5k --clients memtier --pipeline 1 --conns 5000 --idle-conns 5000 ;;
    conns20k) row conns20k --clients memtier --pipeline 1 --conns 19500 --idle-conns 19500 ;;
    *) echo "unknown row $r" >&2; exit 2 ;;
    esac
done
