#!/usr/bin/env python3
"""Draws BENCHMARKS.md's memory chart from a scripts/bench-memory.py
memory.json: resident bytes per item above the raw key and value bytes,
against value size, one line per server (both axes logarithmic), with the
store's goal (24 B) drawn across.

Owns: the PNG. Does not own: measuring (scripts/bench-memory.py).

    python3 scripts/bench-memory-chart.py target/bench-memory/memory.json docs/bench/memory.png

Needs matplotlib (pip install matplotlib).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src = sys.argv[1] if len(sys.argv) > 1 else "target/bench-memory/memory.json"
    dst = sys.argv[2] if len(sys.argv) > 2 else "docs/bench/memory.png"
    with open(src) as f:
        rows = json.load(f)["sweep"]
    servers = list(dict.fromkeys(r["server"] for r in rows))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for s in servers:
        pts = sorted((r["value"], r["overhead"]) for r in rows if r["server"] == s)
        # A server can come in under the raw bytes (negative overhead is
        # not plotted on a log axis); clamp to 1 B so the line stays.
        ax.plot([p[0] for p in pts], [max(1.0, p[1]) for p in pts], marker="o", label=s)
    ax.axhline(24, color="grey", linestyle="--", linewidth=1)
    ax.text(min(r["value"] for r in rows), 26, "goal: 24 B", color="grey", fontsize=8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("value size (bytes)")
    ax.set_ylabel("RSS overhead per item (bytes)")
    ax.set_title("Memory per item above raw key + value, N keys loaded once each")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main()
