#!/usr/bin/env python3
"""Prints README's model-zoo table from a bundle's manifest (accuracies measured at export on
the whole Fashion-MNIST test set, bottleneck quantized per image by the split's codec).

  /usr/bin/python3 tools/bundle_table.py models/fmnist-resnet

Bytes are the quantized payload at the codec's bits (q4: two elements per byte), before any
entropy coding (a q8rans split is listed at its 8 bits; README's codec table has the coded sizes).
"""
import json
import math
import os
import re
import sys


def payload_bits(codec):
    """Bits per element of a quantizing codec (q8, q4c, q8rans...), None for the others."""
    m = re.fullmatch(r"[qs](\d+)(c|rans|zstd)?", codec)
    return int(m.group(1)) if m else None


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bundle_table.py BUNDLE_DIR")
    m = json.load(open(os.path.join(sys.argv[1], "manifest.json")))
    raw = math.prod(m["input"]["shape"])
    full = m.get("accuracy", {}).get("full")
    print(f"| split | kind | bottleneck | bits | bytes/image | % of raw input ({raw} B) | top-1 float | "
          "top-1 quantized | drop vs teacher (quantized) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    print(f"| teacher (`{m['full']}`) | full model | - | - | - | - | {full:.2f}% | - | - |")
    for s in m["splits"]:
        bits = payload_bits(s["codec"])
        if bits is None or s["kind"] == "variational":
            continue  # float passthrough, or symbols for the entropy coder (README's codec table)
        n = math.prod(s["bottleneck"]["shape"])
        nbytes = math.ceil(n * bits / 8)
        acc = s.get("accuracy", {})
        af, aq = acc.get("float"), acc.get("codec")
        drop = f"{full - aq:.2f}" if (full is not None and aq is not None) else "-"
        name = f"`{s['id']}`" + (f" (`{s['derived_from']}`'s head and tail)" if s.get("derived_from") else "")
        print(f"| {name} | {s['kind']} | {'x'.join(map(str, s['bottleneck']['shape'][1:]))} | {bits} | {nbytes} | "
              f"{100.0 * nbytes / raw:.2f}% | {af:.2f}% | {aq:.2f}% | {drop} |")


if __name__ == "__main__":
    main()
