#!/usr/bin/env python3
"""BENCHMARKS.md's tables and chart for how cost grows with the work.

Owns: merging the per-row `summary.json` files that scripts/bench-scale.sh
writes (one scripts/bench.py run per workload) into one JSON, printing the
Markdown tables BENCHMARKS.md quotes from it, and drawing the chart of CPU
per request (ours ÷ each server) per workload. Does not own: measuring
(scripts/bench.py) or choosing the workloads (scripts/bench-scale.sh).

    python3 scripts/bench-scale-report.py target/bench-scale docs/bench/scale.json \\
        [--chart docs/bench/scale.png]
    python3 scripts/bench-scale-report.py docs/bench/scale.json   # tables only

The first argument is either the directory of row results (merged into the
second argument) or an already merged JSON. The chart needs matplotlib.
"""

import argparse
import json
import os

PROTO = {"resp": "RESP", "memcache": "Memcache"}
ROWS = ["base", "confirm", "keys10m", "v16k", "v256k", "conns5k", "conns20k"]
TITLE = {
    "base": "100,000 keys, 100 B values, 50 connections",
    "confirm": "Memcache, pipeline 16, 100,000 keys, 100 B values, 50 connections: "
               "a repeat of the goal row (7 repetitions)",
    "keys10m": "10,000,000 keys, 100 B values, 50 connections",
    "v16k": "16 KiB values (20,000 keys), 50 connections",
    "v256k": "256 KiB values (2,000 keys), 50 connections",
    "conns5k": "5,000 connections, 100,000 keys, 100 B values",
    "conns20k": "19,500 connections, 100,000 keys, 100 B values",
}


def merge(src):
    rows = {}
    for name in sorted(os.listdir(src)):
        path = os.path.join(src, name, "summary.json")
        if os.path.exists(path):
            with open(path) as f:
                d = json.load(f)
            d.pop("runs", None)  # per-rep records stay in the row's own file
            rows[name] = d
    return {"rows": rows}


def hits(r):
    """memtier's GET hit ratio (loadgen does not report one)."""
    return f"{r['hit_ratio']:.2f}" if r.get("hit_ratio") else "–"


def memory_table(records, base, extra_head, head, extra, field, fmt):
    """One row per protocol and server of `records[field]` (bytes), with
    ours ÷ each server; `extra` adds a column before it."""
    cols = ["proto", "server"] + ([extra_head] if extra_head else []) + [head, "ours ÷ this"]
    print("| " + " | ".join(cols) + " |")
    print("|---|---|" + "---:|" * (len(cols) - 2))
    for proto in ("resp", "memcache"):
        ls = [x for x in records if x["proto"] == proto]
        if not ls:
            continue
        ours = ls[0][field]
        for x in ls:
            o = x["server"] == base
            cells = [PROTO[proto], f"**{x['server']}**" if o else x["server"]]
            if extra:
                cells.append(extra(x))
            cells.append(fmt.format(x[field]))
            cells.append("" if o or not x[field] else f"{ours / x[field]:.2f}")
            print("| " + " | ".join(cells) + " |")


def dist(z):
    return "uniform" if not z else f"Zipf({z:g})"


def tables(d):
    rows = d["rows"]
    for name in [r for r in ROWS if r in rows] + [r for r in rows if r not in ROWS]:
        row = rows[name]
        base = row["servers"][0]["name"]
        order = {s["name"]: i for i, s in enumerate(row["servers"])}
        print(f"### {TITLE.get(name, name)}\n")
        print("Ratios are pogocache-rs ÷ that server in the same run; below 1 means "
              "ours is lower.\n")
        print("| client | proto | pipeline | keys | server | req/s | GET hits | p99 µs | p99 ratio "
              "| CPU s / M req | CPU ratio | user s / M | user ratio |")
        print("|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        sel = sorted(row["summary"], key=lambda r: (
            r["client"] != "memtier", r["proto"] != "resp", r["pipeline"], r.get("zipf") or 0,
            order[r["server"]]))
        for r in sel:
            ours = r["server"] == base
            name_ = f"**{r['server']}**" if ours else r["server"]
            ratio = lambda k: "" if ours else f"{r[k]:.2f}"
            print(f"| {r['client']} | {PROTO[r['proto']]} | {r['pipeline']} "
                  f"| {dist(r.get('zipf'))} | {name_} | {r['ops_per_sec']:,.0f} "
                  f"| {hits(r)} "
                  f"| {r['p99_us']:,.0f} | {ratio('p99_ratio')} | {r['cpu_s_per_m']:.3f} "
                  f"| {ratio('cpu_ratio')} | {r['user_s_per_m']:.3f} | {ratio('user_ratio')} |")
        if row.get("loads") and name == "keys10m":
            print(f"\nRSS per item after loading {row['loads'][0]['keys']:,} keys "
                  "(memtier, pipeline 64; growth ÷ keys):\n")
            memory_table(row["loads"], base, "RSS after load", "bytes per item",
                         lambda x: f"{x['rss_after'] / 2**20:,.0f} MiB",
                         "bytes_per_item", "{:.1f}")
        if row.get("idle"):
            print(f"\nRSS per idle connection ({row['idle'][0]['conns']:,} connections, "
                  "each answered once, growth ÷ connections):\n")
            memory_table(row["idle"], base, None, "bytes per connection", None,
                         "bytes_per_conn", "{:,.0f}")
        print()


def chart(d, dst):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for ax, proto in zip(axes, ("resp", "memcache")):
        labels, series = [], {}
        for name in [r for r in ROWS if r in d["rows"]]:
            row = d["rows"][name]
            base = row["servers"][0]["name"]
            for r in row["summary"]:
                if r["proto"] != proto or r["client"] != "memtier" or r["server"] == base:
                    continue
                lab = f"{name}\nP{r['pipeline']} {dist(r.get('zipf'))}"
                if lab not in labels:
                    labels.append(lab)
                series.setdefault(r["server"], {})[lab] = r["cpu_ratio"]
        width = 0.8 / max(1, len(series))
        for i, (srv, vals) in enumerate(series.items()):
            xs = [j + i * width for j, lab in enumerate(labels) if lab in vals]
            ys = [vals[lab] for lab in labels if lab in vals]
            ax.bar(xs, ys, width, label=srv)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(labels))])
        ax.set_xticklabels(labels, rotation=60, ha="right", fontsize=7)
        ax.set_title(f"{PROTO[proto]}: server CPU per request, pogocache-rs ÷ server (memtier)")
        ax.set_ylabel("ratio (below 1: ours costs less)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="directory of row results, or a merged JSON")
    ap.add_argument("dst", nargs="?", help="merged JSON to write (with a directory src)")
    ap.add_argument("--chart", help="PNG to draw")
    a = ap.parse_args()
    if os.path.isdir(a.src):
        d = merge(a.src)
        if a.dst:
            with open(a.dst, "w") as f:
                json.dump(d, f, indent=1)
    else:
        with open(a.src) as f:
            d = json.load(f)
    tables(d)
    if a.chart:
        chart(d, a.chart)


if __name__ == "__main__":
    main()
