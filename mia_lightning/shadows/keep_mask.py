"""Which shadow trains on which point: the keep mask `keep[K, N]`.

`halves` (LiRA's scheme): shadows come in complementary pairs; pair i draws a random
half of the pool from its own derived seed and its twin takes the other half. Every
point is therefore IN exactly K/2 of any even number K of shadows, every even prefix of
the mask is balanced, and the mask for K shadows is a prefix of the mask for more, so a
sweep over `shadow.count` trains the largest count once.

`disjoint` (the seed method): the public points are cut into P disjoint partitions;
shadow p trains on `in_fraction` of partition p and everything else is OUT for it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mia_lightning.errors import MiaError
from mia_lightning.utils.seeding import derive_seed

SPLITS = ("halves", "disjoint")


def halves_row_pair(pair: int, num_points: int, seed: int) -> Tensor:
    """bool [2, N]: a random half of the pool and its complement."""
    generator = torch.Generator().manual_seed(derive_seed(seed, "keep", pair))
    order = torch.randperm(num_points, generator=generator)
    first = torch.zeros(num_points, dtype=torch.bool)
    first[order[: num_points // 2]] = True
    if num_points % 2:  # the odd point out alternates between the twins, pair by pair
        first[order[-1]] = bool(pair % 2)
    return torch.stack([first, ~first])


def halves_keep_mask(num_models: int, num_points: int, seed: int) -> Tensor:
    pairs = [halves_row_pair(pair, num_points, seed) for pair in range((num_models + 1) // 2)]
    return torch.cat(pairs)[:num_models] if pairs else torch.zeros(0, num_points, dtype=torch.bool)


def disjoint_keep_mask(num_models: int, num_points: int, num_public: int, in_fraction: float, seed: int) -> Tensor:
    if not 0 < in_fraction < 1:
        raise MiaError(f"shadow.in_fraction must be in (0, 1), got {in_fraction}")
    if num_models > num_public:
        raise MiaError(f"shadow.count={num_models} partitions of only {num_public} public points")
    generator = torch.Generator().manual_seed(derive_seed(seed, "disjoint"))
    order = torch.randperm(num_public, generator=generator)
    keep = torch.zeros(num_models, num_points, dtype=torch.bool)
    for model, part in enumerate(torch.tensor_split(order, num_models)):
        keep[model, part[: max(1, round(in_fraction * len(part)))]] = True
    return keep


def build_keep_mask(split: str, num_models: int, num_points: int, num_public: int, in_fraction: float, seed: int) -> Tensor:
    if split == "halves":
        return halves_keep_mask(num_models, num_points, seed)
    if split == "disjoint":
        return disjoint_keep_mask(num_models, num_points, num_public, in_fraction, seed)
    raise MiaError(f"shadow.split must be one of {SPLITS}, got {split!r}")
