"""Seeded bootstrap of the ROC metrics: 95% intervals, and paired differences between attacks.

Resampling is stratified (members and non-members are each drawn with replacement to their
own count, as pROC does for ROC curves), so every resample has the evaluation set's
number of negatives and the FPR grid k / negatives stays the same. A resample is a weight
(its multiplicity) per point, so all B resamples of one attack are a few [B, n] cumulative
sums over the points sorted once by score: no Python loop over resamples or points. The
metrics are the exact ones of metrics/roc.py (ties form one ROC point; TPR@f is the best
TPR whose FPR <= f; AUC by the trapezoid rule); with all weights 1 they are reproduced
exactly. Every attack is scored on the same resamples, so the difference of two attacks'
replicates is the paired bootstrap of their difference.

A TPR at an FPR f below 1 / negatives only counts thresholds with no false positive at all:
it is marked not measurable (`measurable`), not reported as a number.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mia_lightning.metrics.roc import HEADLINE_FPRS, _prepare

METRICS = ("auc", *(f"tpr@{fpr:g}" for fpr in HEADLINE_FPRS))
LEVEL = 0.95


def measurable(negatives: int, fprs: tuple[float, ...] = HEADLINE_FPRS) -> dict[str, bool]:
    """metric -> whether it can be measured with this many negatives (AUC always can)."""
    return {"auc": True, **{f"tpr@{fpr:g}": fpr * negatives >= 1 for fpr in fprs}}


def resample_weights(is_member: Tensor, resamples: int, seed: int) -> Tensor:
    """float64 [B, n]: how often each point is drawn, members and non-members drawn separately."""
    generator = torch.Generator().manual_seed(int(seed))
    weights = torch.zeros(resamples, is_member.numel(), dtype=torch.float64)
    for group in (torch.nonzero(is_member).flatten(), torch.nonzero(~is_member).flatten()):
        draws = group[torch.randint(group.numel(), (resamples, group.numel()), generator=generator)]
        weights.scatter_add_(1, draws, torch.ones(draws.shape, dtype=torch.float64))
    return weights


def weighted_metrics(scores: Tensor, is_member: Tensor, weights: Tensor,
                     fprs: tuple[float, ...] = HEADLINE_FPRS) -> Tensor:
    """float64 [B, 1 + len(fprs)]: AUC and TPR@fpr of one attack's scores [n] under each weight row [B, n]."""
    order = torch.argsort(scores, descending=True, stable=True)
    s, y, w = scores[order], is_member[order], weights[:, order]
    tp = torch.cumsum(w * y, 1)
    fp = torch.cumsum(w * ~y, 1)
    ends = torch.cat([torch.nonzero(s[1:] != s[:-1]).flatten(), torch.tensor([s.numel() - 1])])  # last of each tie
    zero = torch.zeros(w.shape[0], 1, dtype=torch.float64)
    tpr = torch.cat([zero, tp[:, ends] / tp[:, -1:]], 1)
    fpr = torch.cat([zero, fp[:, ends] / fp[:, -1:]], 1)
    out = [torch.trapezoid(tpr, fpr, dim=1)]
    for f in fprs:  # tpr and fpr grow along the curve: the last point with fpr <= f has the best tpr
        last = (fpr <= f).sum(1, keepdim=True) - 1
        out.append(tpr.gather(1, last).squeeze(1))
    return torch.stack(out, 1)


def bootstrap(scores: Tensor, is_member: Tensor, *, resamples: int = 1000, seed: int = 0,
              chunk_elements: int = 1 << 22) -> Tensor:
    """float64 [M, len(METRICS), B]: every metric of every attack (scores [M, n]) on B shared resamples.

    Resamples are drawn in chunks of about `chunk_elements` weights, so memory stays bounded
    for large evaluation sets; the draws do not depend on the chunking.
    """
    scores = torch.as_tensor(scores, dtype=torch.float64)
    if scores.dim() == 1:
        scores = scores.unsqueeze(0)
    _, truth = _prepare(scores[0], is_member)  # the same checks (both classes present, no NaN) as roc.py
    weights = resample_weights(truth, resamples, seed)
    step = max(1, chunk_elements // max(truth.numel(), 1))
    out = torch.empty(scores.shape[0], len(METRICS), resamples, dtype=torch.float64)
    for m in range(scores.shape[0]):
        _prepare(scores[m], truth)
        for first in range(0, resamples, step):
            part = slice(first, min(resamples, first + step))
            out[m, :, part] = weighted_metrics(scores[m], truth, weights[part]).T
    return out


def percentile_interval(replicates: Tensor, level: float = LEVEL) -> Tensor:
    """[..., 2]: the (1 - level) / 2 and (1 + level) / 2 quantiles over the last dim."""
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    return torch.quantile(replicates, q, dim=-1).movedim(0, -1)


def ratio_interval(numerator: Tensor, denominator: Tensor, level: float = LEVEL) -> Tensor:
    """[2]: the paired interval of a ratio of two runs' metric, resample by resample (both
    scored on the same resamples; a resample whose denominator is 0 counts as 1e-9)."""
    return percentile_interval(numerator / denominator.clamp_min(1e-9), level)


def intervals(replicates: Tensor, names: list[str], negatives: int,
              level: float = LEVEL) -> dict[str, dict[str, list[float] | None]]:
    """{attack: {metric: [low, high] or None (not measurable)}} from replicates [M, metrics, B]."""
    ok = measurable(negatives)
    bounds = percentile_interval(replicates, level)
    return {name: {metric: ([float(v) for v in bounds[i, j]] if ok[metric] else None)
                   for j, metric in enumerate(METRICS)} for i, name in enumerate(names)}


def paired_difference(replicates: Tensor, point: Tensor, names: list[str], reference: str, negatives: int,
                      level: float = LEVEL) -> dict[str, Any]:
    """Each attack minus `reference` on the same resamples: the difference, its interval, and
    whether the interval excludes 0 (the attacks differ at this level)."""
    ref = names.index(reference)
    ok = measurable(negatives)
    out: dict[str, Any] = {}
    for i, name in enumerate(names):
        if i == ref:
            continue
        bounds = percentile_interval(replicates[i] - replicates[ref], level)
        row: dict[str, Any] = {}
        for j, metric in enumerate(METRICS):
            if not ok[metric]:
                row[metric] = None
                continue
            low, high = float(bounds[j, 0]), float(bounds[j, 1])
            row[metric] = {"diff": float(point[i, j] - point[ref, j]), "ci": [low, high],
                           "excludes_zero": low > 0 or high < 0}
        out[name] = row
    return out
