#!/usr/bin/env python3
# Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
"""Turns a kvkit-replay CSV with optimal runs (--optimal) into a Markdown table of the gap of
every policy to the optimum (standard library only).

One table per allocator/matcher pair that has optimal runs: a row per capacity, the optimal hit
rate, then per eviction policy its hit rate and, in brackets, its gap to the optimum in
percentage points (the optimum minus the policy). Policies appear in the CSV's order.

    kvkit-replay trace.jsonl --eviction lru,lfu --optimal --capacity-fractions 0.05,0.1 \\
        --out runs.csv
    python3 benchmarks/tools/replay_gaps.py runs.csv [--metric token|block] [--out gaps.md]

Reads the columns policy, capacity, capacity_kind, block_hit_rate and token_hit_rate, so it
works with CSVs written before and after per-class columns were added.
"""

import argparse
import csv
import sys

REQUIRED = ("policy", "capacity", "capacity_kind", "block_hit_rate", "token_hit_rate")


def load(path):
    """Rows of the CSV, as dictionaries."""
    try:
        f = sys.stdin if path == "-" else open(path, newline="", encoding="utf-8")
    except OSError as e:
        raise SystemExit(f"replay_gaps.py: cannot read {path}: {e.strerror}")
    try:
        rows = list(csv.DictReader(f))
    finally:
        if f is not sys.stdin:
            f.close()
    if not rows:
        raise SystemExit(f"replay_gaps.py: {path} holds no run")
    missing = [c for c in REQUIRED if c not in rows[0]]
    if missing:
        raise SystemExit(
            f"replay_gaps.py: {path} lacks the column(s) {', '.join(missing)}; "
            "expected a kvkit-replay CSV (--out)"
        )
    return rows


def tables(rows, metric):
    """Markdown tables, one per allocator/matcher pair with optimal runs."""
    column = f"{metric}_hit_rate"
    out = []
    pairs = []
    for r in rows:
        pair, _, eviction = r["policy"].rpartition("/")
        if eviction == "optimal" and pair not in pairs:
            pairs.append(pair)
    if not pairs:
        raise SystemExit(
            "replay_gaps.py: no optimal run in the CSV (run kvkit-replay with --optimal)"
        )
    for pair in pairs:
        evictions, capacities, rate, kind = [], [], {}, {}
        for r in rows:
            p, _, eviction = r["policy"].rpartition("/")
            if p != pair:
                continue
            cap = int(r["capacity"])
            if eviction != "optimal" and eviction not in evictions:
                evictions.append(eviction)
            if cap not in capacities:
                capacities.append(cap)
            rate[(eviction, cap)] = 100 * float(r[column])
            kind[cap] = r["capacity_kind"]
        capacities.sort()
        lines = [
            f"{metric.capitalize()} hit rate, {pair}; in brackets the gap to the optimum "
            "(percentage points):",
            "",
            "| capacity (blocks) | capacity given as | optimal | "
            + " | ".join(evictions)
            + " |",
            "|---:|---:|---:|" + "---:|" * len(evictions),
        ]
        for cap in capacities:
            best = rate.get(("optimal", cap))
            cells = [f"{cap:,}", kind[cap].replace("fraction=", ""),
                     "" if best is None else f"{best:.1f}%"]
            for e in evictions:
                v = rate.get((e, cap))
                if v is None:
                    cells.append("")
                elif best is None:
                    cells.append(f"{v:.1f}%")
                else:
                    cells.append(f"{v:.1f}% ({best - v:.1f})")
            lines.append("| " + " | ".join(cells) + " |")
        out.append("\n".join(lines))
    return "\n\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", help="kvkit-replay CSV ('-' reads stdin)")
    ap.add_argument("--metric", choices=("token", "block"), default="token",
                    help="token or block hit rate (default token)")
    ap.add_argument("--out", help="write the Markdown here (default: stdout)")
    args = ap.parse_args()
    text = tables(load(args.csv), args.metric)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
