"""Entropy tables for a bundle's quantized splits, from its head's codes on training images.

For each split with a q8/q8rans codec, runs its TorchScript head on the calibration images,
takes the 8-bit per-image codes the device sends (the q8 codec) and weighs up to four ways of
coding them losslessly: counts per channel, per element, per element after a linear prediction
from the codes before it (tables format 2), and per element after a small nonlinear integer
context model (context.py, format 3). The first `images` images make the tables, the rest (the
holdout) measure each candidate; the cheapest is written as <split>.tables and recorded in the
manifest ("tables", "entropy"); a split whose estimate plus the coder's overhead beats plain q8
gets "codec": "q8rans".
"""
import os
from dataclasses import dataclass

import torch

from . import context, quant, tables

CODER_OVERHEAD = 12  # bytes: the rANS coder's final state and word rounding


@dataclass
class Options:
    predict: bool = True
    ridge: float = 1.0
    context: bool = True
    context_hidden: int = 512
    context_steps: int = 10000
    context_bins: int = 32
    context_max_elements: int = 1024  # predictor and context model: their size and fitting time grow
                                      # with the square of the elements (and more)
    seed: int = 20221


def codes_of(head, images_u8, normalize, batch=500):
    out = []
    with torch.no_grad():
        for i in range(0, images_u8.shape[0], batch):
            out.append(quant.codes_per_sample(head(normalize(images_u8[i:i + batch]))))
    return torch.cat(out)


def calibrate(bundle_dir, manifest, images_u8, normalize, fit_count, opts=Options(), log=print):
    """images_u8: calibration images (the first fit_count make the tables, the rest measure them).
    Writes <split>.tables files into bundle_dir and updates `manifest` in place (not its file)."""
    for split in manifest["splits"]:
        if split["codec"] not in ("q8", "q8rans"):
            log(f"{split['id']:>10}: codec {split['codec']} is not q8, left as it is")
            continue
        head = torch.jit.load(os.path.join(bundle_dir, split["head"]))
        codes = codes_of(head, images_u8, normalize)
        fit, held = codes[:fit_count], codes[fit_count:]
        n = codes.shape[1]
        shape = split["bottleneck"]["shape"]
        channels = shape[1] if len(shape) > 1 else 1
        best = None
        candidates = [("channel", channels, None), ("element", n, None)]
        if opts.predict and n > opts.context_max_elements:
            log(f"{split['id']:>10}: no linear predictor for {n} elements (more than {opts.context_max_elements}: its "
                f"weights would take {n * (n - 1) * 2 // 1000000} MB)")
        elif opts.predict:
            candidates.append(("element-predicted", n, tables.fit_predictor(fit, opts.ridge)))
        for name, groups, predictor in candidates:
            sym_fit, sym_held = (fit, held) if predictor is None else (tables.to_symbols(predictor, fit),
                                                                       tables.to_symbols(predictor, held))
            t = tables.tables_from_counts(tables.histograms(sym_fit, groups))
            est = tables.cross_entropy_bytes(t, sym_held)
            log(f"{split['id']:>10}: per {name} ({groups} tables): {est:.1f} B of information per image (q8: {n} B)")
            if best is None or est < best[1]:
                best = (name, est, t, predictor, None)
        if opts.context and n > opts.context_max_elements:
            log(f"{split['id']:>10}: no context model for {n} elements (more than {opts.context_max_elements})")
        elif opts.context:
            log(f"{split['id']:>10}: training a context model ({opts.context_hidden} hidden units, "
                f"{opts.context_steps} steps)")
            net = context.train(fit, hidden=opts.context_hidden, steps=opts.context_steps, seed=opts.seed,
                                log=lambda msg: log(f"{split['id']:>10}: {msg}"))
            model = context.to_integer(net, fit, bins=opts.context_bins)
            groups = channels if len(shape) > 2 else 1  # per channel of a feature map
            count = groups * opts.context_bins
            sym_fit, which_fit = context.symbols_and_tables(model, fit, groups)
            sym_held, which_held = context.symbols_and_tables(model, held, groups)
            t = tables.tables_from_counts(tables.indexed_histograms(sym_fit, which_fit, count))
            est = tables.cross_entropy_bytes_indexed(t, sym_held, which_held)
            log(f"{split['id']:>10}: per element-context ({count} tables): {est:.1f} B of information per "
                f"image (q8: {n} B)")
            if est < best[1]:
                best = ("element-context", est, t, None, context.encode(model, groups))
        name, est, t, predictor, context_section = best
        blob, version = tables.encode_tables(t, predictor, context_section)
        fname = f"{split['id']}.tables"
        with open(os.path.join(bundle_dir, fname), "wb") as f:
            f.write(blob)
        split["tables"] = fname
        split["entropy"] = {"granularity": name, "calibration_images": int(fit_count),
                            "heldout_bytes": round(est, 1), "tables_version": version}
        split["codec"] = "q8rans" if est + CODER_OVERHEAD < n else "q8"
        log(f"{split['id']:>10}: wrote {fname} ({len(blob)} B, version {version:08x}); codec {split['codec']}")
