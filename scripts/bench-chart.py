#!/usr/bin/env python3
"""Draws BENCHMARKS.md's chart from a scripts/bench.sh summary.json.

Owns: the PNG (throughput and p99 latency against pipeline depth and
against connections, one line per server, one column per protocol and
server thread count). Does not own: measuring (scripts/bench.py).

    python3 scripts/bench-chart.py target/bench/summary.json docs/bench.png [CLIENT]

CLIENT picks one load generator's rows when the summary holds several
(loadgen, the default, or memtier).

Needs matplotlib (pip install matplotlib).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "target/bench/summary.json"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/bench.png"
    with open(src) as f:
        data = json.load(f)
    client = sys.argv[3] if len(sys.argv) > 3 else "loadgen"
    summary = [m for m in data["summary"] if m.get("client", "loadgen") == client]
    servers = [s["name"] for s in data["servers"]]
    panels = sorted({(m["proto"], m["server_threads"]) for m in summary})
    pipelines = sorted({m["pipeline"] for m in summary})
    conns = sorted({m["conns"] for m in summary})
    # x axes: pipeline depth at the most common connection count, and
    # connections at each pipeline depth when several were measured.
    axes_kinds = [("pipeline", c) for c in conns[:1]] if len(pipelines) > 1 else []
    if len(conns) > 1:
        axes_kinds += [("conns", p) for p in pipelines]
    if not axes_kinds:
        axes_kinds = [("pipeline", conns[0])]
    rows = len(axes_kinds) * 2
    fig, axes = plt.subplots(rows, len(panels), figsize=(4.2 * len(panels), 3.0 * rows),
                             squeeze=False)
    for col, (proto, threads) in enumerate(panels):
        for k, (kind, fixed) in enumerate(axes_kinds):
            for metric, row, label in (("ops_per_sec", 2 * k, "requests/s"),
                                       ("p99_us", 2 * k + 1, "p99 latency (µs)")):
                ax = axes[row][col]
                for name in servers:
                    pts = sorted(
                        (m[kind], m[metric]) for m in summary
                        if m["server"] == name and m["proto"] == proto
                        and m["server_threads"] == threads
                        and m["conns" if kind == "pipeline" else "pipeline"] == fixed)
                    if pts:
                        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                                label=name)
                other = "connections" if kind == "pipeline" else "pipeline"
                ax.set_title(f"{proto}, {threads} thread(s), {other} {fixed}", fontsize=9)
                ax.set_xlabel("pipeline depth" if kind == "pipeline" else "connections")
                ax.set_ylabel(label)
                ax.set_xscale("log", base=2)
                if metric == "p99_us":
                    ax.set_yscale("log")
                ax.grid(True, alpha=0.3)
                ax.legend(fontsize=7)
    fig.suptitle(f"Medians of interleaved runs, {data['machine']['cpus']} CPUs, "
                 f"{data['date']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=72)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
