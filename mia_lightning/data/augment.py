"""Image augmentation on whole batches, on the batch's own device.

Shadow training keeps the dataset as one device tensor (design §5), so the random crop +
flip must run on the device too, without a Python loop over samples. Random numbers are
always drawn on the CPU from the caller's `torch.Generator`, in the order documented in
`draw_crop_flip`, and only then moved to the device: a given seed gives the same
augmentation on CPU and GPU, and `random_crop_flip_reference` (a per-sample loop) can
reproduce it exactly.

`shift_images` / `mirror_images` are the deterministic versions LiRA's augmentation
queries use ("mirror", "shift_DX_DY").

Sign convention, used throughout: a shift of (dx, dy) moves the image CONTENT by dx pixels
to the right and dy pixels down, i.e. `out[..., y, x] = in[..., y - dy, x - dx]`, with zeros
where `(y - dy, x - dx)` falls outside. A crop at offset (ox, oy) of the image zero-padded by
`pad` is the same as a shift by (dx, dy) = (pad - ox, pad - oy).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from mia_lightning.utils.seeding import derive_seed

__all__ = [
    "augment_generator", "draw_crop_flip", "random_crop_flip", "apply_crop_flip", "random_crop_flip_reference", "crop_flip_one",
    "shift_images", "mirror_images",
]


def augment_generator(seed: int, step: int) -> torch.Generator:
    """The generator of optimizer step `step`'s crop/flip draws for a model seeded `seed`: the
    single, stacked and plain paths all draw from it, so they augment identically."""
    return torch.Generator().manual_seed(derive_seed(seed, "augment", step))


def draw_crop_flip(batch: int, crop_padding: int, flip: bool, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """Draw one batch's augmentation parameters on the CPU, in this fixed order.

    1. `oy = randint(0, 2*pad + 1, (batch,))`  vertical crop offsets (rows)
    2. `ox = randint(0, 2*pad + 1, (batch,))`  horizontal crop offsets (columns)
    3. only if `flip`: `flips = rand(batch) < 0.5`  (otherwise all False, nothing drawn)

    Steps 1 and 2 are drawn even when `crop_padding == 0`, so the generator advances the
    same way whatever the padding. Returns int64 `oy`, `ox` and bool `flips`, all on CPU.
    """
    if crop_padding < 0:
        raise ValueError(f"crop_padding must be >= 0, got {crop_padding}")
    if generator.device.type != "cpu":
        raise ValueError("draw augmentation randomness from a CPU generator so every device gets the same numbers")
    high = 2 * crop_padding + 1
    oy = torch.randint(0, high, (batch,), generator=generator)
    ox = torch.randint(0, high, (batch,), generator=generator)
    if flip:
        flips = torch.rand(batch, generator=generator) < 0.5
    else:
        flips = torch.zeros(batch, dtype=torch.bool)
    return oy, ox, flips


def random_crop_flip(images: Tensor, crop_padding: int, flip: bool, generator: torch.Generator) -> Tensor:
    """Random zero-padded crop + horizontal flip per sample, vectorised on `images.device`.

    `images` is [B, C, H, W] (any dtype). Each sample is zero-padded by `crop_padding`,
    cropped back to HxW at offsets drawn uniformly from [0, 2*pad], then mirrored with
    probability 0.5 if `flip`. Randomness: see `draw_crop_flip`.
    """
    oy, ox, flips = draw_crop_flip(images.shape[0], crop_padding, flip, generator)
    if crop_padding == 0 and not flip:
        return images.clone()
    return apply_crop_flip(images, crop_padding, oy, ox, flips)


def apply_crop_flip(images: Tensor, crop_padding: int, oy: Tensor, ox: Tensor, flips: Tensor) -> Tensor:
    """The crop + flip of `random_crop_flip` with given parameters (one gather pass, any device).

    `oy`, `ox` (int64 [B], in [0, 2*pad]) and `flips` (bool [B]) as `draw_crop_flip` returns
    them; they are moved to `images.device` here. Stacked training draws each model's
    parameters from its own generator and augments all G batches in one call.
    """
    b, c, h, w = images.shape
    device = images.device
    oy, ox, flips = oy.to(device), ox.to(device), flips.to(device)
    padded = F.pad(images, (crop_padding,) * 4) if crop_padding else images
    rows = oy[:, None] + torch.arange(h, device=device)  # [B, H] rows of `padded` to take
    cols = torch.arange(w, device=device).expand(b, w)
    cols = torch.where(flips[:, None], (w - 1) - cols, cols) + ox[:, None]  # [B, W], mirrored if flipped
    wp = padded.shape[-1]
    out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, wp))
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def random_crop_flip_reference(images: Tensor, crop_padding: int, flip: bool, generator: torch.Generator) -> Tensor:
    """Per-sample loop version of `random_crop_flip` (same random numbers, same order), for tests."""
    b, _, h, w = images.shape
    high = 2 * crop_padding + 1
    oy = torch.randint(0, high, (b,), generator=generator)
    ox = torch.randint(0, high, (b,), generator=generator)
    flips = torch.rand(b, generator=generator) < 0.5 if flip else torch.zeros(b, dtype=torch.bool)
    out = torch.empty_like(images)
    for i in range(b):
        out[i] = crop_flip_one(images[i], crop_padding, int(oy[i]), int(ox[i]), bool(flips[i]))
    return out


def crop_flip_one(image: Tensor, crop_padding: int, oy: int, ox: int, flip: bool) -> Tensor:
    """One [C, H, W] image: zero-pad by `crop_padding`, crop HxW at (oy, ox), mirror if `flip`.

    The per-sample CPU augmentation of the plain (DataLoader) training path; with the
    numbers `draw_crop_flip` drew for a batch it gives exactly `apply_crop_flip`'s result.
    """
    h, w = image.shape[-2:]
    padded = F.pad(image, (crop_padding,) * 4) if crop_padding else image
    crop = padded[:, oy: oy + h, ox: ox + w]
    return torch.flip(crop, dims=(-1,)) if flip else crop.clone()


def shift_images(images: Tensor, dx: int, dy: int) -> Tensor:
    """Shift [..., H, W] images by whole pixels, zero fill: +dx moves content right, +dy down."""
    h, w = images.shape[-2:]
    out = torch.zeros_like(images)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[..., max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = images[
        ..., max(-dy, 0) : h - max(dy, 0), max(-dx, 0) : w - max(dx, 0)
    ]
    return out


def mirror_images(images: Tensor) -> Tensor:
    """Horizontal flip (left-right mirror) of [..., H, W] images."""
    return torch.flip(images, dims=(-1,))
