#!/usr/bin/env python3
"""Report of benchmarks/dynamic_sweep.sh: per bundle and link rate, the p50 end-to-end latency of
every fixed strategy and of dynamic, the best fixed one, and dynamic's ratio to it (the bar is
<= 1.1). Writes sweep.csv beside the JSON files; prints Markdown.

  /usr/bin/python3 benchmarks/sweep_report.py build/bench/dynamic
"""
import csv
import glob
import json
import os
import re
import sys


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "build/bench/dynamic"
    env = {}
    if os.path.exists(os.path.join(out, "environment.json")):
        env = json.load(open(os.path.join(out, "environment.json")))
    # One cell = (bundle, rate, strategy): every round's JSON summary and per-request latencies.
    cells = {}
    for path in glob.glob(os.path.join(out, "*.r*.json")):
        m = re.match(r"(.+?)-([0-9.]+)-(.+)\.r(\d+)\.json$", os.path.basename(path))
        if not m:
            continue
        c = cells.setdefault((m.group(1), float(m.group(2)), m.group(3)),
                             {"total": [], "requests": 0, "failures": 0, "bytes": 0.0, "correct": 0,
                              "has_acc": False, "strategies": {}, "fallbacks": {}})
        r = json.load(open(path))
        c["requests"] += r["requests"]
        c["failures"] += r["failures"]
        c["bytes"] += r["wire_bytes_per_request"] * r["requests"]
        if "correct" in r:
            c["has_acc"] = True
            c["correct"] += r["correct"]
        for key in ("strategies", "fallbacks"):
            for k, v in r.get(key, {}).items():
                c[key][k] = c[key].get(k, 0) + v
        with open(path[:-5] + ".txt") as f:
            for line in f:
                if line.startswith("# "):  # the dynamic estimates header
                    continue
                for field in line.rstrip("\n").split("\t")[3:]:
                    mm = re.match(r"^([0-9.]+) ms$", field)
                    if mm:
                        c["total"].append(float(mm.group(1)))
    if not cells:
        sys.exit(f"sweep_report: no runs under {out}")
    runs = {}
    for key, c in cells.items():
        t = sorted(c["total"])
        if not t:
            continue
        pct = lambda q: t[min(len(t) - 1, int(q * len(t)))]  # noqa: E731
        runs[key] = {"requests": len(t), "failures": c["failures"],
                     "latency_ms": {"total": {"p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99), "max": t[-1]}},
                     "wire_bytes_per_request": c["bytes"] / max(c["requests"], 1),
                     "strategies": c["strategies"], "fallbacks": c["fallbacks"]}
        if c["has_acc"]:
            runs[key]["accuracy"] = 100.0 * c["correct"] / max(c["requests"], 1)
    rows = []
    for (b, rate, s), r in sorted(runs.items()):
        t = r["latency_ms"]["total"]
        rows.append({"bundle": b, "rate_mbit": rate, "strategy": s, "requests": r["requests"], "failures": r["failures"],
                     "p50_ms": round(t["p50"], 3), "p90_ms": round(t["p90"], 3), "p99_ms": round(t["p99"], 3),
                     "max_ms": round(t["max"], 3), "wire_bytes": round(r["wire_bytes_per_request"], 1),
                     "accuracy": round(r["accuracy"], 2) if "accuracy" in r else "",
                     "mix": " ".join(f"{k}={v}" for k, v in r.get("strategies", {}).items() if v),
                     "fallbacks": " ".join(f"{k}={v}" for k, v in r.get("fallbacks", {}).items() if v)})
    with open(os.path.join(out, "sweep.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    if env:
        print(f"device: {env.get('device')}; edge threads: {env.get('edge_threads')}; round trip "
              f"{env.get('rtt_ms')} ms; warm-up {env.get('warmup')} requests excluded; commit {env.get('commit')}; "
              f"{env.get('cpu')}, {env.get('cores')} cores\n")
    worst = 0.0
    for b in sorted({k[0] for k in runs}):
        strategies = [s for s in dict.fromkeys(k[2] for k in sorted(runs) if k[0] == b) if s != "dynamic"]
        n = {runs[k]["requests"] for k in runs if k[0] == b}
        print(f"### {b}: p50 end-to-end latency, ms ({'/'.join(str(x) for x in sorted(n))} requests per cell)\n")
        print("| Mbit/s | " + " | ".join(strategies) + " | best fixed | dynamic | dynamic / best | dynamic's choices |")
        print("|---:|" + "---:|" * len(strategies) + "---|---:|---:|---|")
        for rate in sorted({k[1] for k in runs if k[0] == b}):
            cells, best = [], None
            for s in strategies:
                r = runs.get((b, rate, s))
                if r is None or r["requests"] == 0:
                    cells.append("-")
                    continue
                p = r["latency_ms"]["total"]["p50"]
                cells.append(f"{p:.1f}")
                if best is None or p < best[1]:
                    best = (s, p)
            d = runs.get((b, rate, "dynamic"))
            if d is None or best is None:
                print(f"| {rate:g} | " + " | ".join(cells) + " | - | - | - | - |")
                continue
            dp = d["latency_ms"]["total"]["p50"]
            ratio = dp / best[1]
            worst = max(worst, ratio)
            mix = ", ".join(f"{k} {v}" for k, v in sorted(d.get("strategies", {}).items(), key=lambda kv: -kv[1]) if v)
            print(f"| {rate:g} | " + " | ".join(cells) + f" | {best[0]} {best[1]:.1f} | {dp:.1f} | {ratio:.2f} | {mix} |")
        print()
    print(f"worst dynamic / best fixed ratio: {worst:.2f} (bar: <= 1.10)")


if __name__ == "__main__":
    main()
