#!/usr/bin/env python3
"""Adds a trained variational-bottleneck student (tools/train_entropic.py) to a bundle as a split
coded with its learned entropy tables (run with /usr/bin/python3).

  /usr/bin/python3 tools/export_entropic.py --train build/train --bundle models/fmnist-resnet

Writes vb<C>_head.pt (the encoder: image -> latent y, C x 7 x 7), vb<C>_tail.pt (decoder + the
fine-tuned teacher layers, taking the rounded latent) and vb<C>.tables (each channel's, or each
latent element's, density quantized to 16-bit frequencies over the codes its mass covers, plus
the escape), and adds or replaces split "vb<C>" in manifest.json (kind "variational", codec
"s8rans"). The device sends round(y) clamped to [-128, 127], rANS-coded with those tables; the
split's accuracy is measured on the whole test set that way, and the TorchScript files are
checked against PyTorch.
Other splits and files of the bundle are left as they are.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import bundle, data, entropy, models, tables  # noqa: E402
from train_entropic import EntropicStudent  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="directory with teacher.pt and entropic-c<C>.pt")
    ap.add_argument("--bundle", required=True, help="bundle directory to add the split to")
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--data", default=data.DEFAULT_DIR)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    state = os.path.join(args.train, f"entropic-c{args.channels}.pt")
    mpath = os.path.join(args.bundle, "manifest.json")
    for p in (state, mpath):
        if not os.path.exists(p):
            sys.exit(f"export_entropic: {p} does not exist")
    manifest = json.load(open(mpath))
    weights = torch.load(state)
    prior_size = weights["prior.matrices.0"].shape[0]  # one density per channel, or per element
    student = EntropicStudent(models.Teacher(), args.channels, "channel" if prior_size == args.channels else "element")
    student.load_state_dict(weights)
    student.eval()
    split_id = f"vb{args.channels}"
    example = torch.zeros(1, 1, 28, 28)
    head = bundle.script(student.encoder, example)
    with torch.no_grad():
        z = head(example)
    tail = bundle.script(student.tail, z)

    images, labels = data.load("test", args.data)
    correct_f = correct_q = mismatches = 0
    info_bits = 0.0
    with torch.no_grad():
        for i in range(0, images.shape[0], 500):
            x = data.normalize(images[i:i + 500])
            y = head(x)
            y_hat = torch.round(y.clamp(entropy.LOW, entropy.HIGH))
            lab = labels[i:i + 500]
            pq = tail(y_hat).argmax(1)
            correct_q += (pq == lab).sum().item()
            correct_f += (tail(y).argmax(1) == lab).sum().item()
            py = student.tail(torch.round(student.encoder(x).clamp(entropy.LOW, entropy.HIGH))).argmax(1)
            mismatches += int((py != pq).sum())
            info_bits += entropy.bits(student.likelihood(y_hat)).sum().item()
    n = images.shape[0]
    acc_f, acc_q, info = 100.0 * correct_f / n, 100.0 * correct_q / n, info_bits / n / 8
    if mismatches:
        sys.exit(f"export_entropic: TorchScript and PyTorch disagree on {mismatches} test images")
    t = student.prior.tables()
    blob, version = tables.encode_tables(t)
    shape = [1, args.channels, 7, 7]
    entry = bundle.split_entry(split_id, "variational", shape, "s8rans",
                               {"float": round(acc_f, 2), "codec": round(acc_q, 2)},
                               tables=f"{split_id}.tables", torchscript_matches_pytorch=True,
                               latent_channels=args.channels,
                               entropy={"granularity": student.prior_granularity, "learned": True,
                                        "information_bytes": round(info, 1), "tables_version": version})
    head.save(os.path.join(args.bundle, entry["head"]))
    tail.save(os.path.join(args.bundle, entry["tail"]))
    with open(os.path.join(args.bundle, entry["tables"]), "wb") as f:
        f.write(blob)
    manifest["splits"] = [s for s in manifest["splits"] if s["id"] != split_id] + [entry]
    bundle.write_manifest(args.bundle, manifest)
    print(f"{split_id} (variational): latent {shape}, top-1 float {acc_f:.2f}%, rounded {acc_q:.2f}%, "
          f"{info:.1f} B of information per image (prior's estimate; the coder adds its final state), "
          f"TorchScript == PyTorch on {n}/{n}; tables {len(blob)} B, version {version:08x}")


if __name__ == "__main__":
    main()
