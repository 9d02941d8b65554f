#!/usr/bin/env python3
"""Markdown tables for BENCHMARKS.md from a bench.py summary.json.

Owns: turning `summary.json` (scripts/bench.py) into the tables that
BENCHMARKS.md quotes: one row per server and configuration at a chosen
connection count, the memory table, and the ratio ranges per goal row.
Does not own: running anything or drawing the chart (bench-chart.py).

    python3 scripts/bench-table.py target/bench/summary.json [--conns 50]
"""

import argparse
import json

PROTO = {"resp": "RESP", "memcache": "Memcache"}


def fmt_int(v):
    return f"{v:,.0f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("summary")
    ap.add_argument("--conns", type=int, default=50)
    ap.add_argument("--client", default="loadgen",
                    help="which load generator's rows (loadgen or memtier)")
    a = ap.parse_args()
    d = json.load(open(a.summary))
    rows = [r for r in d["summary"] if r.get("client", "loadgen") == a.client]
    base = d["servers"][0]["name"]
    order = {s["name"]: i for i, s in enumerate(d["servers"])}

    print(f"### Results at {a.conns} connections\n")
    print("| proto | threads | pipeline | server | req/s | throughput ratio "
          "| p99 µs | p99 ratio | CPU s / M req | CPU ratio |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    sel = [r for r in rows if r["conns"] == a.conns]
    sel.sort(key=lambda r: (r["proto"] != "resp", r["server_threads"],
                            r["pipeline"], order[r["server"]]))
    for r in sel:
        ours = r["server"] == base
        name = f"**{r['server']}**" if ours else r["server"]
        ratio = lambda k: "" if ours else f"{r[k]:.2f}"
        print(f"| {PROTO[r['proto']]} | {r['server_threads']} | {r['pipeline']} "
              f"| {name} | {fmt_int(r['ops_per_sec'])} | {ratio('ops_ratio')} "
              f"| {fmt_int(r['p99_us'])} | {ratio('p99_ratio')} "
              f"| {r['cpu_s_per_m']:.3f} | {ratio('cpu_ratio')} |")

    if d.get("rss"):
        print("\n### Memory per item\n")
        print(f"| server | bytes per item | {base} ÷ this |")
        print("|---|---:|---:|")
        for r in d["rss"]:
            ours = r["server"] == base
            name = f"**{r['server']}**" if ours else r["server"]
            ratio = "" if ours else f"{r['ratio']:.2f}"
            print(f"| {name} | {r['bytes_per_item']:.1f} | {ratio} |")

    print("\n### Ratio ranges over 10/50/200 connections "
          f"({base} ÷ each server)\n")
    print("| proto | threads | pipeline | server | throughput | p99 | CPU |")
    print("|---|---|---|---|---|---|---|")
    groups = {}
    for r in rows:
        if r["server"] == base:
            continue
        k = (r["proto"], r["server_threads"], r["pipeline"], r["server"])
        groups.setdefault(k, []).append(r)
    for k in sorted(groups, key=lambda k: (k[0] != "resp", k[1], k[2], order[k[3]])):
        g = sorted(groups[k], key=lambda r: r["conns"])
        span = lambda f: "/".join(f"{r[f]:.2f}" for r in g)
        print(f"| {PROTO[k[0]]} | {k[1]} | {k[2]} | {k[3]} | {span('ops_ratio')} "
              f"| {span('p99_ratio')} | {span('cpu_ratio')} |")


if __name__ == "__main__":
    main()
