"""A factorized-prior entropy model (the non-parametric density of Balle et al., ICLR 2018,
appendix 6.1) and the variational bottleneck built on it, with no dependency beyond PyTorch.

Per channel c, a cumulative function F_c: R -> (0, 1) is a chain of small dense layers with
positive weights (softplus of free parameters) and monotone nonlinearities x + tanh(a) * tanh(x)
(|tanh(a)| < 1 keeps them increasing), ending in a sigmoid; it is increasing by construction.
The probability of an integer symbol k is F_c(k + 0.5) - F_c(k - 0.5). During training the
bottleneck gets additive uniform noise (a differentiable stand-in for rounding) for the rate
term, and rounds with a straight-through gradient on the path to the decoder, so the tail learns
on exactly what the wire carries.

The wire codes a symbol k as the 8-bit code k + 128 (codes 0..255, k in [-128, 127]): the
bottleneck is clamped to that range. `tables()` turns each channel's density into 16-bit
frequencies for libsplit's rANS coder (a range of codes plus an escape for the rest).
"""
import math

import torch
import torch.nn.functional as F
from torch import nn

ZERO_CODE = 128  # code of symbol 0
LOW, HIGH = -128, 127  # symbol range the 8-bit codes cover
SCALE_BITS = 16


class FactorizedPrior(nn.Module):
    def __init__(self, channels, filters=(3, 3, 3), init_scale=10.0):
        super().__init__()
        self.channels = channels
        dims = (1,) + tuple(filters) + (1,)
        scale = init_scale ** (1.0 / (len(dims) - 1))
        self.matrices = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.factors = nn.ParameterList()
        for i in range(len(dims) - 1):
            init = math.log(math.expm1(1.0 / scale / dims[i + 1]))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[i + 1], dims[i]), init)))
            self.biases.append(nn.Parameter(torch.empty(channels, dims[i + 1], 1).uniform_(-0.5, 0.5)))
            if i < len(dims) - 2:
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[i + 1], 1)))

    def logits_cdf(self, x):
        """x: [C, 1, M] -> [C, 1, M], the pre-sigmoid cumulative of each channel."""
        for i, (m, b) in enumerate(zip(self.matrices, self.biases)):
            x = torch.matmul(F.softplus(m), x) + b
            if i < len(self.factors):
                x = x + torch.tanh(self.factors[i]) * torch.tanh(x)
        return x

    def likelihood(self, y):
        """y: [N, C, H, W] (integers or noisy values) -> probability of each element's bin."""
        n, c, h, w = y.shape
        v = y.permute(1, 0, 2, 3).reshape(c, 1, -1)
        lower = self.logits_cdf(v - 0.5)
        upper = self.logits_cdf(v + 0.5)
        # Differences of sigmoids far in a tail are taken on the side where they do not cancel.
        sign = -torch.sign(lower + upper).detach()
        p = torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower))
        return p.reshape(c, n, h, w).permute(1, 0, 2, 3).clamp_min(1e-9)

    @torch.no_grad()
    def pmf(self):
        """[C, 256]: each channel's probability of every symbol LOW..HIGH."""
        k = torch.arange(LOW, HIGH + 1, dtype=torch.float32).expand(self.channels, 1, -1)
        lower = self.logits_cdf(k - 0.5)
        upper = self.logits_cdf(k + 0.5)
        sign = -torch.sign(lower + upper)
        return torch.abs(torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).reshape(self.channels, -1)

    @torch.no_grad()
    def tables(self, min_prob=2.0 ** -20):
        """Per channel: (offset, frequencies) for libsplit's rANS Table, codes [offset, offset + n)
        then the escape. The range is the smallest one holding every symbol more likely than
        min_prob; the escape gets the rest of the mass (at least one slot)."""
        out = []
        for p in self.pmf().double():
            keep = (p > min_prob).nonzero().flatten()
            lo, hi = (int(keep[0]), int(keep[-1])) if keep.numel() else (ZERO_CODE, ZERO_CODE)
            probs = p[lo:hi + 1].tolist() + [max(0.0, 1.0 - float(p[lo:hi + 1].sum()))]
            out.append((lo, quantize_pmf(probs)))
        return out


def quantize_pmf(probs, total=1 << SCALE_BITS):
    """Probabilities -> integer frequencies, each at least 1, summing to total (largest-remainder
    rounding, then the excess or shortfall taken from / given to the largest entries)."""
    n = len(probs)
    s = sum(probs)
    if s <= 0:
        probs, s = [1.0] * n, float(n)
    budget = total - n  # one slot each is reserved
    raw = [p / s * budget for p in probs]
    freqs = [1 + int(math.floor(r)) for r in raw]
    short = total - sum(freqs)
    order = sorted(range(n), key=lambda i: raw[i] - math.floor(raw[i]), reverse=True)
    for i in order[:short]:
        freqs[i] += 1
    assert sum(freqs) == total and min(freqs) >= 1
    return freqs


class RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, y):
        return torch.round(y)

    @staticmethod
    def backward(ctx, grad):
        return grad


def quantize_symbols(y):
    """What the wire carries: round, clamp to the 8-bit code range (straight-through gradient)."""
    return RoundSTE.apply(y.clamp(LOW, HIGH))


def bits(likelihoods):
    """Total information content in bits of each sample: [N]."""
    return -torch.log2(likelihoods).flatten(1).sum(1)
