"""`rmia_calibrated`: RMIA whose reference models are mapped onto the target's scale on pub.

RMIA (attacks/rmia.py) divides the target's probability of a point by the shadows' average,
Pr(x), and ranks that ratio against population points. With shadows trained unlike the
target, Pr(x) is off in level and shape (an Adam target is surer of members and non-members
alike than SGD shadows; a short run less sure of both), and the ratio then measures the
recipe gap as much as membership. As in `lira_calibrated`, pub says how: per query and side
a robust line (its `robust_line`, scikit-learn's HuberRegressor) maps the shadows'
per-point median phi onto the target's phi, on pub's members for the IN side and on its
non-members for the OUT side. Every shadow's phi at a point then goes through its side's
line (IN when the shadow trained on it), Pr(x) is the mean over all shadows of the mapped
probabilities (online RMIA), and the score is RMIA's: the fraction of population points,
pub's known non-members, whose mapped ratio x beats by `attack.rmia.gamma`.

Why beside `lira_calibrated`: the two read the same fitted lines, but RMIA compares
likelihood ratios against a population instead of trusting one Gaussian per side, which is
what makes it the stronger of the two when the target leaks little (few epochs, few
shadows). Fitted in folds (attacks/crossfit.py): a pub point is scored by lines, and
against a population, that never saw it; priv by lines fitted on all of pub.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.crossfit import cross_fit
from mia_lightning.attacks.lira import side_centers
from mia_lightning.attacks.lira_attack import shadow_fits
from mia_lightning.attacks.lira_calibrated import robust_line
from mia_lightning.attacks.rmia import log_prob_from_phi, log_reference_prob, population_index, rmia_from_log_ratio
from mia_lightning.errors import MiaError
from mia_lightning.utils.seeding import derive_seed


def mapped_shadow_phi(shadow_phi: Tensor, keep: Tensor, mu_in: Tensor, mu_out: Tensor, target_phi: Tensor,
                      members: Tensor, non_members: Tensor, min_std: float) -> tuple[Tensor, list[list[float]]]:
    """Every shadow's phi [K, N, A] through its side's line, fitted on the given pub points."""
    mapped = torch.empty_like(shadow_phi)
    lines = []
    for query in range(shadow_phi.shape[-1]):
        a_in, b_in, _ = robust_line(mu_in[members, query], target_phi[members, query], min_std)
        a_out, b_out, _ = robust_line(mu_out[non_members, query], target_phi[non_members, query], min_std)
        phi = shadow_phi[..., query]
        mapped[..., query] = torch.where(keep, a_in + b_in * phi, a_out + b_out * phi)
        lines.append([round(v, 4) for v in (a_in, b_in, a_out, b_out)])
    return mapped, lines


def calibrated_rmia(target_phi: Tensor, shadow_phi: Tensor, keep: Tensor, mu_in: Tensor, mu_out: Tensor,
                    known_membership: Tensor, *, folds: int, seed: int, population_seed: int, gamma: float,
                    num_z: int, min_std: float = 1e-2) -> tuple[Tensor, dict[str, Any]]:
    """Scores float64 [N] from target phi [N, A], shadow phi [K, N, A], keep [K, N], the
    shadows' per-point side centres [N, A] and pub's membership (-1 where unknown)."""
    target_logp = log_prob_from_phi(target_phi)
    fitted: list[list[list[float]]] = []

    def fit_and_score(train: Tensor, score: Tensor) -> Tensor:
        members, non_members = train & (known_membership == 1), train & (known_membership == 0)
        mapped, lines = mapped_shadow_phi(shadow_phi, keep, mu_in, mu_out, target_phi, members, non_members, min_std)
        fitted.append(lines)
        log_ref, _ = log_reference_prob(log_prob_from_phi(mapped), keep, online=True, a=0.0)
        population, _ = population_index(torch.where(non_members, 0, 1), target_phi.shape[0], num_z, population_seed)
        return rmia_from_log_ratio(target_logp - log_ref, population, gamma=gamma, tie_break=True)[score]

    scores, notes = cross_fit(known_membership, folds, seed, "rmia_calibrated", fit_and_score)
    notes["lines_all_pub"] = fitted[-1]  # (a_in, b_in, a_out, b_out) per query, fitted on all of pub
    return scores, notes


def run_rmia_calibrated(ctx: AttackContext) -> AttackResult:
    inputs = ctx.inputs
    if inputs.num_shadows == 0 or not inputs.keep.any() or inputs.keep.all():
        raise MiaError("rmia_calibrated needs shadows with IN and OUT points (shadow.count >= 1)")
    mu_in, mu_out = side_centers(*shadow_fits(ctx, ctx.attack.lira.center, "none"))  # raw phi: mapped to probabilities
    rmia, settings = ctx.attack.rmia, ctx.attack.rmia_calibrated
    scores, notes = calibrated_rmia(ctx.signals.phi("target"), ctx.signals.phi("shadow"), inputs.keep, mu_in, mu_out,
                                    inputs.known_membership, folds=settings.folds, seed=ctx.seed,
                                    population_seed=derive_seed(ctx.seed, "rmia_calibrated", "population"),
                                    gamma=rmia.gamma, num_z=rmia.num_z, min_std=settings.min_std)
    return AttackResult(scores, held_out=True, notes=notes)
