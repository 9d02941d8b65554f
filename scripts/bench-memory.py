#!/usr/bin/env python3
"""Memory benchmark, every server side by side: overhead per item against
value size, RSS under churn at a memory limit, and hit ratio under Zipf.

Owns: the three memory runs, their table and `memory.json`.
Does not own: building anything (build our release binary and any
reference server by hand), starting servers (`bench.Server` from
scripts/bench.py), or the chart (scripts/bench-memory-chart.py).

Server specs are NAME:PROTO:COMMAND as in scripts/bench.py, with PROTO one
of memcache or resp (the protocol the runs speak to it) and the command
using {port} and, for the limit runs, {maxmemory} (bytes) or {maxmemory_mb}.

Runs (each server fresh for each row, one at a time, pinned to CPU 0):
- sweep: memtier_benchmark loads N keys once each (`key:1` .. `key:N`) at
  each value size, N = min(1,000,000, 400 MB / size), one connection with
  at most ~1 MiB pipelined, after a warm-up of two pipelines of other keys
  over a connection of the same shape (so connection buffers and the
  first arena pages are in the baseline); overhead per item = RSS growth / N -
  mean(key + value).
- churn: a server with a memory limit takes random overwrites of a key
  space three times what fits, sizes uniform in 100..4000 B, for ten times
  the limit in bytes; reports final RSS / limit and items held against
  0.85 x limit / mean item size.
- zipf: cache-aside (GET; on a miss, SET) over one deterministic Zipf(0.99)
  key sequence, the same for every server, with a limit that holds a third
  of the key space; hit ratio is client-side (hits / GETs) after a warm-up
  pass of the same length.

    python3 scripts/bench-memory.py --memtier PATH \\
      --server 'pogocache-rs:memcache:target/release/pogocache -p {port} --threads 1 --maxmemory {maxmemory_mb}mb' \\
      --server 'redis:resp:redis-server --port {port} --save "" --appendonly no --maxmemory {maxmemory} --maxmemory-policy allkeys-lru' \\
      --runs sweep,churn,zipf --out target/bench-memory
    python3 scripts/bench-memory-chart.py target/bench-memory/memory.json docs/bench/memory.png

Without a limit asked (the sweep) the {maxmemory} placeholders get 16 GiB.

This is a benchmark, not a test: nothing here asserts a figure.
"""

import argparse
import bisect
import json
import os
import random
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (Server, rss_bytes, free_port, portable_cmd)

ROOT = os.path.dirname(HERE)


def parse(spec):
    name, proto, cmd = spec.split(":", 2)
    assert proto in ("memcache", "resp"), proto
    return {"name": name, "protos": [proto], "proto": proto, "cmd": cmd}


def start(spec, maxmemory=None):
    s = dict(spec)
    if maxmemory is not None:
        s["cmd"] = s["cmd"].replace("{maxmemory}", str(maxmemory)).replace(
            "{maxmemory_mb}", str(maxmemory >> 20))
    elif "{maxmemory" in s["cmd"]:
        # No limit asked: a generous one (these runs must not evict).
        s["cmd"] = s["cmd"].replace("{maxmemory}", str(16 << 30)).replace(
            "{maxmemory_mb}", str(16 << 10))
    return bench.Server(s, 1, "0")


def memtier(args, port, proto, extra):
    argv = ["taskset", "-c", "1", args.memtier, "-s", "127.0.0.1", "-p", str(port),
            "-P", "memcache_text" if proto == "memcache" else "redis",
            "-t", "1", "--hide-histogram", "--key-prefix=key:"] + extra
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


class Client:
    """A minimal pipelining client for the two protocols (GET, SET, item
    count), so every server sees the same bytes."""

    def __init__(self, port, proto):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.proto = proto
        self.buf = b""

    def _fill(self):
        d = self.sock.recv(1 << 20)
        if not d:
            raise RuntimeError("server closed the connection")
        self.buf += d

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def _take(self, n):
        while len(self.buf) < n + 2:
            self._fill()
        d, self.buf = self.buf[:n], self.buf[n + 2:]
        return d

    def gets(self, keys):
        """Pipelined GETs; returns one hit flag per key."""
        if self.proto == "memcache":
            self.sock.sendall(b"".join(b"get %s\r\n" % k for k in keys))
        else:
            self.sock.sendall(b"".join(b"*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n" % (len(k), k)
                                       for k in keys))
        hits = []
        for _ in keys:
            line = self._line()
            if self.proto == "memcache":
                if line.startswith(b"VALUE "):
                    self._take(int(line.split()[3]))
                    assert self._line() == b"END"
                    hits.append(True)
                else:
                    assert line == b"END", line
                    hits.append(False)
            else:
                if line.startswith(b"$-1"):
                    hits.append(False)
                else:
                    self._take(int(line[1:]))
                    hits.append(True)
        return hits

    def sets(self, items):
        if not items:
            return
        if self.proto == "memcache":
            self.sock.sendall(b"".join(b"set %s 0 0 %d\r\n%s\r\n" % (k, len(v), v)
                                       for k, v in items))
        else:
            self.sock.sendall(b"".join(
                b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v)
                for k, v in items))
        for _ in items:
            line = self._line()
            assert line in (b"STORED", b"+OK"), line

    def items(self):
        if self.proto == "memcache":
            self.sock.sendall(b"stats\r\n")
            n = None
            while True:
                line = self._line()
                if line == b"END":
                    return n
                p = line.split()
                if len(p) == 3 and p[1] == b"curr_items":
                    n = int(p[2])
        self.sock.sendall(b"*1\r\n$6\r\nDBSIZE\r\n")
        return int(self._line()[1:])


def key_bytes(n):
    """Sum of len(b'key:%d') for 1..n."""
    total, lo, digits = 0, 1, 1
    while lo <= n:
        hi = min(n, lo * 10 - 1)
        total += (hi - lo + 1) * (4 + digits)
        lo, digits = lo * 10, digits + 1
    return total


def sweep(args, specs):
    rows = []
    for size in [int(x) for x in args.sizes.split(",")]:
        n = max(1000, min(args.max_items, args.sweep_bytes // size))
        # At most about 1 MiB in flight: 64 requests of 256 KiB would make
        # every server hold 16 MiB of connection buffers, a cost of the
        # client's pipeline depth, not of the items.
        pipe = max(1, min(64, (1 << 20) // size))
        for spec in specs:
            srv = start(spec)
            try:
                time.sleep(0.2)  # let the server finish starting its threads
                # Warm the connection path first (buffers grown to the
                # pipeline's size and kept by the allocator, arenas
                # touched), with keys outside the measured ones: those
                # costs are per connection, not per item.
                warm = 2 * pipe
                subprocess.run(
                    ["taskset", "-c", "1", args.memtier, "-s", "127.0.0.1", "-p", str(srv.port),
                     "-P", "memcache_text" if spec["proto"] == "memcache" else "redis",
                     "-t", "1", "--hide-histogram", "--key-prefix=warm:", "-c", "1",
                     f"--pipeline={pipe}", "--ratio=1:0", "--key-pattern=P:P",
                     "--key-minimum=1", f"--key-maximum={warm}", f"--requests={warm}",
                     "-d", str(size)],
                    check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                before = bench.rss_bytes(srv.proc.pid)
                memtier(args, srv.port, spec["proto"],
                        ["-c", "1", f"--pipeline={pipe}", "--ratio=1:0", "--key-pattern=P:P",
                         "--key-minimum=1", f"--key-maximum={n}", f"--requests={n}",
                         "-d", str(size)])
                after = bench.rss_bytes(srv.proc.pid)
                held = Client(srv.port, spec["proto"]).items() - warm
            finally:
                srv.stop()
            raw = (key_bytes(n) + n * size) / n
            per = (after - before) / n
            rows.append({"server": spec["name"], "value": size, "items": n, "held": held,
                         "rss_before": before, "rss_after": after,
                         "bytes_per_item": per, "overhead": per - raw,
                         "rss_over_raw": (after - before) / (raw * n)})
            print(f"sweep {size:>7} B  {spec['name']:<16} n={n:<8} held={held:<8} "
                  f"overhead {per - raw:8.1f} B/item  RSS/raw {(after - before) / (raw * n):.3f}",
                  flush=True)
    return rows


def churn(args, specs):
    limit = args.limit_mb << 20
    lo, hi = 100, 4000
    mean_item = (lo + hi) / 2 + 10
    keys = 3 * int(limit / mean_item)
    total = 10 * limit
    requests = int(total / ((lo + hi) / 2))
    rows = []
    for spec in specs:
        srv = start(spec, limit)
        try:
            memtier(args, srv.port, spec["proto"],
                    ["-c", "4", "--pipeline=16", "--ratio=1:0", "--key-pattern=R:R",
                     "--key-minimum=1", f"--key-maximum={keys}",
                     f"--requests={requests // 4}", f"--data-size-range={lo}-{hi}",
                     "--data-size-pattern=R"])
            rss = bench.rss_bytes(srv.proc.pid)
            held = Client(srv.port, spec["proto"]).items()
        finally:
            srv.stop()
        want = 0.85 * limit / mean_item
        rows.append({"server": spec["name"], "limit": limit, "keys": keys,
                     "written_bytes": total, "rss": rss, "rss_over_limit": rss / limit,
                     "items": held, "items_over_goal": held / want})
        print(f"churn {spec['name']:<16} RSS/limit {rss / limit:.3f}  items {held} "
              f"({held / want:.2f}x of 0.85 x limit / mean item)", flush=True)
    return rows


def zipf_keys(n_keys, count, s, seed):
    rng = random.Random(seed)
    weights = [1.0 / (i ** s) for i in range(1, n_keys + 1)]
    cdf, acc = [], 0.0
    for w in weights:
        acc += w
        cdf.append(acc)
    # Shuffle ranks over key names so popular keys spread across shards.
    names = list(range(n_keys))
    rng.shuffle(names)
    return [names[bisect.bisect_left(cdf, rng.random() * acc)] for _ in range(count)]


def zipf(args, specs):
    n_keys, size = args.zipf_keys, args.zipf_value
    item = size + 12
    seq = zipf_keys(n_keys, args.zipf_requests, 0.99, 42)
    value = b"v" * size
    rows = []
    for spec in specs:
        # A limit that holds a third of the key space at each server's own
        # per-item cost is not comparable; one limit in bytes for all,
        # sized so a third of the keys' raw bytes fit.
        limit = args.zipf_limit_mb << 20 if args.zipf_limit_mb else int(n_keys * item / 3)
        srv = start(spec, limit)
        try:
            c = Client(srv.port, spec["proto"])
            stats = []
            for _ in range(2):  # warm-up pass, then the measured pass
                ticks = bench.cpu_ticks(srv.proc.pid)
                hits = gets = sets = 0
                for i in range(0, len(seq), 64):
                    batch = [b"key:%d" % k for k in seq[i:i + 64]]
                    got = c.gets(batch)
                    gets += len(got)
                    hits += sum(got)
                    miss = list(dict.fromkeys(k for k, h in zip(batch, got) if not h))
                    c.sets([(k, value) for k in miss])
                    sets += len(miss)
                stats.append(hits / gets)
                # Server CPU per request of the pass: the price of the
                # eviction policy (every SET evicts) beside its hit ratio.
                cpu_us = ((bench.cpu_ticks(srv.proc.pid) - ticks) / bench.CLK_TCK * 1e6
                          / (gets + sets))
            held = c.items()
            rss = bench.rss_bytes(srv.proc.pid)
        finally:
            srv.stop()
        rows.append({"server": spec["name"], "limit": limit, "keys": n_keys,
                     "requests": len(seq), "hit_ratio": stats[1], "items": held,
                     "rss": rss, "rss_over_limit": rss / limit,
                     "cpu_us_per_request": cpu_us})
        print(f"zipf  {spec['name']:<16} hit ratio {stats[1]:.4f}  items {held}  "
              f"RSS/limit {rss / limit:.3f}  CPU/request {cpu_us:.2f} us", flush=True)
    return rows


def table(res):
    out = []
    if res.get("sweep"):
        servers = list(dict.fromkeys(r["server"] for r in res["sweep"]))
        sizes = sorted({r["value"] for r in res["sweep"]})
        out.append("Overhead per item above raw key + value bytes (B), and RSS growth / raw:\n")
        out.append("| value | " + " | ".join(servers) + " |")
        out.append("|---:|" + "---:|" * len(servers))
        for sz in sizes:
            cells = []
            for s in servers:
                r = next(r for r in res["sweep"] if r["server"] == s and r["value"] == sz)
                cells.append(f"{r['overhead']:.0f} ({r['rss_over_raw']:.3f}x)")
            out.append(f"| {sz:,} B | " + " | ".join(cells) + " |")
    if res.get("churn"):
        out.append("\nChurn (sizes 100..4000 B, 10x the limit written):\n")
        out.append("| server | RSS / limit | items held / (0.85 x limit / mean item) |")
        out.append("|---|---:|---:|")
        for r in res["churn"]:
            out.append(f"| {r['server']} | {r['rss_over_limit']:.3f} | {r['items_over_goal']:.2f} |")
    if res.get("zipf"):
        out.append("\nZipf(0.99) cache-aside, limit holds a third of the key space:\n")
        out.append("| server | hit ratio | items held | RSS / limit | CPU µs / request |")
        out.append("|---|---:|---:|---:|---:|")
        for r in res["zipf"]:
            cpu = r.get("cpu_us_per_request")
            out.append(f"| {r['server']} | {r['hit_ratio']:.4f} | {r['items']} "
                       f"| {r.get('rss_over_limit', 0):.3f} "
                       f"| {'' if cpu is None else f'{cpu:.2f}'} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", default=[], help="NAME:PROTO:COMMAND")
    ap.add_argument("--memtier", default="memtier_benchmark")
    ap.add_argument("--runs", default="sweep,churn,zipf")
    ap.add_argument("--sizes", default="32,100,300,1000,4000,16000,65536,262144")
    ap.add_argument("--sweep-bytes", type=int, default=400 << 20,
                    help="raw bytes loaded per sweep row (N = this / value size)")
    ap.add_argument("--max-items", type=int, default=1_000_000)
    ap.add_argument("--limit-mb", type=int, default=256, help="churn memory limit")
    ap.add_argument("--zipf-keys", type=int, default=1_000_000)
    ap.add_argument("--zipf-value", type=int, default=100)
    ap.add_argument("--zipf-requests", type=int, default=2_000_000)
    ap.add_argument("--zipf-limit-mb", type=int, default=0,
                    help="override the limit (default: a third of the keys' raw bytes)")
    ap.add_argument("--out", default=os.path.join(ROOT, "target/bench-memory"))
    args = ap.parse_args()
    specs = [parse(s) for s in args.server]
    if not specs:
        ap.error("give at least one --server")
    runs = args.runs.split(",")
    res = {"settings": {k: v for k, v in vars(args).items() if k not in ("server", "memtier", "out")},
           "servers": [{"name": s["name"], "proto": s["proto"],
                        "cmd": bench.portable_cmd(s["cmd"])} for s in specs]}
    for run, fn in (("sweep", sweep), ("churn", churn), ("zipf", zipf)):
        if run in runs:
            res[run] = fn(args, specs)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "memory.json"), "w") as f:
        json.dump(res, f, indent=1)
    print()
    print(table(res))
    print(f"\nwrote {os.path.join(args.out, 'memory.json')}")


if __name__ == "__main__":
    main()
