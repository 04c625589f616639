#!/usr/bin/env python3
"""Writes square RGB PNG inputs for the image bundles (resnet50, mobilenet_v2, ...).

  /usr/bin/python3 tools/make_bench_images.py --size 224 --count 64 --out build/bench/images224 \
      [--photos DIR]

With --photos (a directory of photographs, e.g. the sample images scikit-image ships), each
output is a crop of one photo scaled so its short side is 1 to 2 times --size: natural content,
so a lossless PNG of it compresses as a camera frame would. Without it, synthetic smooth images
(gradients, shapes and sensor-like noise). Seeded: the same arguments write the same files.
"""
import argparse
import os
import random
import sys

from PIL import Image, ImageDraw


def fail(msg):
    print(f"make_bench_images: {msg}", file=sys.stderr)
    sys.exit(2)


def synthetic(rng, size):
    img = Image.new("RGB", (size, size))
    px = img.load()
    a = [rng.uniform(0.2, 1.0) for _ in range(3)]
    for y in range(size):
        for x in range(size):
            px[x, y] = tuple(int(min(255, max(0, 128 + 100 * a[c] * ((x + c * y) / size - 0.5) + rng.gauss(0, 4))))
                             for c in range(3))
    d = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.randrange(size), rng.randrange(size)
        r = rng.randrange(size // 10, size // 3)
        d.ellipse([x0 - r, y0 - r, x0 + r, y0 + r], fill=tuple(rng.randrange(256) for _ in range(3)))
    return img


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--count", type=int, default=64)
    ap.add_argument("--out", required=True)
    ap.add_argument("--photos", help="directory of photographs (.png/.jpg) to crop from")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    if not 8 <= args.size <= 4096:
        fail(f"--size {args.size} is outside 8..4096")
    if args.count < 1:
        fail("--count must be at least 1")
    rng = random.Random(args.seed)
    photos = []
    if args.photos:
        if not os.path.isdir(args.photos):
            fail(f"--photos {args.photos} is not a directory")
        for name in sorted(os.listdir(args.photos)):
            if name.lower().endswith((".png", ".jpg", ".jpeg")):
                try:
                    im = Image.open(os.path.join(args.photos, name))
                    im.load()
                except (OSError, ValueError):  # sample sets include deliberately broken files
                    continue
                if im.mode == "RGB" and min(im.size) >= args.size:
                    photos.append(im.copy())
        if not photos:
            fail(f"no RGB photographs of at least {args.size} px in {args.photos}")
    os.makedirs(args.out, exist_ok=True)
    for i in range(args.count):
        if photos:
            im = photos[i % len(photos)]
            scale = rng.uniform(1.0, 2.0) * args.size / min(im.size)
            w, h = max(args.size, round(im.size[0] * scale)), max(args.size, round(im.size[1] * scale))
            im = im.resize((w, h), Image.BILINEAR)
            x, y = rng.randrange(w - args.size + 1), rng.randrange(h - args.size + 1)
            img = im.crop((x, y, x + args.size, y + args.size))
        else:
            img = synthetic(rng, args.size)
        img.save(os.path.join(args.out, f"img{i:04d}.png"))
    print(f"wrote {args.count} {args.size}x{args.size} images to {args.out}"
          f" ({'crops of ' + str(len(photos)) + ' photographs' if photos else 'synthetic'})")


if __name__ == "__main__":
    main()
