#!/usr/bin/env python3
"""Exports the trained Fashion-MNIST teacher and its splits as a libsplit bundle.

  /usr/bin/python3 tools/export_fmnist.py --train build/train --out models/fmnist-resnet

Splits written:
  bf<W>   BottleFit students (one per trained width W): head = encoder (W x 7 x 7 bottleneck),
          tail = decoder + the teacher's layer3/pool/fc, as fine-tuned.
  natural candidates of the teacher: cuts after a stage whose output has fewer elements than the
          input and than every earlier candidate (the Dynamic Split Computing rule).
Measures on the whole test set, and records in the manifest: the teacher's top-1, each split's
top-1 with a float bottleneck and with the 8-bit per-image bottleneck (the codec), and checks that
TorchScript head -> tail predicts exactly what the PyTorch modules predict (exit 1 otherwise).
"""
import argparse
import glob
import os
import re
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import bundle, data, models, quant  # noqa: E402


def natural_candidates(teacher, input_shape):
    """[(stage name, output shape)] by the Dynamic Split Computing rule."""
    x = torch.zeros(input_shape)
    best = x.numel()
    out = []
    with torch.no_grad():
        for name in models.Teacher.STAGES[:-1]:  # a cut after the last stage is no split
            x = getattr(teacher, name)(x)
            if x.numel() < best:
                out.append((name, tuple(x.shape)))
                best = x.numel()
    return out


@torch.no_grad()
def evaluate(head, tail, images, labels, batch_size=500):
    """Returns (float top-1, 8-bit top-1, predictions with a float bottleneck)."""
    correct_f = correct_q = 0
    preds = []
    for i in range(0, images.shape[0], batch_size):
        x = data.normalize(images[i:i + batch_size])
        z = head(x)
        pf = tail(z).argmax(1)
        pq = tail(quant.quantize_per_sample(z, 8)).argmax(1)
        y = labels[i:i + batch_size]
        correct_f += (pf == y).sum().item()
        correct_q += (pq == y).sum().item()
        preds.append(pf)
    n = images.shape[0]
    return 100.0 * correct_f / n, 100.0 * correct_q / n, torch.cat(preds)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="directory with teacher.pt and bottlefit-w*.pt")
    ap.add_argument("--out", required=True, help="bundle directory to write")
    ap.add_argument("--name", default="fmnist-resnet")
    ap.add_argument("--version", default="1.0.0")
    ap.add_argument("--data", default=data.DEFAULT_DIR)
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count())
    torch.manual_seed(0)

    teacher_path = os.path.join(args.train, "teacher.pt")
    if not os.path.exists(teacher_path):
        sys.exit(f"export_fmnist: {teacher_path} does not exist (run tools/train_fmnist.py first)")
    teacher = models.Teacher()
    teacher.load_state_dict(torch.load(teacher_path))
    teacher.eval()
    images, labels = data.load("test", args.data)
    input_shape = (1, 1, 28, 28)
    example = torch.zeros(input_shape)

    manifest = bundle.manifest_base(args.name, args.version, data.LABELS, input_shape, [data.MEAN], [data.STD],
                                    "gray", "trained", (1, 10))
    modules = {"full.pt": bundle.script(teacher, example)}
    with torch.no_grad():
        full_preds = torch.cat([modules["full.pt"](data.normalize(images[i:i + 500])).argmax(1)
                                for i in range(0, images.shape[0], 500)])
    teacher_acc = 100.0 * (full_preds == labels).float().mean().item()
    manifest["accuracy"] = {"full": round(teacher_acc, 2), "test_images": int(images.shape[0])}
    print(f"teacher (full.pt): top-1 {teacher_acc:.2f}% on {images.shape[0]} test images", flush=True)

    candidates = []
    for path in sorted(glob.glob(os.path.join(args.train, "bottlefit-w*.pt")),
                       key=lambda p: int(re.search(r"w(\d+)", p).group(1))):
        width = int(re.search(r"w(\d+)", path).group(1))
        student = models.Student(models.Teacher(), width)
        student.load_state_dict(torch.load(path))
        student.eval()
        candidates.append((f"bf{width}", "bottlefit", student.encoder, student.tail, (1, width, 7, 7),
                           {"bottleneck_width": width}))
    for stage, shape in natural_candidates(teacher, input_shape):
        candidates.append((f"nat-{stage}", "natural", models.Head(teacher, stage), models.Tail(teacher, stage), shape,
                           {"after": stage}))

    failed = False
    for split_id, kind, head, tail, shape, extra in candidates:
        head.eval()
        tail.eval()
        with torch.no_grad():
            z = head(example)
        if tuple(z.shape) != tuple(shape):
            sys.exit(f"export_fmnist: {split_id}: head output {tuple(z.shape)} != expected {shape}")
        sh, st = bundle.script(head, example), bundle.script(tail, z)
        acc_f, acc_q, preds_ts = evaluate(sh, st, images, labels)
        _, _, preds_py = evaluate(head, tail, images, labels)
        mismatches = int((preds_ts != preds_py).sum())
        if mismatches:
            print(f"export_fmnist: {split_id}: TorchScript and PyTorch disagree on {mismatches} test images",
                  file=sys.stderr)
            failed = True
        nbytes = int(torch.tensor(shape).prod())
        print(f"{split_id:>10} ({kind}): bottleneck {list(shape)} = {nbytes} B at 8 bits "
              f"({100.0 * nbytes / 784:.2f}% of 784), top-1 float {acc_f:.2f}%, 8-bit {acc_q:.2f}%, "
              f"TorchScript == PyTorch on {images.shape[0] - mismatches}/{images.shape[0]}", flush=True)
        modules[f"{split_id}_head.pt"] = sh
        modules[f"{split_id}_tail.pt"] = st
        manifest["splits"].append(bundle.split_entry(
            split_id, kind, shape, "q8", {"float": round(acc_f, 2), "codec": round(acc_q, 2)},
            bytes_per_image=nbytes, torchscript_matches_pytorch=mismatches == 0, **extra))
    if failed:
        sys.exit(1)
    bundle.choose_default_split(manifest, teacher_acc)
    bundle.write_bundle(args.out, manifest, modules)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
