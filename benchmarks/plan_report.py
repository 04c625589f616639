#!/usr/bin/env python3
"""Profiles and report for benchmarks/plan_scenarios.sh.

  plan_report.py profiles --bundle DIR --dir OUT/profile --out OUT/profiles.json [--stat mean|p50]
      split-plan's profiles from the idle-edge runs (split-client --json per option), the
      fine-tuning/pruning timings (tools/profile_finetune.py on each side) and the bundle's files.
  plan_report.py report --dir OUT [--stat mean|p50]
      For every scenario: the measured cost of each placement split-plan listed, from that
      scenario's runs, and whether split-plan's recommendation is the cheapest measured one.

The measured cost is computed here, independently of libsplit's planner, with the cost model of
include/libsplit/plan.h, but from what each run measured: latency, device time (head +
encode; its CPU time is charged at compute power and the rest of the latency at idle power),
request and reply bytes, tail time (each run's mean, or with --stat p50 its median),
and the edge's utilisation from the load generator's achieved rate and mean tail time plus the
device's own requests. Round work (pruning, fine-tuning, moving weights and data) comes from the
same profiles as the plan's. The mean is the expectation a cost should use; under a CPU quota,
though, a request that meets an exhausted quota waits for the next period, so the mean of 60
requests moves with how they fell against the periods, and the median is the steadier figure.
"""
import argparse
import csv
import glob
import json
import os
import sys


def load(path):
    with open(path) as f:
        return json.load(f)


def profiles(args):
    man = load(os.path.join(args.bundle, "manifest.json"))
    runs = os.path.join(args.dir, "runs")
    dev = load(os.path.join(args.dir, "device_train.json"))["models"]
    edge = load(os.path.join(args.dir, "edge_train.json"))["models"]

    def run(name):
        return load(os.path.join(runs, name + ".json"))

    def mean(r, stage):
        return r["latency_ms"][stage][args.stat]

    def cpu(r):  # the device's CPU time over its stages (absent in runs of an older split-client)
        return r["latency_ms"]["device_cpu"][args.stat] if "device_cpu" in r["latency_ms"] else 0.0

    def size(name):
        return os.path.getsize(os.path.join(args.bundle, name))

    local, off = run("local"), run("offload")
    models = [{
        "name": "full", "kind": "full", "accuracy": man.get("accuracy", {}).get("full", -1),
        "device_ms": mean(local, "head"), "device_cpu_ms": cpu(local), "edge_ms": mean(off, "tail"),
        "request_bytes": off["wire_bytes_per_request"], "reply_bytes": off["response_bytes_per_request"],
        "device_finetune_ms": dev["full"]["finetune_round_ms"], "edge_finetune_ms": edge["full"]["finetune_round_ms"],
        "weight_bytes": size(man["full"])}]
    for loc in man.get("local", []):
        r = run(loc["id"])
        models.append({
            "name": loc["id"], "kind": "pruned", "accuracy": loc.get("accuracy", -1),
            "device_ms": mean(r, "head"), "device_cpu_ms": cpu(r),
            "device_finetune_ms": dev[loc["id"]]["finetune_round_ms"],
            "edge_finetune_ms": edge[loc["id"]]["finetune_round_ms"],
            "device_prune_ms": dev[loc["id"]].get("prune_ms", 0), "edge_prune_ms": edge[loc["id"]].get("prune_ms", 0),
            "weight_bytes": size(loc["file"])})
    for s in man["splits"]:
        r = run(s["id"])
        models.append({
            "name": s["id"], "kind": "split", "accuracy": s.get("accuracy", {}).get("codec", -1),
            "device_ms": mean(r, "head") + mean(r, "encode"), "device_cpu_ms": cpu(r), "edge_ms": mean(r, "tail"),
            "request_bytes": r["wire_bytes_per_request"], "reply_bytes": r["response_bytes_per_request"],
            "device_finetune_ms": dev[s["id"]]["finetune_round_ms"], "edge_finetune_ms": edge[s["id"]]["finetune_round_ms"],
            "head_bytes": size(s["head"]), "tail_bytes": size(s["tail"])})
    with open(args.out, "w") as f:
        json.dump({"models": models}, f, indent=2)
        f.write("\n")
    for m in models:
        print(f"   {m['name']:>10} ({m['kind']}): device {m['device_ms']:.2f} ms, edge {m.get('edge_ms', 0):.2f} ms, "
              f"fine-tuning round {m['device_finetune_ms'] / 1000:.1f} s here / {m['edge_finetune_ms'] / 1000:.1f} s edge")


def measured_cost(opt, prof, run, s, bg_util, stat="mean"):
    """The plan.h cost of one placement from one scenario's measurements."""
    infer, remote = opt["infer"], opt["infer"] in ("edge", "split")
    bits_j = s["energy_per_bit_nj"] * 1e-9 * 8.0
    lat_s = run["latency_ms"]["total"][stat] / 1000.0
    # The device's compute: the model or head and the codec (offload: encoding the pixels, as
    # measured; the planner counts none).
    device_s = (run["latency_ms"]["head"][stat] + run["latency_ms"]["encode"][stat]) / 1000.0
    if remote:
        edge_s = run["latency_ms"]["tail"][stat] / 1000.0
        nbytes = run["wire_bytes_per_request"] + run["response_bytes_per_request"]
        rho = bg_util + s["request_rate_hz"] * edge_s / s["edge_workers"]
    else:
        edge_s, nbytes, rho = 0.0, 0.0, bg_util
    # Compute energy for the device's CPU time (when the run measured it), idle power for the rest
    # of the latency: under a CPU quota a pass also waits for the CPU, which costs no compute.
    cpu_s = device_s
    if "device_cpu" in run["latency_ms"] and device_s > 0:
        cpu_s = min(run["latency_ms"]["device_cpu"][stat] / 1000.0, device_s)
    device_j = s["device_compute_w"] * cpu_s + bits_j * nbytes + s["device_idle_w"] * max(lat_s - cpu_s, 0.0)
    edge_j = s["edge_w"] * edge_s
    k = s["inferences_per_round"]
    if k > 0:
        rd = re = rb = 0.0

        def move(b):
            nonlocal rd, rb
            rb += b
            rd += bits_j * b
        if opt["prune"] == "device":
            rd += s["device_compute_w"] * prof.get("device_prune_ms", 0) / 1000.0
        if opt["prune"] == "edge":
            re += s["edge_w"] * prof.get("edge_prune_ms", 0) / 1000.0
        if opt["prune"] != "none" and opt["finetune"] != "none" and opt["prune"] != opt["finetune"]:
            move(prof.get("weight_bytes", 0))
        if opt["finetune"] == "device":
            rd += s["device_compute_w"] * prof["device_finetune_ms"] / 1000.0
        if opt["finetune"] == "edge":
            move(s["finetune_bytes"])
            re += s["edge_w"] * prof["edge_finetune_ms"] / 1000.0
        trained = opt["finetune"] if opt["finetune"] != "none" else opt["prune"]
        if trained != "none":
            if infer == "device" and trained == "edge":
                move(prof.get("weight_bytes", 0))
            if infer == "edge" and trained == "device":
                move(prof.get("weight_bytes", 0))
            if infer == "split":
                move(prof.get("tail_bytes", 0) if trained == "device" else prof.get("head_bytes", 0))
        device_j += rd / k
        edge_j += re / k
        nbytes += rb / k
    feasible, why = True, ""
    congestion = 1.0 / (1.0 - rho) if rho < 1 else float("inf")
    cost = device_j + (s["edge_price"] * edge_j * congestion if edge_j > 0 and s["edge_price"] > 0 else 0.0)
    if s["private_data"] and opt["finetune"] == "edge":
        feasible, why = False, "private"
    elif rho >= 1 and remote:
        feasible, why = False, "saturated"
    elif s["latency_bound_ms"] > 0 and lat_s * 1000.0 > s["latency_bound_ms"]:
        feasible, why = False, f"latency {lat_s * 1000:.1f} ms"
    elif s["accuracy_floor"] >= 0 and opt["accuracy"] < s["accuracy_floor"]:
        feasible, why = False, "accuracy"
    return {"cost": cost, "latency_ms": lat_s * 1000.0, "rho": rho, "feasible": feasible, "why": why, "bytes": nbytes}


def report(args):
    profs = {m["name"]: m for m in load(os.path.join(args.dir, "profiles.json"))["models"]}
    env = load(os.path.join(args.dir, "environment.json"))
    rows = []
    for d in sorted(glob.glob(os.path.join(args.dir, "scenarios", "*"))):
        if not os.path.exists(os.path.join(d, "plan.json")):
            continue
        plan = load(os.path.join(d, "plan.json"))
        s = plan["scenario"]
        bg_util, bg_hz, bg_tail = 0.0, 0.0, 0.0
        if os.path.exists(os.path.join(d, "load.json")):
            lj = load(os.path.join(d, "load.json"))
            bg_hz, bg_tail = lj["achieved_hz"], lj["tail_ms"]["mean"]
            bg_util = bg_hz * bg_tail / 1000.0 / s["edge_workers"]
        measured = []
        for opt in plan["options"]:
            run_name = {"device": "local" if opt["model"] == "full" else opt["model"], "edge": "offload",
                        "split": opt["model"]}[opt["infer"]]
            path = os.path.join(d, "runs", run_name + ".json")
            if not os.path.exists(path):
                continue
            r = load(path)
            if r.get("failures", 0) or not r.get("requests"):
                continue
            m = measured_cost(opt, profs[opt["model"]], r, s, bg_util, args.stat)
            m["name"] = opt["name"]
            m["predicted"] = opt["cost"]
            measured.append(m)
        feas = sorted([m for m in measured if m["feasible"]], key=lambda m: m["cost"])
        rec = plan["recommended"]["name"] if plan["recommended"] else "none"
        best = feas[0]["name"] if feas else "none"
        rec_cost = next((m["cost"] for m in measured if m["name"] == rec), None)
        regret = rec_cost / feas[0]["cost"] if feas and rec_cost else float("nan")
        by = {m["name"]: m for m in measured}
        edge_all = by.get("full finetune@edge infer@edge")
        dev_pruned = [m for n, m in by.items() if n.endswith("prune@device finetune@device infer@device")]
        ratio = (edge_all["cost"] / min(m["cost"] for m in dev_pruned)) if edge_all and dev_pruned else float("nan")
        rows.append({"scenario": os.path.basename(d), "edge_load": s["edge_load"], "measured_util": round(bg_util, 3),
                     "inferences_per_round": s["inferences_per_round"], "link_mbps": s["link_mbps"],
                     "private": s["private_data"], "latency_bound_ms": s["latency_bound_ms"],
                     "accuracy_floor": s["accuracy_floor"], "planned": rec, "measured_best": best,
                     "match": rec == best, "regret": round(regret, 3),
                     "edge_pipeline_over_device_pruned": round(ratio, 2)})
        for m in measured:  # JSON has no infinity: a saturated edge's cost is null
            m["cost"] = m["cost"] if m["cost"] != float("inf") else None
        with open(os.path.join(d, "measured.json"), "w") as f:
            json.dump({"background_hz": bg_hz, "background_tail_ms": bg_tail, "background_util": bg_util,
                       "options": measured}, f, indent=2)
    if not rows:
        sys.exit("plan_report: no scenario results under " + args.dir)
    with open(os.path.join(args.dir, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0].keys()))
        w.writeheader()
        w.writerows(rows)
    matches = sum(r["match"] for r in rows)
    print(f"# Deployment planner against measurement ({env['device']}; {env['requests']} requests per option "
          f"at {env['rate_hz']} Hz; link round trip {env['rtt_ms']} ms; per-run statistic: {args.stat}; "
          f"commit {env['commit']})\n")
    print("| scenario | edge load (measured) | inferences/round | Mbit/s | private | bound ms | floor % | split-plan "
          "recommends | cheapest measured | match | measured cost ratio | all-edge / all-device pruned |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scenario']} | {r['edge_load']} ({r['measured_util']}) | {r['inferences_per_round']:g} | "
              f"{r['link_mbps']:g} | {'yes' if r['private'] else 'no'} | {r['latency_bound_ms']:g} | "
              f"{r['accuracy_floor']:g} | {r['planned']} | {r['measured_best']} | {'yes' if r['match'] else 'NO'} | "
              f"{r['regret']} | {r['edge_pipeline_over_device_pruned']} |")
    print(f"\nsplit-plan's choice is the cheapest measured placement in {matches} of {len(rows)} scenarios.")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("profiles")
    p.add_argument("--bundle", required=True)
    p.add_argument("--dir", required=True)
    p.add_argument("--out", required=True)
    r = sub.add_parser("report")
    r.add_argument("--dir", required=True)
    for q in (p, r):
        q.add_argument("--stat", choices=("mean", "p50"), default="mean",
                       help="which figure of each run's latencies the profiles and costs use (default mean)")
    args = ap.parse_args()
    profiles(args) if args.cmd == "profiles" else report(args)


if __name__ == "__main__":
    main()
