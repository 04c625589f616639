#!/usr/bin/env python3
"""Writes reference quantization cases computed by python3-torch with torchdistill's formula
(tools/libsplit_tools/quant.py), for the C++ codec tests to match bit for bit.

  /usr/bin/python3 tools/make_codec_fixtures.py OUT.bin

File layout, little-endian: u32 case count, then per case: u8 bits, u32 n, n x f32 input,
f32 scale, u8 zero_point, n x u8 codes, n x f32 dequantized values.
"""
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import quant  # noqa: E402


def cases():
    g = torch.Generator().manual_seed(1234)
    shapes = [(1, 2, 7, 7), (1, 4, 7, 7), (1, 12, 29, 29), (1, 128), (3,), (1, 1, 1, 5)]
    for bits in (2, 4, 8):
        for shape in shapes:
            yield bits, torch.randn(shape, generator=g) * 3.0
            yield bits, torch.rand(shape, generator=g) * 10.0 + 0.5             # all positive
            yield bits, -torch.rand(shape, generator=g) * 7.0 - 0.25            # all negative
            yield bits, torch.relu(torch.randn(shape, generator=g))             # ReLU-like
            yield bits, torch.randn(shape, generator=g) * 1e-3                   # tiny range
            yield bits, torch.randn(shape, generator=g) * 1e4                    # large range
        # Values that land exactly on .5 code boundaries exercise round-half-even.
        yield bits, torch.arange(0, 64, dtype=torch.float32).reshape(1, 64) * 0.5
        yield bits, torch.tensor([[-1.0, 1.0, 0.0, 0.5, -0.5, 0.25]])
        for c in (2.5, -3.0, 0.0, 1e-30):  # constant tensors (libsplit's defined extension)
            yield bits, torch.full((1, 4), c)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_codec_fixtures.py OUT.bin")
    out = []
    for bits, x in cases():
        x = x.float().contiguous()
        q, scale, zp = quant.quantize_tensor(x.clone(), bits)
        deq = quant.dequantize_tensor(q, scale, zp)
        n = x.numel()
        rec = struct.pack("<BI", bits, n) + x.numpy().astype("<f4").tobytes()
        rec += struct.pack("<fB", float(scale), int(zp)) + q.numpy().astype("u1").tobytes()
        rec += deq.numpy().astype("<f4").tobytes()
        out.append(rec)
    with open(sys.argv[1], "wb") as f:
        f.write(struct.pack("<I", len(out)))
        for rec in out:
            f.write(rec)
    print(f"wrote {len(out)} reference cases to {sys.argv[1]}")


if __name__ == "__main__":
    main()
