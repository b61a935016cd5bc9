"""The keep mask: balanced, prefix-stable, deterministic."""

from __future__ import annotations

import pytest
import torch

from mia_lightning.errors import MiaError
from mia_lightning.shadows.keep_mask import build_keep_mask, disjoint_keep_mask, halves_keep_mask


@pytest.mark.parametrize("num_points", [10, 101, 1000])
def test_halves_mask_is_balanced_for_every_even_prefix(num_points):
    keep = halves_keep_mask(16, num_points, seed=3)
    assert keep.shape == (16, num_points) and keep.dtype == torch.bool
    for k in range(2, 17, 2):
        assert (keep[:k].sum(0) == k // 2).all(), k
    # each shadow trains on about half of the pool
    assert ((keep.sum(1) - num_points / 2).abs() <= 0.5).all()


def test_halves_mask_is_a_prefix_of_larger_masks_and_deterministic():
    small, large = halves_keep_mask(4, 200, seed=1), halves_keep_mask(10, 200, seed=1)
    assert torch.equal(small, large[:4])
    assert torch.equal(small, halves_keep_mask(4, 200, seed=1))
    assert not torch.equal(small, halves_keep_mask(4, 200, seed=2))
    # pairs are independent draws, not the same half again
    assert not torch.equal(large[0], large[2])


def test_disjoint_mask_partitions_the_public_points():
    keep = disjoint_keep_mask(4, num_points=300, num_public=200, in_fraction=0.5, seed=0)
    assert keep.shape == (4, 300)
    assert (keep.sum(0)[:200] <= 1).all()  # each public point in at most one shadow
    assert not keep[:, 200:].any()  # private points are never trained on
    assert ((keep.sum(1) - 25).abs() <= 1).all()
    with pytest.raises(MiaError, match="shadow.split"):
        build_keep_mask("thirds", 2, 10, 10, 0.5, 0)
