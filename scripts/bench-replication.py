#!/usr/bin/env python3
"""Replication benchmark: what two replicas cost the primary, and how many
mutations per second a replica keeps up with.

Owns: starting a primary and replicas of our release binary on loopback,
driving the primary with our `loadgen`, reading the primary's CPU time
from /proc, interleaving runs with and without replicas, paired ratios,
the catch-up measurement, and `replication.json`. Does not own: building
(run `cargo build --release -p pogocache -p pogocache-loadgen` first, or use
scripts/bench.sh) or the failover time (tests/failover.rs prints it;
POGOCACHE_FAILOVER_RUNS=5 gives the median of five).

Usage: scripts/bench-replication.py [--reps 3] [--duration 4] [--out DIR]

1. CPU per request: for RESP and Memcache at pipeline 1 and 16 (1 thread,
   50 connections, 1:10 set:get, 100 B values, 100k keys, prefilled), the
   primary's CPU seconds per million requests with 0 and with 2 replicas,
   in interleaved repetitions; the ratio is the median of the per-rep
   ratios (this machine drifts within seconds).
2. Throughput: SET only (pipeline 16, 100 B values) into a primary with
   one replica for `--duration` seconds; then the time until the replica
   has acknowledged everything (WAIT 1 0). Mutations per second = writes /
   (load time + catch-up time), and how many bytes of stream the replica
   had not applied yet when the load stopped.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BIN = os.path.join(ROOT, "target", "release")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def call(port, *args, timeout=60):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    req = b"*%d\r\n" % len(args)
    for a in args:
        a = str(a).encode()
        req += b"$%d\r\n%s\r\n" % (len(a), a)
    s.sendall(req)
    got = b""
    while not got.endswith(b"\r\n") or (got.startswith(b"$") and got.count(b"\r\n") < 2):
        d = s.recv(1 << 20)
        if not d:
            break
        got += d
    s.close()
    return got.decode("latin1")


def info(port, field):
    t = call(port, "INFO", "replication")
    for line in t.split("\r\n"):
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


def start(port, *extra):
    p = subprocess.Popen(
        [os.path.join(BIN, "pogocache"), "-p", str(port), "--threads", "1", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in p.stdout:
        if line.startswith("* Ready to accept connections"):
            break
    else:
        sys.exit(f"server on {port} did not start")
    return p


def wait_synced(port):
    for line in iter(port.stdout.readline, ""):
        if "sync: Finished with success" in line:
            return
    sys.exit("replica did not sync")


def topology(replicas):
    pport = free_port()
    primary = start(pport)
    reps, rports = [], []
    for _ in range(replicas):
        rport = free_port()
        r = start(rport, "--replicaof", "127.0.0.1", str(pport))
        wait_synced(r)
        reps.append(r)
        rports.append(rport)
    return pport, primary, reps, rports


def stop(*procs):
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()


def loadgen(port, proto, pipeline, duration, ratio="1:10", prefill=True):
    cmd = [
        os.path.join(BIN, "loadgen"), "--port", str(port), "--proto", proto,
        "--threads", "1", "--conns", "50", "--pipeline", str(pipeline),
        "--ratio", ratio, "--keys", "100000", "--value", "100",
        "--duration", str(duration), "--json", "--quiet",
    ]
    if prefill:
        cmd.append("--prefill")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def cpu_run(replicas, proto, pipeline, duration):
    port, primary, reps, _ = topology(replicas)
    try:
        # Prefill outside the measured window.
        loadgen(port, proto, pipeline, 1, prefill=True)
        t0 = cpu_ticks(primary.pid)
        r = loadgen(port, proto, pipeline, duration, prefill=False)
        t1 = cpu_ticks(primary.pid)
        reqs = r["requests"]
        return (t1 - t0) / CLK_TCK / reqs * 1e6, r["ops_per_sec"]
    finally:
        stop(primary, *reps)


def throughput(duration):
    port, primary, reps, rports = topology(1)
    try:
        t0 = time.monotonic()
        r = loadgen(port, "resp", 16, duration, ratio="1:0", prefill=False)
        t1 = time.monotonic()
        # How far the replica's applied offset trails the primary's.
        lag = int(info(port, "master_repl_offset")) - int(info(rports[0], "slave_repl_offset"))
        got = call(port, "WAIT", 1, 0)
        t2 = time.monotonic()
        assert got.startswith(":1"), got
        writes = r["requests"]
        return {
            "writes": writes,
            "load_s": round(t1 - t0, 3),
            "catch_up_s": round(t2 - t1, 3),
            "primary_writes_per_s": round(writes / (t1 - t0)),
            "replicated_writes_per_s": round(writes / (t2 - t0)),
            "lag_bytes_at_end_of_load": lag,
        }
    finally:
        stop(primary, *reps)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=int, default=4)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "bench"))
    a = ap.parse_args()
    rows = []
    for proto in ("resp", "memcache"):
        for pipeline in (1, 16):
            ratios, base, with2 = [], [], []
            for rep in range(a.reps):
                order = (0, 2) if rep % 2 == 0 else (2, 0)
                got = {n: cpu_run(n, proto, pipeline, a.duration) for n in order}
                base.append(got[0][0])
                with2.append(got[2][0])
                ratios.append(got[2][0] / got[0][0])
            row = {
                "proto": proto,
                "pipeline": pipeline,
                "cpu_us_per_req_no_replicas": round(statistics.median(base), 3),
                "cpu_us_per_req_two_replicas": round(statistics.median(with2), 3),
                "ratio": round(statistics.median(ratios), 3),
            }
            print(row, flush=True)
            rows.append(row)
    tp = [throughput(a.duration) for _ in range(a.reps)]
    tp.sort(key=lambda t: t["replicated_writes_per_s"])
    result = {"cpu": rows, "throughput": tp, "throughput_median": tp[len(tp) // 2]}
    print(json.dumps(result["throughput_median"]), flush=True)
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "replication.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
