#!/usr/bin/env python3
"""Prints README's model-zoo table from a bundle's manifest (accuracies measured at export on
the whole Fashion-MNIST test set, bottleneck quantized per image).

  /usr/bin/python3 tools/bundle_table.py models/fmnist-resnet
"""
import json
import os
import sys


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: bundle_table.py BUNDLE_DIR")
    m = json.load(open(os.path.join(sys.argv[1], "manifest.json")))
    raw = 1
    for d in m["input"]["shape"]:
        raw *= d
    full = m.get("accuracy", {}).get("full")
    print(f"| split | kind | bottleneck | bytes/image at 8 bits | % of raw input ({raw} B) | top-1 float | top-1 8-bit | drop vs teacher (8-bit) |")
    print("|---|---|---|---:|---:|---:|---:|---:|")
    print(f"| teacher (`{m['full']}`) | full model | - | - | - | {full:.2f}% | - | - |")
    for s in m["splits"]:
        n = 1
        for d in s["bottleneck"]["shape"]:
            n *= d
        acc = s.get("accuracy", {})
        af, aq = acc.get("float"), acc.get("codec")
        drop = f"{full - aq:.2f}" if (full is not None and aq is not None) else "-"
        print(f"| `{s['id']}` | {s['kind']} | {'x'.join(map(str, s['bottleneck']['shape'][1:]))} | {n} | "
              f"{100.0 * n / raw:.2f}% | {af:.2f}% | {aq:.2f}% | {drop} |")


if __name__ == "__main__":
    main()
