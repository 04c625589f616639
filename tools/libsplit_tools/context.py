"""A nonlinear, integer-only context model for a bottleneck's 8-bit codes (tables format 3).

Each code of a sample is predicted from the codes before it by a small masked network (MADE,
Germain et al. 2015, one hidden layer, plus a direct masked linear path): hidden unit k has a
degree d_k and reads the codes [0, d_k]; output i reads the hidden units of degree < i and the
codes before i. Two outputs per element: the predicted code and a scale bin. The coder codes
(code - prediction + 128) mod 256 with the calibrated table of the element's channel group and
scale bin, so the tables stay counts measured on training data and the network only chooses
which one and where it is centred.

Trained in float (a discretized logistic likelihood over the codes), then turned into integers,
and from then on only the integer network counts: the tables are calibrated with its outputs,
and `outputs()` below is the reference libsplit's src/codec/context.cpp matches bit for bit.
Integer network, z_j = code_j - 128:
  a_k = b1_k + sum_{j <= d_k} w1_kj z_j;  h_k = min(max(a_k, 0) >> hidden_shift, 2^24 - 1)
  m_i = bm_i + sum_{d_k < i} wm_ik h_k + sum_{j < i} vm_ij z_j;  p_i = clamp(round_q(m_i), 0, 255)
  s_i = bs_i + sum_{d_k < i} ws_ik h_k + sum_{j < i} vs_ij z_j;  bin_i = clamp(round_q(s_i), 0, B - 1)
with round_q(v) = floor((v + 2^(q-1)) / 2^q), q = out_shift; hidden units sorted by degree, all
weights int16, biases int64.
"""
import math
import struct

import torch
from torch import nn

WEIGHT_MAX = 32767
HIDDEN_SCALE_LOG2 = 8  # h_int ~ 2^8 * h_float
HIDDEN_MAX = (1 << 24) - 1  # h_int's ceiling (bounds every sum; never reached by a trained model)


class _Masked(nn.Linear):
    def __init__(self, fan_in, fan_out, mask):
        super().__init__(fan_in, fan_out)
        self.register_buffer("mask", mask.float())

    def forward(self, x):
        return nn.functional.linear(x, self.weight * self.mask, self.bias)


class FloatContext(nn.Module):
    """The float network trained on codes: outputs (mean, log scale) per element, in codes."""

    def __init__(self, elements, hidden, gen):
        super().__init__()
        self.n, self.hidden = elements, hidden
        deg = torch.sort(torch.randint(0, max(1, elements - 1), (hidden,), generator=gen)).values
        self.register_buffer("deg", deg)
        idx = torch.arange(elements)
        out_mask = idx[:, None] > deg[None, :]
        skip_mask = idx[:, None] > idx[None, :]
        self.inp = _Masked(elements, hidden, deg[:, None] >= idx[None, :])
        self.out = _Masked(hidden, 2 * elements, torch.cat([out_mask, out_mask]))
        self.skip = _Masked(elements, 2 * elements, torch.cat([skip_mask, skip_mask]))

    def forward(self, codes):
        z = (codes.float() - 128.0) / 64.0
        o = self.out(torch.relu(self.inp(z))) + self.skip(z)
        mean = o[:, :self.n] * 64.0 + 128.0
        log_scale = o[:, self.n:].clamp(-3.0, 6.0) + math.log(4.0)
        return mean, log_scale


def nll_bits(mean, log_scale, codes):
    """Bits per sample of codes under discretized logistics (edges 0 and 255 take the tails)."""
    x = codes.float()
    s = torch.exp(log_scale)
    up = torch.where(x >= 255, torch.ones_like(x), torch.sigmoid((x + 0.5 - mean) / s))
    lo = torch.where(x <= 0, torch.zeros_like(x), torch.sigmoid((x - 0.5 - mean) / s))
    return -torch.log2((up - lo).clamp_min(1e-9)).sum(1)


def train(codes, hidden=256, steps=5000, batch=256, seed=20221, log=None):
    """Fits FloatContext to codes [N, n] (seeded)."""
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = FloatContext(codes.shape[1], hidden, gen)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    for step in range(steps):
        idx = torch.randint(0, codes.shape[0], (batch,), generator=gen)
        loss = nll_bits(*net(codes[idx]), codes[idx]).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if log is not None and (step + 1) % 1000 == 0:
            log(f"context model step {step + 1}/{steps}: {loss.item() / 8:.1f} B per sample (float)")
    return net.eval()


def _shift_for(max_abs, cap):
    """Largest q <= cap with max_abs * 2^q <= WEIGHT_MAX."""
    q = cap
    while q > 0 and max_abs * 2.0 ** q > WEIGHT_MAX:
        q -= 1
    return q


@torch.no_grad()
def to_integer(net, codes, bins=32):
    """The integer network of a trained FloatContext; the scale bins span the 0.5-99.5
    percentiles of log2(scale) over codes [N, n] (the calibration codes)."""
    n, h = net.n, net.hidden
    deg = net.deg.long()
    w1 = net.inp.weight * net.inp.mask / 64.0  # per unit of z (code - 128)
    # first layer: a_int = 2^q1 * a_float; h_int = a_int >> hidden_shift = 2^HIDDEN_SCALE_LOG2 h
    q1 = _shift_for(float(w1.abs().max()), 24)
    hidden_shift = max(0, q1 - HIDDEN_SCALE_LOG2)
    g = 2.0 ** (q1 - hidden_shift)  # h_int = g * h_float
    _, log_scale = net(codes)
    l2 = (log_scale / math.log(2.0)).flatten()[:1_000_000]  # torch.quantile's input limit
    lo, hi = (float(v) for v in torch.quantile(l2, torch.tensor([0.005, 0.995])))
    per_octave = (bins - 1) / max(hi - lo, 1e-6)
    # outputs in float: mean = 64 (wm h + vm z / 64 + bm) + 128;
    # bin = per_octave * ((o_s + ln 4) / ln 2 - lo) = alpha * o_s + beta
    alpha = per_octave / math.log(2.0)
    beta = per_octave * (math.log(4.0) / math.log(2.0) - lo)
    wo, bo = net.out.weight * net.out.mask, net.out.bias
    ws, bs = net.skip.weight * net.skip.mask, net.skip.bias
    mean_h, mean_z = 64.0 * wo[:n] / g, ws[:n]
    mean_b = 64.0 * (bo[:n] + bs[:n]) + 128.0
    scale_h, scale_z = alpha * wo[n:] / g, alpha * ws[n:] / 64.0
    scale_b = alpha * (bo[n:] + bs[n:]) + beta
    out_max = max(float(mean_h.abs().max()), float(mean_z.abs().max()), float(scale_h.abs().max()),
                  float(scale_z.abs().max()))
    q = _shift_for(out_max, 24)
    r = lambda t: torch.round(t * 2.0 ** q).long()  # noqa: E731
    return {
        "elements": n, "hidden": h, "bins": bins, "hidden_shift": hidden_shift, "out_shift": q,
        "deg": deg,
        "b1": torch.round(net.inp.bias * 2.0 ** q1).long(),
        "w1": torch.round(w1 * 2.0 ** q1).long(),
        "bm": r(mean_b), "wm": r(mean_h), "vm": r(mean_z),
        "bs": r(scale_b), "ws": r(scale_h), "vs": r(scale_z),
    }


def _round_q(v, q):
    return torch.div(v + (1 << (q - 1)) if q > 0 else v, 1 << q, rounding_mode="floor")


def outputs(m, codes):
    """The integer network on codes [N, elements] -> (predictions [N, n], bins [N, n]), int64."""
    z = codes.long() - 128
    a = z @ m["w1"].T + m["b1"]
    h = torch.div(a.clamp_min(0), 1 << m["hidden_shift"], rounding_mode="floor").clamp_max(HIDDEN_MAX)
    mean = h @ m["wm"].T + z @ m["vm"].T + m["bm"]
    scale = h @ m["ws"].T + z @ m["vs"].T + m["bs"]
    pred = _round_q(mean, m["out_shift"]).clamp(0, 255)
    b = _round_q(scale, m["out_shift"]).clamp(0, m["bins"] - 1)
    return pred, b


def symbols_and_tables(m, codes, groups):
    """(symbols [N, n], table indices [N, n]) of codes under m: table = group * bins + bin, the
    group of element i being i * groups // n (channels when groups is the channel count)."""
    pred, b = outputs(m, codes)
    n = codes.shape[1]
    group = torch.arange(n) * groups // n
    return (codes.long() - pred + 128) % 256, group[None, :] * m["bins"] + b


def encode(m, groups):
    """The format-3 predictor section (after the tables; see src/codec/tables.cpp)."""
    n, h = m["elements"], m["hidden"]
    deg = m["deg"].tolist()
    out = bytearray(struct.pack("<IIIIBB", n, h, m["bins"], groups, m["hidden_shift"], m["out_shift"]))

    def i16(vals):
        vals = list(vals)
        if any(abs(v) > WEIGHT_MAX for v in vals):
            raise ValueError("context model weight outside int16")
        return struct.pack(f"<{len(vals)}h", *vals)

    for k in range(h):
        out += struct.pack("<Iq", deg[k], int(m["b1"][k]))
        out += i16(m["w1"][k, :deg[k] + 1].tolist())
    for i in range(n):
        visible = sum(1 for d in deg if d < i)  # a prefix: degrees are sorted
        for b, w, v in ((m["bm"], m["wm"], m["vm"]), (m["bs"], m["ws"], m["vs"])):
            out += struct.pack("<q", int(b[i]))
            out += i16(w[i, :visible].tolist())
            out += i16(v[i, :i].tolist())
    return bytes(out)
