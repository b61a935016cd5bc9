"""Turn a task file's raw fields into a validated `TaskSplit`.

Every check here names the file and the field, because these files are made by other
people and a wrong one must fail at load time with a message that says what is wrong,
not deep inside training.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from mia_lightning.errors import MiaError
from mia_lightning.task.data import UNKNOWN, TaskSplit
from mia_lightning.task.tml25_format import IgnoredObject, PickledImage, decode_pil_state

MAX_ID = 2**62


def _as_int_list(values: Any, where: str, name: str) -> torch.Tensor:
    if isinstance(values, torch.Tensor):
        if values.dtype.is_floating_point or values.dtype.is_complex or values.dtype == torch.bool:
            raise MiaError(f"{where}: field '{name}' must hold integers, got a {values.dtype} tensor")
        if values.dim() != 1:
            raise MiaError(f"{where}: field '{name}' must be 1-D, got shape {list(values.shape)}")
        return values.to(torch.int64)
    if not isinstance(values, (list, tuple)):
        raise MiaError(f"{where}: field '{name}' must be a list of int, got {type(values).__name__}")
    out = []
    for index, value in enumerate(values):
        if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.dtype.is_floating_point:
            value = int(value.item())
        if isinstance(value, bool) or not isinstance(value, int):
            raise MiaError(f"{where}: field '{name}'[{index}] must be an int, got {type(value).__name__}")
        if abs(value) >= MAX_ID:
            raise MiaError(f"{where}: field '{name}'[{index}] = {value} is out of range")
        out.append(value)
    return torch.tensor(out, dtype=torch.int64)


def _as_membership(values: Any, count: int, where: str) -> torch.Tensor:
    if values is None:
        return torch.full((count,), UNKNOWN, dtype=torch.int8)
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise MiaError(f"{where}: field 'membership' must be a list of 0/1/None, got {type(values).__name__}")
    out = []
    for index, value in enumerate(values):
        if value is None:
            out.append(UNKNOWN)
        elif isinstance(value, (bool, int, float)) and value in (0, 1):
            out.append(int(value))
        else:
            raise MiaError(f"{where}: field 'membership'[{index}] must be 0, 1 or None, got {value!r}")
    return torch.tensor(out, dtype=torch.int8)


def _one_image(image: Any, index: int, where: str) -> torch.Tensor:
    """One image as a [C, H, W] tensor (uint8 or float), not yet resized."""
    if isinstance(image, PickledImage):
        return decode_pil_state(image.state, f"{where}: imgs[{index}]")
    if isinstance(image, torch.Tensor):
        if image.dim() == 2:
            image = image.unsqueeze(0)
        if image.dim() != 3:
            raise MiaError(f"{where}: imgs[{index}] has shape {list(image.shape)}, expected [C, H, W]")
        return image
    if isinstance(image, IgnoredObject):
        raise MiaError(f"{where}: imgs[{index}] is an object of an unsupported type")
    raise MiaError(f"{where}: imgs[{index}] must be a PIL image or a tensor, got {type(image).__name__}")


def _stack_images(imgs: Any, where: str) -> torch.Tensor:
    if isinstance(imgs, torch.Tensor):
        if imgs.dim() == 3:
            imgs = imgs.unsqueeze(1)
        if imgs.dim() != 4:
            raise MiaError(f"{where}: field 'imgs' has shape {list(imgs.shape)}, expected [N, C, H, W]")
        return imgs
    if not isinstance(imgs, (list, tuple)):
        raise MiaError(f"{where}: field 'imgs' must be a list of images or a tensor, got {type(imgs).__name__}")
    if not imgs:
        raise MiaError(f"{where}: field 'imgs' is empty")
    images = [_one_image(image, index, where) for index, image in enumerate(imgs)]
    first = images[0]
    for index, image in enumerate(images):
        if image.shape != first.shape:
            raise MiaError(
                f"{where}: imgs[{index}] has shape {list(image.shape)} but imgs[0] has {list(first.shape)}"
            )
        if image.dtype != first.dtype:
            raise MiaError(f"{where}: imgs[{index}] is {image.dtype} but imgs[0] is {first.dtype}")
    return torch.stack(images)


def to_float_rgb(images: torch.Tensor, where: str) -> torch.Tensor:
    """uint8 or float [N, C, H, W] -> float32 [N, 3, H, W] in [0, 1], or a clear error."""
    if images.numel() == 0:
        raise MiaError(f"{where}: field 'imgs' holds no pixels (shape {list(images.shape)})")
    if images.dtype == torch.uint8:
        images = images.to(torch.float32) / 255.0
    elif images.dtype.is_floating_point:
        images = images.to(torch.float32)
        if not torch.isfinite(images).all():
            bad = int((~torch.isfinite(images)).flatten(1).any(1).nonzero()[0])
            raise MiaError(f"{where}: imgs[{bad}] has NaN or infinite pixels")
        low, high = float(images.min()), float(images.max())
        if low < -1e-4 or high > 1 + 1e-4:
            raise MiaError(
                f"{where}: pixel values span [{low:.3g}, {high:.3g}], expected raw pixels in [0, 1] "
                "(store images before normalisation; the task config holds mean/std)"
            )
        images = images.clamp(0, 1)
    else:
        raise MiaError(f"{where}: images must be uint8 or float, got {images.dtype}")
    channels = images.shape[1]
    if channels == 1:
        images = images.expand(-1, 3, -1, -1)
    elif channels == 4:
        images = images[:, :3]
    elif channels != 3:
        raise MiaError(f"{where}: images have {channels} channels, expected 1 (grey) or 3 (RGB)")
    return images.contiguous()


def fit_size(images: torch.Tensor, size: int, resize: bool, where: str) -> torch.Tensor:
    """Images must be size x size, unless the task resizes them like the assignment's template."""
    height, width = images.shape[-2:]
    if (height, width) == (size, size):
        return images
    if not resize:
        raise MiaError(
            f"{where}: images are {height}x{width}, expected {size}x{size} "
            f"(set task.resize=true to resize them as the assignment's template does)"
        )
    return F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def to_split(fields: dict[str, Any], where: str, image_size: int, resize: bool) -> TaskSplit:
    """Validate raw fields and build a TaskSplit."""
    ids = _as_int_list(fields["ids"], where, "ids")
    labels = _as_int_list(fields["labels"], where, "labels")
    images = fit_size(to_float_rgb(_stack_images(fields["imgs"], where), where), image_size, resize, where)
    count = int(ids.shape[0])
    if count == 0:
        raise MiaError(f"{where}: the file holds no points")
    membership = _as_membership(fields.get("membership"), count, where)
    lengths = {"ids": count, "imgs": int(images.shape[0]), "labels": int(labels.shape[0]),
               "membership": int(membership.shape[0])}
    if len(set(lengths.values())) != 1:
        raise MiaError(f"{where}: fields have different lengths {lengths}")
    unique = torch.unique(ids)
    if unique.numel() != count:
        values, counts = torch.unique(ids, return_counts=True)
        raise MiaError(f"{where}: duplicate id {int(values[counts > 1][0])} in field 'ids'")
    if (labels < 0).any():
        raise MiaError(f"{where}: field 'labels' has a negative label {int(labels.min())}")
    return TaskSplit(ids=ids, images=images, labels=labels, membership=membership)
