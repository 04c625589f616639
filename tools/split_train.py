#!/usr/bin/env python3
"""split-train: trains and exports a learned split of any image classifier as a libsplit bundle.

  /usr/bin/python3 tools/split_train.py --data DIR --arch resnet18 --train-teacher \\
      --input-size 64 --split-after layer1 --widths 2 4 --natural layer2 --out models/my-bundle
  /usr/bin/python3 tools/split_train.py --arch resnet50 --teacher-weights mine.pt --data DIR \\
      --input-size 224 --split-after layer1 --widths 12 --out my-resnet50
  /usr/bin/python3 tools/split_train.py --model net.py:make_net --data DIR --list-splits

Data: an ImageFolder tree, DIR/train/<class>/*, DIR/val/<class>/* and optionally DIR/test/<class>/*
(PNG, JPEG or BMP of any size, gray, RGB or RGBA); the class names are the folder names, sorted,
and become the bundle's labels. Every image is decoded, its shorter side scaled to --resize
(default: input size * 8/7, torchvision's 224-from-256 ratio) and centre-cropped to --input-size,
then normalised with --mean/--std (default: ImageNet's), exactly as the C++ runtime does it from
the manifest's input.preprocess, so photos of any size classify the same way on the device.

Teacher: --arch NAME (a torchvision classifier) with --teacher-weights FILE (a state dict, a
pickled model or a TorchScript file), or --model FILE.py:FACTORY (your nn.Module), or either with
--train-teacher to train it on the data first: SGD (momentum 0.9, nesterov) with a linear warm-up
and cosine decay, weight decay 5e-4, label smoothing 0.1, random crops from the resized image
and horizontal flips (--no-flip for data where mirroring changes the class). With
--teacher-weights as well, training fine-tunes them (a classifier of another class count is
replaced).

Split: --split-after MODULE (a cut point from --list-splits) and --widths W [W ...]: one learned
split per width (BottleFit: the teacher's modules up to MODULE, then an encoder to W channels at
--bottleneck-stride; a decoder restores MODULE's output, then the teacher's later modules).
Stage (i), head distillation (--epochs-hd, Adam --lr-hd): head and decoder learn the teacher's
output at MODULE; stage (ii), knowledge distillation (--epochs-kd, SGD --lr-kd): the whole
student learns from the labels and the teacher's scores with the --bits quantizer in the loop.
--natural MODULE ... adds cuts of the teacher itself (no training).

Output --out DIR: a bundle split-server and split-client load unchanged: full.pt, every split's
head and tail (TorchScript), the accuracy of the teacher and of every split (float bottleneck and
through its codec) on val, bytes per image, entropy tables calibrated on the training images
(q8rans where it beats plain q8), the LibTorch 1.10 (Jetson Nano) file-format check, the recipe
as recipe.toml and in the manifest with a fingerprint of the data. Optional --prune R ...: channel
-pruned copies of the teacher (ResNet family) at multiply-add ratio R, fine-tuned with KD, as the
bundle's local models.

Engineering: progress bars with ETA, one line per epoch with held-out (val) accuracy; a checkpoint
per epoch in --work (default OUT.work) and --resume to go on after an interruption (the recipe must
be the same); --seed; --threads. Errors in the input (data, model, weights, flags) are one line
naming the problem, and nothing is written.
"""
import argparse
import copy
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from libsplit_tools import arch, bottlefit, bundle, calibrate, images, quant  # noqa: E402

PROG = "split-train"
CL = torch.channels_last


EXPORT_ONLY = ("natural",)  # recipe settings a resumed run may change (nothing trained depends on them)


class RecipeError(Exception):
    """A flag combination that cannot work; one line."""


def log(msg):
    print(msg, flush=True)


def progress(iterable=None, **kw):
    try:
        from tqdm import tqdm
    except ImportError:  # the bars are a convenience; the epoch lines carry the figures
        return iterable if iterable is not None else _NoBar()
    return tqdm(iterable, file=sys.stderr, dynamic_ncols=True, leave=False, mininterval=1.0,
                disable=not sys.stderr.isatty() and os.environ.get("SPLIT_TRAIN_PROGRESS") != "1", **kw)


class _NoBar:
    def update(self, *_):
        pass

    def set_postfix_str(self, *_):
        pass

    def close(self):
        pass


# ---------------------------------------------------------------------------------------------
# flags

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, as every other refusal
        self.exit(2, f"{self.prog}: {message} (see --help)\n")


def parse_args(argv=None):
    ap = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = ap.add_argument_group("teacher")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--arch", help="torchvision classifier, e.g. " + ", ".join(arch.TORCHVISION_TESTED))
    src.add_argument("--model", metavar="FILE.py:FACTORY", help="your own nn.Module: FACTORY() returns it")
    g.add_argument("--teacher-weights", metavar="FILE", help="state dict, pickled model or TorchScript file")
    g.add_argument("--train-teacher", action="store_true", help="train (or fine-tune) the teacher on the data first")
    g.add_argument("--list-splits", action="store_true", help="print the modules where the network can be cut, and exit")
    g = ap.add_argument_group("data")
    g.add_argument("--data", metavar="DIR", help="ImageFolder tree: DIR/train/<class>/*, DIR/val/<class>/*, [DIR/test/<class>/*]")
    g.add_argument("--input-size", type=int, default=224, help="model input height and width (default 224)")
    g.add_argument("--resize", type=int, help="shorter side before the centre crop (default: input size * 8/7)")
    g.add_argument("--interpolation", choices=images.INTERPOLATIONS, default="area",
                   help="resampling of the resize (OpenCV's; default area)")
    g.add_argument("--mean", type=float, nargs="+", default=images.IMAGENET_MEAN, help="per channel (default ImageNet's)")
    g.add_argument("--std", type=float, nargs="+", default=images.IMAGENET_STD, help="per channel (default ImageNet's)")
    g.add_argument("--channel-order", choices=["rgb", "bgr", "gray"], default="rgb",
                   help="input channels (gray only with --model; default rgb)")
    g.add_argument("--no-flip", action="store_true", help="no horizontal flips in training augmentation")
    g = ap.add_argument_group("split")
    g.add_argument("--split-after", metavar="MODULE", help="cut point of the learned splits (see --list-splits)")
    g.add_argument("--widths", type=int, nargs="+", default=[], help="bottleneck channels, one learned split per width")
    g.add_argument("--bits", type=int, choices=[8, 4], default=8, help="bottleneck quantization (default 8)")
    g.add_argument("--bottleneck-stride", type=int, choices=[1, 2, 4], default=2,
                   help="spatial downsampling of the encoder (default 2)")
    g.add_argument("--natural", metavar="MODULE", nargs="+", default=[], help="also cut the teacher itself after these modules")
    g.add_argument("--prune", metavar="RATIO", type=float, nargs="+", default=[],
                   help="pruned local models at these multiply-add ratios (ResNet family), e.g. 0.5 0.3")
    g = ap.add_argument_group("training")
    g.add_argument("--epochs-teacher", type=int, default=30)
    g.add_argument("--epochs-hd", type=int, default=10)
    g.add_argument("--epochs-kd", type=int, default=10)
    g.add_argument("--epochs-prune", type=int, default=5, help="KD epochs of each pruned model")
    g.add_argument("--lr-teacher", type=float, help="peak learning rate (default 0.1 from scratch, 0.01 fine-tuning, each times batch size / 128)")
    g.add_argument("--lr-hd", type=float, default=1e-3)
    g.add_argument("--lr-kd", type=float, default=1e-2)
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument("--label-smoothing", type=float, default=0.1)
    g.add_argument("--kd-alpha", type=float, default=0.5, help="weight of the label loss against the teacher's (0.5)")
    g.add_argument("--kd-temperature", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=0, help="PyTorch threads (default: every core)")
    g = ap.add_argument_group("output")
    g.add_argument("--out", metavar="DIR", help="bundle directory to write (replaced when the run succeeds)")
    g.add_argument("--name", help="bundle name (default: the --out folder's name)")
    g.add_argument("--version", default="1.0.0")
    g.add_argument("--work", metavar="DIR", help="checkpoints and the decoded-data cache (default: OUT.work)")
    g.add_argument("--resume", action="store_true", help="go on from the checkpoint in --work")
    g.add_argument("--restart", action="store_true", help="discard a checkpoint in --work and start over")
    g.add_argument("--calibration-images", type=int, default=20000, help="training images that make the entropy tables")
    g.add_argument("--no-context", action="store_true", help="leave the context model out of the tables' candidates")
    g.add_argument("--context-steps", type=int, default=10000, help="training steps of the tables' context model")
    return ap.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# planning: everything checked before anything is written

def file_digest(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_teacher(args, num_classes, input_shape):
    if args.arch:
        if args.channel_order == "gray":
            raise RecipeError("torchvision architectures take 3 channels; --channel-order gray needs --model")
        model = arch.build_torchvision(args.arch, num_classes)
    else:
        model = arch.build_user(args.model)
    if args.teacher_weights:
        arch.load_weights(model, args.teacher_weights, replace_classifier=args.train_teacher)
    elif not args.train_teacher:
        raise RecipeError("the teacher has no weights: give --teacher-weights FILE or --train-teacher")
    seq = arch.sequence(model, input_shape)
    out = arch.shapes(seq, input_shape)[-1]
    if len(out) != 2 or out[1] != num_classes:
        raise RecipeError(f"the model's output is {list(out)}, but the data has {num_classes} classes "
                          f"(it needs [1, {num_classes}])")
    return model, seq


def recipe_of(args, prep, classes, data_fp):
    r = {
        "teacher": args.arch or args.model, "teacher_source": "torchvision" if args.arch else "module",
        "teacher_weights_sha256": file_digest(args.teacher_weights) if args.teacher_weights else "",
        "train_teacher": args.train_teacher, "input_size": prep.size[0], "resize": prep.resize,
        "interpolation": prep.interpolation, "mean": prep.mean, "std": prep.std, "channel_order": prep.channel_order,
        "flip": not args.no_flip, "split_after": args.split_after or "", "widths": args.widths, "bits": args.bits,
        "bottleneck_stride": args.bottleneck_stride, "natural": args.natural, "prune": args.prune,
        "epochs_teacher": args.epochs_teacher if args.train_teacher else 0, "epochs_hd": args.epochs_hd,
        "epochs_kd": args.epochs_kd, "epochs_prune": args.epochs_prune if args.prune else 0,
        "lr_teacher": args.lr_teacher if args.train_teacher else 0.0, "lr_hd": args.lr_hd, "lr_kd": args.lr_kd,
        "batch_size": args.batch_size, "label_smoothing": args.label_smoothing, "kd_alpha": args.kd_alpha,
        "kd_temperature": args.kd_temperature, "seed": args.seed, "classes": classes, "data_sha256": data_fp,
    }
    return r


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return json.dumps(str(v))  # a TOML basic string is a JSON string


def recipe_toml(recipe, command):
    lines = ["# The recipe split-train ran to make this bundle (also in manifest.json under \"recipe\").",
             f"command = {toml_value(command)}"]
    lines += [f"{k} = {toml_value(v)}" for k, v in recipe.items()]
    return "\n".join(lines) + "\n"


def plan(args):
    """Checks every input; returns what the run needs. Raises on the first problem."""
    if not args.arch and not args.model:
        raise RecipeError("name the teacher: --arch NAME (torchvision) or --model FILE.py:FACTORY")
    if args.input_size < 8:
        raise RecipeError(f"--input-size {args.input_size} is too small (at least 8)")
    resize = args.resize or max(args.input_size, int(round(args.input_size * 8 / 7)))
    prep = images.Preprocess(size=(args.input_size, args.input_size), resize=resize, channel_order=args.channel_order,
                             interpolation=args.interpolation, mean=list(args.mean), std=list(args.std))
    if args.channel_order == "gray" and args.mean == images.IMAGENET_MEAN:
        prep.mean, prep.std = [0.5], [0.5]
    prep.check()
    input_shape = (1, prep.channels) + prep.size
    if args.list_splits:
        num_classes = 1000
        folder = None
        if args.data:
            folder = images.scan(args.data)
            num_classes = len(folder.classes)
        if args.arch:
            model = arch.build_torchvision(args.arch, num_classes)
        else:
            model = arch.build_user(args.model)
        return {"prep": prep, "input_shape": input_shape, "seq": arch.sequence(model, input_shape)}
    if not args.data:
        raise RecipeError("--data DIR is required (an ImageFolder tree)")
    if not args.out:
        raise RecipeError("--out DIR is required (the bundle to write)")
    if not args.widths and not args.natural and not args.prune:
        raise RecipeError("nothing to make: give --split-after with --widths, and/or --natural MODULE")
    if args.widths and not args.split_after:
        raise RecipeError("--widths needs --split-after MODULE (see --list-splits)")
    if any(w < 1 for w in args.widths) or len(set(args.widths)) != len(args.widths):
        raise RecipeError(f"--widths {args.widths}: positive and distinct")
    for name in ("epochs_teacher", "epochs_hd", "epochs_kd", "epochs_prune"):
        if getattr(args, name) < 0:
            raise RecipeError(f"--{name.replace('_', '-')} must not be negative")
    if args.batch_size < 2:
        raise RecipeError("--batch-size must be at least 2 (batch normalisation)")
    if any(not 0 < r < 1 for r in args.prune):
        raise RecipeError(f"--prune {args.prune}: ratios between 0 and 1")
    if args.lr_teacher is None:
        args.lr_teacher = (0.01 if args.teacher_weights else 0.1) * args.batch_size / 128
    folder = images.scan(args.data)
    model, seq = build_teacher(args, len(folder.classes), input_shape)
    shapes = arch.shapes(seq, input_shape)
    raw = int(math.prod(input_shape))
    learned = []
    if args.widths:
        k = arch.index_of(seq, args.split_after)
        if len(shapes[k]) != 4:
            raise RecipeError(f"--split-after {args.split_after}: its output {list(shapes[k])} is not a feature map")
        c, h, w = shapes[k][1:]
        s = args.bottleneck_stride
        for width in args.widths:
            n = width * math.ceil(h / s) * math.ceil(w / s)
            nbytes = n if args.bits == 8 else (n + 1) // 2
            if nbytes >= raw:
                raise RecipeError(f"--widths {width}: the bottleneck [{width}, {math.ceil(h / s)}, {math.ceil(w / s)}] is "
                                  f"{nbytes} B at {args.bits} bits, not smaller than the {raw}-byte input")
            learned.append((width, n))
    naturals = []
    for mod in args.natural:
        k = arch.index_of(seq, mod, "--natural")
        n = int(math.prod(shapes[k]))
        if n >= raw:
            raise RecipeError(f"--natural {mod}: its output {list(shapes[k])} has {n} elements, not smaller than the "
                              f"{raw}-byte input (choose a later module)")
        naturals.append((mod, k))
    if args.prune:
        from libsplit_tools import prune_any
        why = prune_any.unsupported(model) or prune_any.check_ratios(model, input_shape, args.prune)
        if why:
            raise RecipeError(f"--prune: {why}")
    work = args.work or (args.out.rstrip("/") + ".work")
    data_fp = images.fingerprint(folder)
    recipe = recipe_of(args, prep, folder.classes, data_fp)
    ckpt_path = os.path.join(work, "checkpoint.pt")
    if os.path.exists(ckpt_path) and not args.restart:
        if not args.resume:
            raise RecipeError(f"{work} holds a checkpoint of an earlier run: --resume to go on with it, --restart to "
                              f"discard it")
        try:
            old = torch.load(ckpt_path, map_location="cpu")["recipe"]
        except Exception as e:  # noqa: BLE001
            raise RecipeError(f"--resume: {ckpt_path} cannot be read ({type(e).__name__}); --restart to discard it") from None
        # Natural cuts are made at export and train nothing: a resumed run may change them.
        diff = [k for k in sorted(set(old) | set(recipe)) if old.get(k) != recipe.get(k) and k not in EXPORT_ONLY]
        if diff:
            k = diff[0]
            raise RecipeError(f"--resume: the checkpoint in {work} was made by another recipe ({k}: "
                              f"{_short(old.get(k))} there, {_short(recipe.get(k))} here"
                              f"{f'; {len(diff) - 1} more differ' if len(diff) > 1 else ''})")
    elif args.resume and not os.path.exists(ckpt_path):
        raise RecipeError(f"--resume: {work} has no checkpoint to resume")
    return {"prep": prep, "input_shape": input_shape, "folder": folder, "model": model, "seq": seq, "shapes": shapes,
            "raw": raw, "learned": learned, "naturals": naturals, "work": work, "recipe": recipe,
            "ckpt_path": ckpt_path}


def _short(v):
    s = json.dumps(v)
    return s if len(s) < 40 else s[:37] + "..."


# ---------------------------------------------------------------------------------------------
# data

def load_data(p, args):
    """(train uint8 [N, C, R, R] for random crops, val (u8, labels), test or None). Reads a cache
    in the work directory when its data fingerprint and preprocessing match."""
    prep, folder = p["prep"], p["folder"]
    key = hashlib.sha256(json.dumps([p["recipe"]["data_sha256"], prep.size, prep.resize, prep.interpolation,
                                     prep.channel_order]).encode()).hexdigest()[:16]
    cache = os.path.join(p["work"], f"data-{key}.pt")
    if os.path.exists(cache):
        d = torch.load(cache)
        log(f"data: {d['train'][0].shape[0]} training, {d['val'][0].shape[0]} val images from the cache")
        return d["train"], d["val"], d.get("test"), None
    t0 = time.time()
    workers = max(1, min(os.cpu_count() or 1, 4))
    train = images.load_part(folder, "train", prep, square=True, workers=workers,
                             progress=lambda it, total: progress(it, total=total, desc="decode train", unit="img"))
    val = images.load_part(folder, "val", prep, workers=workers,
                           progress=lambda it, total: progress(it, total=total, desc="decode val", unit="img"))
    test = images.load_part(folder, "test", prep, workers=workers) if "test" in folder.files else None
    log(f"data: {train[0].shape[0]} training, {val[0].shape[0]} val"
        f"{f', {test[0].shape[0]} test' if test else ''} images in {len(folder.classes)} classes, decoded in "
        f"{time.time() - t0:.0f} s")
    return train, val, test, cache


def batches(n, batch_size, generator):
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n, batch_size):
        idx = perm[i:i + batch_size]
        if idx.numel() >= 2:  # batch normalisation needs two samples
            yield idx


def steps_per_epoch(n, batch_size):
    full, rest = divmod(n, batch_size)
    return full + (1 if rest >= 2 else 0)


# ---------------------------------------------------------------------------------------------
# checkpoints

def save_checkpoint(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def top1(model_fn, images_u8, labels, normalize):
    """Top-1 % of a model in training (channels-last inputs, as it trains) on val images."""
    return pct(predictions(lambda x: model_fn(x.contiguous(memory_format=CL)), images_u8, normalize), labels)


@torch.no_grad()
def recalibrate_bn(model, forward, images_u8, normalize, size, count=2048, batch=128):
    """Measures every batch-norm layer's running statistics again, as exact averages over the
    first `count` training images (centre crops, as evaluated). Networks whose batch norm keeps
    a slow running average (MobileNetV3 and EfficientNet use momentum 0.01) would otherwise be
    evaluated, exported and distilled from with statistics of a few hundred steps' trail."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns or images_u8.shape[0] < 2:
        return
    saved = [(m, m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
        m.train()
    n = min(count, images_u8.shape[0])
    for i in range(0, n, batch):
        x = images.center(images_u8[i:min(n, i + batch)], size)
        if x.shape[0] >= 2:
            forward(normalize(x).contiguous(memory_format=CL))
    for m, momentum, training in saved:
        m.momentum = momentum
        m.train(training)


class Trainer:
    def __init__(self, args, p, train, val):
        self.args, self.p = args, p
        self.prep = p["prep"]
        self.train_u8, self.train_y = train
        self.val_u8, self.val_y = val
        self.gen = torch.Generator().manual_seed(args.seed)
        self.state = {"recipe": p["recipe"], "stage": "teacher" if args.train_teacher else "hd", "epoch": 0,
                      "history": []}
        self.teacher = nn.Sequential(*[m for _, m in p["seq"]]).to(memory_format=CL)
        self.students = {}
        self.pruned = {}

    # -- state ----------------------------------------------------------------------------------
    def save(self, opt=None, sched=None):
        s = dict(self.state)
        s["teacher"] = self.teacher.state_dict()
        s["students"] = {w: st.state_dict() for w, st in self.students.items()}
        s["pruned"] = {r: (m.state_dict(), spec) for r, (m, spec) in self.pruned.items()}
        s["gen"] = self.gen.get_state()
        s["rng"] = torch.get_rng_state()
        s["opt"] = opt.state_dict() if hasattr(opt, "state_dict") else opt
        s["sched"] = sched.state_dict() if hasattr(sched, "state_dict") else sched
        save_checkpoint(self.p["ckpt_path"], s)
        # Tests interrupt a run here, right after a checkpoint, as a user's Ctrl-C would.
        stop = os.environ.get("SPLIT_TRAIN_STOP_AFTER_EPOCHS")
        if stop and len(self.state["history"]) >= int(stop) and opt is not None:
            raise KeyboardInterrupt

    def restore(self):
        s = torch.load(self.p["ckpt_path"], map_location="cpu")
        self.teacher.load_state_dict(s["teacher"])
        if s["students"]:
            self.new_students()
        for w, sd in s["students"].items():
            self.students[w].load_state_dict(sd)
        if s.get("pruned"):
            from libsplit_tools import prune_any
            for r, (sd, spec) in s["pruned"].items():
                m = prune_any.prune(copy.deepcopy(self.teacher), spec)
                m.load_state_dict(sd)
                self.pruned[r] = (m.to(memory_format=CL), spec)
        self.gen.set_state(s["gen"])
        torch.set_rng_state(s["rng"])
        self.state.update({k: s[k] for k in ("stage", "epoch", "history")})
        log(f"resumed: stage {self.state['stage']}, {self.state['epoch']} epochs of it done")
        return s.get("opt"), s.get("sched")

    def epoch_line(self, stage, epoch, total, t0, loss, acc):
        line = (f"{stage} epoch {epoch}/{total}: loss {loss:.4f}, val top-1 {acc}, {time.time() - t0:.0f} s")
        self.state["history"].append(line)
        log(line)

    def epoch(self, desc, opt, sched, loss_fn):
        """One pass over the training images with one model's loss; returns (summed loss, images)."""
        n = self.train_u8.shape[0]
        total, seen = 0.0, 0
        bar = progress(total=steps_per_epoch(n, self.args.batch_size), desc=desc, unit="batch")
        for idx in batches(n, self.args.batch_size, self.gen):
            x, y = self.batch(idx)
            loss = loss_fn(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * y.numel()
            seen += y.numel()
            bar.update(1)
            bar.set_postfix_str(f"loss {total / seen:.4f}")
        bar.close()
        return total, seen

    @torch.no_grad()
    def distill_target(self, x):
        return self.teacher(x)

    def batch(self, idx):
        x = images.augment(self.train_u8[idx], self.prep.size, self.gen, flip=not self.args.no_flip)
        return self.prep.normalize(x).contiguous(memory_format=CL), self.train_y[idx]

    # -- teacher ----------------------------------------------------------------------------------
    def train_teacher(self, saved_opt, saved_sched):
        a = self.args
        n = self.train_u8.shape[0]
        spe = steps_per_epoch(n, a.batch_size)
        opt = torch.optim.SGD(self.teacher.parameters(), lr=a.lr_teacher, momentum=0.9, nesterov=True,
                              weight_decay=5e-4)
        sched = bottlefit.cosine(opt, a.epochs_teacher * spe, warmup=min(spe, a.epochs_teacher * spe // 10))
        if saved_opt is not None:
            opt.load_state_dict(saved_opt)
            sched.load_state_dict(saved_sched)
        for epoch in range(self.state["epoch"], a.epochs_teacher):
            self.teacher.train()
            t0 = time.time()
            total, seen = self.epoch(f"teacher {epoch + 1}/{a.epochs_teacher}", opt, sched,
                                     lambda x, y: F.cross_entropy(self.teacher(x), y, label_smoothing=a.label_smoothing))
            self.teacher.eval()
            recalibrate_bn(self.teacher, self.teacher, self.train_u8, self.prep.normalize, self.prep.size)
            acc = top1(self.teacher, self.val_u8, self.val_y, self.prep.normalize)
            self.state["epoch"] = epoch + 1
            self.epoch_line("teacher", epoch + 1, a.epochs_teacher, t0, total / max(seen, 1), f"{acc:.2f}%")
            self.save(opt, sched)
        self.teacher.eval()
        self.state.update(stage="hd", epoch=0)
        self.save()

    # -- students ----------------------------------------------------------------------------------
    def new_students(self):
        if self.students or not self.p["learned"]:
            return
        p = self.p
        seq = [(path, m) for path, m in zip([q for q, _ in p["seq"]], self.teacher)]
        k = arch.index_of(seq, self.args.split_after)
        feature = p["shapes"][k][1:]
        torch.manual_seed(self.args.seed + 1)
        for width, _ in p["learned"]:
            self.students[width] = bottlefit.Student(seq, k, feature, width, self.args.bottleneck_stride,
                                                     self.args.bits).to(memory_format=CL)
        self.split_k = k

    def student_accuracy(self):
        out = []
        for w, st in self.students.items():
            st.eval()
            out.append(f"w{w} {top1(lambda x: st(x, quantize=True), self.val_u8, self.val_y, self.prep.normalize):.2f}%")
        return ", ".join(out)

    def train_students(self, stage, saved_opt, saved_sched):
        a = self.args
        epochs = a.epochs_hd if stage == "hd" else a.epochs_kd
        self.new_students()
        self.teacher.eval()
        for p_ in self.teacher.parameters():
            p_.requires_grad_(False)
        k = self.split_k
        n = self.train_u8.shape[0]
        spe = steps_per_epoch(n, a.batch_size)
        opts, scheds = {}, {}
        for w, st in self.students.items():
            opts[w] = bottlefit.hd_optimizer(st, a.lr_hd) if stage == "hd" else bottlefit.kd_optimizer(st, a.lr_kd)
            scheds[w] = bottlefit.cosine(opts[w], max(1, epochs * spe))
        if saved_opt is not None:
            for w in self.students:
                opts[w].load_state_dict(saved_opt[w])
                scheds[w].load_state_dict(saved_sched[w])
        prefix = self.teacher[:k + 1]
        for epoch in range(self.state["epoch"], epochs):
            for st in self.students.values():
                bottlefit.hd_mode(st) if stage == "hd" else bottlefit.kd_mode(st)
            t0, total, seen = time.time(), 0.0, 0
            bar = progress(total=spe, desc=f"{stage} {epoch + 1}/{epochs}", unit="batch")
            for idx in batches(n, a.batch_size, self.gen):
                x, y = self.batch(idx)
                with torch.no_grad():
                    target = prefix(x) if stage == "hd" else self.teacher(x)
                for w, st in self.students.items():
                    if stage == "hd":
                        loss = F.mse_loss(st.features(x, quantize=False), target)
                    else:
                        loss = bottlefit.kd_loss(st(x, quantize=True), target, y, a.kd_alpha, a.kd_temperature)
                    opts[w].zero_grad(set_to_none=True)
                    loss.backward()
                    opts[w].step()
                    scheds[w].step()
                    total += loss.item() * y.numel() / len(self.students)
                seen += y.numel()
                bar.update(1)
                bar.set_postfix_str(f"loss {total / seen:.4f}")
            bar.close()
            for st in self.students.values():
                st.eval()
                head = nn.Sequential(st.prefix, st.encoder) if stage == "hd" else st
                recalibrate_bn(head, head if stage == "hd" else (lambda x, st=st: st(x, quantize=True)),
                               self.train_u8, self.prep.normalize, self.prep.size)
                if stage == "hd":  # the decoder's statistics, from the head's codes
                    recalibrate_bn(st.decoder, lambda x, st=st: st.features(x, quantize=True), self.train_u8,
                                   self.prep.normalize, self.prep.size)
            self.state["epoch"] = epoch + 1
            self.epoch_line("head distillation" if stage == "hd" else "KD fine-tuning", epoch + 1, epochs, t0,
                            total / max(seen, 1), self.student_accuracy())
            self.save({w: o.state_dict() for w, o in opts.items()}, {w: s.state_dict() for w, s in scheds.items()})
        for st in self.students.values():
            st.eval()
        self.state.update(stage="kd" if stage == "hd" else ("prune" if a.prune else "export"), epoch=0)
        self.save()

    # -- pruned local models -------------------------------------------------------------------------
    def train_pruned(self, saved_opt, saved_sched):
        from libsplit_tools import prune_any
        a = self.args
        n = self.train_u8.shape[0]
        spe = steps_per_epoch(n, a.batch_size)
        self.teacher.eval()
        # one pruned model at a time; state["epoch"] counts epochs over all of them
        for j, ratio in enumerate(a.prune):
            if ratio in self.pruned and self.state["epoch"] >= (j + 1) * a.epochs_prune:
                continue
            if ratio not in self.pruned:
                spec = prune_any.plan(self.teacher, self.p["input_shape"], ratio)
                m = prune_any.prune(copy.deepcopy(self.teacher), spec).to(memory_format=CL)
                self.pruned[ratio] = (m, spec)
                saved_opt = None
            m, spec = self.pruned[ratio]
            for p_ in m.parameters():
                p_.requires_grad_(True)
            opt = bottlefit.kd_optimizer(m, a.lr_kd)
            sched = bottlefit.cosine(opt, max(1, a.epochs_prune * spe))
            if saved_opt is not None:
                opt.load_state_dict(saved_opt)
                sched.load_state_dict(saved_sched)
                saved_opt = None
            for e in range(self.state["epoch"] - j * a.epochs_prune, a.epochs_prune):
                m.train()
                t0 = time.time()
                total, seen = self.epoch(f"pruned {ratio} {e + 1}/{a.epochs_prune}", opt, sched,
                                         lambda x, y, m=m: bottlefit.kd_loss(m(x), self.distill_target(x), y,
                                                                             a.kd_alpha, a.kd_temperature))
                m.eval()
                recalibrate_bn(m, m, self.train_u8, self.prep.normalize, self.prep.size)
                acc = top1(m, self.val_u8, self.val_y, self.prep.normalize)
                self.state["epoch"] = j * a.epochs_prune + e + 1
                self.epoch_line(f"pruned {ratio}", e + 1, a.epochs_prune, t0, total / max(seen, 1), f"{acc:.2f}%")
                self.save(opt, sched)
            m.eval()
        self.state.update(stage="export", epoch=0)
        self.save()


# ---------------------------------------------------------------------------------------------
# export

@torch.no_grad()
def predictions(fn, images_u8, normalize, batch=250):
    out = []
    for i in range(0, images_u8.shape[0], batch):
        out.append(fn(normalize(images_u8[i:i + batch])).argmax(1))
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


def pct(preds, labels):
    return round(100.0 * int((preds == labels).sum()) / labels.numel(), 2) if labels.numel() else None


def export(args, p, trainer, train, val, test, command):
    prep, folder = p["prep"], p["folder"]
    input_shape = p["input_shape"]
    example = torch.zeros(input_shape)
    val_u8, val_y = val
    norm = prep.normalize
    name = args.name or os.path.basename(os.path.abspath(args.out))
    teacher = trainer.teacher.to(memory_format=torch.contiguous_format).eval()
    manifest = bundle.manifest_base(name, args.version, folder.classes, input_shape, prep.mean, prep.std,
                                    prep.channel_order, "trained", (1, len(folder.classes)))
    manifest["input"] = prep.manifest_input()
    full = bundle.script(teacher, example)
    modules = {"full.pt": full}
    teacher_acc = pct(predictions(full, val_u8, norm), val_y)
    manifest["accuracy"] = {"full": teacher_acc, "set": "val", "images": int(val_y.numel())}
    if test is not None:
        manifest["accuracy"]["full_test"] = pct(predictions(full, test[0], norm), test[1])
    log(f"teacher (full.pt): top-1 {teacher_acc:.2f}% on {val_y.numel()} val images")
    from libsplit_tools import prune_any
    params, macs = prune_any.complexity(teacher, input_shape)
    manifest["complexity"] = {"params": params, "macs": macs}
    candidates = []
    for width, st in trainer.students.items():
        st = st.to(memory_format=torch.contiguous_format).eval()
        candidates.append((f"bf{width}", "bottlefit", st.head(), st.tail(), args.bits,
                           {"bottleneck_width": width, "after": args.split_after}))
    for path, k in p["naturals"]:
        candidates.append((f"nat-{path.replace('.', '-')}", "natural", teacher[:k + 1], teacher[k + 1:], 8,
                           {"after": path}))
    raw = p["raw"]
    failed = []
    for split_id, kind, head, tail, bits, extra in candidates:
        z = head(example)
        sh, st_ = bundle.script(head, example), bundle.script(tail, z)
        zs = []
        with torch.no_grad():
            for i in range(0, val_u8.shape[0], 250):
                zs.append(sh(norm(val_u8[i:i + 250])))
        zval = torch.cat(zs) if zs else torch.empty((0,) + tuple(z.shape[1:]))
        pf = predictions(st_, zval, lambda t: t)
        pq = predictions(st_, zval, lambda t: quant.quantize_per_sample(t, bits))
        py = predictions(lambda x: tail(head(x)), val_u8, norm)
        mismatches = int((pf != py).sum())
        if mismatches:
            failed.append(f"{split_id}: TorchScript and PyTorch disagree on {mismatches} val images")
        n = z.numel()
        nbytes = n if bits == 8 else (n + 1) // 2
        acc = {"float": pct(pf, val_y), "codec": pct(pq, val_y)}
        log(f"{split_id:>10} ({kind}): bottleneck {list(z.shape)} = {nbytes} B at {bits} bits "
            f"({100.0 * nbytes / raw:.2f}% of {raw}), val top-1 float {acc['float']}%, {bits}-bit {acc['codec']}%")
        modules[f"{split_id}_head.pt"] = sh
        modules[f"{split_id}_tail.pt"] = st_
        manifest["splits"].append(bundle.split_entry(split_id, kind, z.shape, "q8" if bits == 8 else "q4", acc,
                                                     bytes_per_image=nbytes, torchscript_matches_pytorch=mismatches == 0,
                                                     **extra))
    if failed:
        raise RecipeError("; ".join(failed))
    local = []
    for ratio, (m, spec) in sorted(trainer.pruned.items(), reverse=True):
        m = m.to(memory_format=torch.contiguous_format).eval()
        lid = f"pruned{int(round(ratio * 100))}"
        sm = bundle.script(m, example)
        mp, mm = prune_any.complexity(m, input_shape)
        acc = pct(predictions(sm, val_u8, norm), val_y)
        modules[f"{lid}.pt"] = sm
        local.append({"id": lid, "kind": "pruned", "file": f"{lid}.pt", "ratio": round(mm / macs, 3), "params": mp,
                      "macs": mm, "accuracy": acc})
        log(f"{lid:>10} (pruned local model): {mm / macs:.2f} of the multiply-adds, val top-1 {acc}%")
    if local:
        manifest["local"] = local
    bundle.choose_default_split(manifest, teacher_acc)
    manifest["recipe"] = p["recipe"]

    # Stage the bundle beside --out; replace --out only when all of it succeeded.
    parent = os.path.dirname(os.path.abspath(args.out))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".split-train-", dir=parent)
    try:
        for fname, m in modules.items():
            m.save(os.path.join(tmp, fname))
        train_u8, _ = train
        calib = images.center(train_u8, prep.size)
        ncal = calib.shape[0]
        fit = min(args.calibration_images, max(1, int(ncal * 0.8)))
        held = min(5000, ncal - fit)
        if held < 1:
            log("entropy tables: too few training images to calibrate (need 2); splits keep q8")
        else:
            use_context = not args.no_context and fit >= 2000
            opts = calibrate.Options(context=use_context, context_steps=args.context_steps)
            log(f"entropy tables: {fit} calibration images, {held} held out"
                f"{'' if use_context else ' (no context model: ' + ('--no-context' if args.no_context else 'fewer than 2000 images') + ')'}")
            calibrate.calibrate(tmp, manifest, calib[:fit + held], norm, fit, opts, log=log)
        manifest["nano_compat"] = nano_check(tmp)
        bundle.write_manifest(tmp, manifest)
        with open(os.path.join(tmp, "recipe.toml"), "w") as f:
            f.write(recipe_toml(p["recipe"], command))
        with open(os.path.join(tmp, "train.log"), "w") as f:
            f.write("\n".join(trainer.state["history"]) + "\n")
        os.chmod(tmp, 0o755)
        if os.path.exists(args.out):
            shutil.rmtree(args.out)
        os.rename(tmp, args.out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def nano_check(bundle_dir):
    """The LibTorch 1.10 (JetPack 4.6) file-format check of torchscript_compat.py on every file."""
    import torchscript_compat as tc
    worst, newer = 0, []
    for f in sorted(os.listdir(bundle_dir)):
        if f.endswith(".pt"):
            version, ops = tc.inspect(os.path.join(bundle_dir, f))
            worst = max(worst, version)
            newer += [f"{f}: {op}" for op in ops if tc.NEWER_THAN_1_10.match(op)]
    ok = worst <= 6 and not newer
    log(f"Jetson Nano (LibTorch 1.10) check: file format <= {worst}"
        f"{'' if ok else ' NOT readable by LibTorch 1.10' + ('; ' + ', '.join(newer) if newer else '')}")
    return {"libtorch_1_10": ok, "max_file_format": worst}


# ---------------------------------------------------------------------------------------------

def _terminated(signum, frame):
    raise KeyboardInterrupt  # SIGTERM as Ctrl-C: the staged bundle is removed, the checkpoint kept


def main(argv=None):
    signal.signal(signal.SIGTERM, _terminated)
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    else:
        torch.set_num_threads(os.cpu_count() or 1)
    torch.manual_seed(args.seed)
    try:
        p = plan(args)
        if args.list_splits:
            raw = int(math.prod(p["input_shape"]))
            log(f"cut points of the network for input {list(p['input_shape'])} ({raw} B raw at 8 bits):")
            for (path, _), s in zip(p["seq"][:-1], arch.shapes(p["seq"], p["input_shape"])):
                n = int(math.prod(s))
                log(f"  {path:<24} {str(list(s)):<20} {n:>9} elements  {100.0 * n / raw:7.2f}% of the input")
            return 0
        t_start = time.time()
        train, val, test, cache = load_data(p, args)
        # Nothing has been written so far; from here on the work directory holds the run.
        os.makedirs(p["work"], exist_ok=True)
        if args.restart and os.path.exists(p["ckpt_path"]):
            os.remove(p["ckpt_path"])
        if cache:
            torch.save({"train": train, "val": val, "test": test}, cache + ".tmp")
            os.replace(cache + ".tmp", cache)
        trainer = Trainer(args, p, train, val)
        saved_opt = saved_sched = None
        if args.resume and os.path.exists(p["ckpt_path"]):
            saved_opt, saved_sched = trainer.restore()
        else:
            trainer.save()
        if trainer.state["stage"] == "teacher":
            trainer.train_teacher(saved_opt, saved_sched)
            saved_opt = saved_sched = None
        else:
            trainer.teacher.eval()
        if trainer.state["stage"] in ("hd", "kd"):
            if p["learned"]:
                if trainer.state["stage"] == "hd":
                    trainer.train_students("hd", saved_opt, saved_sched)
                    saved_opt = saved_sched = None
                trainer.train_students("kd", saved_opt, saved_sched)
                saved_opt = saved_sched = None
            else:
                trainer.state.update(stage="prune" if args.prune else "export", epoch=0)
        if trainer.state["stage"] == "prune":
            trainer.train_pruned(saved_opt, saved_sched)
        command = " ".join(["split-train"] + [a if " " not in a else json.dumps(a) for a in (argv or sys.argv[1:])])
        manifest = export(args, p, trainer, train, val, test, command)
        log(f"wrote {args.out}: {len(manifest['splits'])} splits, default {manifest.get('default_split')}, "
            f"{time.time() - t_start:.0f} s")
        return 0
    except (images.DataError, arch.ModelError, RecipeError, bundle.ExportError) as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the last finished epoch is in the checkpoint (--resume)", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
