"""ROC curve, AUC and TPR at fixed low FPR, computed exactly in float64.

Not torchmetrics: its binary curve metrics squash scores outside [0, 1] through a
sigmoid in float32, so large raw scores (LiRA log-likelihood ratios) tie at 1.0 and the
TPR at low FPR collapses. Here scores keep their float64 order, tied scores form one
threshold (one ROC point, no interpolation), and the numbers are reproducible by hand.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mia_lightning.errors import MiaError

HEADLINE_FPRS = (0.05, 0.01, 0.001)


def _prepare(scores: Any, is_member: Any) -> tuple[Tensor, Tensor]:
    """float64 scores [N] and bool labels [N], with clear errors for unusable input."""
    s = torch.as_tensor(scores).detach().cpu().to(torch.float64)
    y = torch.as_tensor(is_member).detach().cpu()
    if s.dim() != 1 or y.dim() != 1 or s.shape != y.shape:
        raise MiaError(f"scores and is_member must be 1-D of equal length, got {tuple(s.shape)} and {tuple(y.shape)}")
    if s.numel() == 0:
        raise MiaError("cannot compute ROC metrics on zero points")
    if torch.isnan(s).any():
        raise MiaError(f"scores contain {int(torch.isnan(s).sum())} NaN values")
    if y.dtype != torch.bool:
        if not torch.isin(y, torch.tensor([0, 1], dtype=y.dtype)).all():
            raise MiaError("is_member must be bool or 0/1")
        y = y.bool()
    members = int(y.sum())
    if members == 0 or members == y.numel():
        which = "members" if members == 0 else "non-members"
        raise MiaError(f"ROC metrics need both members and non-members; the {y.numel()} points contain no {which}")
    return s, y


def roc_curve(scores: Any, is_member: Any) -> tuple[Tensor, Tensor, Tensor]:
    """(fpr, tpr, thresholds), float64, one point per distinct score plus the origin.

    Point i is the rule "member iff score >= thresholds[i]"; point 0 (threshold +inf)
    flags nothing. Thresholds decrease, fpr and tpr increase to 1.
    """
    s, y = _prepare(scores, is_member)
    order = torch.argsort(s, descending=True, stable=True)
    s, y = s[order], y[order]
    tp = torch.cumsum(y, 0, dtype=torch.float64)
    fp = torch.cumsum(~y, 0, dtype=torch.float64)
    group_end = torch.cat([torch.nonzero(s[1:] != s[:-1]).flatten(), torch.tensor([s.numel() - 1])])
    zero = torch.zeros(1, dtype=torch.float64)
    fpr = torch.cat([zero, fp[group_end] / fp[-1]])
    tpr = torch.cat([zero, tp[group_end] / tp[-1]])
    thresholds = torch.cat([torch.tensor([float("inf")], dtype=torch.float64), s[group_end]])
    return fpr, tpr, thresholds


def tpr_at_fpr(scores: Any, is_member: Any, fpr: float) -> float:
    """Highest TPR among thresholds whose FPR <= fpr (no interpolation between points)."""
    curve_fpr, curve_tpr, _ = roc_curve(scores, is_member)
    return curve_tpr_at(curve_fpr, curve_tpr, fpr)


def curve_tpr_at(curve_fpr: Tensor, curve_tpr: Tensor, fpr: float) -> float:
    """The same read off an already computed curve."""
    return float(curve_tpr[curve_fpr <= fpr].max())


def curve_auc(curve_fpr: Tensor, curve_tpr: Tensor) -> float:
    """Area under a ROC curve by the trapezoid rule (ties count one half, as Mann-Whitney)."""
    return float(torch.trapezoid(torch.as_tensor(curve_tpr, dtype=torch.float64),
                                 torch.as_tensor(curve_fpr, dtype=torch.float64)))


def auc(scores: Any, is_member: Any) -> float:
    """Area under the ROC curve."""
    curve_fpr, curve_tpr, _ = roc_curve(scores, is_member)
    return curve_auc(curve_fpr, curve_tpr)


def summarize(scores: Any, is_member: Any) -> dict[str, float]:
    """The headline numbers of metrics.json: AUC and TPR at 5%, 1% and 0.1% FPR."""
    curve_fpr, curve_tpr, _ = roc_curve(scores, is_member)
    out = {"auc": curve_auc(curve_fpr, curve_tpr)}
    for fpr in HEADLINE_FPRS:
        out[f"tpr@{fpr:g}"] = curve_tpr_at(curve_fpr, curve_tpr, fpr)
    return out
