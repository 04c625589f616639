"""Fashion-MNIST from Debian's dataset-fashion-mnist package (IDX gzip files)."""
import gzip
import os
import struct

import numpy as np
import torch

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Mean and std of the training images after scaling pixels to [0, 1].
MEAN = 0.2860
STD = 0.3530


def _open(path):
    if os.path.exists(path):
        return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")
    if os.path.exists(path + ".gz"):
        return gzip.open(path + ".gz", "rb")
    raise FileNotFoundError(f"{path}: no such IDX file (install dataset-fashion-mnist)")


def read_idx(path):
    """Returns a numpy array from an IDX file (uint8 data only, as Fashion-MNIST uses)."""
    with _open(path) as f:
        magic = f.read(4)
        if len(magic) != 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != 0x08:
            raise ValueError(f"{path}: not an unsigned-byte IDX file (magic {magic!r})")
        ndim = magic[3]
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        data = np.frombuffer(f.read(), dtype=np.uint8)
    expected = int(np.prod(dims))
    if data.size != expected:
        raise ValueError(f"{path}: expected {expected} bytes of data for shape {dims}, got {data.size}")
    return data.reshape(dims)


def load(split, root=DEFAULT_DIR):
    """Returns (images uint8 tensor [N,1,28,28], labels int64 tensor [N]) for 'train' or 'test'."""
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(root, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(root, f"{prefix}-labels-idx1-ubyte.gz"))
    return (torch.from_numpy(images.copy()).unsqueeze(1),
            torch.from_numpy(labels.astype(np.int64)))


def normalize(images_u8):
    """uint8 [N,1,28,28] -> float, scaled to [0,1] then standardised with MEAN/STD."""
    return (images_u8.float() / 255.0 - MEAN) / STD


def augment(images_u8, generator):
    """Random crop (padding 2) and horizontal flip on a uint8 batch, seeded by `generator`."""
    n = images_u8.shape[0]
    padded = torch.nn.functional.pad(images_u8, (2, 2, 2, 2))
    dx = torch.randint(0, 5, (n,), generator=generator)
    dy = torch.randint(0, 5, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(images_u8)
    for i in range(n):
        crop = padded[i, :, dy[i]:dy[i] + 28, dx[i]:dx[i] + 28]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out
