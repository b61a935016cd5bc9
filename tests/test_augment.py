"""Device-side crop/flip equals a per-sample loop; shifts and mirrors do what their names say."""

from __future__ import annotations

import pytest
import torch

from mia_lightning.data.augment import (
    draw_crop_flip,
    mirror_images,
    random_crop_flip,
    random_crop_flip_reference,
    shift_images,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _images(b: int, c: int = 3, h: int = 8, w: int = 7, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    # distinct nonzero values, so any misplaced pixel or wrongly zeroed border is visible
    x = torch.arange(1, b * c * h * w + 1, dtype=torch.float64).reshape(b, c, h, w)
    return x.to(dtype)


@pytest.mark.parametrize("pad", [0, 1, 2, 4])
@pytest.mark.parametrize("batch", [1, 5, 33])
@pytest.mark.parametrize("flip", [False, True])
def test_vectorised_matches_reference(pad: int, batch: int, flip: bool) -> None:
    images = _images(batch)
    g1, g2 = _gen(pad * 100 + batch), _gen(pad * 100 + batch)
    fast = random_crop_flip(images, pad, flip, g1)
    ref = random_crop_flip_reference(images, pad, flip, g2)
    assert fast.shape == images.shape and fast.dtype == images.dtype
    assert torch.equal(fast, ref)
    # both consumed the same amount of randomness
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_uint8_and_channels_last_inputs() -> None:
    images = _images(6, h=5, w=5).remainder(251).to(torch.uint8)
    fast = random_crop_flip(images.contiguous(memory_format=torch.channels_last), 2, True, _gen(3))
    ref = random_crop_flip_reference(images, 2, True, _gen(3))
    assert fast.dtype == torch.uint8 and torch.equal(fast, ref)


def test_pad0_noflip_is_identity() -> None:
    images = _images(4)
    out = random_crop_flip(images, 0, False, _gen())
    assert torch.equal(out, images)
    assert out.data_ptr() != images.data_ptr()  # a copy: callers may modify it in place


def test_draw_order_is_documented_order() -> None:
    oy, ox, flips = draw_crop_flip(10, 3, True, _gen(7))
    g = _gen(7)
    assert torch.equal(oy, torch.randint(0, 7, (10,), generator=g))
    assert torch.equal(ox, torch.randint(0, 7, (10,), generator=g))
    assert torch.equal(flips, torch.rand(10, generator=g) < 0.5)
    assert oy.min() >= 0 and oy.max() <= 6 and ox.max() <= 6


def test_offsets_cover_range_and_flip_is_fair() -> None:
    oy, ox, flips = draw_crop_flip(4000, 2, True, _gen(1))
    assert set(oy.tolist()) == set(range(5)) and set(ox.tolist()) == set(range(5))
    assert 0.45 < flips.float().mean().item() < 0.55
    _, _, no_flips = draw_crop_flip(50, 2, False, _gen(1))
    assert not no_flips.any()


def test_crop_is_shift_and_flip_is_mirror() -> None:
    """Each output sample equals shift(pad - ox, pad - oy), then mirror if flipped."""
    pad, batch = 3, 40
    images = _images(batch, h=9, w=9)
    out = random_crop_flip(images, pad, True, _gen(11))
    oy, ox, flips = draw_crop_flip(batch, pad, True, _gen(11))
    assert flips.any() and (~flips).any()
    for i in range(batch):
        expected = shift_images(images[i], int(pad - ox[i]), int(pad - oy[i]))
        if flips[i]:
            expected = mirror_images(expected)
        assert torch.equal(out[i], expected), i


def test_offset_equal_to_pad_without_flip_is_identity() -> None:
    pad, batch = 1, 100
    images = _images(batch, h=4, w=4)
    out = random_crop_flip(images, pad, True, _gen(5))
    oy, ox, flips = draw_crop_flip(batch, pad, True, _gen(5))
    centred = (ox == pad) & (oy == pad) & ~flips
    assert centred.any() and (~centred).any()
    assert torch.equal(out[centred], images[centred])
    assert all(not torch.equal(out[i], images[i]) for i in torch.nonzero(~centred).flatten().tolist())


def test_cpu_generator_required() -> None:
    class FakeGen:
        device = torch.device("cuda")

    with pytest.raises(ValueError, match="CPU generator"):
        draw_crop_flip(2, 1, True, FakeGen())  # type: ignore[arg-type]


def test_shift_direction_and_zero_fill() -> None:
    img = torch.zeros(1, 5, 6)
    img[0, 2, 3] = 1.0
    right_down = shift_images(img, dx=2, dy=1)
    assert right_down[0, 3, 5] == 1.0 and right_down.sum() == 1.0
    left_up = shift_images(img, dx=-3, dy=-2)
    assert left_up[0, 0, 0] == 1.0 and left_up.sum() == 1.0
    assert shift_images(img, dx=3, dy=0).sum() == 0.0  # pushed off the right edge
    assert torch.equal(shift_images(img, 0, 0), img)


def test_shift_matches_manual_roll_with_zeroed_border() -> None:
    images = _images(2, h=6, w=7)
    for dx, dy in [(1, 0), (0, 1), (-2, 1), (2, -3), (-1, -1)]:
        expected = torch.roll(images, shifts=(dy, dx), dims=(-2, -1))
        if dy > 0:
            expected[..., :dy, :] = 0
        elif dy < 0:
            expected[..., dy:, :] = 0
        if dx > 0:
            expected[..., :, :dx] = 0
        elif dx < 0:
            expected[..., :, dx:] = 0
        assert torch.equal(shift_images(images, dx, dy), expected), (dx, dy)
    assert not shift_images(images, 7, 0).any() and not shift_images(images, 0, -6).any()


def test_mirror() -> None:
    img = torch.tensor([[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]])
    assert torch.equal(mirror_images(img), torch.tensor([[[3.0, 2.0, 1.0], [6.0, 5.0, 4.0]]]))
    images = _images(3)
    assert torch.equal(mirror_images(mirror_images(images)), images)
