"""Bottleneck quantization, the formula of torchdistill's quantize_tensor/dequantize_tensor.

Per tensor, asymmetric, b bits: qmin=0, qmax=2^b-1, scale=(max-min)/(qmax-qmin),
zero_point=int(clamp(qmin - min/scale, qmin, qmax)), q=round(clamp(zero_point + x/scale)).
libsplit's C++ codec is tested bit-exact against these functions. A constant tensor
(max == min) has no defined scale in the original; libsplit uses |value| / qmax there (1 for 0),
which represents the constant exactly.
"""
import torch


def quantize_tensor(x, num_bits=8):
    qmin = 0.0
    qmax = 2.0 ** num_bits - 1.0
    min_val, max_val = x.min(), x.max()
    scale = (max_val - min_val) / (qmax - qmin)
    if float(scale) == 0.0:  # constant tensor: make the constant exactly representable
        v = min_val.abs()
        scale = v / (qmax - qmin) if float(v) > 0.0 else torch.ones_like(scale)
    initial_zero_point = qmin - min_val / scale
    if initial_zero_point < qmin:
        zero_point = qmin
    elif initial_zero_point > qmax:
        zero_point = qmax
    else:
        zero_point = initial_zero_point
    zero_point = int(zero_point)
    qx = zero_point + x / scale
    qx.clamp_(qmin, qmax).round_()
    return qx.round().byte(), scale, zero_point


def dequantize_tensor(q, scale, zero_point):
    return scale * (q.float() - zero_point)


def _per_sample_params(flat, num_bits):
    """Scale and zero point of each row of flat [N, elements] (the formula above, per sample)."""
    qmin, qmax = 0.0, 2.0 ** num_bits - 1.0
    min_val = flat.min(dim=1, keepdim=True).values
    max_val = flat.max(dim=1, keepdim=True).values
    scale = (max_val - min_val) / (qmax - qmin)
    const = min_val.abs() / (qmax - qmin)
    scale = torch.where(scale == 0, torch.where(const > 0, const, torch.ones_like(scale)), scale)
    zero_point = (qmin - min_val / scale).clamp(qmin, qmax).trunc()
    return scale, zero_point


def quantize_per_sample(z, num_bits=8):
    """Quantize then dequantize each sample of a batch on its own (as the device sends them)."""
    flat = z.reshape(z.shape[0], -1)
    scale, zero_point = _per_sample_params(flat, num_bits)
    q = (zero_point + flat / scale).clamp(0.0, 2.0 ** num_bits - 1.0).round()
    return (scale * (q - zero_point)).reshape(z.shape)


class FakeQuant(torch.autograd.Function):
    """Per-sample 8-bit quantize/dequantize in the forward pass, identity gradient."""

    @staticmethod
    def forward(ctx, z, num_bits):
        return quantize_per_sample(z.detach(), num_bits)

    @staticmethod
    def backward(ctx, grad):
        return grad, None


def codes_per_sample(z, num_bits=8):
    """The 8-bit codes the device sends for each sample of a batch: [N, elements] int64."""
    flat = z.reshape(z.shape[0], -1)
    scale, zero_point = _per_sample_params(flat, num_bits)
    return (zero_point + flat / scale).clamp(0.0, 2.0 ** num_bits - 1.0).round().long()
