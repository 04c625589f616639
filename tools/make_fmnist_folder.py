#!/usr/bin/env python3
"""Writes Fashion-MNIST (Debian's dataset-fashion-mnist) as an ImageFolder tree of RGB PNG files,
the data of the bundled models/fmnist-rgb64 recipe (docs: "Your own model"):

  /usr/bin/python3 tools/make_fmnist_folder.py build/fmnist-rgb [--size 80]

train/ holds the first 55,000 training images, val/ the last 5,000, test/ the 10,000 test
images, each in a folder named after its class ("T-shirt/top" becomes "T-shirt-top"). Every
28x28 gray image is enlarged to --size pixels (bilinear) and tinted with a colour drawn per image
(seeded), so the files are real RGB photos of another size than the model's input, whose colour
says nothing about the class. Existing files are left as they are (a second run only fills gaps).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import data  # noqa: E402


def folder_name(label):
    return label.replace("/", "-")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=80, help="side of the written images (default 80)")
    ap.add_argument("--data", default=data.DEFAULT_DIR, help="Fashion-MNIST IDX directory")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val", type=int, default=5000, help="training images kept for val/ (the last ones)")
    args = ap.parse_args()
    import cv2
    try:
        tx, ty = data.load("train", args.data)
        sx, sy = data.load("test", args.data)
    except (OSError, ValueError) as e:
        sys.exit(f"make_fmnist_folder: {e}")
    n_train = tx.shape[0] - args.val
    parts = [("train", tx[:n_train], ty[:n_train]), ("val", tx[n_train:], ty[n_train:]), ("test", sx, sy)]
    rng = np.random.default_rng(args.seed)
    written = 0
    for part, xs, ys in parts:
        for label in data.LABELS:
            os.makedirs(os.path.join(args.out, part, folder_name(label)), exist_ok=True)
        colors = rng.integers(90, 256, size=(xs.shape[0], 3)).astype(np.float32) / 255.0
        for i in range(xs.shape[0]):
            path = os.path.join(args.out, part, folder_name(data.LABELS[int(ys[i])]), f"{i:05d}.png")
            if os.path.exists(path):
                continue
            g = cv2.resize(xs[i, 0].numpy(), (args.size, args.size), interpolation=cv2.INTER_LINEAR).astype(np.float32)
            rgb = np.clip(g[:, :, None] * colors[i][None, None, :] + 0.5, 0, 255).astype(np.uint8)
            if not cv2.imwrite(path, cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
                sys.exit(f"make_fmnist_folder: cannot write {path}")
            written += 1
        print(f"{part}: {xs.shape[0]} images", flush=True)
    print(f"wrote {written} new files under {args.out}")


if __name__ == "__main__":
    main()
