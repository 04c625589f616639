#!/usr/bin/env python3
"""Channel-prunes the Fashion-MNIST teacher at several ratios, fine-tunes each with knowledge
distillation, and adds them to the bundle as local candidates (run with /usr/bin/python3).

  /usr/bin/python3 tools/prune_fmnist.py --bundle models/fmnist-resnet
  /usr/bin/python3 tools/prune_fmnist.py --bundle models/fmnist-resnet --ratios 0.5 --epochs 2

The teacher is read from the bundle's full model. A ratio is the fraction of the teacher's
multiply-adds a pruned model keeps (0.5 = half); every channel group keeps the same fraction of
its channels, the largest whose multiply-adds stay at or below the ratio, and the channels with the
lowest BN-folded filter L1 norm go (see libsplit_tools/prune.py).
Fine-tuning, all ratios at once (they share each batch's teacher forward pass): SGD momentum 0.9,
lr --lr with cosine decay, weight decay 5e-4, random crop (pad 2) + horizontal flip,
loss = alpha * CE(student, label) + (1 - alpha) * T^2 * KL(teacher/T || student/T), T = 4,
alpha = 0.5 (the pruning literature's usual distillation setting). Seeded; prints loss and test
top-1 per epoch and ratio.
Each model is written as <id>.pt (TorchScript, id e.g. "pruned50") and listed in the manifest's
"local" array with its ratio, parameters, multiply-adds, channels and test top-1; the full model
gets its parameters and multiply-adds too. TorchScript must predict exactly what PyTorch does
on the whole test set (exit 1 otherwise). The manifest is replaced atomically.
"""
import argparse
import json
import math
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import bundle, data, models, prune  # noqa: E402
from train_fmnist import batches, kd_loss  # noqa: E402

CL = torch.channels_last


def log(msg):
    print(msg, flush=True)


@torch.no_grad()
def predictions(model, images, batch_size=1000):
    model.eval()
    return torch.cat([model(data.normalize(images[i:i + batch_size])).argmax(1)
                      for i in range(0, images.shape[0], batch_size)])


def top1(model, images, labels):
    return 100.0 * (predictions(model, images) == labels).float().mean().item()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", required=True, help="bundle directory (its full.pt is the teacher)")
    ap.add_argument("--data", default=data.DEFAULT_DIR, help="Fashion-MNIST IDX directory")
    ap.add_argument("--ratios", type=float, nargs="+", default=[0.75, 0.5, 0.3],
                    help="fractions of the teacher's multiply-adds to keep, in (0, 1)")
    ap.add_argument("--epochs", type=int, default=8, help="fine-tuning epochs")
    ap.add_argument("--lr", type=float, default=0.01)
    ap.add_argument("--temperature", type=float, default=4.0)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=20231)
    args = ap.parse_args()
    for r in args.ratios:
        if not 0.0 < r < 1.0:
            sys.exit(f"prune_fmnist: --ratios: {r} is not in (0, 1)")
    if args.epochs < 0:
        sys.exit("prune_fmnist: --epochs must be >= 0")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    manifest_path = os.path.join(args.bundle, "manifest.json")
    try:
        with open(manifest_path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"prune_fmnist: {manifest_path}: {e}")
    if list(manifest.get("input", {}).get("shape", [])) != [1, 1, 28, 28]:
        sys.exit(f"prune_fmnist: {manifest_path}: input.shape must be [1, 1, 28, 28] (a Fashion-MNIST bundle)")
    full_path = os.path.join(args.bundle, manifest["full"])
    teacher = models.Teacher()
    try:
        teacher.load_state_dict(torch.jit.load(full_path).state_dict())
    except Exception as e:  # noqa: BLE001 - name the file, whatever torch raised
        sys.exit(f"prune_fmnist: {full_path}: not the Fashion-MNIST teacher ({str(e).splitlines()[0]})")
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)

    train, test = data.load("train", args.data), data.load("test", args.data)
    teacher_acc = top1(teacher, *test)
    t_params, t_macs = prune.complexity(teacher)
    log(f"teacher: top-1 {teacher_acc:.2f}% on {test[0].shape[0]} test images, {t_params} parameters, "
        f"{t_macs} multiply-adds; {args.threads} threads, seed {args.seed}")

    students = {}
    for r in sorted(set(args.ratios), reverse=True):
        rid = prune.ratio_id(r)
        if rid in students:
            sys.exit(f"prune_fmnist: --ratios: two ratios round to the same id {rid}")
        keep = prune.keep_fraction_for(r)
        channels = prune.channels_for(keep)
        s = prune.prune(teacher, channels)
        params, macs = prune.complexity(s)
        students[rid] = {"ratio": r, "model": s.to(memory_format=CL), "channels": channels,
                         "params": params, "macs": macs}
        log(f"{rid}: keeps {keep:.3f} of every channel group {channels}: {params} parameters, {macs} "
            f"multiply-adds ({100.0 * macs / t_macs:.1f}% of the teacher), top-1 before fine-tuning "
            f"{top1(s, *test):.2f}%")

    gen = torch.Generator().manual_seed(args.seed)
    n_batches = math.ceil(train[0].shape[0] / args.batch_size)
    opts, scheds = {}, {}
    for rid, st in students.items():
        opts[rid] = torch.optim.SGD(st["model"].parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
        scheds[rid] = torch.optim.lr_scheduler.CosineAnnealingLR(opts[rid], max(1, args.epochs * n_batches))
    for epoch in range(args.epochs):
        t0 = time.time()
        totals = {rid: 0.0 for rid in students}
        seen = 0
        for st in students.values():
            st["model"].train()
        for idx in batches(train[0].shape[0], args.batch_size, gen):
            x = data.normalize(data.augment(train[0][idx], gen)).contiguous(memory_format=CL)
            y = train[1][idx]
            with torch.no_grad():
                t_logits = teacher(x)
            for rid, st in students.items():
                loss = kd_loss(st["model"](x), t_logits, y, args.temperature, args.alpha)
                opts[rid].zero_grad()
                loss.backward()
                opts[rid].step()
                scheds[rid].step()
                totals[rid] += loss.item() * idx.numel()
            seen += idx.numel()
        for rid, st in students.items():
            log(f"{rid} kd epoch {epoch + 1}/{args.epochs}: loss {totals[rid] / seen:.4f} "
                f"test top-1 {top1(st['model'], *test):.2f}% ({time.time() - t0:.0f} s for all ratios)")

    example = torch.zeros(1, 1, 28, 28)
    entries, written = [], []
    failed = False
    for rid, st in students.items():
        model = st["model"].to(memory_format=torch.contiguous_format).eval()
        scripted = bundle.script(model, example)
        preds_ts, preds_py = predictions(scripted, test[0]), predictions(model, test[0])
        mismatches = int((preds_ts != preds_py).sum())
        acc = 100.0 * (preds_ts == test[1]).float().mean().item()
        if mismatches:
            log(f"prune_fmnist: {rid}: TorchScript and PyTorch disagree on {mismatches} test images")
            failed = True
        file_name = f"{rid}.pt"
        path = os.path.join(args.bundle, file_name)
        scripted.save(path + ".tmp")
        written.append((path + ".tmp", path))
        entries.append({"id": rid, "kind": "pruned", "file": file_name, "ratio": st["ratio"],
                        "params": st["params"], "macs": st["macs"],
                        "macs_fraction": round(st["macs"] / t_macs, 4), "channels": st["channels"],
                        "accuracy": round(acc, 2), "torchscript_matches_pytorch": mismatches == 0})
        log(f"{rid}: top-1 {acc:.2f}% ({acc - teacher_acc:+.2f} points against the teacher), "
            f"{100.0 * st['macs'] / t_macs:.1f}% of its multiply-adds, TorchScript == PyTorch on "
            f"{test[0].shape[0] - mismatches}/{test[0].shape[0]}")
    if failed:
        for tmp, _ in written:
            os.remove(tmp)
        sys.exit(1)
    for tmp, path in written:
        os.replace(tmp, path)
    taken = {sp["id"] for sp in manifest.get("splits", [])} | {"local", "offload", "offload-png", "dynamic"}
    for e in entries:
        if e["id"] in taken:
            sys.exit(f"prune_fmnist: id {e['id']} is already a split id or a reserved name")
    manifest["complexity"] = {"params": t_params, "macs": t_macs}
    ids = {e["id"] for e in entries}
    manifest["local"] = [e for e in manifest.get("local", []) if e.get("id") not in ids] + entries
    manifest["local"].sort(key=lambda e: -e.get("macs", 0))
    bundle.write_manifest(args.bundle, manifest)
    log(f"wrote {len(entries)} local candidates to {manifest_path}")


if __name__ == "__main__":
    main()
