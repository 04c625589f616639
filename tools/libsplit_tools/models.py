"""The Fashion-MNIST teacher (a small ResNet) and BottleFit students built on it.

Teacher feature shapes for a [N,1,28,28] input:
  stem   -> 32 x 28 x 28
  layer1 -> 32 x 28 x 28
  layer2 -> 64 x 14 x 14
  layer3 -> 128 x 7 x 7
  pool   -> 128
  fc     -> 10 logits
A BottleFit student replaces stem..layer2 with a light encoder that ends in `width` channels
at 7 x 7 (the bottleneck, sent over the network) and a decoder at the start of the tail that
restores the teacher's layer2 output shape (64 x 14 x 14); layer3, pool and fc are the teacher's.
"""
import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, mid=None):
        super().__init__()
        mid = cout if mid is None else mid  # a pruned block has fewer inner channels
        self.conv1 = nn.Conv2d(cin, mid, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv2 = nn.Conv2d(mid, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class Teacher(nn.Module):
    """ResNet-style CNN for 1x28x28 inputs; each stage is a named child so splits can name it.

    `channels` sets the width of every channel group (see CHANNELS): a channel-pruned teacher is
    the same network with fewer channels. Groups tied by an identity shortcut share one entry:
    "a" is the stem's output and layer1's output (layer1 adds its input to its output).
    """

    STAGES = ["stem", "layer1", "layer2", "layer3", "pool", "fc"]
    CHANNELS = {"a": 32, "l1mid": 32, "l2mid": 64, "b": 64, "l3mid": 128, "c": 128}

    def __init__(self, num_classes=10, channels=None):
        super().__init__()
        ch = dict(self.CHANNELS, **(channels or {}))
        self.channels = ch
        self.stem = nn.Sequential(nn.Conv2d(1, ch["a"], 3, 1, 1, bias=False), nn.BatchNorm2d(ch["a"]),
                                  nn.ReLU(inplace=True))
        self.layer1 = BasicBlock(ch["a"], ch["a"], 1, ch["l1mid"])
        self.layer2 = BasicBlock(ch["a"], ch["b"], 2, ch["l2mid"])
        self.layer3 = BasicBlock(ch["b"], ch["c"], 2, ch["l3mid"])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(ch["c"], num_classes)

    def forward(self, x):
        for name in self.STAGES:
            x = getattr(self, name)(x)
        return x

    def features(self, x, upto):
        """Output of stage `upto` (inclusive)."""
        for name in self.STAGES:
            x = getattr(self, name)(x)
            if name == upto:
                return x
        raise KeyError(upto)


class Encoder(nn.Module):
    """Device side of a BottleFit student: 1x28x28 -> width x 7 x 7."""

    def __init__(self, width):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, width, 3, 2, 1, bias=True))

    def forward(self, x):
        return self.net(x)


class Decoder(nn.Module):
    """Edge side of a BottleFit student: width x 7 x 7 -> the teacher's 64 x 14 x 14."""

    def __init__(self, width):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(width, 96, 3, 1, 1, bias=False), nn.BatchNorm2d(96), nn.ReLU(inplace=True),
            nn.ConvTranspose2d(96, 64, 2, 2, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True))

    def forward(self, z):
        return self.net(z)


class Tail(nn.Module):
    """Runs the teacher's stages after `start` (exclusive); optional decoder first."""

    def __init__(self, teacher, after, decoder=None):
        super().__init__()
        self.decoder = decoder if decoder is not None else nn.Identity()
        idx = Teacher.STAGES.index(after)
        self.stages = nn.Sequential(*[getattr(teacher, n) for n in Teacher.STAGES[idx + 1:]])

    def forward(self, z):
        return self.stages(self.decoder(z))


class Head(nn.Module):
    """Runs the teacher's stages up to `upto` (inclusive)."""

    def __init__(self, teacher, upto):
        super().__init__()
        idx = Teacher.STAGES.index(upto)
        self.stages = nn.Sequential(*[getattr(teacher, n) for n in Teacher.STAGES[:idx + 1]])

    def forward(self, x):
        return self.stages(x)


class Student(nn.Module):
    """BottleFit student: encoder (head) + decoder + the teacher's layer3/pool/fc (tail)."""

    def __init__(self, teacher, width):
        super().__init__()
        self.width = width
        self.encoder = Encoder(width)
        self.tail = Tail(teacher, "layer2", Decoder(width))

    def forward(self, x):
        return self.tail(self.encoder(x))
