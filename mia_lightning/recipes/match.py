"""How much a candidate's pilot shadows behave like the target on pub: the search's criteria.

pub holds the target's own membership, so the target's phi (logit-scaled confidence of
the true class) on pub members and non-members is the yardstick; a candidate's pilots
give the same on the points they trained on (IN) and did not (OUT). All criteria are
"lower is better", computed per query view (identity, mirror, shifts: augmentation shows
up as how the views of members are treated) on phi clipped to the target's range (a
shadow whose logits explode on a few points must not decide the search), in units of the
target's interquartile range of phi, and averaged over views.

- `pointwise` (default): the mean absolute difference between the target's phi and the
  phi of a pilot on the same side (member vs IN, non-member vs OUT) at the same point.
  It is what LiRA assumes: that the shadows predict, point by point, the target's phi as
  a member and as a non-member; so it checks per-point difficulty as well as the level.
- `distribution`: the 1-Wasserstein distance between the target's phi on pub members and
  a pilot's phi on its IN points, plus the same for non-members and OUT points: the
  marginal shape only (level, spread, tails), blind to which point is hard.
- `attack`: 1 - AUC on pub of LiRA with a complementary pilot pair as its only shadows
  (pilots=2): the attack the pilots would give, directly, but noisier.
"""

from __future__ import annotations

import math

import torch
from scipy.stats import wasserstein_distance
from torch import Tensor

from mia_lightning.metrics.roc import auc

CLIP_QUANTILES = (0.01, 0.99)


def _scale_and_clip(target_pub: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per query: the target's IQR on pub (the unit) and a clip range one IQR beyond its 1%/99% quantiles."""
    q = torch.quantile(target_pub, torch.tensor([0.25, 0.75, *CLIP_QUANTILES], dtype=target_pub.dtype), dim=0)
    iqr = (q[1] - q[0]).clamp_min(1e-3)
    return iqr, q[2] - iqr, q[3] + iqr


def criteria(target_phi: Tensor, pilot_phi: Tensor, keep: Tensor, pub_index: Tensor,
             pub_member: Tensor) -> dict[str, float]:
    """Every criterion computable from these pilots (`attack` needs two, on both sides of each point).

    target_phi [N, Q] and pilot_phi [P, N, Q] on the pool, keep [P, N]; pub_index [M]
    (pool positions of pub) and pub_member bool [M].
    """
    target_phi, pilot_phi = target_phi.double(), pilot_phi.double()
    target_pub = target_phi[pub_index]
    iqr, low, high = _scale_and_clip(target_pub)
    target_pub = torch.maximum(torch.minimum(target_pub, high), low)
    pilots = torch.maximum(torch.minimum(pilot_phi, high), low)
    out: dict[str, float] = {}
    same_side = keep[:, pub_index] == pub_member  # [P, M]: pilot p saw point m as the target did
    residual = (target_pub.unsqueeze(0) - pilots[:, pub_index]).abs() / iqr  # [P, M, Q]
    out["pointwise"] = float(residual[same_side].mean())
    distances = []
    for p in range(pilots.shape[0]):
        for target_side, pilot_side in ((pub_member, keep[p]), (~pub_member, ~keep[p])):
            for query in range(target_phi.shape[1]):
                a, b = target_pub[target_side, query], pilots[p, pilot_side, query]
                if a.numel() and b.numel():
                    distances.append(wasserstein_distance(a.numpy(), b.numpy()) / float(iqr[query]))
    out["distribution"] = float(sum(distances) / len(distances)) if distances else math.inf
    if pilots.shape[0] >= 2 and bool((keep[:2].sum(0) == 1).all()):
        out["attack"] = 1.0 - pair_lira_auc(target_pub, pilots[:2, pub_index], keep[:2, pub_index], pub_member)
    return out


def pair_lira_auc(target_pub: Tensor, pilots_pub: Tensor, keep_pub: Tensor, member: Tensor) -> float:
    """AUC on pub of online LiRA whose shadows are one complementary pair (one IN, one OUT per point)."""
    inside = keep_pub[0].unsqueeze(-1)
    phi_in = torch.where(inside, pilots_pub[0], pilots_pub[1])
    phi_out = torch.where(inside, pilots_pub[1], pilots_pub[0])
    std_in, std_out = phi_in.std(0).clamp_min(1e-3), phi_out.std(0).clamp_min(1e-3)
    llr = (-0.5 * ((target_pub - phi_in) / std_in) ** 2 - std_in.log()
           + 0.5 * ((target_pub - phi_out) / std_out) ** 2 + std_out.log()).sum(-1)
    return auc(llr, member)


def seed_tie(per_pilot: list[list[float]], means: list[float], count: int) -> tuple[float | None, bool]:
    """(one pilot's seed spread, whether the best two candidates are a tie) from the finalists'
    per-pilot scores and mean scores, best first, each mean over `count` pilots. The spread is
    the pooled sd of the pilots around their candidate's mean; a tie is a gap below the
    standard error of a difference of two such means. Why: the search must say when pub cannot
    tell its choice from the runner-up (on `smooth` one pilot's score had sd 0.013-0.022 while
    the finalists' means lay 0.007 apart), so a user reads the choice as one of equals, which
    `shadow.search.mix` then hedges between."""
    deviations = [s - sum(scores) / len(scores) for scores in per_pilot if len(scores) > 1 for s in scores]
    freedom = sum(len(scores) - 1 for scores in per_pilot if len(scores) > 1)
    if freedom < 1 or len(means) < 2:
        return None, False
    spread = math.sqrt(sum(d * d for d in deviations) / freedom)
    return round(spread, 6), means[1] - means[0] < spread * math.sqrt(2 / count)
