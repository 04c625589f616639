#!/usr/bin/env python3
"""Writes photos of various sizes, formats and channel layouts, and what split-train's Python
preprocessing (tools/libsplit_tools/images.py) makes of each under several manifests' input
specs, for the C++ runtime's test of the same path (test_preprocess_python).

  /usr/bin/python3 tests/make_preprocess_fixtures.py OUT_DIR

OUT_DIR/index.txt: one line per case, "<image file> <spec name> <expected file>"; the expected
file is the normalised input tensor [1, C, H, W] as little-endian float32. OUT_DIR/<spec>.json
holds the manifest "input" object of each spec.
"""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from libsplit_tools import images  # noqa: E402

SPECS = {
    "rgb-area-64": images.Preprocess(size=(64, 64), resize=72, channel_order="rgb", interpolation="area"),
    "rgb-bilinear-32": images.Preprocess(size=(32, 32), resize=37, channel_order="rgb", interpolation="bilinear"),
    "bgr-nearest-40": images.Preprocess(size=(40, 40), resize=40, channel_order="bgr", interpolation="nearest",
                                        mean=[0.4, 0.5, 0.6], std=[0.2, 0.25, 0.3]),
    "gray-area-28": images.Preprocess(size=(28, 28), resize=32, channel_order="gray", interpolation="area",
                                      mean=[0.286], std=[0.353]),
}
# (height, width, format, layout)
PHOTOS = [(28, 28, "png", "gray"), (97, 150, "png", "rgb"), (150, 97, "jpg", "rgb"), (64, 64, "bmp", "rgb"),
          (200, 301, "png", "rgba"), (45, 33, "png", "gray"), (480, 640, "jpg", "rgb"), (3000, 4000, "jpg", "rgb"),
          (1001, 333, "bmp", "gray")]


def main():
    import cv2
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(7)
    lines = []
    for name, prep in SPECS.items():
        with open(os.path.join(out, f"{name}.json"), "w") as f:
            json.dump(prep.manifest_input(), f)
    for i, (h, w, fmt, layout) in enumerate(PHOTOS):
        # smooth content with some texture, so resampling modes differ
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([(xx * 255 // max(w - 1, 1)), (yy * 255 // max(h - 1, 1)), ((xx + yy) * 7) % 256], -1)
        img = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
        if layout == "gray":
            img = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        elif layout == "rgba":
            img = np.dstack([img, rng.integers(0, 256, (h, w), dtype=np.uint8)])
        path = os.path.join(out, f"photo{i}-{w}x{h}-{layout}.{fmt}")
        assert cv2.imwrite(path, img), path
        with open(path, "rb") as f:
            data = f.read()
        for name, prep in SPECS.items():
            x = prep.normalize(images.preprocess_u8(data, path, prep).unsqueeze(0))
            exp = f"photo{i}.{name}.f32"
            x.numpy().astype("<f4").tofile(os.path.join(out, exp))
            lines.append(f"{os.path.basename(path)} {name} {exp}")
    with open(os.path.join(out, "index.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"{len(lines)} cases in {out}")


if __name__ == "__main__":
    main()
