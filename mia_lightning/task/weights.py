"""Target weights: a torchvision ResNet18 `state_dict` such as the assignment's `01_MIA.pt`.

The class count and the stem are read off the weights themselves (`fc.weight` rows,
`conv1.weight` kernel size), so the same loader serves the 44-class and 9-class releases,
and a file that does not fit the task fails with a message naming the file.
"""

from __future__ import annotations

import os
from collections import OrderedDict

import torch

from mia_lightning.errors import MiaError
from mia_lightning.io.safe_load import describe_path, safe_torch_load
from mia_lightning.models.resnet import build_resnet18

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
PREFIXES = ("net.", "model.", "module.", "_orig_mod.")


def _unwrap(obj: object, where: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict):
        for key in WRAPPER_KEYS:
            if key in obj and isinstance(obj[key], dict):
                obj = obj[key]
                break
    if not isinstance(obj, dict) or not obj:
        raise MiaError(f"{where}: expected a ResNet18 state_dict (a dict of tensors), got {type(obj).__name__}")
    state: dict[str, torch.Tensor] = OrderedDict()
    for key, value in obj.items():
        if not isinstance(key, str) or not isinstance(value, torch.Tensor):
            raise MiaError(f"{where}: state_dict entry {key!r} is not a named tensor")
        for prefix in PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
        state[key] = value
    return state


def infer_architecture(state: dict[str, torch.Tensor], where: str) -> tuple[int, str]:
    """(num_classes, stem) of a ResNet18 state_dict."""
    fc = state.get("fc.weight")
    conv1 = state.get("conv1.weight")
    if fc is None or conv1 is None:
        raise MiaError(f"{where}: not a ResNet18 state_dict (no 'fc.weight' / 'conv1.weight')")
    if fc.dim() != 2 or fc.shape[1] != 512:
        raise MiaError(f"{where}: fc.weight has shape {list(fc.shape)}, expected [num_classes, 512]")
    kernel = conv1.shape[-1]
    stem = {7: "imagenet", 3: "cifar"}.get(int(kernel))
    if stem is None:
        raise MiaError(f"{where}: conv1 has a {kernel}x{kernel} kernel, expected 7x7 (imagenet) or 3x3 (cifar)")
    return int(fc.shape[0]), stem


def load_target_weights(
    path: str | os.PathLike, key: str | None = "task.target", stem: str = "auto"
) -> tuple[dict[str, torch.Tensor], int, str]:
    """Load and check target weights; returns (state_dict, num_classes, stem)."""
    where = describe_path(path, key)
    state = _unwrap(safe_torch_load(path, key=key), where)
    num_classes, found_stem = infer_architecture(state, where)
    if stem not in ("auto", found_stem):
        raise MiaError(f"{where}: the weights use the {found_stem} stem but model.stem={stem}")
    net = build_resnet18(num_classes, found_stem)
    expected = net.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise MiaError(f"{where}: not a torchvision ResNet18 state_dict (missing {missing[:3]}, unexpected {unexpected[:3]})")
    for name, tensor in expected.items():
        if state[name].shape != tensor.shape:
            raise MiaError(f"{where}: {name} has shape {list(state[name].shape)}, expected {list(tensor.shape)}")
        if state[name].is_floating_point() and not torch.isfinite(state[name]).all():
            raise MiaError(f"{where}: {name} holds NaN or infinite values")
    return state, num_classes, found_stem
