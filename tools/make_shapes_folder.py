#!/usr/bin/env python3
"""Writes a small synthetic ImageFolder tree (filled shapes on noisy backgrounds), for trying and
testing split-train without a data set: DIR/{train,val}/{circle,square,triangle,...}/*.

  /usr/bin/python3 tools/make_shapes_folder.py DIR [--train 16] [--val 8] [--classes 3] [--seed 0]

Images come in mixed sizes (32..160 px a side, not square), formats (PNG, JPEG, BMP) and
channel layouts (gray, RGB, RGBA), so the whole preprocessing path is exercised.
"""
import argparse
import os
import sys

import numpy as np

SHAPES = ["circle", "square", "triangle", "cross", "ring", "bar"]


def draw(cv2, kind, h, w, rng):
    bg = rng.integers(0, 90, size=3)
    img = np.clip(rng.normal(0, 12, (h, w, 3)) + bg, 0, 255).astype(np.uint8)
    color = tuple(int(c) for c in rng.integers(140, 256, size=3))
    s = min(h, w)
    r = int(s * rng.uniform(0.22, 0.4))
    cx = int(w / 2 + rng.uniform(-0.12, 0.12) * w)
    cy = int(h / 2 + rng.uniform(-0.12, 0.12) * h)
    t = max(1, s // 12)
    if kind == "circle":
        cv2.circle(img, (cx, cy), r, color, -1)
    elif kind == "square":
        cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r), color, -1)
    elif kind == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(img, [pts], color)
    elif kind == "cross":
        cv2.line(img, (cx - r, cy - r), (cx + r, cy + r), color, 2 * t)
        cv2.line(img, (cx - r, cy + r), (cx + r, cy - r), color, 2 * t)
    elif kind == "ring":
        cv2.circle(img, (cx, cy), r, color, t)
    else:
        cv2.rectangle(img, (cx - r, cy - t), (cx + r, cy + t), color, -1)
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=16, help="images per class in train/")
    ap.add_argument("--val", type=int, default=8, help="images per class in val/")
    ap.add_argument("--test", type=int, default=0, help="images per class in test/ (0: no test/)")
    ap.add_argument("--classes", type=int, default=3, choices=range(2, len(SHAPES) + 1))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    import cv2
    rng = np.random.default_rng(args.seed)
    k = 0
    for part, n in (("train", args.train), ("val", args.val), ("test", args.test)):
        for kind in SHAPES[:args.classes]:
            if n == 0:
                continue
            d = os.path.join(args.out, part, kind)
            os.makedirs(d, exist_ok=True)
            for i in range(n):
                h, w = int(rng.integers(32, 161)), int(rng.integers(32, 161))
                img = draw(cv2, kind, h, w, rng)
                layout, ext = k % 3, (".png", ".jpg", ".bmp")[(k // 3) % 3]
                k += 1
                if layout == 1:
                    img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
                elif layout == 2 and ext == ".png":
                    img = np.dstack([img, np.full((h, w), 255, np.uint8)])
                if not cv2.imwrite(os.path.join(d, f"{i:04d}{ext}"), img):
                    sys.exit(f"make_shapes_folder: cannot write {d}/{i:04d}{ext}")
    print(f"wrote {k} images to {args.out}")


if __name__ == "__main__":
    main()
