"""Entropy tables files (the format libsplit's src/codec/tables.cpp reads) and their calibration.

  "LSET", u16 format version (1, 2 with a predictor, 3 with a context model), u16 0, u32 table count T,
  T x (u8 offset, u16 m = symbols + 1, m x u16 frequencies: the codes [offset, offset + m - 1)
       then the escape; each >= 1, summing to 65536),
  version 2 only: u32 P (elements per sample the predictor covers), P x (i32 bias, u32 taps k,
       k x i32 weights), all Q16,
  version 3 only: the context model (tools/libsplit_tools/context.py `encode`),
  u32 CRC-32C of everything before it (the tables' version, carried in every coded frame).
All little-endian. A tensor of n elements uses table i for its values [i*n/T, (i+1)*n/T).
With a predictor (src/codec/predict.h; `to_symbols` below is the reference), element i of each
sample is coded as (code - p_i + 128) mod 256, p_i predicted from the codes before it.
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


def encode_tables(tables, predictor=None, context_section=None):
    """tables: [(offset, [freq, ..., escape freq])], predictor: None or [(bias, [weights])] (Q16
    integers, entry i with at most i weights), context_section: None or context.encode()'s bytes
    -> file bytes, version."""
    out = bytearray(b"LSET")
    fmt = 3 if context_section is not None else 1 if predictor is None else 2
    out += struct.pack("<HHI", fmt, 0, len(tables))
    for offset, freqs in tables:
        if not 0 <= offset <= 255 or not 2 <= len(freqs) <= 257 or offset + len(freqs) - 1 > 256:
            raise ValueError(f"table range offset {offset} with {len(freqs)} frequencies is invalid")
        if sum(freqs) != SCALE or min(freqs) < 1 or max(freqs) > 0xFFFF:
            raise ValueError("frequencies must be in [1, 65535] and sum to 65536")
        out += struct.pack("<BH", offset, len(freqs))
        out += struct.pack(f"<{len(freqs)}H", *freqs)
    if predictor is not None:
        out += struct.pack("<I", len(predictor))
        for i, (bias, weights) in enumerate(predictor):
            if len(weights) > i:
                raise ValueError(f"predictor entry {i} has {len(weights)} weights, more than the {i} codes before it")
            out += struct.pack("<iI", bias, len(weights))
            out += struct.pack(f"<{len(weights)}i", *weights)
    if context_section is not None:
        out += context_section
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


def _block_index(n, count):
    """Table index of each of n values when count tables take equal consecutive blocks: [1, n]."""
    return (torch.arange(n) // (n // count))[None, :]


def cross_entropy_bytes(tables, codes):
    """Mean bytes per sample of coding codes [N, n] with tables (escapes cost 8 bits more)."""
    which = _block_index(codes.shape[1], len(tables)).expand_as(codes)
    return cross_entropy_bytes_indexed(tables, codes, which)


def cross_entropy_bytes_indexed(tables, symbols, which):
    """Mean bytes per sample of coding symbols [N, n], symbol (s, i) with tables[which[s, i]]."""
    total = 0.0
    for t, (offset, freqs) in enumerate(tables):
        k = symbols[which == t].long() - offset
        m = len(freqs) - 1
        inside = (k >= 0) & (k < m)
        f = torch.tensor(freqs, dtype=torch.float64)
        total += float(-torch.log2(f[k[inside]] / SCALE).sum())
        total += float((~inside).sum()) * (-math.log2(freqs[m] / SCALE) + 8)
    return total / symbols.shape[0] / 8


def indexed_histograms(symbols, which, count):
    """symbols, which [N, n] -> [count, 256] counts of the symbols coded with each table."""
    h = torch.zeros(count, 256, dtype=torch.int64)
    h.index_put_((which.flatten().long(), symbols.flatten().long()), torch.ones(symbols.numel(), dtype=torch.int64),
                 accumulate=True)
    return h


def histograms(codes, groups):
    """codes [N, n] (0..255) -> [groups, 256] counts, group g holding values [g*n/G, (g+1)*n/G)."""
    return indexed_histograms(codes, _block_index(codes.shape[1], groups).expand_as(codes), groups)


def fit_predictor(codes, ridge=1.0):
    """Least-squares linear prediction of each code from every code before it in its sample, with
    a bias: codes [N, n] -> [(bias, [weights])] in Q16 (int32), the format's predictor."""
    x = codes.double()
    n_samples, n = x.shape
    out = []
    for i in range(n):
        a = torch.cat([torch.ones(n_samples, 1, dtype=torch.float64), x[:, :i]], 1)
        reg = ridge * torch.eye(i + 1, dtype=torch.float64)
        reg[0, 0] = 0.0  # the bias is not shrunk
        w = torch.linalg.solve(a.T @ a + reg, a.T @ x[:, i])
        q = torch.round(w * 65536).clamp(-(2 ** 31), 2 ** 31 - 1).long().tolist()
        out.append((q[0], q[1:]))
    return out


def predictions(predictor, codes):
    """codes [N, n] with n a multiple of the predictor's P -> its integer predictions, [N, n]."""
    p_elems = len(predictor)
    c = codes.long().reshape(-1, p_elems)
    pred = torch.empty_like(c)
    for i, (bias, weights) in enumerate(predictor):
        acc = torch.full((c.shape[0],), bias, dtype=torch.int64)
        if weights:
            acc = acc + (c[:, i - len(weights):i] * torch.tensor(weights, dtype=torch.int64)).sum(1)
        pred[:, i] = torch.div(acc + 32768, 65536, rounding_mode="floor").clamp(0, 255)
    return pred.reshape(codes.shape)


def to_symbols(predictor, codes):
    """What the coder codes for codes [N, n] under predictor: (code - prediction + 128) mod 256."""
    return (codes.long() - predictions(predictor, codes) + 128) % 256
