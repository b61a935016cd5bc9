"""`ensemble`: several attacks' opinions on a point combined into one score (MIAE, CCS 2025).

`mode=rank`: the mean over `attack.ensemble.members` of each member's normalised rank of the
point among all pool points (scipy's `rankdata`, ties averaged). Ranks put attacks with
unrelated scales (log-likelihood ratios, fractions, losses) on one footing and let a single
exploding score move the mean by at most 1/members. `mode=vote`: each member votes "member"
when its score is above the threshold at which `vote_fpr` of pub's known non-members are
above it; the score is the number of votes, ties broken by the rank average. The vote
thresholds come from pub's non-members, so vote mode scores pub through held-out folds
(attacks/crossfit.py). `mode=fisher`: Fisher's combination of p-values, the mean over members
of -log(fraction of pool points scoring at least the point's score). Like ranks it needs no
label and no scale; unlike their mean it keeps the tail, where low-FPR thresholds sit: a rank
mean moves a point from one member's top 1% to its top 0.1% as little as from its top 50% to
its top 49.1%, while -log counts it as much as from the top 10% to the top 1%. On the
study's pub it did not beat the rank mean at 1% FPR (docs/recipe_mismatch_log.md), so neither combiner uses it by
default. The members must run first (they are in `attack.names`; the registry runs
`ensemble` after them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.crossfit import cross_fit
from mia_lightning.config.newer_attacks import ENSEMBLE_MODES, EnsembleConfig
from mia_lightning.errors import MiaError


def normalised_ranks(scores: Tensor) -> Tensor:
    """float64 [M, N]: each row's ranks (1 = lowest, ties averaged) divided by N, in (0, 1]."""
    ranks = rankdata(scores.double().numpy(), method="average", axis=1)
    return torch.from_numpy(np.ascontiguousarray(ranks)) / scores.shape[1]


def rank_average(scores: Tensor) -> Tensor:
    """Mean normalised rank over the M members of scores [M, N], float64 [N]."""
    return normalised_ranks(scores).mean(0)


def tail_fractions(scores: Tensor) -> Tensor:
    """float64 [M, N]: per row, the fraction of points whose score is at least each point's, in [1/N, 1]."""
    lowest_rank = rankdata(scores.double().numpy(), method="min", axis=1)  # ties share the largest count
    at_least = np.ascontiguousarray(scores.shape[1] - lowest_rank + 1, dtype=np.float64)  # 'min' ranks are ints
    return torch.from_numpy(at_least) / scores.shape[1]


def fisher_combination(scores: Tensor) -> Tensor:
    """Mean over the M members of -log(tail fraction), float64 [N]: Fisher's method / M."""
    return -tail_fractions(scores).log().mean(0)


def vote_thresholds(scores: Tensor, non_members: Tensor, fpr: float) -> Tensor:
    """Per member [M]: the score above which at most `fpr` of the non-members [n] lie."""
    reference = scores[:, non_members].sort(dim=1).values  # [M, n] ascending
    n = reference.shape[1]
    keep_below = min(n - 1, max(0, int(np.ceil((1 - fpr) * n)) - 1))  # index of the threshold value
    return reference[:, keep_below]


def votes(scores: Tensor, thresholds: Tensor) -> Tensor:
    """float64 [N]: how many members score each point strictly above their threshold."""
    return (scores > thresholds.unsqueeze(1)).sum(0).double()


def ensemble_scores(scores: Tensor, *, mode: str = "rank", known_membership: Tensor | None = None,
                    vote_fpr: float = 0.05, folds: int = 5, seed: int = 0) -> tuple[Tensor, dict[str, Any]]:
    """Combined scores float64 [N] from member scores [M, N]."""
    if mode not in ENSEMBLE_MODES:
        raise MiaError(f"attack.ensemble.mode must be one of {ENSEMBLE_MODES}, got {mode!r}")
    if mode == "fisher":
        return fisher_combination(scores), {}
    average = rank_average(scores)
    if mode == "rank":
        return average, {}
    if known_membership is None:
        raise MiaError("attack.ensemble.mode=vote needs pub's known non-members")
    tie = average * scores.shape[1] / (scores.shape[1] + 1)  # < 1: votes first, ranks within a vote count

    def fit_and_score(train: Tensor, score: Tensor) -> Tensor:
        thresholds = vote_thresholds(scores, train & (known_membership == 0), vote_fpr)
        return votes(scores[:, score], thresholds) + tie[score]

    return cross_fit(known_membership, folds, seed, "ensemble (mode=vote)", fit_and_score)


def combine(ctx: AttackContext, name: str, cfg: EnsembleConfig) -> AttackResult:
    """The combiner `name` with settings `cfg` over the members' results, already in ctx."""
    missing = [member for member in cfg.members if member not in ctx.results]
    if missing:
        raise MiaError(f"attack.{name}.members: {', '.join(missing)} did not run (add them to attack.names)")
    members = torch.stack([ctx.results[member].scores for member in cfg.members])
    scores, notes = ensemble_scores(members, mode=cfg.mode, known_membership=ctx.inputs.known_membership,
                                    vote_fpr=cfg.vote_fpr, folds=cfg.folds, seed=ctx.seed)
    # a member trained on pub (stack) scores pub through held-out folds; the rank average adds no label
    held_out = cfg.mode == "vote" or any(ctx.results[member].held_out for member in cfg.members)
    notes.update({"members": list(cfg.members), "mode": cfg.mode})
    if cfg.mode == "vote":
        notes["vote_fpr"] = cfg.vote_fpr
    return AttackResult(scores, held_out=held_out, notes=notes)


def run_ensemble(ctx: AttackContext) -> AttackResult:
    return combine(ctx, "ensemble", ctx.attack.ensemble)


def run_ensemble_calibrated(ctx: AttackContext) -> AttackResult:
    """`ensemble` with `stack` among its members (config/newer_attacks.py says why)."""
    return combine(ctx, "ensemble_calibrated", ctx.attack.ensemble_calibrated)
