#!/usr/bin/env python3
"""Side-by-side server benchmark: our pogocache against reference servers.

Owns: starting each server (fresh, pinned), driving it over loopback with
our `loadgen` and/or memtier_benchmark (`--clients`; memtier is built by
hand from RedisLabs/memtier_benchmark and found on PATH or by `--memtier`),
interleaving repetitions (A B C, C B A, ...), reading server CPU time from
/proc (user and system separately too), the RSS-per-item bulk load,
medians, ratios to the first server, the human table and `summary.json`.
Does not own: building anything (scripts/bench.sh builds our binaries; the
reference servers are whatever commands you pass) or charts
(scripts/bench-chart.py reads summary.json).

Server specs are NAME:PROTOCOLS:COMMAND, where PROTOCOLS is a comma list of
resp/memcache and COMMAND may use {port} and {threads}, for example
  'redis:resp:redis-server --port {port} --save "" --appendonly no'
The first server is the baseline of every ratio.
"""

import argparse
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def parse_server(spec):
    name, protos, cmd = spec.split(":", 2)
    return {"name": name, "protos": protos.split(","), "cmd": cmd}


def cpu_times(pid):
    """(utime, stime) ticks of the server process (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def cpu_ticks(pid):
    """utime + stime of the server process (all its threads)."""
    return sum(cpu_times(pid))


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port}")


class Server:
    def __init__(self, spec, threads, cpus):
        self.spec = spec
        self.port = free_port()
        cmd = spec["cmd"].format(port=self.port, threads=threads)
        argv = ["taskset", "-c", cpus] + shlex.split(cmd)
        self.proc = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # taskset execs the server, so this pid is the server itself.
        wait_port(self.port, self.proc)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def loadgen(args, port, proto, extra, cpus):
    argv = [
        "taskset", "-c", cpus, args.loadgen,
        "--port", str(port), "--proto", proto, "--quiet",
    ] + extra
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    return json.loads(out) if "--json" in extra else None


def memtier(args, port, proto, extra, cpus):
    """Runs memtier_benchmark (one thread) and returns loadgen's result
    fields from its JSON report."""
    out = os.path.join(args.out, "memtier.json")
    argv = [
        "taskset", "-c", cpus, args.memtier, "-s", "127.0.0.1", "-p", str(port),
        "-P", "redis" if proto == "resp" else "memcache_text", "-t", "1",
        "--key-prefix=key:", "--hide-histogram", f"--json-out-file={out}",
    ] + extra
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(out) as f:
        t = json.load(f)["ALL STATS"]["Totals"]
    pct = t.get("Percentile Latencies", {})
    return {
        "ops_per_sec": t["Ops/sec"], "requests": t["Count"],
        "p50_us": pct.get("p50.00", 0) * 1000, "p99_us": pct.get("p99.00", 0) * 1000,
        "p999_us": pct.get("p99.90", 0) * 1000, "errors": t.get("Connection Errors", 0),
        # GET hits ÷ GETs: equal work across servers needs equal hits.
        "hit_ratio": (t.get("Hits/sec", 0) / (t.get("Hits/sec", 0) + t.get("Misses/sec", 0))
                      if t.get("Hits/sec", 0) + t.get("Misses/sec", 0) else 0),
    }


def memtier_sizes(value):
    """memtier's value-size flags for a loadgen --value (N or LO-HI)."""
    if "-" in value:
        return [f"--data-size-range={value}", "--data-size-pattern=R"]
    return ["-d", value]


def idle_rss(srv, name, proto, threads, n):
    """RSS per idle connection: open `n` connections, have each answer one
    request (so the server has sniffed its protocol and set it up as any
    client's), leave them idle for two seconds (what a server frees from
    idle clients, and its allocator returns, is then gone), and divide the
    RSS growth by `n`. The connections are closed before the measured
    runs."""
    ping = b"PING\r\n" if proto == "resp" else b"version\r\n"
    before = rss_bytes(srv.proc.pid)
    socks = []
    try:
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", srv.port))
            socks.append(c)
        for c in socks:
            c.sendall(ping)
        for c in socks:
            c.settimeout(30)
            if not c.recv(64):
                raise RuntimeError(f"{name} closed an idle connection")
        time.sleep(2)
        after = rss_bytes(srv.proc.pid)
    finally:
        for c in socks:
            c.close()
    return {"server": name, "proto": proto, "server_threads": threads, "conns": n,
            "rss_before": before, "rss_after": after, "bytes_per_conn": (after - before) / n}


def portable(d):
    """A copy of a settings or server record without this machine's paths:
    executables by name, files under the repository relative to it."""
    out = {}
    for k, v in d.items():
        if isinstance(v, str) and k in ("loadgen", "out", "memtier"):
            if os.path.isabs(v):
                inside = os.path.commonpath([v, ROOT]) == ROOT
                v = os.path.relpath(v, ROOT) if inside else os.path.basename(v)
        elif k == "server":
            v = [portable_cmd(x, spec=True) for x in v]
        elif k == "cmd":
            v = portable_cmd(v)
        out[k] = v
    return out


def portable_cmd(cmd, spec=False):
    """`/some/dir/server -p {port}` → `server -p {port}` (with `spec`, the
    command part of a NAME:PROTOS:COMMAND spec)."""
    head = ""
    if spec:
        name, protos, cmd = cmd.split(":", 2)
        head = f"{name}:{protos}:"
    parts = cmd.split(" ", 1)
    parts[0] = os.path.basename(parts[0])
    return head + " ".join(parts)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", action="append", default=[],
                    help="NAME:PROTOCOLS:COMMAND (repeatable; first is the baseline)")
    ap.add_argument("--protos", default="resp,memcache")
    ap.add_argument("--threads", default="1,2", help="server threads to test")
    ap.add_argument("--pipeline", default="1,16")
    ap.add_argument("--conns", default="50", help="total client connections")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--ratio", default="1:10", help="set:get")
    ap.add_argument("--keys", type=int, default=100000)
    ap.add_argument("--value", default="100")
    ap.add_argument("--zipf", default="0",
                    help="Zipf exponents of the measured key choice, a comma list; "
                         "0 is uniform (default)")
    ap.add_argument("--label", default="",
                    help="name of this workload, stored in every run and summary row")
    ap.add_argument("--idle-conns", type=int, default=0,
                    help="also open this many idle connections per server and "
                         "record RSS per idle connection (0 skips it)")
    ap.add_argument("--rss-items", type=int, default=1000000,
                    help="items for the RSS-per-item load (0 skips it)")
    ap.add_argument("--loadgen", default=os.path.join(ROOT, "target/release/loadgen"))
    ap.add_argument("--clients", default="loadgen",
                    help="load generators to run: loadgen, memtier or both (comma list)")
    ap.add_argument("--memtier", default="memtier_benchmark",
                    help="memtier_benchmark binary (for --clients memtier)")
    ap.add_argument("--out", default=os.path.join(ROOT, "target/bench"))
    args = ap.parse_args()

    servers = [parse_server(s) for s in args.server]
    if not servers:
        sys.exit("no servers given")
    clients = [c for c in args.clients.split(",") if c]
    if any(c not in ("loadgen", "memtier") for c in clients):
        sys.exit(f"unknown client in --clients {args.clients}")
    ncpu = os.cpu_count() or 1
    client_cpu = str(ncpu - 1)
    os.makedirs(args.out, exist_ok=True)
    ints = lambda s: [int(x) for x in s.split(",") if x]
    runs = []
    loads = []
    idle = []
    zipfs = [float(x) for x in args.zipf.split(",") if x]
    zipf_loadgen = lambda z: ["--zipf", str(z)] if z else []
    zipf_memtier = lambda z: (["--key-pattern=Z:Z", f"--key-zipf-exp={z}"] if z
                              else ["--key-pattern=R:R"])

    print(f"# {len(servers)} servers, {args.reps} interleaved reps of {args.duration}s, "
          f"{args.ratio} set:get, {args.keys} keys, {args.value} B values, "
          f"client pinned to CPU {client_cpu}", flush=True)
    for threads in ints(args.threads):
        # One server thread gets its own core; more threads get every core
        # (on a 2-core machine the client then shares one).
        cpus = "0" if threads == 1 else f"0-{ncpu - 1}"
        for proto in args.protos.split(","):
            group = [s for s in servers if proto in s["protos"]]
            if not group:
                continue
            live = []
            try:
                for s in group:
                    srv = Server(s, threads, cpus)
                    live.append(srv)
                    rss0 = rss_bytes(srv.proc.pid)
                    if "loadgen" in clients:
                        loadgen(args, srv.port, proto,
                                ["--prefill", "--load-only", "--keys", str(args.keys),
                                 "--value", args.value.split("-")[-1]], client_cpu)
                    if "memtier" in clients:
                        memtier(args, srv.port, proto,
                                ["-c", "1", "--pipeline=64", "--ratio=1:0",
                                 "--key-pattern=P:P", "--key-minimum=1",
                                 f"--key-maximum={args.keys}", f"--requests={args.keys}"]
                                + memtier_sizes(args.value.split("-")[-1]), client_cpu)
                    rss1 = rss_bytes(srv.proc.pid)
                    loads.append({"server": s["name"], "proto": proto, "server_threads": threads,
                                  "keys": args.keys, "rss_before": rss0, "rss_after": rss1,
                                  "bytes_per_item": (rss1 - rss0) / args.keys})
                    if args.idle_conns:
                        idle.append(idle_rss(srv, s["name"], proto, threads, args.idle_conns))
                for client, zipf, pipeline, conns, rep in (
                        (c, z, p, n, r) for c in clients for z in zipfs
                        for p in ints(args.pipeline)
                        for n in ints(args.conns) for r in range(args.reps)):
                            order = live if rep % 2 == 0 else list(reversed(live))
                            for srv in order:
                                t0 = cpu_times(srv.proc.pid)
                                if client == "loadgen":
                                    r = loadgen(args, srv.port, proto, [
                                        "--json", "--threads", "1", "--conns", str(conns),
                                        "--pipeline", str(pipeline), "--ratio", args.ratio,
                                        "--keys", str(args.keys), "--value", args.value,
                                        "--duration", str(args.duration)] + zipf_loadgen(zipf),
                                        client_cpu)
                                else:
                                    r = memtier(args, srv.port, proto, [
                                        "-c", str(conns), f"--pipeline={pipeline}",
                                        f"--ratio={args.ratio}"] + zipf_memtier(zipf) + [
                                        "--key-minimum=1", f"--key-maximum={args.keys}",
                                        f"--test-time={max(1, round(args.duration))}"]
                                        + memtier_sizes(args.value), client_cpu)
                                    r.update(pipeline=pipeline, conns=conns)
                                t1 = cpu_times(srv.proc.pid)
                                user, system = ((b - a) / CLK_TCK for a, b in zip(t0, t1))
                                cpu = user + system
                                mreq = r["requests"] / 1e6
                                r.update(server=srv.spec["name"], proto=proto, client=client,
                                         label=args.label, zipf=zipf, keys=args.keys,
                                         value=args.value,
                                         server_threads=threads, rep=rep, cpu_s=cpu,
                                         cpu_s_per_m=cpu / mreq, user_s_per_m=user / mreq,
                                         sys_s_per_m=system / mreq)
                                runs.append(r)
                                print(f"  {srv.spec['name']:<14} {proto:<8} {client:<7} z{zipf:g} t{threads} "
                                      f"P{pipeline:<3} c{conns:<4} rep{rep} "
                                      f"{r['ops_per_sec']:>10.0f} req/s  p99 {r['p99_us']:>8.1f}us  "
                                      f"cpu {r['cpu_s_per_m']:.3f}s/M  hits {r.get('hit_ratio', 0):.2f}  "
                                      f"err {r['errors']}",
                                      flush=True)
            finally:
                for srv in live:
                    srv.stop()

    rss = []
    if args.rss_items:
        for s in servers:
            proto = "resp" if "resp" in s["protos"] else s["protos"][0]
            srv = Server(s, 1, "0")
            try:
                before = rss_bytes(srv.proc.pid)
                loadgen(args, srv.port, proto,
                        ["--prefill", "--load-only", "--keys", str(args.rss_items),
                         "--value", "100"], client_cpu)
                after = rss_bytes(srv.proc.pid)
            finally:
                srv.stop()
            rss.append({"server": s["name"], "items": args.rss_items,
                        "rss_before": before, "rss_after": after,
                        "bytes_per_item": (after - before) / args.rss_items})

    # Medians per configuration, ratios against the first server.
    keyf = lambda r: (r["proto"], r["server_threads"], r["pipeline"], r["conns"],
                      r.get("client", "loadgen"), r.get("zipf") or 0)
    configs = sorted({keyf(r) for r in runs},
                     key=lambda k: (k[4], k[5], k[0], k[1], k[2], k[3]))
    summary = []
    for cfg in configs:
        base = None
        for s in servers:
            rs = [r for r in runs if keyf(r) == cfg and r["server"] == s["name"]]
            if not rs:
                continue
            m = {
                "proto": cfg[0], "server_threads": cfg[1], "pipeline": cfg[2],
                "conns": cfg[3], "client": cfg[4], "server": s["name"], "reps": len(rs),
                "ops_per_sec": statistics.median(r["ops_per_sec"] for r in rs),
                "p50_us": statistics.median(r["p50_us"] for r in rs),
                "p99_us": statistics.median(r["p99_us"] for r in rs),
                "p999_us": statistics.median(r["p999_us"] for r in rs),
                "cpu_s_per_m": statistics.median(r["cpu_s_per_m"] for r in rs),
                "user_s_per_m": statistics.median(r["user_s_per_m"] for r in rs),
                "sys_s_per_m": statistics.median(r["sys_s_per_m"] for r in rs),
                "errors": sum(r["errors"] for r in rs),
                "hit_ratio": statistics.median(r.get("hit_ratio", 0) for r in rs),
                "label": args.label, "zipf": cfg[5], "keys": args.keys,
                "value": args.value,
            }
            if base is None:
                base, base_runs = m, {r["rep"]: r for r in rs}
            # first ÷ this: reads as the issue's goals (throughput ≥ 1.10,
            # p99 ≤ 1.0, CPU ≤ 0.9 of the other server's). Each ratio is
            # the median of per-repetition ratios: the two runs of a
            # repetition are seconds apart, so a shared machine whose speed
            # drifts over minutes affects both alike.
            def paired(field):
                rs_ = [base_runs[r["rep"]][field] / r[field]
                       for r in rs if r["rep"] in base_runs and r[field]]
                return statistics.median(rs_) if rs_ else 0
            m["ops_ratio"] = paired("ops_per_sec")
            m["p99_ratio"] = paired("p99_us")
            m["cpu_ratio"] = paired("cpu_s_per_m")
            m["user_ratio"] = paired("user_s_per_m")
            summary.append(m)

    first = servers[0]["name"]
    print()
    print(f"Medians of {args.reps} runs; ratio columns are medians of per-repetition {first} ÷ that row's server "
          f"(throughput > 1: {first} is faster; p99 and CPU < 1: {first} is lower).")
    print(f"{'client':<8}{'zipf':<5}{'proto':<9}{'thr':>3}{'pipe':>5}{'conns':>6}  {'server':<14}"
          f"{'req/s':>11}{'ratio':>7}{'p99 us':>9}{'ratio':>7}{'cpu s/M':>9}{'ratio':>7}"
          f"{'user s/M':>9}{'ratio':>7}{'err':>5}")
    for m in summary:
        print(f"{m['client']:<8}{m['zipf']:<5g}{m['proto']:<9}{m['server_threads']:>3}{m['pipeline']:>5}"
              f"{m['conns']:>6}  "
              f"{m['server']:<14}{m['ops_per_sec']:>11.0f}{m['ops_ratio']:>7.2f}"
              f"{m['p99_us']:>9.0f}{m['p99_ratio']:>7.2f}{m['cpu_s_per_m']:>9.3f}"
              f"{m['cpu_ratio']:>7.2f}{m['user_s_per_m']:>9.3f}{m['user_ratio']:>7.2f}"
              f"{m['errors']:>5}")
    if rss:
        print()
        print(f"RSS after a bulk load of {args.rss_items} items x 100 B (fresh server, 1 thread):")
        base = rss[0]["bytes_per_item"]
        for r in rss:
            r["ratio"] = base / r["bytes_per_item"] if r["bytes_per_item"] else 0
            print(f"  {r['server']:<14} {r['bytes_per_item']:>7.1f} B/item  "
                  f"{first} ÷ this {r['ratio']:.2f}  "
                  f"(RSS {r['rss_before'] / 2**20:.1f} -> {r['rss_after'] / 2**20:.1f} MiB)")

    result = {
        "machine": {"cpus": ncpu, "kernel": os.uname().release},
        "settings": portable(vars(args)), "servers": [portable(s) for s in servers],
        "runs": runs, "summary": summary, "rss": rss, "loads": loads, "idle": idle,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = os.path.join(args.out, "summary.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
