#!/usr/bin/env python3
"""Times a fine-tuning round and pruning for every model of a Fashion-MNIST bundle, on the CPU
this process may use (run it inside the device's CPU quota for device figures, outside for the
edge's), with /usr/bin/python3:

  /usr/bin/python3 tools/profile_finetune.py --bundle models/fmnist-resnet --out device.json

Models: the full model, every local (pruned) model, every split (its head and tail chained).
Fine-tuning: SGD (momentum 0.9) on cross-entropy over batches of --batch-size training images,
the TorchScript modules of the bundle trained in place (nothing is written back); one warm-up
step, then --steps timed steps; a round is --round-samples samples, so
round_ms = median step time / batch size * round samples.
Pruning (local models with a "ratio"): choosing the channels and building the pruned network
from the full model (libsplit_tools/prune.py), the median of --steps runs.
Writes {"threads", "batch_size", "round_samples", "models": {name: {"finetune_round_ms",
"finetune_ms_per_sample", "prune_ms"?}}} and prints one line per model.
"""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import data, models, prune  # noqa: E402


class Chain(torch.nn.Module):
    def __init__(self, head, tail):
        super().__init__()
        self.head, self.tail = head, tail

    def forward(self, x):
        return self.tail(self.head(x))


def time_finetune(model, images, labels, batch_size, steps, gen):
    model.train()
    params = [p for p in model.parameters()]
    for p in params:
        p.requires_grad_(True)
    opt = torch.optim.SGD(params, lr=1e-3, momentum=0.9)
    times = []
    for step in range(steps + 1):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
        x = data.normalize(images[idx])
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step > 0:  # the first step allocates and profiles
            times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000.0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True)
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--data", default=data.DEFAULT_DIR)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=5, help="timed steps per model (after one warm-up step)")
    ap.add_argument("--round-samples", type=int, default=2000, help="training samples in one fine-tuning round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if args.batch_size < 1 or args.steps < 1 or args.round_samples < 1:
        sys.exit("profile_finetune: --batch-size, --steps and --round-samples must be >= 1")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    path = os.path.join(args.bundle, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"profile_finetune: {path}: {e}")
    images, labels = data.load("train", args.data)
    images, labels = images[:10000], labels[:10000]

    def load(name):
        return torch.jit.load(os.path.join(args.bundle, name))

    candidates = [("full", lambda: load(manifest["full"]))]
    for loc in manifest.get("local", []):
        candidates.append((loc["id"], lambda f=loc["file"]: load(f)))
    for s in manifest.get("splits", []):
        candidates.append((s["id"], lambda h=s["head"], t=s["tail"]: Chain(load(h), load(t))))

    out = {"threads": args.threads, "batch_size": args.batch_size, "round_samples": args.round_samples,
           "steps": args.steps, "models": {}}
    teacher = None
    for name, make in candidates:
        step_ms = time_finetune(make(), images, labels, args.batch_size, args.steps, gen)
        per_sample = step_ms / args.batch_size
        entry = {"finetune_ms_per_sample": round(per_sample, 4),
                 "finetune_round_ms": round(per_sample * args.round_samples, 1)}
        local = next((l for l in manifest.get("local", []) if l["id"] == name), None)
        if local is not None and "ratio" in local:
            if teacher is None:
                teacher = models.Teacher()
                teacher.load_state_dict(load(manifest["full"]).state_dict())
                teacher.eval()
            runs = []
            for _ in range(args.steps):
                t0 = time.perf_counter()
                prune.prune(teacher, prune.channels_for(prune.keep_fraction_for(local["ratio"])))
                runs.append(time.perf_counter() - t0)
            entry["prune_ms"] = round(statistics.median(runs) * 1000.0, 1)
        out["models"][name] = entry
        print(f"{name:>10}: fine-tuning {per_sample:.3f} ms/sample, round of {args.round_samples}: "
              f"{entry['finetune_round_ms']:.0f} ms" + (f", pruning {entry['prune_ms']:.0f} ms" if "prune_ms" in entry else ""),
              flush=True)
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
