"""LiRA (Carlini et al. 2022, "Membership inference attacks from first principles").

Per point, the shadows' phi = logit-scaled true-class confidence is modelled as a
Gaussian over the shadows that trained on the point (IN) and over those that did not
(OUT). Online LiRA scores the target's phi by the likelihood ratio IN/OUT, offline LiRA
by the one-sided OUT test log Phi((phi - mu_out) / s_out). Queries (augmentations) are
independent Gaussians, so their log-terms add.

As in the paper's reference code, each side's per-point centre is the median of its
values (`center=median`: one shadow with exploding logits, which exact phi does not clip,
moves a mean by tens of units and puts that point at the top of the ranking), and with
few shadows the per-point variance is noise, hence `variance=global`: one std per side and
query over all of that side's values (the paper's `np.std(dat_in)`). Points that no shadow
saw IN (or OUT) borrow that side's centre as the other side's centre shifted by the
average IN-OUT gap, so every K >= 1 gives finite scores; K = 0 falls back to phi itself.

`attack.lira.transform` is the scale the Gaussians are fitted on: `none` (the paper's phi),
`asinh`, or `auto`, which `choose_transform` decides on the shadows alone (heavy-tailed phi
lets the tails set the global stds; README "LiRA's phi scale" has the measurements).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.signals import model_chunks, true_class_margin
from mia_lightning.config.attack import LIRA_CENTERS as CENTERS, LIRA_TRANSFORMS as TRANSFORMS
from mia_lightning.config.attack import LIRA_VARIANCES as VARIANCES
from mia_lightning.errors import MiaError
from mia_lightning.metrics.roc import tpr_at_fpr

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
SCALES = ("none", "asinh")  # what `auto` chooses between; a tie keeps the paper's


@dataclass
class SideFit:
    """Gaussian fit of one side (IN or OUT): per point and query, with global fallbacks."""

    count: Tensor  # int64 [N] shadows on this side
    center: Tensor  # float64 [N, A] per-point centre (median or mean); meaningless where count == 0
    var: Tensor  # float64 [N, A] unbiased per-point variance about the mean; meaningless where count < 2
    global_var: Tensor | None  # float64 [A] variance of all values on this side, None with fewer than 2
    global_mean: Tensor | None  # float64 [A] mean over all values on this side, None if none

    @property
    def total(self) -> int:
        return int(self.count.sum())


def resolve_variance(variance: str, num_shadows: int, global_below: int) -> str:
    """`auto` means `global` below `global_below` shadows (per-point stds need many)."""
    if variance not in VARIANCES:
        raise MiaError(f"attack.lira.variance must be one of {VARIANCES}, got {variance!r}")
    if variance == "auto":
        return "global" if num_shadows < global_below else "per_example"
    return variance


def scaled_phi(phi: Tensor, transform: str) -> Tensor:
    """phi on the scale LiRA fits its Gaussians on: `asinh` or `none`."""
    if transform not in SCALES:
        raise MiaError(f"attack.lira.transform must be one of {SCALES} here (`auto` is resolved by choose_transform "
                       f"first; the config takes {TRANSFORMS}), got {transform!r}")
    return torch.asinh(phi) if transform == "asinh" else phi


def masked_median(values: Tensor, mask: Tensor) -> Tensor:
    """numpy's median over dim 0 of values [K, N, A] where mask [K, N]: the mean of the two
    middle values for an even count; 0 where the count is 0."""
    count = mask.sum(0)
    ordered = values.masked_fill(~mask.unsqueeze(-1), math.inf).sort(dim=0).values
    last = max(values.shape[0] - 1, 0)
    low = ((count - 1).clamp_min(0) // 2).clamp_max(last)
    high = (count // 2).clamp_max(last)
    index = torch.stack([low, high]).unsqueeze(-1).expand(2, *values.shape[1:])
    middle = ordered.gather(0, index).mean(0)
    return torch.where((count > 0).unsqueeze(-1), middle, torch.zeros_like(middle))


def fit_sides(phi: Tensor, keep: Tensor, center: str = "median") -> tuple[SideFit, SideFit]:
    """Gaussian fits of phi [K, N, A] over IN shadows (keep [K, N]) and over OUT shadows.

    Sums are accumulated over chunks of models, so a [64, 40000, 2] input allocates no
    other tensor of its size except the sort behind the median.
    """
    if center not in CENTERS:
        raise MiaError(f"attack.lira.center must be one of {CENTERS}, got {center!r}")
    num_shadows = phi.shape[0]
    count_in = keep.sum(0)
    count_out = num_shadows - count_in
    sum_in = torch.zeros(phi.shape[1:], dtype=torch.float64)
    sum_out, resid_in, resid_out = torch.zeros_like(sum_in), torch.zeros_like(sum_in), torch.zeros_like(sum_in)
    chunks = list(model_chunks(num_shadows, sum_in.numel()))
    for part in chunks:  # each side summed on its own: no cancellation between sides
        inside = keep[part].unsqueeze(-1)
        sum_in += (phi[part] * inside).sum(0)
        sum_out += (phi[part] * ~inside).sum(0)
    mean_in = sum_in / count_in.clamp_min(1).unsqueeze(-1)
    mean_out = sum_out / count_out.clamp_min(1).unsqueeze(-1)
    for part in chunks:
        inside = keep[part].unsqueeze(-1)
        d2 = (phi[part] - torch.where(inside, mean_in, mean_out)).square_()
        resid_in += (d2 * inside).sum(0)
        resid_out += (d2 * ~inside).sum(0)
    fits = []
    for count, total_sum, mean, resid2, mask in ((count_in, sum_in, mean_in, resid_in, keep),
                                                 (count_out, sum_out, mean_out, resid_out, ~keep)):
        total = int(count.sum())
        global_mean = total_sum.sum(0) / total if total else None
        global_var = None
        if total >= 2:  # all values about the global mean: within-point + between-point spread
            between = ((mean - global_mean).square() * count.unsqueeze(-1)).sum(0)
            global_var = (resid2.sum(0) + between) / (total - 1)
        var = resid2 / (count - 1).clamp_min(1).unsqueeze(-1)
        centre = masked_median(phi, mask) if center == "median" else mean
        fits.append(SideFit(count=count, center=centre, var=var, global_var=global_var, global_mean=global_mean))
    return fits[0], fits[1]


def _mean_gap(inn: SideFit, out: SideFit) -> Tensor:
    """Average mu_in - mu_out per query: over points seen on both sides, else over all values."""
    both = (inn.count > 0) & (out.count > 0)
    if both.any():
        return (inn.center[both] - out.center[both]).mean(0)
    return inn.global_mean - out.global_mean


def side_centers(inn: SideFit, out: SideFit) -> tuple[Tensor, Tensor]:
    """Per-point IN and OUT centres [N, A]; a point with no shadow on one side borrows the other
    side's centre shifted by the average IN-OUT gap (both sides must have some values)."""
    gap = _mean_gap(inn, out)
    has_in, has_out = (inn.count > 0).unsqueeze(-1), (out.count > 0).unsqueeze(-1)
    return torch.where(has_in, inn.center, out.center + gap), torch.where(has_out, out.center, inn.center - gap)


def side_std(side: SideFit, other: SideFit, per_example: bool, min_std: float) -> Tensor:
    """Std per point and query [N, A] (or [A] when global), clamped to >= min_std."""
    spread = side.global_var if side.global_var is not None else other.global_var
    if spread is None:
        spread = torch.ones_like(side.center[0])
    std = spread.sqrt()
    if per_example:
        own = side.count >= 2
        std = torch.where(own.unsqueeze(-1), side.var.sqrt(), std.expand_as(side.var))
    return std.clamp_min(min_std)


def _gaussian_logpdf(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return -0.5 * ((x - mean) / std).square() - std.log() - _HALF_LOG_2PI


def _one_sided(target_phi: Tensor, side: SideFit, other: SideFit, per_example: bool, min_std: float) -> Tensor:
    """sum_a log Phi((phi - mu) / s) with the side's own per-point mean (all points have one)."""
    std = side_std(side, other, per_example, min_std)
    return torch.special.log_ndtr((target_phi - side.center) / std).sum(-1)


def lira_from_phi(target_phi: Tensor, shadow_phi: Tensor, keep: Tensor, *, online: bool, variance: str = "auto",
                  global_below: int = 64, min_std: float = 1e-3, center: str = "median",
                  fits: tuple[SideFit, SideFit] | None = None) -> tuple[Tensor, dict[str, Any]]:
    """LiRA scores float64 [N] from phi (target [N, A], shadows [K, N, A]) and keep [K, N].

    `fits` = fit_sides(shadow_phi, keep, center), when the caller already has them.
    """
    num_shadows = int(shadow_phi.shape[0])
    mode = resolve_variance(variance, num_shadows, global_below)
    per_example = mode == "per_example"
    notes: dict[str, Any] = {"variance": mode, "center": center, "shadows": num_shadows}
    if num_shadows == 0:
        notes["fallback"] = "no shadows: score = phi of the target"
        return target_phi.sum(-1), notes
    inn, out = fits if fits is not None else fit_sides(shadow_phi, keep, center)
    notes["no_in_points"] = int((inn.count == 0).sum())
    notes["no_out_points"] = int((out.count == 0).sum())
    if out.total == 0:  # every shadow trained on every point: only the IN side exists
        notes["fallback"] = "no OUT shadow anywhere: one-sided test against IN"
        return _one_sided(target_phi, inn, out, per_example, min_std), notes
    if inn.total == 0:
        if online:
            notes["fallback"] = "no IN shadow anywhere: offline test"
        return _one_sided(target_phi, out, inn, per_example, min_std), notes
    mu_in, mu_out = side_centers(inn, out)
    std_out = side_std(out, inn, per_example, min_std)
    if not per_example:
        notes["std_out"] = [float(v) for v in std_out]
    if not online:
        return torch.special.log_ndtr((target_phi - mu_out) / std_out).sum(-1), notes
    std_in = side_std(inn, out, per_example, min_std)
    if not per_example:
        notes["std_in"] = [float(v) for v in std_in]
    llr = _gaussian_logpdf(target_phi, mu_in, std_in) - _gaussian_logpdf(target_phi, mu_out, std_out)
    return llr.sum(-1), notes


def _lira_from_logits(target_logits: Tensor, shadow_logits: Tensor, keep: Tensor, labels: Tensor, *, online: bool,
                      transform: str, **settings: Any) -> Tensor:
    return lira_from_phi(scaled_phi(true_class_margin(target_logits, labels), transform),
                         scaled_phi(true_class_margin(shadow_logits, labels), transform), keep,
                         online=online, **settings)[0]


def lira_online(target_logits: Tensor, shadow_logits: Tensor, keep: Tensor, labels: Tensor, *,
                variance: str = "auto", global_below: int = 64, min_std: float = 1e-3,
                center: str = "median", transform: str = "none") -> Tensor:
    """Online LiRA: sum over queries of log N(phi; IN) - log N(phi; OUT), float64 [N], phi on `transform`'s
    scale (`none` | `asinh`; `choose_transform` is what `auto` runs)."""
    return _lira_from_logits(target_logits, shadow_logits, keep, labels, online=True, variance=variance,
                             global_below=global_below, min_std=min_std, center=center, transform=transform)


def lira_offline(target_logits: Tensor, shadow_logits: Tensor, keep: Tensor, labels: Tensor, *,
                 variance: str = "auto", global_below: int = 64, min_std: float = 1e-3,
                 center: str = "median", transform: str = "none") -> Tensor:
    """Offline LiRA: sum over queries of log Phi((phi - mu_out) / s_out), float64 [N]."""
    return _lira_from_logits(target_logits, shadow_logits, keep, labels, online=False, variance=variance,
                             global_below=global_below, min_std=min_std, center=center, transform=transform)


def choose_transform(shadow_phi: Tensor, keep: Tensor, *, pseudo_targets: int, points: int = 2000,
                     **settings: Any) -> tuple[str, dict[str, Any]]:
    """The scale (`SCALES`) on which online LiRA best finds the shadows' own members.

    Each of the first `pseudo_targets` shadows with IN and OUT points is the target in turn,
    the other shadows its shadows, and its keep row the truth; the score of a scale is the
    mean over them of TPR@5%FPR + TPR@1%FPR, on every point or, beyond `points`, on an even
    stride of them (2 x pseudo_targets LiRA fits: on 64 shadows x 40,000 points all of them
    would cost 15x the attack stage). Needs 3 shadows (2 left to fit); else `none`.
    """
    stride = -(-shadow_phi.shape[1] // max(points, 1))
    shadow_phi, keep = shadow_phi[:, ::stride], keep[:, ::stride]
    candidates = [k for k in range(shadow_phi.shape[0]) if keep[k].any() and not keep[k].all()][:pseudo_targets]
    if shadow_phi.shape[0] < 3 or not candidates:
        return "none", {"transform_choice": "skipped (needs >= 3 shadows, one with IN and OUT points)"}
    totals = {}
    for scale in SCALES:
        phi = scaled_phi(shadow_phi, scale)
        total = 0.0
        for k in candidates:
            others = torch.arange(shadow_phi.shape[0]) != k
            scores, _ = lira_from_phi(phi[k], phi[others], keep[others], online=True, **settings)
            total += tpr_at_fpr(scores, keep[k], 0.05) + tpr_at_fpr(scores, keep[k], 0.01)
        totals[scale] = round(total / len(candidates), 6)
    best = max(SCALES, key=lambda scale: (totals[scale], -SCALES.index(scale)))
    return best, {"transform_choice": totals, "transform_pseudo_targets": len(candidates),
                  "transform_points": int(keep.shape[1])}
