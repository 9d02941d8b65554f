#!/usr/bin/env bash
# Long soak of the release binary: a bounded mixed workload at --maxmemory
# with churn and expiring keys (the short version runs in CI as
# crates/server/tests/soak.rs).
#
#   scripts/soak.sh [SECONDS] [MAXMEMORY]        (default: 600 s, 256mb)
#
# Two load generators run at once over a key space several times larger
# than the limit: one writes keys that never expire, the other keys with a
# 2-second TTL, both reading back 1:1. Every second the server's RSS is
# sampled. Pass when: RSS never exceeds the limit by more than 10%, the
# generators saw no error replies, and STATS cmd_get + cmd_set grew by
# exactly the requests the generators completed.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-600}
limit=${2:-256mb}
cargo build --release -q -p pogocache -p pogocache-loadgen
bin=target/release
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
tmp=$(mktemp -d)
"$bin/pogocache" -p "$port" --maxmemory "$limit" --threads 2 >"$tmp/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
limit_bytes=$(python3 -c "import re,sys; m=re.fullmatch(r'(\d+)([kmg]?)b?', sys.argv[1].lower()); print(int(m[1]) * {'':1,'k':1<<10,'m':1<<20,'g':1<<30}[m[2]])" "$limit")
stat() { printf 'stats\r\nquit\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port; cat >&3; cat <&3" | awk -v k="$1" '$2==k {print $3}' | tr -d '\r'; }
before=$(( $(stat cmd_get) + $(stat cmd_set) ))
common=(--port "$port" --ratio 1:1 --keys 4000000 --value 200-2000 --duration "$secs" --json --quiet --conns 20)
"$bin/loadgen" "${common[@]}" --pipeline 8 >"$tmp/a.json" &
a=$!
"$bin/loadgen" "${common[@]}" --pipeline 4 --ttl 2000 --zipf 0.9 --proto memcache >"$tmp/b.json" &
b=$!
peak=0
while kill -0 $a 2>/dev/null || kill -0 $b 2>/dev/null; do
    rss=$(awk '/^VmRSS:/ {print $2 * 1024}' "/proc/$server/status")
    [ "$rss" -gt "$peak" ] && peak=$rss
    sleep 1
done
wait $a
wait $b
after=$(( $(stat cmd_get) + $(stat cmd_set) ))
python3 - "$peak" "$limit_bytes" "$((after - before))" "$tmp/a.json" "$tmp/b.json" <<'PY'
import json, sys
peak, limit, counted = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
runs = [json.load(open(p)) for p in sys.argv[4:]]
done = sum(r["requests"] for r in runs)
errors = sum(r["errors"] for r in runs)
print(f"requests {done} ({' + '.join(str(r['requests']) for r in runs)}), errors {errors}")
print(f"STATS cmd_get+cmd_set grew by {counted}")
print(f"peak RSS {peak / 2**20:.1f} MiB, limit {limit / 2**20:.1f} MiB ({peak / limit:.2f}x)")
ok = errors == 0 and counted == done and peak <= limit * 1.1
print("soak: PASS" if ok else "soak: FAIL")
sys.exit(0 if ok else 1)
PY
