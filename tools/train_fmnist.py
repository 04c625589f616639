#!/usr/bin/env python3
"""Trains the Fashion-MNIST teacher and its BottleFit students (run with /usr/bin/python3).

  /usr/bin/python3 tools/train_fmnist.py --out build/train            # everything
  /usr/bin/python3 tools/train_fmnist.py --out build/train --stage teacher
  /usr/bin/python3 tools/train_fmnist.py --out build/train --stage bottlefit --widths 1 2 4
  /usr/bin/python3 tools/train_fmnist.py --out build/train --stage restart    # cycle (iii) only

Teacher: SGD (momentum 0.9, nesterov), one-cycle LR peaking at 0.1, weight decay 5e-4,
random crop (pad 2) + horizontal flip.
BottleFit, per width, two stages (all widths share each batch's teacher forward pass):
  (i)  head distillation: only the encoder and decoder train (the teacher's layer3/pool/fc stay
       frozen), loss = MSE between the decoder output and the teacher's layer2 output;
       Adam, lr 1e-3, cosine decay.
  (ii) fine-tuning of the whole student with knowledge distillation from the teacher:
       loss = alpha * CE(student, label) + (1 - alpha) * T^2 * KL(teacher/T || student/T),
       T = 1, alpha = 0.5 (BottleFit's values); SGD momentum 0.9, lr 0.01 cosine, wd 5e-4.
       The bottleneck goes through per-image 8-bit quantization in the forward pass
       (straight-through gradient), so the student learns what the wire carries.
  (iii) a second KD cycle (a warm restart: fresh SGD, lr back to --kd-lr, cosine again over
       --restart-epochs) for the widths in --restart-widths, the narrow ones, whose accuracy is
       still rising when cycle (ii) ends. Its batch order is seeded on its own (seed + 2), so
       `--stage restart` on saved students gives the same result as the one-command run.
Seeded (--seed); prints loss and test accuracy every epoch; writes state dicts to --out.
"""
import argparse
import copy
import math
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from libsplit_tools import data, models, quant  # noqa: E402


# Channels-last is ~15% faster for these convolutions on CPU; results are the same model.
CL = torch.channels_last


def log(msg):
    print(msg, flush=True)


def batches(n, batch_size, generator):
    perm = torch.randperm(n, generator=generator)
    for i in range(0, n, batch_size):
        yield perm[i:i + batch_size]


@torch.no_grad()
def accuracy(model, images, labels, quantize_bits=None, batch_size=1000):
    model.eval()
    correct = 0
    for i in range(0, images.shape[0], batch_size):
        x = data.normalize(images[i:i + batch_size])
        if quantize_bits is None:
            logits = model(x)
        else:
            z = quant.quantize_per_sample(model.encoder(x), quantize_bits)
            logits = model.tail(z)
        correct += (logits.argmax(1) == labels[i:i + batch_size]).sum().item()
    return 100.0 * correct / images.shape[0]


def train_teacher(args, train, test):
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    teacher = models.Teacher().to(memory_format=CL)
    opt = torch.optim.SGD(teacher.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                          weight_decay=5e-4)
    steps = args.teacher_epochs * math.ceil(train[0].shape[0] / args.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps,
                                                pct_start=0.2)
    for epoch in range(args.teacher_epochs):
        teacher.train()
        t0, total, seen = time.time(), 0.0, 0
        for idx in batches(train[0].shape[0], args.batch_size, gen):
            x = data.normalize(data.augment(train[0][idx], gen)).contiguous(memory_format=CL)
            loss = F.cross_entropy(teacher(x), train[1][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.numel()
            seen += idx.numel()
        acc = accuracy(teacher, *test)
        log(f"teacher epoch {epoch + 1}/{args.teacher_epochs}: loss {total / seen:.4f} "
            f"test top-1 {acc:.2f}% ({time.time() - t0:.0f} s)")
    torch.save(teacher.state_dict(), os.path.join(args.out, "teacher.pt"))
    return teacher


def kd_loss(student_logits, teacher_logits, labels, temperature, alpha):
    soft = F.kl_div(F.log_softmax(student_logits / temperature, dim=1),
                    F.softmax(teacher_logits / temperature, dim=1),
                    reduction="batchmean") * temperature * temperature
    return alpha * F.cross_entropy(student_logits, labels) + (1.0 - alpha) * soft


def train_bottlefit(args, teacher, train, test):
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed + 1)
    students = {w: models.Student(copy.deepcopy(teacher), w).to(memory_format=CL)
                for w in args.widths}
    n_batches = math.ceil(train[0].shape[0] / args.batch_size)

    # Stage (i): head distillation. Only encoder + decoder train.
    opts, scheds = {}, {}
    for w, s in students.items():
        params = list(s.encoder.parameters()) + list(s.tail.decoder.parameters())
        for p in s.tail.stages.parameters():
            p.requires_grad_(False)
        opts[w] = torch.optim.Adam(params, lr=1e-3)
        scheds[w] = torch.optim.lr_scheduler.CosineAnnealingLR(opts[w], args.hd_epochs * n_batches)
    for epoch in range(args.hd_epochs):
        t0 = time.time()
        totals = {w: 0.0 for w in students}
        seen = 0
        for s in students.values():
            s.train()
            s.tail.stages.eval()  # frozen teacher layers keep their BN statistics
        for idx in batches(train[0].shape[0], args.batch_size, gen):
            x = data.normalize(data.augment(train[0][idx], gen)).contiguous(memory_format=CL)
            with torch.no_grad():
                target = teacher.features(x, "layer2")
            for w, s in students.items():
                loss = F.mse_loss(s.tail.decoder(s.encoder(x)), target, reduction="sum") / x.shape[0]
                opts[w].zero_grad()
                loss.backward()
                opts[w].step()
                scheds[w].step()
                totals[w] += loss.item() * idx.numel()
            seen += idx.numel()
        for w, s in students.items():
            log(f"bottlefit w={w} head-distillation epoch {epoch + 1}/{args.hd_epochs}: "
                f"mse {totals[w] / seen:.4f} test top-1 {accuracy(s, *test):.2f}% "
                f"({time.time() - t0:.0f} s for all widths)")

    # Stage (ii): knowledge-distillation fine-tuning of the whole student.
    kd_cycle(args, teacher, students, train, test, args.kd_epochs, gen, "kd")
    for w, s in students.items():
        torch.save(s.state_dict(), os.path.join(args.out, f"bottlefit-w{w}.pt"))
    return students


def kd_cycle(args, teacher, students, train, test, epochs, gen, label):
    """Knowledge-distillation fine-tuning of every student (all parameters), one cosine cycle."""
    teacher.eval()
    n_batches = math.ceil(train[0].shape[0] / args.batch_size)
    opts, scheds = {}, {}
    for w, s in students.items():
        for p in s.parameters():
            p.requires_grad_(True)
        opts[w] = torch.optim.SGD(s.parameters(), lr=args.kd_lr, momentum=0.9, weight_decay=5e-4)
        scheds[w] = torch.optim.lr_scheduler.CosineAnnealingLR(opts[w], epochs * n_batches)
    for epoch in range(epochs):
        t0 = time.time()
        totals = {w: 0.0 for w in students}
        seen = 0
        for s in students.values():
            s.train()
        for idx in batches(train[0].shape[0], args.batch_size, gen):
            x = data.normalize(data.augment(train[0][idx], gen)).contiguous(memory_format=CL)
            y = train[1][idx]
            with torch.no_grad():
                t_logits = teacher(x)
            for w, s in students.items():
                z = quant.FakeQuant.apply(s.encoder(x), 8)
                loss = kd_loss(s.tail(z), t_logits, y, args.temperature, args.alpha)
                opts[w].zero_grad()
                loss.backward()
                opts[w].step()
                scheds[w].step()
                totals[w] += loss.item() * idx.numel()
            seen += idx.numel()
        for w, s in students.items():
            log(f"bottlefit w={w} {label} epoch {epoch + 1}/{epochs}: loss {totals[w] / seen:.4f} "
                f"test top-1 {accuracy(s, *test):.2f}% (8-bit {accuracy(s, *test, quantize_bits=8):.2f}%) "
                f"({time.time() - t0:.0f} s for all widths)")


def restart_cycle(args, teacher, train, test, students=None):
    """Cycle (iii): a second KD cycle for --restart-widths, from the saved (or given) students."""
    widths = [w for w in args.restart_widths if args.restart_epochs > 0]
    if not widths:
        return
    for p in teacher.parameters():
        p.requires_grad_(False)
    chosen = {}
    for w in widths:
        path = os.path.join(args.out, f"bottlefit-w{w}.pt")
        if students is not None and w in students:
            chosen[w] = students[w]
            continue
        if not os.path.exists(path):
            sys.exit(f"train_fmnist: {path} does not exist (train width {w} with --stage bottlefit first)")
        s = models.Student(models.Teacher(), w)
        s.load_state_dict(torch.load(path))
        chosen[w] = s.to(memory_format=CL)
    gen = torch.Generator().manual_seed(args.seed + 2)
    kd_cycle(args, teacher, chosen, train, test, args.restart_epochs, gen, "kd-restart")
    for w, s in chosen.items():
        torch.save(s.state_dict(), os.path.join(args.out, f"bottlefit-w{w}.pt"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="directory for the trained state dicts")
    ap.add_argument("--data", default=data.DEFAULT_DIR, help="Fashion-MNIST IDX directory")
    ap.add_argument("--stage", choices=["all", "teacher", "bottlefit", "restart"], default="all")
    ap.add_argument("--widths", type=int, nargs="+", default=[1, 2, 4],
                    help="bottleneck channels at 7x7 (bytes per image at 8 bits = 49 x width)")
    ap.add_argument("--teacher-epochs", type=int, default=12)
    ap.add_argument("--hd-epochs", type=int, default=3)
    ap.add_argument("--kd-epochs", type=int, default=6)
    ap.add_argument("--kd-lr", type=float, default=0.01)
    ap.add_argument("--restart-epochs", type=int, default=12,
                    help="epochs of the second KD cycle (0: none)")
    ap.add_argument("--restart-widths", type=int, nargs="*", default=[1, 2],
                    help="widths that get the second KD cycle")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--seed", type=int, default=20221)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    os.makedirs(args.out, exist_ok=True)
    train, test = data.load("train", args.data), data.load("test", args.data)
    log(f"Fashion-MNIST: {train[0].shape[0]} train, {test[0].shape[0]} test images; "
        f"{args.threads} threads, seed {args.seed}")
    if args.stage in ("all", "teacher"):
        teacher = train_teacher(args, train, test)
    else:
        teacher = models.Teacher()
        teacher.load_state_dict(torch.load(os.path.join(args.out, "teacher.pt")))
    students = None
    if args.stage in ("all", "bottlefit"):
        students = train_bottlefit(args, teacher, train, test)
    if args.stage in ("all", "restart"):
        restart_cycle(args, teacher, train, test, students)


if __name__ == "__main__":
    main()
