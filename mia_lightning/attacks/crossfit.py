"""Cross-fitting for attacks that learn from pub's membership (master with target_pub, stack,
lira_calibrated, qmia): each pub point is scored by a model that never saw it, each priv
point by a model fitted on all of pub. Their metrics on pub are then honest held-out ones.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from mia_lightning.errors import MiaError
from mia_lightning.utils.seeding import derive_seed


def assign_folds(known_membership: Tensor, folds: int, seed: int) -> Tensor:
    """Fold id per point (-1 for unknown points), stratified by membership, seeded.

    (The stream is named "master" for every attack, so all of them share one fold split.)
    """
    fold = torch.full(known_membership.shape, -1, dtype=torch.int64)
    generator = torch.Generator().manual_seed(derive_seed(seed, "master", "folds"))
    offset = 0
    for label in (0, 1):
        index = torch.nonzero(known_membership == label).flatten()
        index = index[torch.randperm(index.numel(), generator=generator)]
        fold[index] = (torch.arange(index.numel()) + offset) % folds
        offset += index.numel()
    return fold


def check_known(known_membership: Tensor, folds: int, name: str) -> None:
    known = known_membership >= 0
    members = int((known_membership == 1).sum())
    if members == 0 or members == int(known.sum()):
        raise MiaError(f"{name} needs known members and known non-members in pub")
    if folds < 2 or folds > int(known.sum()):
        raise MiaError(f"{name}: folds must be in [2, number of known points = {int(known.sum())}], got {folds}")


def cross_fit(known_membership: Tensor, folds: int, seed: int, name: str,
              fit_and_score: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, dict[str, Any]]:
    """float64 scores [N] where `fit_and_score(train_mask, score_mask)` fits on the known points
    of `train_mask` (their labels: known_membership) and returns scores of the `score_mask` points."""
    check_known(known_membership, folds, name)
    known = known_membership >= 0
    fold = assign_folds(known_membership, folds, seed)
    scores = torch.zeros(known_membership.shape[0], dtype=torch.float64)
    for f in range(folds):
        test = fold == f
        scores[test] = fit_and_score(known & ~test, test).double()
    unknown = ~known
    if unknown.any():
        scores[unknown] = fit_and_score(known, unknown).double()
    return scores, {"folds": folds, "fold_sizes": [int((fold == f).sum()) for f in range(folds)],
                    "train_rows": int(known.sum())}
