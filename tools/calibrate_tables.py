#!/usr/bin/env python3
"""Calibrates entropy tables for every split of a bundle (run with /usr/bin/python3).

  /usr/bin/python3 tools/calibrate_tables.py models/fmnist-resnet [--images 20000]

For each split with a quantized codec, runs its TorchScript head on training images, takes the
8-bit per-tensor codes the device would send (the q8 codec), and counts each code's frequency
per channel and per element; a third candidate predicts each code linearly from the codes
before it in its sample (least squares with a small ridge on the calibration images, Q16
integer weights) and counts the residuals per element (tables format 2); a fourth predicts each
code with a small nonlinear integer network over the codes before it (tools/libsplit_tools/
context.py, trained on the calibration codes for --context-steps steps) which also picks, by its
predicted spread, which of --context-bins tables per channel codes the residual (format 3). The
counts of the first --images images make the tables; the next --holdout images measure what
each candidate would cost, and the cheapest is written as <split>.tables (format:
tools/libsplit_tools/tables.py). Every candidate codes the q8 codes losslessly: predictions with
q8rans are those of q8. --no-predict leaves the linear predictor out, --no-context the network.
The manifest gets, per split, "tables" (the file) and "entropy" (granularity: channel, element,
element-predicted or element-context; calibration images; the held-out estimate in bytes); a split whose
estimate plus the coder's overhead (12 bytes: final state and word rounding) beats plain q8
gets "codec": "q8rans", the others keep theirs.
Other splits' codecs and every TorchScript file are left as they are.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import bundle, calibrate, data, images  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", help="bundle directory (manifest.json + TorchScript files)")
    ap.add_argument("--data", default=data.DEFAULT_DIR, help="training images: Fashion-MNIST IDX directory, or an ImageFolder tree (DIR/train/<class>/*) read with the manifest's preprocessing")
    ap.add_argument("--images", type=int, default=20000, help="calibration images")
    ap.add_argument("--holdout", type=int, default=5000, help="held-out images for the estimate")
    ap.add_argument("--no-predict", action="store_true", help="leave out the linear-prediction candidate")
    ap.add_argument("--ridge", type=float, default=1.0, help="ridge term of the predictor's least squares")
    ap.add_argument("--no-context", action="store_true", help="leave out the context-model candidate")
    ap.add_argument("--context-hidden", type=int, default=512, help="hidden units of the context model")
    ap.add_argument("--context-steps", type=int, default=10000, help="training steps of the context model")
    ap.add_argument("--context-bins", type=int, default=32, help="scale bins (tables) per channel of the context model")
    ap.add_argument("--seed", type=int, default=20221, help="seed of the context model's training")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    path = os.path.join(args.bundle, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"calibrate_tables: {path}: {e}")
    prep = images.from_manifest(manifest)
    if os.path.isdir(os.path.join(args.data, "train")):  # an ImageFolder tree
        try:
            folder = images.scan(args.data)
            if prep is None:
                raise images.DataError(f"{path}: input has no preprocess; an image folder needs it")
            train, _ = images.load_part(folder, "train", prep, workers=os.cpu_count())
        except images.DataError as e:
            sys.exit(f"calibrate_tables: {e}")
        normalize = prep.normalize
    else:
        path, manifest = bundle.load_fmnist_manifest(args.bundle, "calibrate_tables",
                                                     "IDX calibration data is Fashion-MNIST; give --data an image folder otherwise")
        train, _ = data.load("train", args.data)
        normalize = data.normalize
    if args.images + args.holdout > train.shape[0]:
        sys.exit(f"calibrate_tables: --images + --holdout exceeds the {train.shape[0]} training images")
    opts = calibrate.Options(predict=not args.no_predict, ridge=args.ridge, context=not args.no_context,
                             context_hidden=args.context_hidden, context_steps=args.context_steps,
                             context_bins=args.context_bins, seed=args.seed)
    calibrate.calibrate(args.bundle, manifest, train[:args.images + args.holdout], normalize, args.images, opts,
                        log=lambda msg: print(msg, flush=True))
    bundle.write_manifest(args.bundle, manifest)
    print(f"updated {path}")


if __name__ == "__main__":
    main()
