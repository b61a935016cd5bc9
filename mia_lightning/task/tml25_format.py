"""The TML25 file format: pickled `MembershipDataset` objects, read safely and written back.

The assignment distributes `pub.pt` / `priv_out.pt` as `torch.save`d instances of classes
defined in the student's own script (`__main__.MembershipDataset`, a subclass of
`__main__.TaskDataset`) holding `ids`, `imgs` (PIL images or CHW tensors), `labels` and
`membership`. We never import or run those classes: the restricted unpickler maps each of
their names onto an inert record class below that only stores attributes, PIL images onto
a record of their pickled bytes, and torchvision transforms onto a record that is ignored.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_write
from mia_lightning.io.safe_load import SafeGlobal, describe_path, safe_torch_load

FIELDS = ("ids", "imgs", "labels", "membership")


class DatasetRecord:
    """Stands in for the assignment's TaskDataset/MembershipDataset: attributes only."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, dict):
            raise TypeError(f"dataset state must be a dict, got {type(state).__name__}")
        self.__dict__.update({k: v for k, v in state.items() if isinstance(k, str)})


class PickledImage:
    """Stands in for a pickled `PIL.Image.Image`: keeps its state, decoded later by us."""

    def __setstate__(self, state: Any) -> None:
        self.state = state


class IgnoredObject:
    """Stands in for objects we do not need (e.g. a pickled torchvision transform)."""

    def __setstate__(self, state: Any) -> None:
        self.state = None


def _allow_list(path: Path) -> list[SafeGlobal]:
    """Map the class names this file mentions onto our inert records (and nothing else)."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # unreadable files fail later, in safe_torch_load, with a clear message
        return []
    allow: list[SafeGlobal] = []
    for name in names:
        leaf = name.rsplit(".", 1)[-1]
        if leaf in ("MembershipDataset", "TaskDataset"):
            allow.append((DatasetRecord, name))
        elif name.startswith("PIL.") and (name == "PIL.Image.Image" or leaf.endswith("ImageFile")):
            allow.append((PickledImage, name))
        elif name.startswith("torchvision.transforms."):
            allow.append((IgnoredObject, name))
    return allow


def load_raw(path: str | os.PathLike, key: str | None = None) -> dict[str, Any]:
    """Read a task file into a dict of its raw fields (lists or tensors), safely."""
    where = describe_path(path, key)
    obj = safe_torch_load(path, key=key, allow=_allow_list(Path(path)))
    if isinstance(obj, DatasetRecord):
        fields = dict(obj.__dict__)
    elif isinstance(obj, dict):
        fields = dict(obj)
    else:
        raise MiaError(f"{where}: expected a MembershipDataset or a dict of {FIELDS}, got {type(obj).__name__}")
    if "imgs" not in fields and "images" in fields:
        fields["imgs"] = fields.pop("images")
    missing = [name for name in ("ids", "imgs", "labels") if name not in fields]
    if missing:
        if _is_state_dict(fields):  # e.g. task.pub and task.target swapped
            raise MiaError(f"{where}: holds model weights (a state_dict of {len(fields)} tensors, e.g. "
                           f"{', '.join(list(fields)[:2])}), not a task dataset; is it task.target?")
        found = sorted(k for k in fields if isinstance(k, str))
        shown = ", ".join(repr(k) for k in found[:6]) + (f", ... ({len(found)} in all)" if len(found) > 6 else "")
        raise MiaError(f"{where}: missing field(s) {missing}; expected {list(FIELDS)}, found [{shown}]")
    return fields


def _is_state_dict(fields: dict[str, Any]) -> bool:
    """A dict of named tensors with dotted parameter names ("conv1.weight"): model weights."""
    return bool(fields) and all(isinstance(v, torch.Tensor) for v in fields.values()) and any(
        isinstance(k, str) and k.endswith((".weight", ".bias")) for k in fields)


def decode_pil_state(state: Any, where: str) -> torch.Tensor:
    """Turn a pickled PIL image's state into a uint8 [C, H, W] tensor, without PIL."""
    if not isinstance(state, (list, tuple)) or len(state) < 4:
        raise MiaError(f"{where}: malformed pickled PIL image")
    mode, size, data = state[1], state[2], state[-1]
    palette = state[3] if len(state) >= 5 else None
    if isinstance(data, (bytearray, memoryview)):
        data = bytes(data)
    if not (isinstance(mode, str) and isinstance(size, (tuple, list)) and len(size) == 2 and isinstance(data, bytes)
            and all(isinstance(v, int) and not isinstance(v, bool) for v in size)):
        raise MiaError(f"{where}: malformed pickled PIL image")
    width, height = size
    channels = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "P": 1}.get(mode)
    if channels is None:
        raise MiaError(f"{where}: unsupported PIL image mode {mode!r} (use RGB or L)")
    if width <= 0 or height <= 0 or len(data) != width * height * channels:
        raise MiaError(f"{where}: PIL image data has {len(data)} bytes, expected {width}x{height}x{channels}")
    pixels = torch.frombuffer(bytearray(data), dtype=torch.uint8).view(height, width, channels)
    if mode == "P":
        if isinstance(palette, (bytes, bytearray)):
            palette = list(palette)
        if not isinstance(palette, (list, tuple)) or len(palette) < 3 \
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in palette):
            raise MiaError(f"{where}: palette image without a valid palette")
        table = torch.tensor([v & 0xFF for v in palette], dtype=torch.uint8)
        table = torch.nn.functional.pad(table, (0, max(0, 768 - table.numel())))[:768].view(256, 3)
        pixels = table[pixels[..., 0].long()]
    elif mode in ("LA", "RGBA"):
        pixels = pixels[..., :-1]  # drop alpha
    return pixels.permute(2, 0, 1).contiguous()


# --- writing -----------------------------------------------------------------------------


class _TaskDatasetWriter:
    """Pickles as `__main__.TaskDataset`, the name the assignment's loader expects."""


class _MembershipDatasetWriter(_TaskDatasetWriter):
    """Pickles as `__main__.MembershipDataset`."""


_TaskDatasetWriter.__module__ = "__main__"
_TaskDatasetWriter.__qualname__ = _TaskDatasetWriter.__name__ = "TaskDataset"
_MembershipDatasetWriter.__module__ = "__main__"
_MembershipDatasetWriter.__qualname__ = _MembershipDatasetWriter.__name__ = "MembershipDataset"


@contextlib.contextmanager
def _classes_in_main() -> Iterator[None]:
    """Let pickle find our writer classes under `__main__` for the duration of a save."""
    main = sys.modules["__main__"]
    saved = {name: getattr(main, name, None) for name in ("TaskDataset", "MembershipDataset")}
    main.TaskDataset = _TaskDatasetWriter  # type: ignore[attr-defined]
    main.MembershipDataset = _MembershipDatasetWriter  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                delattr(main, name)
            else:
                setattr(main, name, value)


def write_task_file(
    path: str | os.PathLike,
    ids: list[int],
    images: torch.Tensor,
    labels: list[int],
    membership: list[int | None],
    image_format: str = "pil",
) -> Path:
    """Write a task file the way the assignment distributes it (atomically).

    images: float [N, 3, H, W] in [0, 1]. `image_format="pil"` stores RGB PIL images (the
    44-class release), `"tensor"` stores CHW float tensors (later releases).
    """
    if image_format == "pil":
        from PIL import Image

        pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()
        imgs: list[Any] = [Image.fromarray(pixel, mode="RGB") for pixel in pixels]
    elif image_format == "tensor":
        imgs = [image.clone() for image in images.to(torch.float32)]
    else:
        raise MiaError(f"task.image_format must be 'pil' or 'tensor', got {image_format!r}")
    dataset = _MembershipDatasetWriter()
    dataset.__dict__.update(
        ids=[int(i) for i in ids], imgs=imgs, labels=[int(y) for y in labels],
        membership=list(membership), transform=None,
    )
    buffer = io.BytesIO()
    with _classes_in_main():
        torch.save(dataset, buffer)
    return atomic_write(path, lambda handle: handle.write(buffer.getvalue()))
