#!/usr/bin/env python3
"""Exports a torchvision classifier as a libsplit bundle, cut at a module or at an injected
(untrained) BottleFit bottleneck. No weights can be downloaded here: --weights random is the
only choice and is recorded in the manifest ("weights": "random"); such bundles serve latency
work, not accuracy.

  /usr/bin/python3 tools/export_torchvision.py --arch resnet50 --split layer1 --out build/models/resnet50
  /usr/bin/python3 tools/export_torchvision.py --arch mobilenet_v2 --split bottlefit --out build/models/mnv2
  /usr/bin/python3 tools/export_torchvision.py --arch resnet50 --split layer1 --split bottlefit --out ...

--split takes a module path from the list that --list-splits prints (the network flattened to a
sequence: e.g. layer1..layer4 for ResNets, features.0..features.18 for MobileNetV2), or
"bottlefit": after the first stage that downsamples the input by 4, inject an encoder (stride 2,
--bottleneck-channels channels) and a decoder restoring that stage's output shape. Every split must
make the bottleneck (elements at 8 bits) smaller than the raw uint8 input; otherwise nothing is
written and the reason is printed on one line.
"""
import argparse
import os
import sys
from typing import List

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import bundle  # noqa: E402

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def fail(msg):
    print(f"export_torchvision: {msg}", file=sys.stderr)
    sys.exit(2)


def sequence(model):
    """The network as [(path, module)] run one after another."""
    if hasattr(model, "fc") and hasattr(model, "avgpool"):  # ResNet family
        names = [n for n, _ in model.named_children() if n not in ("avgpool", "fc")]
        seq = [(n, getattr(model, n)) for n in names]
        return seq + [("avgpool", model.avgpool), ("flatten", nn.Flatten()), ("fc", model.fc)]
    if hasattr(model, "features") and hasattr(model, "classifier"):  # MobileNet, VGG, ...
        seq = [(f"features.{i}", m) for i, m in enumerate(model.features)]
        pool = getattr(model, "avgpool", nn.AdaptiveAvgPool2d(1))
        return seq + [("avgpool", pool), ("flatten", nn.Flatten()), ("classifier", model.classifier)]
    fail(f"{type(model).__name__} has neither fc/avgpool nor features/classifier; cannot cut it")


class Bottleneck(nn.Module):
    def __init__(self, channels, width):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, channels, 3, 2, 1, bias=False), nn.BatchNorm2d(channels),
                                 nn.ReLU(inplace=True), nn.Conv2d(channels, width, 3, 1, 1))

    def forward(self, x):
        return self.net(x)


class Nearest(nn.Module):
    """nn.Upsample(size, mode="nearest") as the one operator it runs: scripting nn.Upsample
    compiles all of F.interpolate, whose other branches call operators (antialiased and
    nearest-exact resampling) that LibTorch 1.10, a Jetson Nano's, does not have."""

    def __init__(self, out_hw: List[int]):
        super().__init__()
        self.out_hw = out_hw

    def forward(self, x):
        return torch._C._nn.upsample_nearest2d(x, self.out_hw)


class Restore(nn.Module):
    def __init__(self, width, channels, out_hw):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(width, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
                                 nn.ReLU(inplace=True), Nearest([int(v) for v in out_hw]),
                                 nn.Conv2d(channels, channels, 3, 1, 1, bias=False), nn.BatchNorm2d(channels),
                                 nn.ReLU(inplace=True))

    def forward(self, z):
        return self.net(z)


def main():
    import torchvision  # imported late: slow

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, help="torchvision classification model, e.g. resnet50, mobilenet_v2")
    ap.add_argument("--split", action="append", default=[], help="module path or 'bottlefit' (repeatable)")
    ap.add_argument("--out", help="bundle directory to write")
    ap.add_argument("--name", help="bundle name (default: the architecture)")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--size", type=int, default=224, help="input height and width")
    ap.add_argument("--bottleneck-channels", type=int, default=12)
    ap.add_argument("--weights", choices=["random"], default="random")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--list-splits", action="store_true", help="print the module paths and their output shapes")
    args = ap.parse_args()

    builder = getattr(torchvision.models, args.arch, None)
    if builder is None or not callable(builder) or args.arch.startswith("_") or args.arch[0].isupper():
        fail(f"unknown architecture '{args.arch}' (not a torchvision.models constructor)")
    torch.manual_seed(args.seed)
    model = builder(weights=None).eval()
    seq = sequence(model)
    input_shape = (1, 3, args.size, args.size)
    raw = 3 * args.size * args.size
    shapes = []
    x = torch.zeros(input_shape)
    with torch.no_grad():
        for path, m in seq:
            x = m(x)
            shapes.append(tuple(x.shape))
    if args.list_splits:
        for (path, _), s in zip(seq, shapes):
            print(f"{path}\t{list(s)}\t{100.0 * torch.tensor(s).prod().item() / raw:.1f}% of input")
        return
    if not args.out or not args.split:
        fail("--out and at least one --split are required (see --list-splits)")
    name = args.name or args.arch
    manifest = bundle.manifest_base(name, args.version, [f"class_{i}" for i in range(shapes[-1][1])], input_shape,
                                    IMAGENET_MEAN, IMAGENET_STD, "rgb", args.weights, shapes[-1])
    example = torch.zeros(input_shape)
    modules = {"full.pt": bundle.script(nn.Sequential(*[m for _, m in seq]), example)}
    paths = [p for p, _ in seq]
    for spec in args.split:
        if spec == "bottlefit":
            k = next((i for i, s in enumerate(shapes) if len(s) == 4 and s[2] * 4 <= args.size), None)
            if k is None:
                fail("no stage downsamples the input by 4; cannot inject a bottleneck")
            c, h, w = shapes[k][1:]
            head = nn.Sequential(*[m for _, m in seq[:k + 1]], Bottleneck(c, args.bottleneck_channels)).eval()
            tail = nn.Sequential(Restore(args.bottleneck_channels, c, (h, w)), *[m for _, m in seq[k + 1:]]).eval()
            split_id, kind, extra = "bottlefit", "bottlefit", {"after": paths[k], "trained": False}
        else:
            if spec not in paths:
                fail(f"module path '{spec}' does not exist in {args.arch}; choose one of: {', '.join(paths[:-1])}")
            k = paths.index(spec)
            if k == len(paths) - 1:
                fail(f"'{spec}' is the output layer; a split needs a tail")
            head = nn.Sequential(*[m for _, m in seq[:k + 1]]).eval()
            tail = nn.Sequential(*[m for _, m in seq[k + 1:]]).eval()
            split_id, kind, extra = spec.replace(".", "_"), "natural", {"after": spec}
        with torch.no_grad():
            z = head(example)
        n = z.numel()
        if n >= raw:
            fail(f"split '{spec}': bottleneck {list(z.shape)} has {n} elements, not smaller than the "
                 f"{raw}-byte input; choose a later module or 'bottlefit'")
        modules[f"{split_id}_head.pt"] = bundle.script(head, example)
        modules[f"{split_id}_tail.pt"] = bundle.script(tail, z)
        manifest["splits"].append(bundle.split_entry(split_id, kind, z.shape, "q8", bytes_per_image=n, **extra))
        print(f"{split_id}: bottleneck {list(z.shape)} = {n} B at 8 bits ({100.0 * n / raw:.2f}% of {raw})")
    bundle.write_bundle(args.out, manifest, modules)
    print(f"wrote {args.out} ({args.arch}, weights: {args.weights})")


if __name__ == "__main__":
    main()
