#!/usr/bin/env python3
# Copyright 2026 The kvkit Authors. SPDX-License-Identifier: Apache-2.0
"""Turns Google Benchmark JSON output into a Markdown table (standard library only).

Benchmark names BM_<Component>_<Op>/<params...> are split at the first '/': the rows are the
parameters (e.g. a policy combination "free_list/hash/lru"), and each <Op> contributes one column
per user counter (or its real time per iteration when it has no counter). Counters named
ns_per_<x> (Google Benchmark rate counters with kInvert, stored in seconds) are shown in ns,
counters ending in _per_s in millions per second. Rows whose parameters contain "baseline" come
first.

    kvkit_bench_core_combinations --benchmark_format=json > out.json
    python3 benchmarks/tools/bench_table.py out.json [--out table.md] [--title TEXT]
"""

import argparse
import json
import sys


def load(path):
    if path == "-":
        return json.load(sys.stdin)
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def runs_of(doc):
    """Benchmark runs, one per name: the mean aggregate when repetitions were run."""
    runs = {}
    for b in doc.get("benchmarks", []):
        name = b.get("run_name", b["name"])
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") != "mean":
                continue
        elif name in runs and runs[name].get("run_type") == "aggregate":
            continue
        runs[name] = b
    return runs


STANDARD_KEYS = {
    "name", "family_index", "per_family_instance_index", "run_name", "run_type", "repetitions",
    "repetition_index", "threads", "iterations", "real_time", "cpu_time", "time_unit",
    "aggregate_name", "aggregate_unit", "error_occurred", "error_message", "label",
    "bytes_per_second", "items_per_second",
}

TIME_SCALE = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def column_label(op, counter):
    if counter is None:
        return f"{op} ns/iter"
    if counter.startswith("ns_per_"):
        return f"{op} ns/{counter[len('ns_per_'):]}"
    if counter.endswith("_per_s"):
        return f"{op} M {counter[:-len('_per_s')]}/s"
    return f"{op} " + counter.replace("_per_", "/").replace("_", " ")


def format_value(counter, value):
    if value is None:
        return ""
    if counter is not None and counter.startswith("ns_per_"):
        value *= 1e9  # stored in seconds per item
    elif counter is not None and counter.endswith("_per_s"):
        return f"{value / 1e6:.2f}"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def build_table(doc, title=None):
    runs = runs_of(doc)
    columns = []  # (op, counter)
    rows = {}  # params -> {(op, counter): value or error text}
    order = []
    for name, b in runs.items():
        family, _, params = name.partition("/")
        op = family.split("_", 2)[-1] if family.startswith("BM_") else family
        params = params or "-"
        if params not in rows:
            rows[params] = {}
            order.append(params)
        counters = [k for k in b if k not in STANDARD_KEYS and isinstance(b[k], (int, float))]
        if b.get("error_occurred"):
            key = (op, counters[0] if counters else None)
            if key not in columns:
                columns.append(key)
            rows[params][key] = "error: " + b.get("error_message", "")
            continue
        if not counters:
            key = (op, None)
            value = b["real_time"] * TIME_SCALE.get(b.get("time_unit", "ns"), 1.0)
            if key not in columns:
                columns.append(key)
            rows[params][key] = value
        for c in counters:
            key = (op, c)
            if key not in columns:
                columns.append(key)
            rows[params][key] = b[c]
    position = {p: i for i, p in enumerate(order)}
    order.sort(key=lambda p: (0 if "baseline" in p else 1, position[p]))

    out = []
    if title:
        out.append(f"**{title}**\n")
    ctx = doc.get("context", {})
    if ctx:
        out.append(f"Machine: {ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz, "
                   f"Google Benchmark library built as {ctx.get('library_build_type', '?')}, "
                   f"{ctx.get('date', '')}\n")
    header = ["configuration"] + [column_label(op, c) for op, c in columns]
    out.append("| " + " | ".join(header) + " |")
    out.append("|" + "|".join(["---"] + ["---:"] * len(columns)) + "|")
    for p in order:
        cells = [f"`{p}`"]
        for key in columns:
            v = rows[p].get(key)
            cells.append(v if isinstance(v, str) else format_value(key[1], v))
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", help="Google Benchmark JSON output ('-' for stdin)")
    ap.add_argument("--out", help="write the table here (default: stdout)")
    ap.add_argument("--title", help="a bold title line above the table")
    args = ap.parse_args(argv)
    try:
        doc = load(args.json)
    except (OSError, json.JSONDecodeError) as e:
        print(f"bench_table.py: cannot read {args.json}: {e}", file=sys.stderr)
        return 1
    table = build_table(doc, args.title)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table)
    else:
        sys.stdout.write(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
