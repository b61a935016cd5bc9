"""`lira_calibrated`: LiRA whose IN/OUT Gaussians are fitted to the target itself on pub.

The shadows say how hard each point is (the per-point medians mu_in(x), mu_out(x) of their
phi); pub says how the target behaves on its own members and non-members. Per query and
side, a robust straight line maps the shadows' centre onto the target's phi,

    members of pub:      phi_T(x) ~ a_in  + b_in  * mu_in(x)   + N(0, s_in^2)
    non-members of pub:  phi_T(x) ~ a_out + b_out * mu_out(x)  + N(0, s_out^2)

(scikit-learn's HuberRegressor, so a few exploding logits do not pull the line; where its
L-BFGS fit fails, as on logits of +-1e4, scipy's Theil-Sen line, robust too and with no
solver to fail; s is 1.4826 x the median absolute residual), and the score is the
log-likelihood ratio of the target's phi under the two fitted Gaussians, summed over
queries. Shadows trained with a recipe unlike the target's are off in level and scale
(members more or less confident than IN shadows, a wider OUT spread): the lines absorb
that, the per-point difficulty stays. phi, the target's and the shadows' alike, is on LiRA's
scale (`attack.lira.transform`, chosen on the shadows as for LiRA itself; on the default task
asinh, whose tails no longer set s_in). pub points are scored through held-out folds (attacks/crossfit.py).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from scipy.stats import theilslopes
from sklearn.linear_model import HuberRegressor
from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.crossfit import cross_fit
from mia_lightning.attacks.lira import side_centers
from mia_lightning.attacks.lira_attack import lira_phi, lira_transform, shadow_fits
from mia_lightning.errors import MiaError

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def robust_line(x: Tensor, y: Tensor, min_std: float) -> tuple[float, float, float]:
    """(intercept, slope, residual std) of y on x, robust to outliers in y."""
    if x.numel() < 3:
        return float(y.mean()) if y.numel() else 0.0, 0.0, 1.0
    centre, scale = float(x.median()), float((x - x.median()).abs().median() * 1.4826) or 1.0
    z = ((x - centre) / scale).numpy().reshape(-1, 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # lbfgs' iteration notes on nearly flat data
            model = HuberRegressor(epsilon=1.35, alpha=0.0, max_iter=500).fit(z, y.numpy())
        z_slope, z_intercept = float(model.coef_[0]), float(model.intercept_)
    except ValueError:  # scikit-learn raises where L-BFGS ends ABNORMAL (seen on +-1e4 logits)
        stride = -(-len(z) // 2000)  # Theil-Sen holds n^2 pairs: every stride-th point, at most 2000
        z_slope = float(theilslopes(y.numpy()[::stride], z[::stride, 0]).slope)
        z_intercept = float((y - z_slope * torch.from_numpy(z[:, 0])).median())  # robust, unlike scipy's
    slope = z_slope / scale
    intercept = z_intercept - slope * centre
    residual = y - (intercept + slope * x)
    std = float((residual - residual.median()).abs().median() * 1.4826)
    return intercept, slope, max(std, min_std)


def _logpdf(x: Tensor, mean: Tensor, std: float) -> Tensor:
    return -0.5 * ((x - mean) / std) ** 2 - math.log(std) - _HALF_LOG_2PI


def calibrated_lira(target_phi: Tensor, mu_in: Tensor, mu_out: Tensor, known_membership: Tensor, *, folds: int,
                    seed: int, min_std: float = 1e-2) -> tuple[Tensor, dict[str, Any]]:
    """Scores float64 [N] from target phi, shadow centres (all [N, A]) and pub's membership."""
    lines: list[dict[str, list[float]]] = []

    def fit_and_score(train: Tensor, score: Tensor) -> Tensor:
        members, non_members = train & (known_membership == 1), train & (known_membership == 0)
        total = torch.zeros(int(score.sum()), dtype=torch.float64)
        fitted: dict[str, list[float]] = {}
        for query in range(target_phi.shape[1]):
            a_in, b_in, s_in = robust_line(mu_in[members, query], target_phi[members, query], min_std)
            a_out, b_out, s_out = robust_line(mu_out[non_members, query], target_phi[non_members, query], min_std)
            phi = target_phi[score, query]
            total += (_logpdf(phi, a_in + b_in * mu_in[score, query], s_in)
                      - _logpdf(phi, a_out + b_out * mu_out[score, query], s_out))
            fitted[f"query{query}"] = [round(v, 4) for v in (a_in, b_in, s_in, a_out, b_out, s_out)]
        lines.append(fitted)
        return total

    scores, notes = cross_fit(known_membership, folds, seed, "lira_calibrated", fit_and_score)
    notes["lines_all_pub"] = lines[-1]  # (a_in, b_in, s_in, a_out, b_out, s_out) per query, fitted on all of pub
    return scores, notes


def run_lira_calibrated(ctx: AttackContext) -> AttackResult:
    inputs = ctx.inputs
    if inputs.num_shadows == 0 or not inputs.keep.any() or inputs.keep.all():
        raise MiaError("lira_calibrated needs shadows with IN and OUT points (shadow.count >= 1)")
    transform, choice = lira_transform(ctx)
    mu_in, mu_out = side_centers(*shadow_fits(ctx, ctx.attack.lira.center, transform))
    settings = ctx.attack.lira_calibrated
    scores, notes = calibrated_lira(lira_phi(ctx, "target", transform), mu_in, mu_out, inputs.known_membership,
                                    folds=settings.folds, seed=ctx.seed, min_std=settings.min_std)
    notes.update(choice, transform=transform)
    return AttackResult(scores, held_out=True, notes=notes)
