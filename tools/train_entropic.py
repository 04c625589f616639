#!/usr/bin/env python3
"""Trains a FrankenSplit-style variational bottleneck on the Fashion-MNIST teacher
(run with /usr/bin/python3, after tools/train_fmnist.py has written teacher.pt).

  /usr/bin/python3 tools/train_entropic.py --train build/train            # writes entropic-c8.pt

The student: the BottleFit encoder ending in --channels channels at 7 x 7 (the latent y), a
factorized-prior entropy model over y (tools/libsplit_tools/entropy.py), and the BottleFit
decoder + the teacher's layer3/pool/fc as the tail. The wire carries round(y) entropy-coded with
the prior's tables, so the rate is what the prior says the symbols cost.
Two stages, as BottleFit's, each with a rate term:
  (i)  head distillation: loss = saliency-weighted MSE(decoder(round(y)), teacher layer2)
       + lambda * bits. The saliency of a teacher feature is |feature x d logit_label / d feature|
       summed over channels, normalised to mean 1 per image; the weight is 0.5 + 0.5 * saliency,
       so every position counts and the ones the teacher's decision rests on count more.
       The teacher's tail stays frozen; Adam lr 1e-3, cosine.
  (ii) knowledge distillation of the whole student: loss = alpha * CE + (1 - alpha) * T^2 * KL
       (T = 1, alpha = 0.5, as in tools/train_fmnist.py) + lambda * bits; SGD lr 0.01 cosine
       for the network, Adam lr 1e-3 for the entropy model.
lambda is not fixed by hand: it follows a target rate (--target-bytes of information per image)
by dual ascent, lambda <- lambda * exp(eta * (rate - target) / target) after every batch: above the
target lambda grows until the rate comes down; below it lambda shrinks towards zero, and the rate
can stay below the target when the distillation loss itself does not pay for more bits (vb2's run
ended at 40.9 B of training rate against 42.5).
The rate is measured on the noisy latent by default (--rate-on noisy); the symbols actually sent
are rounded, and their cost can drift above the noisy estimate. --resume continues from the saved
student with stage (ii) only, typically with --rate-on rounded (rate = the prior's cost of the
rounded symbols, straight-through gradient) and a lower --kd-lr, to land the sent rate on target.
--init-from BUNDLE:SPLIT starts from a trained BottleFit split instead of from scratch (the teacher
is the bundle's full model, no teacher.pt needed): the student takes the split's encoder and
tail, with a per-channel step folded into the encoder's last layer (and undone in the decoder's
first) so that round(y) is a uniform quantizer of the split's bottleneck with --init-levels
steps over each channel's training range; the prior is first fitted to that latent with the
network frozen, then stage (ii) fine-tunes the whole student with the rate term.
Seeded (--seed); prints loss, rate and test accuracy every epoch. --val N holds out the last N
training images and keeps the stage (ii) epoch (or the start) with the best top-1 on them;
--average-last K keeps the mean of the last K epochs' weights instead (batch-norm statistics
measured again over the training images). --latent-decay off drops stage (ii)'s weight decay on
the encoder's last layer and the decoder's first: their scale is the quantizer's step, so decay
there lowers the rate behind the rate control's back.
The bundle's vb2: --channels 2 --init-from models/fmnist-resnet:bf2 --init-levels 24 --prior element
--prior-steps 800 --kd-epochs 12 --kd-lr 0.01 --target-bytes 42.5 --rate-on rounded --kd-lambda 1e-4
--latent-decay off --average-last 4 (about 41 min on 2 cores), then tools/export_entropic.py.
"""
import argparse
import copy
import math
import os
import sys
import time

import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import bundle, data, entropy, models  # noqa: E402
from train_fmnist import batches, kd_loss  # noqa: E402  (the BottleFit recipe's own)

CL = torch.channels_last


def log(msg):
    print(msg, flush=True)


LATENT_HW = 7 * 7  # the latent's positions


class EntropicStudent(nn.Module):
    """prior "channel": one density per latent channel, shared by its 7 x 7 positions (Balle's
    factorized prior); "element": one density per latent element (channel and position), still
    fully factorized, for a latent of fixed size. The wire's tables follow the same order (a
    tensor of n elements uses table i for elements [i*n/T, (i+1)*n/T), NCHW)."""

    def __init__(self, teacher, channels, prior="channel"):
        super().__init__()
        self.channels = channels
        self.encoder = models.Encoder(channels)
        self.prior_granularity = prior
        self.prior = entropy.FactorizedPrior(channels * LATENT_HW if prior == "element" else channels)
        self.tail = models.Tail(teacher, "layer2", models.Decoder(channels))

    rate_on = "noisy"

    def likelihood(self, y):
        if self.prior_granularity == "element":  # each element its own "channel" of the prior
            y = y.reshape(y.shape[0], -1, 1, 1)
        return self.prior.likelihood(y)

    def forward(self, x):
        """(logits, decoder output, bits per image)."""
        y = self.encoder(x)
        y_hat = entropy.quantize_symbols(y)
        if self.training and self.rate_on == "noisy":
            noisy = y.clamp(entropy.LOW, entropy.HIGH) + torch.empty_like(y).uniform_(-0.5, 0.5)
            lik = self.likelihood(noisy)
        else:
            lik = self.likelihood(y_hat)
        dec = self.tail.decoder(y_hat)
        return self.tail.stages(dec), dec, entropy.bits(lik)


def saliency_weights(teacher, x, labels):
    feat = teacher.features(x, "layer2").detach().requires_grad_(True)
    logits = teacher.fc(teacher.pool(teacher.layer3(feat)))
    picked = logits.gather(1, labels[:, None]).sum()
    (grad,) = torch.autograd.grad(picked, feat)
    s = (grad * feat).abs().sum(1, keepdim=True)
    s = s / s.mean(dim=(2, 3), keepdim=True).clamp_min(1e-12)
    return feat.detach(), (0.5 + 0.5 * s).detach()


@torch.no_grad()
def evaluate(student, images, labels, batch_size=1000):
    student.eval()
    correct, total_bits = 0, 0.0
    for i in range(0, images.shape[0], batch_size):
        x = data.normalize(images[i:i + batch_size])
        logits, _, b = student(x)
        correct += (logits.argmax(1) == labels[i:i + batch_size]).sum().item()
        total_bits += b.sum().item()
    n = images.shape[0]
    return 100.0 * correct / n, total_bits / n / 8.0


def teacher_from_bundle(bundle_dir):
    """The Fashion-MNIST teacher with the weights of a bundle's TorchScript full model."""
    teacher = models.Teacher()
    teacher.load_state_dict(torch.jit.load(os.path.join(bundle_dir, "full.pt")).state_dict())
    return teacher


def init_split_entry(bundle_dir, split_id, channels):
    """The manifest entry of the BottleFit split --init-from names; exits with one line when the
    bundle, the split or its files are not what the student needs."""
    _, manifest = bundle.load_fmnist_manifest(bundle_dir, "train_entropic", "--init-from")
    split = next((s for s in manifest["splits"] if s["id"] == split_id), None)
    if split is None:
        sys.exit(f"train_entropic: --init-from: {bundle_dir} has no split {split_id!r} "
                 f"(it has {', '.join(s['id'] for s in manifest['splits'])})")
    width = split["bottleneck"]["shape"][1]
    if split.get("kind") != "bottlefit":
        sys.exit(f"train_entropic: --init-from: split {split_id} is {split.get('kind')}, not a BottleFit split")
    if list(split["bottleneck"]["shape"][1:]) != [channels, 7, 7]:
        sys.exit(f"train_entropic: --init-from: split {split_id} has a {width} x 7 x 7 bottleneck, the student "
                 f"{channels} x 7 x 7 (pass --channels {width})")
    for f in ("full.pt", split["head"], split["tail"]):
        if not os.path.exists(os.path.join(bundle_dir, f)):
            sys.exit(f"train_entropic: --init-from: {os.path.join(bundle_dir, f)} does not exist")
    return split


@torch.no_grad()
def init_from_split(student, bundle_dir, split, images, levels):
    """Loads a BottleFit split's encoder and tail into `student` and folds a per-channel step into
    them: the encoder's output becomes y / step (round(y / step) quantizes the split's bottleneck
    uniformly, `levels` steps over each channel's 0.1-99.9 percentile range of `images`) and the
    decoder's first convolution multiplies it back, so the float network computes what it did."""
    head = torch.jit.load(os.path.join(bundle_dir, split["head"]))
    tail = torch.jit.load(os.path.join(bundle_dir, split["tail"]))
    student.encoder.load_state_dict(head.state_dict())
    student.tail.load_state_dict(tail.state_dict())
    student.eval()  # the split's batch-norm statistics stay as trained
    y = torch.cat([student.encoder(data.normalize(images[i:i + 1000])) for i in range(0, images.shape[0], 1000)])
    flat = y.transpose(0, 1).reshape(student.channels, -1)
    step = (flat.quantile(0.999, dim=1) - flat.quantile(0.001, dim=1)) / levels
    last = student.encoder.net[-1]
    last.weight.div_(step.view(-1, 1, 1, 1))
    last.bias.div_(step)
    student.tail.decoder.net[0].weight.mul_(step.view(1, -1, 1, 1))
    return step


def fit_prior(student, images, gen, steps, batch_size):
    """Fits the prior alone to the (frozen) encoder's noisy latent."""
    opt = torch.optim.Adam(student.prior.parameters(), lr=1e-2)
    student.eval()
    for _ in range(steps):
        idx = torch.randint(0, images.shape[0], (batch_size,), generator=gen)
        with torch.no_grad():
            y = student.encoder(data.normalize(images[idx])).clamp(entropy.LOW, entropy.HIGH)
            y = y + torch.empty_like(y).uniform_(-0.5, 0.5)
        loss = entropy.bits(student.likelihood(y)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()


def kd_optimizer(student, lr, latent_decay, frozen=()):
    """Stage (ii)'s SGD over the network (not the prior, nor parameters named by the `frozen`
    prefixes): weight decay 5e-4, except on the layers either side of the latent when
    `latent_decay` is false (group 1)."""
    latent = [student.encoder.net[-1].weight, student.encoder.net[-1].bias, student.tail.decoder.net[0].weight]
    net = [p for n, p in student.named_parameters() if not n.startswith(("prior.",) + tuple(frozen))]
    undecayed = [p for p in net if not latent_decay and any(p is q for q in latent)]
    decayed = [p for p in net if not any(p is q for q in undecayed)]
    return torch.optim.SGD([{"params": decayed}, {"params": undecayed, "weight_decay": 0.0}],
                           lr=lr, momentum=0.9, weight_decay=5e-4)


def average_weights(student, states):
    """Loads the element-wise mean of `states` (floating-point entries; counters from the last)."""
    mean = {}
    for k, v in states[-1].items():
        mean[k] = (sum(s[k] for s in states) / len(states)) if v.is_floating_point() else v
    student.load_state_dict(mean)


@torch.no_grad()
def recompute_batch_norm(student, images, gen, batch_size, keep=()):
    """Measures the batch-norm layers' running statistics again, as a plain mean over one pass of
    the (augmented) training images: averaged weights need statistics of their own. Layers whose
    name starts with a prefix in `keep` ("" for all) trained with fixed statistics and keep them."""
    norms, kept = [], []
    for name, m in student.named_modules():
        if isinstance(m, nn.BatchNorm2d):
            (kept if name.startswith(tuple(keep)) else norms).append(m)
    if not norms:
        return
    saved = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    student.train()
    for m in kept:
        m.eval()
    for idx in batches(images.shape[0], batch_size, gen):
        student(data.normalize(data.augment(images[idx], gen)).contiguous(memory_format=CL))
    for m, mom in zip(norms, saved):
        m.momentum = mom
    student.eval()


class RateControl:
    def __init__(self, target_bytes, lam, eta):
        self.target_bits = 8.0 * target_bytes
        self.lam, self.eta = lam, eta

    def step(self, bits_per_image):
        err = (bits_per_image - self.target_bits) / self.target_bits
        self.lam *= math.exp(self.eta * max(-1.0, min(1.0, err)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="directory with teacher.pt; entropic-c<C>.pt is written there")
    ap.add_argument("--data", default=data.DEFAULT_DIR, help="Fashion-MNIST IDX directory")
    ap.add_argument("--channels", type=int, default=8, help="latent channels at 7 x 7")
    ap.add_argument("--target-bytes", type=float, default=36.0,
                    help="information per image the rate control aims at (the coded stream adds "
                         "the coder's final state and word rounding, 6 bytes on vb2: 46.2 coded for 40.2)")
    ap.add_argument("--hd-epochs", type=int, default=3)
    ap.add_argument("--kd-epochs", type=int, default=12)
    ap.add_argument("--hd-lambda", type=float, default=0.05, help="initial lambda of stage (i) (per bit)")
    ap.add_argument("--kd-lambda", type=float, default=1e-4, help="initial lambda of stage (ii) (per bit)")
    ap.add_argument("--eta", type=float, default=0.01, help="rate-control step")
    ap.add_argument("--kd-lr", type=float, default=0.01)
    ap.add_argument("--rate-on", choices=["noisy", "rounded"], default="noisy",
                    help="what the rate term and the rate control measure during training")
    ap.add_argument("--resume", action="store_true",
                    help="start from the saved entropic-c<C>.pt and run stage (ii) only")
    ap.add_argument("--init-from", metavar="BUNDLE:SPLIT",
                    help="start from this BottleFit split (e.g. models/fmnist-resnet:bf2) and run stage (ii) only")
    ap.add_argument("--init-levels", type=float, default=12.0,
                    help="--init-from: quantization steps over each channel's range at the start")
    ap.add_argument("--prior-steps", type=int, default=400, help="--init-from: steps fitting the prior first")
    ap.add_argument("--prior", choices=["channel", "element"], default="channel",
                    help="one density per latent channel (default) or per latent element")
    ap.add_argument("--freeze-encoder", action="store_true",
                    help="stage (ii) trains the tail alone: the encoder and the prior (so the rate) stay as they are")
    ap.add_argument("--freeze-bn", action="store_true",
                    help="stage (ii) keeps every batch-norm layer's statistics (eval mode) while it trains")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=20221)
    ap.add_argument("--val", type=int, default=0,
                    help="hold out the last N training images: stage (ii) keeps the epoch (or the start) "
                         "with the best top-1 on them, not the last one, and never looks at the test set "
                         "to choose")
    ap.add_argument("--latent-decay", choices=["on", "off"], default="on",
                    help="stage (ii): weight decay on the two layers either side of the latent (the "
                         "encoder's last convolution, the decoder's first). Their scale is the quantizer's "
                         "step, so decaying them is a rate pressure the rate control does not see; 'off' "
                         "leaves the rate to the rate control alone")
    ap.add_argument("--average-last", type=int, default=0, metavar="K",
                    help="stage (ii) ends with the average of the weights after its last K epochs (batch-norm "
                         "statistics then measured again over the training images) instead of the last epoch's")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    teacher_path = os.path.join(args.train, "teacher.pt")
    init_bundle = init_split = None
    if args.init_from:
        init_bundle, _, init_split = args.init_from.rpartition(":")
        if not init_bundle or not init_split:
            sys.exit(f"train_entropic: --init-from {args.init_from!r}: expected BUNDLE:SPLIT")
        if args.resume:
            sys.exit("train_entropic: --init-from and --resume exclude each other")
        if args.init_levels <= 1:
            sys.exit("train_entropic: --init-levels must be above 1")
        init_entry = init_split_entry(init_bundle, init_split, args.channels)
    elif not os.path.exists(teacher_path):
        sys.exit(f"train_entropic: {teacher_path} does not exist (run tools/train_fmnist.py --stage teacher first)")
    if args.average_last < 0 or args.average_last > args.kd_epochs:
        sys.exit(f"train_entropic: --average-last {args.average_last}: expected 0 to --kd-epochs ({args.kd_epochs})")
    if args.average_last and args.val:
        sys.exit("train_entropic: --average-last and --val exclude each other (each picks the weights kept)")
    if args.target_bytes <= 0 or args.channels < 1:
        sys.exit("train_entropic: --target-bytes and --channels must be positive")
    os.makedirs(args.train, exist_ok=True)
    train, test = data.load("train", args.data), data.load("test", args.data)
    val = None
    if args.val:
        if not 0 < args.val < train[0].shape[0] // 2:
            sys.exit(f"train_entropic: --val {args.val}: expected 1 to {train[0].shape[0] // 2 - 1} images")
        val = (train[0][-args.val:], train[1][-args.val:])
        train = (train[0][:-args.val], train[1][:-args.val])
    if init_bundle:
        teacher = teacher_from_bundle(init_bundle)
    else:
        teacher = models.Teacher()
        teacher.load_state_dict(torch.load(teacher_path))
    teacher = teacher.to(memory_format=CL).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 3)
    student = EntropicStudent(copy.deepcopy(teacher), args.channels, args.prior).to(memory_format=CL)
    student.rate_on = args.rate_on
    path = os.path.join(args.train, f"entropic-c{args.channels}.pt")
    if args.resume:
        if not os.path.exists(path):
            sys.exit(f"train_entropic: --resume: {path} does not exist")
        student.load_state_dict(torch.load(path))
        args.hd_epochs = 0
        acc, test_bytes = evaluate(student, *test)
        log(f"resumed {path}: test top-1 {acc:.2f}% at {test_bytes:.1f} B of information")
    if init_bundle:
        step = init_from_split(student, init_bundle, init_entry, train[0][:20000], args.init_levels)
        fit_prior(student, train[0], gen, args.prior_steps, args.batch_size)
        args.hd_epochs = 0
        acc, test_bytes = evaluate(student, *test)
        log(f"from {init_split} of {init_bundle} (steps {', '.join(f'{v:.4f}' for v in step.tolist())}), prior "
            f"fitted in {args.prior_steps} steps: test top-1 {acc:.2f}% at {test_bytes:.1f} B of information")
    n_batches = math.ceil(train[0].shape[0] / args.batch_size)
    log(f"Fashion-MNIST: {train[0].shape[0]} train, {test[0].shape[0]} test images; {args.threads} threads, "
        f"seed {args.seed}; {args.channels} channels at 7x7, target {args.target_bytes} B of information")

    # Stage (i): head distillation with rate; the teacher's layers in the tail stay frozen.
    for p in student.tail.stages.parameters():
        p.requires_grad_(False)
    params = (list(student.encoder.parameters()) + list(student.tail.decoder.parameters())
              + list(student.prior.parameters()))
    opt = torch.optim.Adam(params, lr=1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, args.hd_epochs * n_batches))
    rc = RateControl(args.target_bytes, args.hd_lambda, args.eta)
    for epoch in range(args.hd_epochs):
        t0, tot_d, tot_b, seen = time.time(), 0.0, 0.0, 0
        student.train()
        student.tail.stages.eval()
        for idx in batches(train[0].shape[0], args.batch_size, gen):
            x = data.normalize(data.augment(train[0][idx], gen)).contiguous(memory_format=CL)
            target, weight = saliency_weights(teacher, x, train[1][idx])
            _, dec, b = student(x)
            dist = (weight * (dec - target) ** 2).sum() / x.shape[0]
            rate = b.mean()
            loss = dist + rc.lam * rate
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            rc.step(rate.item())
            tot_d += dist.item() * idx.numel()
            tot_b += rate.item() * idx.numel()
            seen += idx.numel()
        acc, test_bytes = evaluate(student, *test)
        log(f"entropic c={args.channels} head-distillation epoch {epoch + 1}/{args.hd_epochs}: weighted mse "
            f"{tot_d / seen:.2f}, train rate {tot_b / seen / 8:.1f} B, lambda {rc.lam:.3g}; test top-1 {acc:.2f}% "
            f"at {test_bytes:.1f} B ({time.time() - t0:.0f} s)")

    # Stage (ii): knowledge distillation of the whole student, rate term kept (--freeze-encoder:
    # of the tail alone, on the fixed quantized latent).
    frozen = ("encoder.", "prior.") if args.freeze_encoder else ()
    for n, p in student.named_parameters():
        p.requires_grad_(not n.startswith(frozen))
    opt = kd_optimizer(student, args.kd_lr, args.latent_decay == "on", frozen)
    opt_prior = torch.optim.Adam(student.prior.parameters(), lr=1e-3)
    steps = args.kd_epochs * n_batches
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    sched_prior = torch.optim.lr_scheduler.CosineAnnealingLR(opt_prior, steps)
    rc = RateControl(args.target_bytes, args.kd_lambda, args.eta)
    averaged = []  # --average-last: the state after each of the last K epochs
    best = None  # --val: (top-1, epoch, state) of the best so far; epoch 0 = the start
    if val is not None:
        acc, val_bytes = evaluate(student, *val)
        best = (acc, 0, copy.deepcopy(student.state_dict()))
        log(f"held-out {args.val} training images at the start: top-1 {acc:.2f}% at {val_bytes:.1f} B of information")
    for epoch in range(args.kd_epochs):
        t0, tot_l, tot_b, seen = time.time(), 0.0, 0.0, 0
        student.train()
        if args.freeze_encoder:
            student.encoder.eval()  # its batch-norm statistics too
        if args.freeze_bn:
            for m in student.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.eval()
        for idx in batches(train[0].shape[0], args.batch_size, gen):
            x = data.normalize(data.augment(train[0][idx], gen)).contiguous(memory_format=CL)
            y = train[1][idx]
            with torch.no_grad():
                t_logits = teacher(x)
            logits, _, b = student(x)
            rate = b.mean()
            task = kd_loss(logits, t_logits, y, args.temperature, args.alpha)
            loss = task + rc.lam * rate
            opt.zero_grad()
            opt_prior.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if not args.freeze_encoder:
                opt_prior.step()
                sched_prior.step()
                rc.step(rate.item())
            tot_l += task.item() * idx.numel()
            tot_b += rate.item() * idx.numel()
            seen += idx.numel()
        held = ""
        if val is not None:
            v_acc, v_bytes = evaluate(student, *val)
            held = f"held-out top-1 {v_acc:.2f}% at {v_bytes:.1f} B; "
            if v_acc > best[0]:
                best = (v_acc, epoch + 1, copy.deepcopy(student.state_dict()))
        acc, test_bytes = evaluate(student, *test)
        log(f"entropic c={args.channels} kd epoch {epoch + 1}/{args.kd_epochs}: kd loss {tot_l / seen:.4f}, "
            f"train rate {tot_b / seen / 8:.1f} B, lambda {rc.lam:.3g}; {held}test top-1 {acc:.2f}% at "
            f"{test_bytes:.1f} B of information ({time.time() - t0:.0f} s)")
        torch.save(student.state_dict(), path)  # after every epoch: an interrupted run keeps its latest
        if args.average_last and epoch >= args.kd_epochs - args.average_last:
            averaged.append(copy.deepcopy(student.state_dict()))
    if averaged:
        average_weights(student, averaged)
        fixed = ("",) if args.freeze_bn else ("encoder.",) if args.freeze_encoder else ()
        recompute_batch_norm(student, train[0], gen, args.batch_size, keep=fixed)
        acc, test_bytes = evaluate(student, *test)
        log(f"kept the average of epochs {args.kd_epochs - len(averaged) + 1}-{args.kd_epochs} (batch-norm "
            f"statistics measured again): test top-1 {acc:.2f}% at {test_bytes:.1f} B of information")
    if best is not None:
        student.load_state_dict(best[2])
        acc, test_bytes = evaluate(student, *test)
        log(f"kept {'the start' if best[1] == 0 else f'epoch {best[1]}'} (best held-out top-1 {best[0]:.2f}%): "
            f"test top-1 {acc:.2f}% at {test_bytes:.1f} B of information")
    torch.save(student.state_dict(), path)
    log(f"wrote {path}")


if __name__ == "__main__":
    main()
