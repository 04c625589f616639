"""Entropy tables files (the format libsplit's src/codec/tables.cpp reads) and their calibration.

  "LSET", u16 format version 1, u16 0, u32 table count T,
  T x (u8 offset, u16 m = symbols + 1, m x u16 frequencies: the codes [offset, offset + m - 1)
       then the escape; each >= 1, summing to 65536),
  u32 CRC-32C of everything before it (the tables' version, carried in every coded frame).
All little-endian. A tensor of n elements uses table i for its values [i*n/T, (i+1)*n/T).
"""
import math
import struct

import torch

from . import entropy

SCALE = 1 << 16


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def encode_tables(tables):
    """tables: [(offset, [freq, ..., escape freq])] -> file bytes, version."""
    out = bytearray(b"LSET")
    out += struct.pack("<HHI", 1, 0, len(tables))
    for offset, freqs in tables:
        if not 0 <= offset <= 255 or not 2 <= len(freqs) <= 257 or offset + len(freqs) - 1 > 256:
            raise ValueError(f"table range offset {offset} with {len(freqs)} frequencies is invalid")
        if sum(freqs) != SCALE or min(freqs) < 1 or max(freqs) > 0xFFFF:
            raise ValueError("frequencies must be in [1, 65535] and sum to 65536")
        out += struct.pack("<BH", offset, len(freqs))
        out += struct.pack(f"<{len(freqs)}H", *freqs)
    version = crc32c(out)
    out += struct.pack("<I", version)
    return bytes(out), version


def tables_from_counts(counts, prior=0.5):
    """counts: [T, 256] code histograms -> [(offset, freqs)]. Each table covers the codes seen
    (plus a small prior mass spread over its range, so a code seen rarely stays cheap), the
    escape keeps one slot for codes never seen in calibration."""
    out = []
    for row in counts.double():
        seen = (row > 0).nonzero().flatten()
        lo, hi = (int(seen[0]), int(seen[-1])) if seen.numel() else (0, 0)
        probs = (row[lo:hi + 1] + prior).tolist()
        total = sum(probs)
        probs = [p / total for p in probs] + [0.0]  # the escape: one slot (quantize_pmf's floor)
        out.append((lo, entropy.quantize_pmf(probs)))
    return out


def cross_entropy_bytes(tables, codes):
    """Mean bytes per sample of coding codes [N, n] with tables (escapes cost 8 bits more)."""
    n_samples, n = codes.shape
    per = n // len(tables)
    total = 0.0
    for t, (offset, freqs) in enumerate(tables):
        block = codes[:, t * per:(t + 1) * per].flatten().tolist()
        m = len(freqs) - 1
        for c in block:
            k = c - offset
            if 0 <= k < m:
                total += -math.log2(freqs[k] / SCALE)
            else:
                total += -math.log2(freqs[m] / SCALE) + 8
    return total / n_samples / 8


def histograms(codes, groups):
    """codes [N, n] (0..255) -> [groups, 256] counts, group g holding values [g*n/G, (g+1)*n/G)."""
    n = codes.shape[1]
    per = n // groups
    h = torch.zeros(groups, 256, dtype=torch.int64)
    for g in range(groups):
        h[g] = torch.bincount(codes[:, g * per:(g + 1) * per].flatten(), minlength=256)
    return h
