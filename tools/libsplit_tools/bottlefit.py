"""BottleFit for any cut-able classifier: a learned bottleneck injected after a module.

The student of width W at module M (output C x H x W_M of the teacher):
  head = the teacher's modules up to M (copied) + encoder: conv 3x3 (stride s) -> BN -> ReLU ->
         conv 1x1 to W channels (the bottleneck, W x ceil(H/s) x ceil(W_M/s));
  tail = decoder: conv 3x3 -> BN -> ReLU -> nearest upsampling to H x W_M -> conv 3x3 -> BN ->
         ReLU -> conv 1x1 to C channels (linear, so it can restore any feature map), then the
         teacher's modules after M (copied).
Stage (i), head distillation: the head and the decoder train (the teacher's later modules stay
frozen, they are not in the loss), loss = MSE between the decoder's output and the teacher's
output at M; Adam, cosine decay. Stage (ii), knowledge distillation: the whole student trains
with the bottleneck quantized per image in the forward pass (straight-through gradient), loss =
alpha * CE(student, label) + (1 - alpha) * T^2 * KL(teacher / T || student / T); SGD momentum
0.9, cosine decay, weight decay 5e-4. Defaults T = 1, alpha = 0.5 (BottleFit's).
"""
import copy
import math
from typing import List

import torch
import torch.nn.functional as F
from torch import nn

from . import quant


class Nearest(nn.Module):
    """Nearest upsampling to a fixed size as the one operator it runs (scripting nn.Upsample
    pulls in resampling operators that LibTorch 1.10, a Jetson Nano's, does not have)."""

    def __init__(self, out_hw: List[int]):
        super().__init__()
        self.out_hw = out_hw

    def forward(self, x):
        return torch._C._nn.upsample_nearest2d(x, self.out_hw)


def encoder(channels, width, stride):
    hidden = min(channels, 256)
    return nn.Sequential(nn.Conv2d(channels, hidden, 3, stride, 1, bias=False), nn.BatchNorm2d(hidden),
                         nn.ReLU(inplace=True), nn.Conv2d(hidden, width, 1))


def decoder(width, channels, out_hw):
    hidden = min(channels, 256)
    return nn.Sequential(nn.Conv2d(width, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                         Nearest([int(v) for v in out_hw]),
                         nn.Conv2d(hidden, hidden, 3, 1, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(inplace=True),
                         nn.Conv2d(hidden, channels, 1))


class Student(nn.Module):
    def __init__(self, seq, k, feature_shape, width, stride, bits):
        super().__init__()
        c, h, w = feature_shape
        self.prefix = nn.Sequential(*[copy.deepcopy(m) for _, m in seq[:k + 1]])
        self.encoder = encoder(c, width, stride)
        self.decoder = decoder(width, c, (h, w))
        self.suffix = nn.Sequential(*[copy.deepcopy(m) for _, m in seq[k + 1:]])
        self.bits = bits

    def head(self):
        return nn.Sequential(self.prefix, self.encoder)

    def tail(self):
        return nn.Sequential(self.decoder, self.suffix)

    def features(self, x, quantize=False):
        z = self.encoder(self.prefix(x))
        if quantize:
            z = quant.FakeQuant.apply(z, self.bits)
        return self.decoder(z)

    def forward(self, x, quantize=True):
        return self.suffix(self.features(x, quantize))


def kd_loss(logits, teacher_logits, labels, alpha=0.5, temperature=1.0):
    t = temperature
    kl = F.kl_div(F.log_softmax(logits / t, 1), F.softmax(teacher_logits / t, 1), reduction="batchmean")
    return alpha * F.cross_entropy(logits, labels) + (1 - alpha) * t * t * kl


def hd_parameters(student):
    return list(student.prefix.parameters()) + list(student.encoder.parameters()) + list(student.decoder.parameters())


def hd_optimizer(student, lr):
    return torch.optim.Adam(hd_parameters(student), lr=lr)


def kd_optimizer(student, lr, weight_decay=5e-4):
    return torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def cosine(opt, total_steps, warmup=0):
    def factor(step):
        if warmup and step < warmup:
            return (step + 1) / warmup
        p = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * p))
    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


def hd_mode(student):
    """Stage (i): head and decoder train; the copied later modules stay in eval mode (frozen)."""
    student.train()
    student.suffix.eval()
    for p in student.suffix.parameters():
        p.requires_grad_(False)


def kd_mode(student):
    student.train()
    for p in student.parameters():
        p.requires_grad_(True)
