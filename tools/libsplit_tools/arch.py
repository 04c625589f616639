"""Classifiers to split: torchvision's architectures, the user's own modules, their weights, and
the points where they can be cut.

A network can be cut where it runs as a sequence of modules: `sequence(model)` flattens it into
[(path, module)] (nested nn.Sequential containers expanded into dotted paths: layer1.0,
features.3) whose composition is checked against the model's own forward pass. The patterns
known: nn.Sequential; conv1..layer4 + avgpool + fc (the ResNet family); features + avgpool +
classifier (MobileNet, EfficientNet, VGG); features + classifier with a ReLU between (DenseNet).
"""
import importlib.util
import os
import pickle
import zipfile
from typing import List, Tuple

import torch
from torch import nn

TORCHVISION_TESTED = ("resnet18", "resnet34", "resnet50", "mobilenet_v2", "mobilenet_v3_small",
                      "mobilenet_v3_large", "efficientnet_b0", "densenet121")


class ModelError(Exception):
    """A problem with the user's model or weights; the message is one line."""


def torchvision_builder(arch):
    import torchvision
    builder = getattr(torchvision.models, arch, None)
    if builder is None or not callable(builder) or arch.startswith("_") or arch[:1].isupper() \
            or arch in ("get_model", "get_weight", "list_models", "get_model_weights", "get_model_builder"):
        raise ModelError(f"unknown architecture '{arch}' (a torchvision.models classifier, e.g. "
                         f"{', '.join(TORCHVISION_TESTED)})")
    return builder


def build_torchvision(arch, num_classes):
    builder = torchvision_builder(arch)
    try:
        return builder(weights=None, num_classes=num_classes)
    except TypeError as e:
        raise ModelError(f"'{arch}' is not a torchvision classification model ({e})") from None


def build_user(spec):
    """FILE.py:FACTORY -> the module FACTORY() returns."""
    path, sep, factory = spec.rpartition(":")
    if not sep or not path or not factory:
        raise ModelError(f"--model '{spec}': expected FILE.py:FACTORY")
    if not os.path.isfile(path):
        raise ModelError(f"--model {path}: no such file")
    loader_spec = importlib.util.spec_from_file_location("libsplit_user_model", path)
    mod = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001 - the user's code: report, don't crash
        raise ModelError(f"--model {path}: importing it failed: {type(e).__name__}: {e}") from None
    fn = getattr(mod, factory, None)
    if fn is None or not callable(fn):
        raise ModelError(f"--model {path}: has no callable '{factory}'")
    try:
        model = fn()
    except Exception as e:  # noqa: BLE001
        raise ModelError(f"--model {spec}: {factory}() failed: {type(e).__name__}: {e}") from None
    if not isinstance(model, nn.Module):
        raise ModelError(f"--model {spec}: {factory}() returned {type(model).__name__}, not a torch.nn.Module")
    return model


def _state_dict_of(obj):
    if isinstance(obj, dict):
        for key in ("state_dict", "model_state_dict", "model"):
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {k[len("module."):] if k.startswith("module.") else k: v for k, v in obj.items()}
    return None


def load_weights(model, path, replace_classifier=False):
    """Loads a state dict, a pickled nn.Module or a TorchScript file into `model` (or returns the
    pickled / TorchScript model's weights loaded into it). A state dict that does not fit fails
    with one line naming the first mismatching key and both shapes. replace_classifier: the last
    layer's weights may have another class count (they stay as initialised)."""
    if not os.path.isfile(path):
        raise ModelError(f"--teacher-weights {path}: no such file")
    obj = None
    if zipfile.is_zipfile(path):
        try:
            obj = torch.jit.load(path, map_location="cpu").state_dict()
        except Exception:  # noqa: BLE001 - not TorchScript: a zip-format torch.save file
            obj = None
    if obj is None:
        try:
            obj = torch.load(path, map_location="cpu")
        except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ModuleNotFoundError) as e:
            raise ModelError(f"--teacher-weights {path}: not a state dict, pickled model or TorchScript file "
                             f"({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from None
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    state = _state_dict_of(obj)
    if state is None:
        raise ModelError(f"--teacher-weights {path}: holds {type(obj).__name__}, not a state dict of tensors")
    own = model.state_dict()
    last = classifier_keys(model)
    for key, value in own.items():
        if key not in state:
            raise ModelError(f"--teacher-weights {path}: key '{key}' (shape {list(value.shape)}) is missing from the file")
        if tuple(state[key].shape) != tuple(value.shape):
            if replace_classifier and key in last:
                continue
            raise ModelError(f"--teacher-weights {path}: key '{key}' has shape {list(state[key].shape)} in the file "
                             f"but {list(value.shape)} in the model")
    extra = [k for k in state if k not in own]
    if extra:
        raise ModelError(f"--teacher-weights {path}: key '{extra[0]}' (shape {list(state[extra[0]].shape)}) is not in "
                         f"the model ({len(extra)} such keys)")
    keep = {k: v for k, v in state.items() if tuple(v.shape) == tuple(own[k].shape)}
    model.load_state_dict(keep, strict=False)
    return sorted(set(own) - set(keep))


def classifier_keys(model):
    """State-dict keys of the model's last Linear layer (the class scores)."""
    last = None
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            last = name
    if last is None:
        return set()
    return {f"{last}.weight", f"{last}.bias"}


class _Relu(nn.Module):
    def forward(self, x):
        return torch.relu(x)


def _expand(prefix, module):
    if isinstance(module, nn.Sequential):
        out = []
        for name, child in module.named_children():
            out += _expand(f"{prefix}.{name}" if prefix else name, child)
        return out
    return [(prefix, module)]


def _candidates(model):
    kids = dict(model.named_children())
    if isinstance(model, nn.Sequential):
        yield _expand("", model)
    if "fc" in kids and "avgpool" in kids:  # ResNet family
        seq = []
        for name, child in kids.items():
            if name in ("avgpool", "fc"):
                continue
            seq += _expand(name, child)
        yield seq + [("avgpool", kids["avgpool"]), ("flatten", nn.Flatten()), ("fc", kids["fc"])]
    if "features" in kids and "classifier" in kids:
        pool = kids.get("avgpool", nn.AdaptiveAvgPool2d(1))
        base = _expand("features", kids["features"])
        yield base + [("avgpool", pool), ("flatten", nn.Flatten()), ("classifier", kids["classifier"])]
        yield base + [("relu", _Relu()), ("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                      ("classifier", kids["classifier"])]  # DenseNet


def sequence(model, input_shape) -> List[Tuple[str, nn.Module]]:
    """The model as a checked sequence of (path, module). Raises ModelError if no known pattern
    reproduces its forward pass."""
    model.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn((2,) + tuple(input_shape[1:]), generator=g)
    with torch.no_grad():
        try:
            ref = model(x)
        except Exception as e:  # noqa: BLE001
            raise ModelError(f"{type(model).__name__} does not run on input {list(x.shape)}: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}") from None
        for seq in _candidates(model):
            y = x
            try:
                for _, m in seq:
                    y = m(y)
            except Exception:  # noqa: BLE001 - not this pattern
                continue
            if isinstance(ref, torch.Tensor) and y.shape == ref.shape and torch.allclose(y, ref, rtol=1e-4, atol=1e-5):
                return seq
    raise ModelError(f"{type(model).__name__} cannot be cut: its forward pass is not a sequence of its modules "
                     f"(make the factory return an nn.Sequential, or a module with features + classifier or "
                     f"layers + avgpool + fc)")


def shapes(seq, input_shape):
    """Output shape of every position of the sequence for a batch of one."""
    out = []
    x = torch.zeros(input_shape)
    with torch.no_grad():
        for _, m in seq:
            x = m(x)
            out.append(tuple(x.shape))
    return out


def index_of(seq, path, what="--split-after"):
    paths = [p for p, _ in seq]
    inside = [i for i, p in enumerate(paths) if p.startswith(path + ".")]
    if path not in paths and inside:  # a container (layer1): cut after its last module
        path = paths[inside[-1]]
    if path not in paths:
        raise ModelError(f"{what} '{path}': no such module; cut points are {', '.join(paths[:-1])} "
                         f"(--list-splits prints them with their shapes)")
    k = paths.index(path)
    if k == len(paths) - 1:
        raise ModelError(f"{what} '{path}' is the output layer; a split needs a tail")
    return k
