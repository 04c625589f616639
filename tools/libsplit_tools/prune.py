"""Structured (channel) pruning of the Fashion-MNIST teacher.

A channel group (models.Teacher.CHANNELS) is the set of feature-map channels that must be kept or
removed together: the output channels of the layers that produce it, the BatchNorm that follows
each, and the input channels of every layer that consumes it. Group "a" is produced by the stem
and by layer1's second convolution and is added through layer1's identity shortcut, so both
producers vote on it.

Channel importance (one score per channel of a group): for every producing convolution, the L1
norm of the channel's filter times the scale its BatchNorm applies (|gamma| / sqrt(var + eps)),
i.e. the L1 norm of the BN-folded filter, divided by the mean over the layer's channels so that
producers of different magnitude count alike; the group's score is the sum over its producers.
The lowest-scoring channels are removed (Li et al., "Pruning Filters for Efficient ConvNets",
with the BN scale of network slimming folded in).
"""
import math

import torch
from torch import nn

from . import models

# group -> (producers as (conv, bn) attribute paths, consumers as (module path, kind)); kind
# "conv" slices input channels, "linear" slices input features.
GROUPS = {
    "a": ([("stem.0", "stem.1"), ("layer1.conv2", "layer1.bn2")],
          [("layer1.conv1", "conv"), ("layer2.conv1", "conv"), ("layer2.shortcut.0", "conv")]),
    "l1mid": ([("layer1.conv1", "layer1.bn1")], [("layer1.conv2", "conv")]),
    "l2mid": ([("layer2.conv1", "layer2.bn1")], [("layer2.conv2", "conv")]),
    "b": ([("layer2.conv2", "layer2.bn2"), ("layer2.shortcut.0", "layer2.shortcut.1")],
          [("layer3.conv1", "conv"), ("layer3.shortcut.0", "conv")]),
    "l3mid": ([("layer3.conv1", "layer3.bn1")], [("layer3.conv2", "conv")]),
    "c": ([("layer3.conv2", "layer3.bn2"), ("layer3.shortcut.0", "layer3.shortcut.1")],
          [("fc", "linear")]),
}


def _get(model, path):
    m = model
    for part in path.split("."):
        m = getattr(m, part)
    return m


def complexity(model, input_shape=(1, 1, 28, 28)):
    """(parameters, multiply-adds of one forward pass) of convolutions and linear layers."""
    macs = 0

    def conv_hook(m, _inp, out):
        nonlocal macs
        k = m.kernel_size[0] * m.kernel_size[1]
        macs += out.numel() // out.shape[0] * (m.in_channels // m.groups) * k

    def linear_hook(m, _inp, out):
        nonlocal macs
        macs += out.numel() // out.shape[0] * m.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(input_shape))
    model.train(was_training)
    for h in hooks:
        h.remove()
    params = sum(p.numel() for p in model.parameters())
    return params, macs


@torch.no_grad()
def channel_scores(teacher):
    """{group: tensor of per-channel importance}."""
    scores = {}
    for group, (producers, _) in GROUPS.items():
        total = None
        for conv_path, bn_path in producers:
            conv, bn = _get(teacher, conv_path), _get(teacher, bn_path)
            scale = bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)
            s = conv.weight.abs().flatten(1).sum(1) * scale
            s = s / s.mean().clamp_min(1e-12)
            total = s if total is None else total + s
        scores[group] = total
    return scores


def channels_for(keep_fraction):
    """Channel count of every group when a fraction of each is kept (at least 4 per group)."""
    return {g: max(4, int(round(n * keep_fraction))) for g, n in models.Teacher.CHANNELS.items()}


def keep_fraction_for(target_macs_ratio, input_shape=(1, 1, 28, 28)):
    """The largest uniform keep fraction whose pruned network has at most target_macs_ratio x
    the teacher's multiply-adds (bisection over the fraction; multiply-adds grow with it)."""
    _, full = complexity(models.Teacher(), input_shape)
    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        _, macs = complexity(models.Teacher(channels=channels_for(mid)), input_shape)
        if macs <= target_macs_ratio * full:
            lo = mid
        else:
            hi = mid
    if lo == 0.0:
        raise ValueError(f"no network of at least 4 channels per group has {target_macs_ratio} of the "
                         f"teacher's multiply-adds or fewer")
    return lo


@torch.no_grad()
def prune(teacher, channels):
    """A new Teacher with `channels` per group, holding the teacher's weights of the
    highest-scoring channels (kept in their original order)."""
    scores = channel_scores(teacher)
    keep = {}
    for group, n in channels.items():
        s = scores[group]
        if n > s.numel():
            raise ValueError(f"group {group}: cannot keep {n} of {s.numel()} channels")
        keep[group] = torch.sort(torch.topk(s, n).indices).values
    pruned = models.Teacher(channels=channels)
    src = dict(teacher.named_modules())
    dst = dict(pruned.named_modules())
    out_idx = {}   # module path -> kept output channels
    in_idx = {}    # module path -> kept input channels
    for group, (producers, consumers) in GROUPS.items():
        for conv_path, bn_path in producers:
            out_idx[conv_path] = keep[group]
            out_idx[bn_path] = keep[group]
        for path, _kind in consumers:
            in_idx[path] = keep[group]
    for name, m in src.items():
        d = dst[name]
        if isinstance(m, nn.Conv2d):
            w = m.weight
            if name in out_idx:
                w = w[out_idx[name]]
            if name in in_idx:
                w = w[:, in_idx[name]]
            d.weight.copy_(w)
        elif isinstance(m, nn.BatchNorm2d):
            idx = out_idx[name]
            d.weight.copy_(m.weight[idx])
            d.bias.copy_(m.bias[idx])
            d.running_mean.copy_(m.running_mean[idx])
            d.running_var.copy_(m.running_var[idx])
            d.num_batches_tracked.copy_(m.num_batches_tracked)
        elif isinstance(m, nn.Linear):
            w = m.weight
            if name in in_idx:
                w = w[:, in_idx[name]]
            d.weight.copy_(w)
            d.bias.copy_(m.bias)
    return pruned


def ratio_id(macs_ratio):
    """Candidate id for a fraction of the teacher's multiply-adds, e.g. 0.5 -> "pruned50"."""
    return f"pruned{int(math.floor(macs_ratio * 100 + 0.5))}"
