"""The only way mia reads a `.pt` file: `torch.load(weights_only=True)` with an allow-list.

Task files, weights and checkpoints are passed around between people; a full unpickle
would run whatever code a file asks for. The restricted unpickler refuses every global
that is not on the allow-list (and every global of `os`, `sys`, `posix`), so such a
file fails with a one-line `MiaError` and its payload never runs.
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from mia_lightning.errors import MiaError

SafeGlobal = Callable[..., Any] | tuple[Callable[..., Any], str]


def describe_path(path: str | os.PathLike, key: str | None) -> str:
    return f"{key}={path}" if key else str(path)


def safe_torch_load(
    path: str | os.PathLike,
    *,
    key: str | None = None,
    allow: Iterable[SafeGlobal] = (),
) -> Any:
    """Load `path` with the restricted unpickler; any failure becomes a one-line MiaError.

    `key` names the config key the path came from, so the message points at what to fix.
    `allow` extends torch's default allow-list (tensors, containers) for this call only.
    """
    where = describe_path(path, key)
    file = Path(path)
    if not file.is_file():
        raise MiaError(f"{where}: file not found")
    if file.stat().st_size == 0:
        raise MiaError(f"{where}: file is empty")
    try:
        with torch.serialization.safe_globals(list(allow)):
            obj = torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise MiaError(f"{where}: refused to load: {_refusal(file, key, err)}") from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError, TypeError, AttributeError,
            KeyError, IndexError, OverflowError, MemoryError, UnicodeDecodeError, OSError, struct.error) as err:
        raise MiaError(f"{where}: not a readable torch file (truncated or corrupt?): {_first_line(err)}") from None
    check_tensors(obj, where)
    return obj


# Plain dense dtypes; the weights-only unpickler also rebuilds meta, sparse, quantized, nested,
# float8/bit-packed and subclass tensors, which no mia file holds and which break later code.
PLAIN_DTYPES = frozenset({torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64,
                          torch.float16, torch.bfloat16, torch.float32, torch.float64})
MAX_VIEW_GROWTH = 16  # a stride-0 view may not claim much more memory than the file stores


def check_tensors(obj: Any, where: str) -> None:
    """Refuse tensors mia cannot use safely: exotic layouts/dtypes, and broadcast views that
    would materialise far more memory than the file holds (a 1 KB file claiming 1 TB)."""
    stack, seen = [obj], set()
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.Tensor):
            _check_tensor(item, where)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack.extend(item)
        elif hasattr(item, "__dict__") and not isinstance(item, type):
            stack.extend(vars(item).values())


def _check_tensor(tensor: torch.Tensor, where: str) -> None:
    shape = list(tensor.shape)
    if type(tensor) not in (torch.Tensor, torch.nn.Parameter):
        raise MiaError(f"{where}: holds a tensor of unsupported type {type(tensor).__name__}")
    if tensor.layout != torch.strided or tensor.is_meta or tensor.is_quantized or tensor.is_nested \
            or tensor.device.type != "cpu":
        raise MiaError(f"{where}: holds a {tensor.layout} {tensor.device.type} tensor of shape {shape}; "
                       "only plain dense tensors are accepted")
    if tensor.dtype not in PLAIN_DTYPES:
        raise MiaError(f"{where}: holds a tensor of unsupported dtype {tensor.dtype} (shape {shape})")
    logical = tensor.numel() * tensor.element_size()
    stored = tensor.untyped_storage().nbytes()
    if logical > max(MAX_VIEW_GROWTH * stored, 1 << 24):
        raise MiaError(f"{where}: a tensor of shape {shape} is a broadcast view of {stored} stored bytes "
                       f"that would take {logical / 2**30:.1f} GiB; refused")


MODEL_MODULES = ("torch.nn.", "torchvision.models.", "lightning.", "pytorch_lightning.", "timm.")
DATASET_CLASSES = ("MembershipDataset", "TaskDataset")


def _refusal(file: Path, key: str | None, err: BaseException) -> str:
    """Why a file was refused, in terms of what it holds and what to do; never torch's own
    advice, which is to load it with `weights_only=False` (the very thing mia refuses)."""
    try:  # reads the pickle's opcodes only; nothing in the file runs
        names = torch.serialization.get_unsafe_globals_in_checkpoint(file)
    except Exception:
        names = []
    datasets = [name for name in names if name.rsplit(".", 1)[-1] in DATASET_CLASSES]
    models = [name for name in names if name.startswith(MODEL_MODULES)]
    if datasets:
        hint = "; is it task.pub or task.priv?" if key in ("task.target", "task.truth") else ""
        return f"it holds a TML25 task dataset ({datasets[0]}), not {_expected(key)}{hint}"
    if models:
        top = _model_class(names, models)
        return (f"it holds a whole pickled model ({top}), not a state_dict; mia loads tensors only and never "
                f"unpickles code: save the weights with torch.save(model.state_dict(), {str(file)!r}) instead")
    if names:
        more = f" and {len(names) - 1} more" if len(names) > 1 else ""
        return f"it holds Python objects mia does not load ({names[0]}{more}); mia never unpickles code"
    return f"{_first_line(err)} (mia never unpickles code)"


def _model_class(names: list[str], models: list[str]) -> str:
    """The pickled model's own class, as far as the file's globals tell (their order is not kept):
    a class from outside torch (the user's `Net`), else torchvision's network over its blocks."""
    own = sorted(name for name in names if not name.startswith(("torch.", "torchvision.", "collections.", "builtins.")))
    if own:
        return own[0]
    return sorted(models, key=lambda name: (not name.startswith("torchvision.models."),
                                            name.endswith(("Block", "Bottleneck")), name))[0]


def _expected(key: str | None) -> str:
    return {"task.target": "model weights (a ResNet18 state_dict)", "task.truth": "a truth file"}.get(
        key or "", "what this file should hold")


def _first_line(err: BaseException) -> str:
    """The unpickler's own complaint ("Unsupported global: GLOBAL posix.system"), without the
    surrounding advice to turn weights_only off."""
    text = str(err).strip() or type(err).__name__
    for line in text.splitlines():
        if "WeightsUnpickler error:" in line:
            line = line.split("WeightsUnpickler error:", 1)[1].strip()
            return line.split(" was not an allowed global")[0].split(". Please")[0][:300]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    useful = [line for line in lines if not line.startswith(("Weights only load failed", "(1)", "(2)", "Check the"))
              and "weights_only" not in line]
    return (useful or lines or [type(err).__name__])[0][:300]
