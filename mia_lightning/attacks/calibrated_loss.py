"""Difficulty calibration: the target's loss on a point against the reference models' losses there.

`calibrated_loss` (Watson et al., ICLR 2022, "On the importance of difficulty calibration in
membership inference attacks"): score(x) = mean_j l_j(x) - l_T(x) over the reference models j
that did not train on x (the shadows' OUT side), so a point that is easy for every model is
no longer mistaken for a member. `center=median` takes the median instead (robust to the
heavy-tailed losses of a shadow whose logits blew up).

`attack_r` (Ye et al., CCS 2022, "Enhanced membership inference attacks against machine
learning models", Attack R): a per-point threshold, the alpha-quantile of the reference
losses on x; x is a member at level alpha iff l_T(x) <= quantile_alpha. Sweeping alpha is
thresholding the point's own quantile level F_x(l_T(x)), the inverse of numpy's linearly
interpolated quantile, so the score is -F_x(l_T(x)). With few references many points sit
at level 0 (below every reference loss); `tie_break` orders those by the calibrated loss, so
low-FPR operating points stay reachable. It differs from `calibrated_loss`: that one
compares every point's difference to one global threshold, Attack R each point's loss to its
own quantile.

Loss = softplus(-phi) = -log p(y|x), computed from phi in float64, averaged over queries.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.lira import masked_median
from mia_lightning.config.newer_attacks import CENTERS, REFERENCES
from mia_lightning.errors import MiaError


def loss_from_phi(phi: Tensor) -> Tensor:
    """Cross-entropy -log sigmoid(phi) per model and point, averaged over queries: [..., N, A] -> [..., N]."""
    return torch.nn.functional.softplus(-phi.double()).mean(-1)


def reference_mask(keep: Tensor, references: str) -> tuple[Tensor, dict[str, Any]]:
    """bool [K, N]: which shadows serve as references of each point. A point without an OUT
    shadow falls back to all of them (counted in the notes)."""
    if references not in REFERENCES:
        raise MiaError(f"attack.calibrated_loss.references must be one of {REFERENCES}, got {references!r}")
    if references == "all":
        return torch.ones_like(keep), {}
    mask = ~keep
    missing = ~mask.any(0)
    mask = torch.where(missing.unsqueeze(0), torch.ones_like(mask), mask)
    return mask, {"no_out_points": int(missing.sum())}


def reference_center(shadow_loss: Tensor, mask: Tensor, center: str) -> Tensor:
    """Mean or median [N] of the reference losses shadow_loss [K, N] where mask [K, N]."""
    if center not in CENTERS:
        raise MiaError(f"attack.calibrated_loss.center must be one of {CENTERS}, got {center!r}")
    if center == "median":
        return masked_median(shadow_loss.unsqueeze(-1), mask)[:, 0]
    return (shadow_loss * mask).sum(0) / mask.sum(0).clamp_min(1)


def calibrated_loss_scores(target_loss: Tensor, shadow_loss: Tensor, mask: Tensor, center: str = "mean") -> Tensor:
    """Watson et al.: reference loss - target loss, float64 [N] (higher = member)."""
    if shadow_loss.shape[0] == 0:
        return -target_loss
    return reference_center(shadow_loss, mask, center) - target_loss


def quantile_level(target_loss: Tensor, shadow_loss: Tensor, mask: Tensor) -> Tensor:
    """F_x(l_T(x)) float64 [N]: where the target's loss sits among the reference losses of x, the
    inverse of numpy's `quantile(method="linear")` (0 below the smallest, 1 above the largest)."""
    count = mask.sum(0)  # [N]
    ordered = shadow_loss.masked_fill(~mask, float("inf")).sort(dim=0).values.T.contiguous()  # [N, K]
    above = torch.searchsorted(ordered, target_loss.unsqueeze(1), right=True).squeeze(1)  # refs <= l_T
    last = (count - 1).clamp_min(0)
    low_index = (above - 1).clamp(0, ordered.shape[1] - 1)
    high_index = above.clamp(max=ordered.shape[1] - 1)
    low = ordered.gather(1, low_index.unsqueeze(1)).squeeze(1)
    high = ordered.gather(1, high_index.unsqueeze(1)).squeeze(1)
    inside = (above > 0) & (above < count)  # low <= l_T < high, both finite and distinct
    step = torch.where(inside, (target_loss - low) / torch.where(inside, high - low, 1.0), 0.0)
    level = (above - 1 + step) / last.clamp_min(1)
    level = torch.where(above >= count, 1.0, torch.where(above == 0, 0.0, level))
    return torch.where(count == 0, 0.5, level).double()


def lexicographic(primary: Tensor, secondary: Tensor) -> Tensor:
    """A float64 score ordered by `primary`, ties broken by `secondary`: the primary's dense
    rank plus the secondary's rank / N (< 1), so the order is exact whatever the scales."""
    levels = torch.unique(primary, return_inverse=True)[1].double()
    order = torch.argsort(torch.argsort(secondary, stable=True), stable=True).double()
    return levels + order / max(secondary.numel(), 1)


def attack_r_scores(target_loss: Tensor, shadow_loss: Tensor, mask: Tensor, *, center: str = "mean",
                    tie_break: bool = True) -> Tensor:
    """Ye et al.'s Attack R: -F_x(l_T(x)), float64 [N]; ties broken by the calibrated loss."""
    if shadow_loss.shape[0] == 0:
        return -target_loss
    level = -quantile_level(target_loss, shadow_loss, mask)
    if not tie_break:
        return level
    return lexicographic(level, calibrated_loss_scores(target_loss, shadow_loss, mask, center))


def _losses(ctx: AttackContext, references: str) -> tuple[Tensor, Tensor, Tensor, dict[str, Any]]:
    target_loss = loss_from_phi(ctx.signals.phi("target"))
    shadow_loss = ctx.signals.memo("shadow_loss", lambda: loss_from_phi(ctx.signals.phi("shadow")))
    mask, notes = reference_mask(ctx.inputs.keep, references)
    notes.update({"references": references, "shadows": ctx.inputs.num_shadows})
    if ctx.inputs.num_shadows == 0:
        notes["fallback"] = "no shadows: score = minus the target's loss"
    return target_loss, shadow_loss, mask, notes


def run_calibrated_loss(ctx: AttackContext) -> AttackResult:
    cfg = ctx.attack.calibrated_loss
    target_loss, shadow_loss, mask, notes = _losses(ctx, cfg.references)
    notes["center"] = cfg.center
    return AttackResult(calibrated_loss_scores(target_loss, shadow_loss, mask, cfg.center), held_out=False, notes=notes)


def run_attack_r(ctx: AttackContext) -> AttackResult:
    cfg = ctx.attack.attack_r
    target_loss, shadow_loss, mask, notes = _losses(ctx, cfg.references)
    scores = attack_r_scores(target_loss, shadow_loss, mask, center=cfg.tie_center, tie_break=cfg.tie_break)
    notes.update({"tie_break": cfg.tie_break, "tie_center": cfg.tie_center})
    return AttackResult(scores, held_out=False, notes=notes)
