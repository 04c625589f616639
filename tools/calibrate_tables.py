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
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import bundle, context, data, quant, tables  # noqa: E402

CODER_OVERHEAD = 12


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", help="bundle directory (manifest.json + TorchScript files)")
    ap.add_argument("--data", default=data.DEFAULT_DIR, help="Fashion-MNIST IDX directory (training images)")
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
    path, manifest = bundle.load_fmnist_manifest(args.bundle, "calibrate_tables", "the only calibration data this tool reads")
    images, _ = data.load("train", args.data)
    if args.images + args.holdout > images.shape[0]:
        sys.exit(f"calibrate_tables: --images + --holdout exceeds the {images.shape[0]} training images")
    calib = images[:args.images + args.holdout]
    for split in manifest["splits"]:
        if split["codec"] not in ("q8", "q8rans"):
            print(f"{split['id']:>10}: codec {split['codec']} is not q8, left as it is")
            continue
        head = torch.jit.load(os.path.join(args.bundle, split["head"]))
        codes = []
        with torch.no_grad():
            for i in range(0, calib.shape[0], 1000):
                codes.append(quant.codes_per_sample(head(data.normalize(calib[i:i + 1000]))))
        codes = torch.cat(codes)
        fit, held = codes[:args.images], codes[args.images:]
        n = codes.shape[1]
        shape = split["bottleneck"]["shape"]
        channels = shape[1] if len(shape) > 1 else 1
        best = None
        candidates = [("channel", channels, None), ("element", n, None)]
        if not args.no_predict:
            candidates.append(("element-predicted", n, tables.fit_predictor(fit, args.ridge)))
        for name, groups, predictor in candidates:
            sym_fit, sym_held = (fit, held) if predictor is None else (tables.to_symbols(predictor, fit),
                                                                       tables.to_symbols(predictor, held))
            t = tables.tables_from_counts(tables.histograms(sym_fit, groups))
            est = tables.cross_entropy_bytes(t, sym_held)
            print(f"{split['id']:>10}: per {name} ({groups} tables): {est:.1f} B of information per image "
                  f"(q8: {n} B)", flush=True)
            if best is None or est < best[1]:
                best = (name, est, t, predictor, None)
        if not args.no_context:
            print(f"{split['id']:>10}: training a context model ({args.context_hidden} hidden units, "
                  f"{args.context_steps} steps)", flush=True)
            net = context.train(fit, hidden=args.context_hidden, steps=args.context_steps, seed=args.seed,
                                log=lambda msg: print(f"{split['id']:>10}: {msg}", flush=True))
            model = context.to_integer(net, fit, bins=args.context_bins)
            groups = channels if len(shape) > 2 else 1  # per channel of a feature map
            count = groups * args.context_bins
            sym_fit, which_fit = context.symbols_and_tables(model, fit, groups)
            sym_held, which_held = context.symbols_and_tables(model, held, groups)
            t = tables.tables_from_counts(tables.indexed_histograms(sym_fit, which_fit, count))
            est = tables.cross_entropy_bytes_indexed(t, sym_held, which_held)
            print(f"{split['id']:>10}: per element-context ({count} tables): {est:.1f} B of information per "
                  f"image (q8: {n} B)", flush=True)
            if est < best[1]:
                best = ("element-context", est, t, None, context.encode(model, groups))
        name, est, t, predictor, context_section = best
        blob, version = tables.encode_tables(t, predictor, context_section)
        fname = f"{split['id']}.tables"
        with open(os.path.join(args.bundle, fname), "wb") as f:
            f.write(blob)
        split["tables"] = fname
        split["entropy"] = {"granularity": name, "calibration_images": args.images,
                            "heldout_bytes": round(est, 1), "tables_version": version}
        split["codec"] = "q8rans" if est + CODER_OVERHEAD < n else "q8"
        print(f"{split['id']:>10}: wrote {fname} ({len(blob)} B, version {version:08x}); codec {split['codec']}")
    bundle.write_manifest(args.bundle, manifest)
    print(f"updated {path}")


if __name__ == "__main__":
    main()
