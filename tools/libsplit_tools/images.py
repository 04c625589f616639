"""Image data for any classifier: ImageFolder trees and the manifest's preprocessing.

The preprocessing is the one the C++ runtime applies (manifest `input.preprocess`), done with the
same library (OpenCV) and the same arithmetic, so a model sees the same pixels in training,
evaluation and through split-client:

  decode (gray model: grayscale; colour model: 3 channels, alpha dropped, gray replicated)
  -> scale the shorter side to `resize` (the longer side to floor(resize * long / short)),
     interpolation "area", "bilinear" or "nearest" (cv2.INTER_AREA / INTER_LINEAR / INTER_NEAREST)
  -> centre crop to `crop` (offsets round((H - h) / 2), round half to even, as torchvision's)
  -> float pixels / 255 -> (x - mean) / std per channel, in float32.

ImageFolder layout: DIR/train/<class>/*, DIR/val/<class>/*, optional DIR/test/<class>/*; JPEG,
PNG and BMP files of any size, gray, RGB or RGBA. Class names are the folder names, sorted.
"""
import hashlib
import os
from dataclasses import dataclass, field
from typing import List, Tuple

import numpy as np
import torch

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp")
INTERPOLATIONS = ("area", "bilinear", "nearest")
IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


class DataError(Exception):
    """A problem with the user's data; the message is one line naming the file or folder."""


def _cv2():
    try:
        import cv2  # noqa: WPS433 - imported where needed: slow, and optional for the other tools
    except ImportError:
        raise DataError("reading images needs OpenCV for Python (Debian package python3-opencv; "
                        "tools/install-deps.sh installs it)") from None
    cv2.setNumThreads(1)
    return cv2


@dataclass
class Preprocess:
    """The manifest's input description: channels, resize, centre crop, normalisation."""
    size: Tuple[int, int]  # (height, width) of the model's input
    resize: int            # shorter side before the crop
    channel_order: str = "rgb"  # "rgb", "bgr" or "gray"
    interpolation: str = "area"
    mean: List[float] = field(default_factory=lambda: list(IMAGENET_MEAN))
    std: List[float] = field(default_factory=lambda: list(IMAGENET_STD))

    @property
    def channels(self):
        return 1 if self.channel_order == "gray" else 3

    def check(self):
        h, w = self.size
        if h < 1 or w < 1:
            raise DataError(f"input size {h}x{w} must be positive")
        if self.resize < max(h, w):
            raise DataError(f"--resize {self.resize} is smaller than the input size {max(h, w)} (the crop needs it)")
        if self.interpolation not in INTERPOLATIONS:
            raise DataError(f"interpolation '{self.interpolation}' is not one of {', '.join(INTERPOLATIONS)}")
        if self.channel_order not in ("rgb", "bgr", "gray"):
            raise DataError(f"channel order '{self.channel_order}' is not rgb, bgr or gray")
        for name, v in (("mean", self.mean), ("std", self.std)):
            if len(v) != self.channels:
                raise DataError(f"--{name} has {len(v)} values; the {self.channel_order} input has {self.channels} channels")
        if any(s <= 0 for s in self.std):
            raise DataError("--std values must be positive")

    def manifest_input(self):
        h, w = self.size
        return {"shape": [1, self.channels, h, w], "dtype": "float32", "mean": list(self.mean), "std": list(self.std),
                "channel_order": self.channel_order, "layout": "NCHW",
                "preprocess": {"resize": self.resize, "crop": [h, w], "interpolation": self.interpolation}}

    def normalize(self, images_u8):
        """uint8 [N, C, H, W] -> float32, (x / 255 - mean) / std per channel (as the C++ runtime)."""
        c = images_u8.shape[1]
        mean = torch.tensor(self.mean, dtype=torch.float32).view(1, c, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(1, c, 1, 1)
        return (images_u8.float() / 255.0 - mean) / std


def _flag(cv2, interpolation):
    return {"area": cv2.INTER_AREA, "bilinear": cv2.INTER_LINEAR, "nearest": cv2.INTER_NEAREST}[interpolation]


def decode(data, path, prep):
    """Bytes of an image file -> uint8 HWC array in the model's channel order (not resized)."""
    cv2 = _cv2()
    gray = prep.channel_order == "gray"
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_GRAYSCALE if gray else cv2.IMREAD_COLOR) \
        if len(data) else None
    if img is None:
        raise DataError(f"{path}: cannot be decoded (not a PNG, JPEG or BMP image OpenCV can read)")
    if gray:
        img = img[:, :, None]
    elif prep.channel_order == "rgb":
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img


def resize_shorter(img, side, interpolation):
    """Scales the shorter side to `side` (the longer to floor(side * long / short))."""
    cv2 = _cv2()
    h, w = img.shape[:2]
    if h <= w:
        nh, nw = side, side * w // h
    else:
        nh, nw = side * h // w, side
    if (nh, nw) != (h, w):
        img = cv2.resize(img, (nw, nh), interpolation=_flag(cv2, interpolation))
        if img.ndim == 2:
            img = img[:, :, None]
    return img


def center_crop(img, h, w):
    top = int(round((img.shape[0] - h) / 2.0))
    left = int(round((img.shape[1] - w) / 2.0))
    return img[top:top + h, left:left + w]


def preprocess_u8(data, path, prep):
    """Bytes of an image file -> uint8 CHW tensor of the model's input size (before normalisation)."""
    img = center_crop(resize_shorter(decode(data, path, prep), prep.resize, prep.interpolation), *prep.size)
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def load_u8(path, prep):
    with open(path, "rb") as f:
        return preprocess_u8(f.read(), path, prep)


# ---------------------------------------------------------------------------------------------
# ImageFolder trees

@dataclass
class Folder:
    root: str
    classes: List[str]
    files: dict  # part ("train", "val", "test") -> [(path, class index)]


def _list_images(d):
    try:
        names = sorted(os.listdir(d))
    except OSError as e:
        raise DataError(f"{d}: cannot list ({e.strerror})") from None
    return [os.path.join(d, n) for n in names if n.lower().endswith(EXTENSIONS) and os.path.isfile(os.path.join(d, n))]


def scan(root):
    """Reads DIR/{train,val[,test]}/<class>/* and checks it. Raises DataError with one line."""
    if not os.path.isdir(root):
        raise DataError(f"{root}: no such directory (expected DIR/train/<class>/*, DIR/val/<class>/*)")
    parts = {}
    classes = None
    for part in ("train", "val", "test"):
        d = os.path.join(root, part)
        if not os.path.isdir(d):
            if part == "test":
                continue
            raise DataError(f"{d}: missing (the data directory needs train/ and val/, each with one folder per class)")
        names = sorted(n for n in os.listdir(d) if os.path.isdir(os.path.join(d, n)) and not n.startswith("."))
        if not names:
            raise DataError(f"{d}: has no class folders (expected {d}/<class>/<image files>)")
        if classes is None:
            classes = names
        elif names != classes:
            extra = sorted(set(names) - set(classes))
            missing = sorted(set(classes) - set(names))
            what = f"has {', '.join(extra)} that train/ has not" if extra else f"lacks {', '.join(missing)}"
            raise DataError(f"{d}: {what} (every part needs the same class folders)")
        files = []
        for k, name in enumerate(names):
            imgs = _list_images(os.path.join(d, name))
            if not imgs:
                raise DataError(f"{os.path.join(d, name)}: class folder has no .png/.jpg/.jpeg/.bmp files")
            files += [(p, k) for p in imgs]
        parts[part] = files
    if len(classes) < 2:
        raise DataError(f"{root}: {len(classes)} class folder; a classifier needs at least 2")
    return Folder(root, classes, parts)


def fingerprint(folder):
    """SHA-256 over every file's part, class, name and bytes (the data a recipe trained on)."""
    h = hashlib.sha256()
    for part in sorted(folder.files):
        for path, k in folder.files[part]:
            h.update(f"{part}/{folder.classes[k]}/{os.path.basename(path)}\0".encode())
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def _decode_one(args):
    path, prep, square = args
    with open(path, "rb") as f:
        data = f.read()
    img = resize_shorter(decode(data, path, prep), prep.resize, prep.interpolation)
    img = center_crop(img, prep.resize, prep.resize) if square else center_crop(img, *prep.size)
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def load_part(folder, part, prep, square=False, workers=1, progress=None):
    """All images of a part as (uint8 tensor [N, C, H, W], int64 labels [N]).

    square=False: the model's input (resize, centre crop), as at evaluation and in the runtime.
    square=True: resized and centre-cropped to resize x resize, for random crops in training.
    """
    files = folder.files[part]
    jobs = [(p, prep, square) for p, _ in files]
    if workers > 1 and len(jobs) > 256:
        import multiprocessing as mp
        with mp.get_context("fork").Pool(workers) as pool:
            it = pool.imap(_decode_one, jobs, chunksize=64)
            arrays = list(progress(it, total=len(jobs)) if progress else it)
    else:
        it = map(_decode_one, jobs)
        arrays = list(progress(it, total=len(jobs)) if progress else it)
    images = torch.from_numpy(np.stack(arrays)) if arrays else torch.empty(0, dtype=torch.uint8)
    labels = torch.tensor([k for _, k in files], dtype=torch.int64)
    return images, labels


def augment(images_u8, size, generator, flip=True):
    """Random crops of `size` (h, w) from a uint8 batch, and horizontal flips, seeded."""
    n, _, hh, ww = images_u8.shape
    h, w = size
    dy = torch.randint(0, hh - h + 1, (n,), generator=generator)
    dx = torch.randint(0, ww - w + 1, (n,), generator=generator)
    flips = torch.rand(n, generator=generator) < 0.5 if flip else torch.zeros(n, dtype=torch.bool)
    out = torch.empty((n, images_u8.shape[1], h, w), dtype=images_u8.dtype)
    for i in range(n):
        crop = images_u8[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
        out[i] = crop.flip(-1) if flips[i] else crop
    return out


def center(images_u8, size):
    """Centre crops of `size` from a batch made with square=True (what evaluation sees)."""
    h, w = size
    top = int(round((images_u8.shape[2] - h) / 2.0))
    left = int(round((images_u8.shape[3] - w) / 2.0))
    return images_u8[:, :, top:top + h, left:left + w]


def from_manifest(manifest):
    """The Preprocess a bundle's manifest describes, or None when its input has no `preprocess`."""
    inp = manifest.get("input", {})
    pre = inp.get("preprocess")
    if not pre:
        return None
    shape = inp["shape"]
    return Preprocess(size=(int(shape[2]), int(shape[3])), resize=int(pre["resize"]),
                      channel_order=inp.get("channel_order", "rgb"), interpolation=pre.get("interpolation", "area"),
                      mean=[float(v) for v in inp["mean"]], std=[float(v) for v in inp["std"]])
