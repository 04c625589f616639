#!/usr/bin/env python3
"""Adds a split that sends an existing split's bottleneck with fewer bits (run with /usr/bin/python3).

  /usr/bin/python3 tools/derive_split.py models/fmnist-resnet --from bf2 --bits 4

The new split (id "<from>-q<bits>", or --id) reuses the head and tail files of --from and takes
the per-tensor quantization codec at --bits (q4: two codes per byte; q2: four), so a bottleneck of
n elements costs ceil(n * bits / 8) bytes instead of n. Its top-1 is measured on the whole
Fashion-MNIST test set with the bottleneck quantized per image at those bits, exactly as the
device sends it, and recorded in the manifest with the payload size. Nothing is retrained: a
learned bottleneck often keeps most of its accuracy at 4 bits, which makes it the cheapest
point of the bundle's rate/accuracy curve at that size. The manifest is replaced atomically;
a split of that id already there is replaced.
"""
import argparse
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import bundle, data, quant  # noqa: E402


@torch.no_grad()
def top1(head, tail, images, labels, bits, batch_size=500):
    correct = 0
    for i in range(0, images.shape[0], batch_size):
        z = head(data.normalize(images[i:i + batch_size]))
        correct += (tail(quant.quantize_per_sample(z, bits)).argmax(1) == labels[i:i + batch_size]).sum().item()
    return 100.0 * correct / images.shape[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", help="bundle directory (manifest.json + TorchScript files)")
    ap.add_argument("--from", dest="source", required=True, help="the split whose head and tail are reused")
    ap.add_argument("--bits", type=int, required=True, choices=(2, 4), help="bits per element on the wire")
    ap.add_argument("--id", help="the new split's id (default <from>-q<bits>)")
    ap.add_argument("--data", default=data.DEFAULT_DIR, help="Fashion-MNIST IDX directory (test images)")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    path, manifest = bundle.load_fmnist_manifest(args.bundle, "derive_split", "the only labelled data this tool reads")
    src = next((s for s in manifest["splits"] if s["id"] == args.source), None)
    if src is None:
        sys.exit(f"derive_split: {path}: no split \"{args.source}\" (it has: "
                 f"{', '.join(s['id'] for s in manifest['splits'])})")
    if src["kind"] == "variational":
        sys.exit(f"derive_split: split \"{args.source}\" is variational: its latent is integer symbols "
                 "for the entropy coder, not a tensor to quantize at fewer bits")
    new_id = args.id or f"{args.source}-q{args.bits}"
    if new_id == args.source:
        sys.exit("derive_split: --id must differ from --from")

    head = torch.jit.load(os.path.join(args.bundle, src["head"]))
    tail = torch.jit.load(os.path.join(args.bundle, src["tail"]))
    images, labels = data.load("test", args.data)
    acc = top1(head, tail, images, labels, args.bits)
    n = math.prod(src["bottleneck"]["shape"])
    nbytes = math.ceil(n * args.bits / 8)
    full = manifest.get("accuracy", {}).get("full")
    drop = f", {full - acc:.2f} below the full model" if full is not None else ""
    print(f"{new_id}: {args.source}'s head and tail, {n} elements at {args.bits} bits = {nbytes} B per image "
          f"({100.0 * nbytes / 784:.2f}% of 784); top-1 {acc:.2f}% on {images.shape[0]} test images{drop}",
          flush=True)

    extra = {k: v for k, v in src.items() if k in ("bottleneck_width", "after")}
    entry = bundle.split_entry(new_id, src["kind"], src["bottleneck"]["shape"], f"q{args.bits}",
                               {"float": src.get("accuracy", {}).get("float"), "codec": round(acc, 2)},
                               bytes_per_image=nbytes, derived_from=args.source, **extra)
    entry["head"], entry["tail"] = src["head"], src["tail"]
    if "torchscript_matches_pytorch" in src:
        entry["torchscript_matches_pytorch"] = src["torchscript_matches_pytorch"]
    splits = [s for s in manifest["splits"] if s["id"] != new_id]
    at = next(i for i, s in enumerate(splits) if s["id"] == args.source) + 1
    splits.insert(at, entry)
    manifest["splits"] = splits
    bundle.write_manifest(args.bundle, manifest)


if __name__ == "__main__":
    main()
