"""Channel pruning of any ResNet-family network (torchvision BasicBlock / Bottleneck blocks).

Inside a residual block the channels between its convolutions (conv1 -> conv2, and conv2 ->
conv3 in a Bottleneck) are free to prune: nothing outside the block reads them, so the block's
output, its shortcut and every other block keep their shapes. Each block keeps the same fraction
of its inner channels, found by bisection so the network's multiply-adds come to the asked
ratio; within a layer the channels kept are those with the largest L1 norm of their BN-folded
filter (|gamma| / sqrt(var + eps) times the filter's L1 norm), in their original order.
"""
import copy

import torch
from torch import nn

from .prune import complexity  # noqa: F401 - the same counting for every model


def _blocks(model):
    from torchvision.models.resnet import BasicBlock, Bottleneck
    return [(name, m) for name, m in model.named_modules() if isinstance(m, (BasicBlock, Bottleneck))]


def _inner(block):
    """[(conv, bn, next conv)] of the block's prunable inner channel groups."""
    pairs = [(block.conv1, block.bn1, block.conv2)]
    if hasattr(block, "conv3"):
        pairs.append((block.conv2, block.bn2, block.conv3))
    return pairs


def unsupported(model):
    """Why the model cannot be pruned here, or None."""
    if not _blocks(model):
        return (f"{type(model).__name__} has no ResNet blocks (BasicBlock / Bottleneck); channel pruning is "
                f"implemented for the ResNet family")
    for name, b in _blocks(model):
        for conv, _, nxt in _inner(b):
            if conv.groups != 1 or nxt.groups != 1:
                return f"block {name} has grouped convolutions (ResNeXt); not pruned"
    return None


def _scores(conv, bn):
    scale = (bn.weight.abs() / torch.sqrt(bn.running_var + bn.eps)).detach()
    return conv.weight.detach().abs().flatten(1).sum(1) * scale


def _spec(model, fraction):
    spec = {}
    for name, b in _blocks(model):
        groups = []
        for conv, bn, _ in _inner(b):
            n = conv.out_channels
            keep = max(1, int(round(n * fraction)))
            groups.append(torch.sort(torch.topk(_scores(conv, bn), keep).indices).values.tolist())
        spec[name] = groups
    return spec


@torch.no_grad()
def prune(model, spec):
    """Prunes `model` in place to the kept inner channels of `spec`; returns it."""
    blocks = dict(_blocks(model))
    for name, groups in spec.items():
        b = blocks[name]
        for (conv, bn, nxt), keep in zip(_inner(b), groups):
            idx = torch.tensor(keep, dtype=torch.long)
            conv.weight = nn.Parameter(conv.weight[idx].clone())
            conv.out_channels = len(keep)
            bn.weight = nn.Parameter(bn.weight[idx].clone())
            bn.bias = nn.Parameter(bn.bias[idx].clone())
            bn.running_mean = bn.running_mean[idx].clone()
            bn.running_var = bn.running_var[idx].clone()
            bn.num_features = len(keep)
            nxt.weight = nn.Parameter(nxt.weight[:, idx].clone())
            nxt.in_channels = len(keep)
    return model


def _lowest_ratio(model, input_shape):
    """The multiply-add ratio left when every block keeps one inner channel per group."""
    full = complexity(model, input_shape)[1]
    return complexity(prune(copy.deepcopy(model), _spec(model, 0.0)), input_shape)[1] / full


def plan(model, input_shape, ratio, tolerance=0.01):
    """The spec whose multiply-adds come closest to `ratio` of the model's (bisection on the
    fraction of inner channels kept). Raises ValueError when the ratio is out of reach."""
    full = complexity(model, input_shape)[1]
    lowest = _lowest_ratio(model, input_shape)
    if ratio < lowest + tolerance:
        raise ValueError(f"ratio {ratio} is below what pruning inner block channels reaches ({lowest:.2f})")
    lo, hi = 0.0, 1.0
    best = None
    for _ in range(20):
        mid = (lo + hi) / 2
        spec = _spec(model, mid)
        r = complexity(prune(copy.deepcopy(model), spec), input_shape)[1] / full
        if best is None or abs(r - ratio) < abs(best[1] - ratio):
            best = (spec, r)
        if abs(r - ratio) <= tolerance / 2:
            break
        lo, hi = (mid, hi) if r < ratio else (lo, mid)
    return best[0]


def check_ratios(model, input_shape, ratios):
    """A one-line reason if a ratio is out of reach, else None."""
    lowest = _lowest_ratio(model, input_shape)
    bad = [r for r in ratios if r < lowest + 0.01]
    if bad:
        return (f"ratio {bad[0]} is below what pruning the blocks' inner channels reaches for this network "
                f"({lowest:.2f} of its multiply-adds)")
    return None
