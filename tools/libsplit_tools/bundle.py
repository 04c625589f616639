"""Writing bundles: TorchScript head/tail/full files plus a versioned manifest.json.

A bundle is written to a temporary directory beside the target and renamed into place only when
everything succeeded, so a failed export leaves nothing behind.
"""
import json
import os
import shutil
import tempfile

import torch

FORMAT_VERSION = 1


class ExportError(Exception):
    """A user-facing export problem; the message is one line."""


def script(module, example):
    module = module.eval()
    with torch.no_grad():
        try:
            return torch.jit.script(module)
        except Exception:  # noqa: BLE001 - some torchvision modules only trace
            return torch.jit.trace(module, example)


def write_bundle(out_dir, manifest, modules):
    """modules: {file name: scripted module}. Replaces out_dir atomically."""
    parent = os.path.dirname(os.path.abspath(out_dir))
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
    try:
        for name, m in modules.items():
            m.save(os.path.join(tmp, name))
        with open(os.path.join(tmp, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=2)
            f.write("\n")
        if os.path.exists(out_dir):
            shutil.rmtree(out_dir)
        os.chmod(tmp, 0o755)
        os.rename(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def load_fmnist_manifest(bundle_dir, tool, why):
    """A bundle's manifest for a tool that reads Fashion-MNIST data: exits with one line naming the
    tool and the file when it cannot be read or its input is not [1, 1, 28, 28] (`why` says what
    the tool reads, for that message). Returns (manifest path, manifest)."""
    path = os.path.join(bundle_dir, "manifest.json")
    try:
        with open(path) as f:
            manifest = json.load(f)
    except (OSError, ValueError) as e:
        raise SystemExit(f"{tool}: {path}: {e}")
    shape = manifest.get("input", {}).get("shape")
    if shape != [1, 1, 28, 28]:
        raise SystemExit(f"{tool}: {path}: input shape {shape} is not Fashion-MNIST's [1, 1, 28, 28] ({why})")
    return path, manifest


def write_manifest(bundle_dir, manifest):
    """Replaces <bundle_dir>/manifest.json atomically (a temporary file renamed into place)."""
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", dir=bundle_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, os.path.join(bundle_dir, "manifest.json"))


def manifest_base(name, version, labels, input_shape, mean, std, channel_order, weights, output_shape):
    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": version,
        "weights": weights,
        "labels": labels,
        "input": {"shape": list(input_shape), "dtype": "float32", "mean": list(mean), "std": list(std),
                  "channel_order": channel_order, "layout": "NCHW"},
        "full": "full.pt",
        "output": {"shape": list(output_shape)},
        "splits": [],
    }


def split_entry(split_id, kind, bottleneck_shape, codec="q8", accuracy=None, **extra):
    e = {"id": split_id, "kind": kind, "head": f"{split_id}_head.pt", "tail": f"{split_id}_tail.pt",
         "bottleneck": {"shape": list(bottleneck_shape), "dtype": "float32"}, "codec": codec}
    if accuracy is not None:
        e["accuracy"] = accuracy
    e.update(extra)
    return e


def choose_default_split(manifest, teacher_acc):
    """Sets manifest["default_split"]: the narrowest learned (BottleFit) split within 1 point of
    the teacher through its codec, else the most accurate learned split, else the first split."""
    learned = [s for s in manifest["splits"] if s["kind"] == "bottlefit"]
    close = [s for s in learned if teacher_acc is not None and s["accuracy"]["codec"] >= teacher_acc - 1.0]
    if close:
        manifest["default_split"] = min(close, key=lambda s: s["bytes_per_image"])["id"]
    elif learned:
        manifest["default_split"] = max(learned, key=lambda s: s["accuracy"]["codec"])["id"]
    elif manifest["splits"]:
        manifest["default_split"] = manifest["splits"][0]["id"]
