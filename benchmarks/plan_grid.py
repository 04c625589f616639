#!/usr/bin/env python3
"""split-plan over a grid of edge loads and inferences per fine-tuning round, on measured profiles
(benchmarks/plan_scenarios.sh writes them): which placement it recommends in each cell, and the
cost of running the whole pipeline on the edge (full model fine-tuned and run there) over the cost
of running it all on the device with the cheapest pruned model (pruned, fine-tuned and run there).

  benchmarks/plan_grid.py --profiles build/bench/plan/profiles.json [--split-plan build/release/tools/split-plan]
                          [--loads 0 0.3 0.6 0.9] [--rounds 10 100 1000 10000 100000] [-- extra split-plan flags]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profiles", required=True)
    ap.add_argument("--split-plan", default="build/release/tools/split-plan")
    ap.add_argument("--loads", type=float, nargs="+", default=[0, 0.3, 0.6, 0.9])
    ap.add_argument("--rounds", type=float, nargs="+", default=[10, 100, 1000, 10000, 100000])
    ap.add_argument("extra", nargs="*", help="further split-plan flags (after --)")
    args = ap.parse_args()
    if not os.path.exists(args.split_plan):
        sys.exit(f"plan_grid: {args.split_plan} does not exist (build first)")
    cells = {}
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "plan.json")
        for load in args.loads:
            for k in args.rounds:
                cmd = [args.split_plan, "--profiles", args.profiles, "--edge-load", str(load),
                       "--inferences-per-round", f"{k:g}", "--quiet", "--json", out] + args.extra
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode not in (0, 2):
                    sys.exit(f"plan_grid: {' '.join(cmd)}: {r.stderr.strip()}")
                plan = json.load(open(out))
                by = {o["name"]: o for o in plan["options"]}
                edge = by.get("full finetune@edge infer@edge")
                dev = [o for n, o in by.items() if n.endswith("prune@device finetune@device infer@device")]
                best_dev = min(dev, key=lambda o: o["cost"] or float("inf")) if dev else None
                ratio = edge["cost"] / best_dev["cost"] if edge and best_dev and edge["cost"] and best_dev["cost"] else None
                rec = plan["recommended"]["name"] if plan["recommended"] else "none"
                cells[(load, k)] = (rec, ratio, best_dev["model"] if best_dev else "-")
    print("Recommended placement (split-plan), by edge load (rows) and inferences per fine-tuning round (columns):\n")
    print("| edge load | " + " | ".join(f"{k:g}" for k in args.rounds) + " |")
    print("|---" * (len(args.rounds) + 1) + "|")
    for load in args.loads:
        print(f"| {load:g} | " + " | ".join(cells[(load, k)][0] for k in args.rounds) + " |")
    print("\nCost of the whole pipeline on the edge / on the device with the cheapest pruned model:\n")
    print("| edge load | " + " | ".join(f"{k:g}" for k in args.rounds) + " |")
    print("|---" * (len(args.rounds) + 1) + "|")
    for load in args.loads:
        vals = []
        for k in args.rounds:
            _, ratio, model = cells[(load, k)]
            vals.append(f"{ratio:.2f} ({model})" if ratio else "-")
        print(f"| {load:g} | " + " | ".join(vals) + " |")


if __name__ == "__main__":
    main()
