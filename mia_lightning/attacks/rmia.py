"""RMIA (Zarifzadeh et al. 2024, "Low-cost high-power membership inference attacks").

ratio(x) = Pr(x | target) / Pr(x), with Pr(x) the shadows' average true-label probability
(online: all shadows; offline: OUT shadows, linearly corrected by `a` for the missing IN
half). score(x) = fraction of population points z (known non-members) whose ratio x beats
by a factor gamma. Everything is computed in log space, so probabilities that underflow
(logits of +-1e4) stay finite, and the pairwise comparison is a sort + searchsorted.

For a fixed population the score is a non-decreasing step function of ratio(x), so it
has ties; `tie_break` (default on) adds the rank of ratio(x) within its step, which only
orders points the fraction leaves tied and keeps low-FPR operating points reachable.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.signals import model_chunks, true_class_margin
from mia_lightning.config.attack import RmiaConfig
from mia_lightning.errors import MiaError
from mia_lightning.metrics.roc import auc
from mia_lightning.utils.seeding import derive_seed

A_GRID = tuple(round(0.05 * i, 2) for i in range(21))


def log_prob_from_phi(phi: Tensor) -> Tensor:
    """log of the true-label probability averaged over queries: [..., N, A] -> [..., N].

    Chunks of models, so no temporary of the full [K, N, A] size is allocated.
    """
    rows = phi.reshape(-1, *phi.shape[-2:])
    out = torch.empty(rows.shape[:-1], dtype=torch.float64)
    for part in model_chunks(rows.shape[0], math.prod(rows.shape[1:])):
        logp = torch.nn.functional.logsigmoid(rows[part])
        out[part] = torch.logsumexp(logp, -1) - math.log(phi.shape[-1])
    return out.view(phi.shape[:-1])


def population_index(known_membership: Tensor | None, num_points: int, num_z: int,
                     seed: int) -> tuple[Tensor, dict[str, Any]]:
    """Indices of the population points z: known non-members, seeded subsample of num_z."""
    notes: dict[str, Any] = {}
    pool = torch.arange(num_points)
    if known_membership is not None:
        pool = torch.nonzero(known_membership == 0).flatten()
    if pool.numel() == 0:
        pool = torch.arange(num_points)
        notes["population"] = "all points (no known non-members)"
    if 0 < num_z < pool.numel():
        generator = torch.Generator().manual_seed(int(seed))
        pool = pool[torch.randperm(pool.numel(), generator=generator)[:num_z]].sort().values
    notes["num_z"] = int(pool.numel())
    return pool, notes


def _log_mean_exp(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """log of the mean of exp(values) over dim 0 where mask, and the count per column."""
    count = mask.sum(0)
    masked = values.masked_fill(~mask, float("-inf"))
    return torch.logsumexp(masked, 0) - count.clamp_min(1).double().log(), count


def log_reference_prob(shadow_logp: Tensor, keep: Tensor, *, online: bool, a: float) -> tuple[Tensor, dict[str, Any]]:
    """log Pr(x) [N] from the shadows' log true-label probabilities [K, N]."""
    notes: dict[str, Any] = {}
    num_shadows, num_points = shadow_logp.shape
    if num_shadows == 0:
        notes["fallback"] = "no shadows: Pr(x) = 1, score = Pr(x | target)"
        return torch.zeros(num_points, dtype=torch.float64), notes
    everyone = torch.ones_like(keep)
    if online:
        return _log_mean_exp(shadow_logp, everyone)[0], notes
    log_out, count = _log_mean_exp(shadow_logp, ~keep)
    missing = count == 0
    notes["no_out_points"] = int(missing.sum())
    if missing.any():  # no OUT shadow: the mean over all shadows (IN only) stands in
        log_out = torch.where(missing, _log_mean_exp(shadow_logp, everyone)[0], log_out)
    log_offset = math.log(1 - a) if a < 1 else float("-inf")
    offset = torch.full_like(log_out, log_offset)
    return torch.logaddexp(math.log1p(a) + log_out, offset) - math.log(2), notes


def rmia_from_log_ratio(log_ratio: Tensor, population: Tensor, *, gamma: float, tie_break: bool) -> Tensor:
    """Fraction of population z with ratio(x) / ratio(z) >= gamma, float64 [N], x != z."""
    threshold = log_ratio - math.log(gamma)
    z_sorted = log_ratio[population].sort().values
    count = torch.searchsorted(z_sorted, threshold, right=True).double()  # z with log_ratio_z <= threshold
    in_population = torch.zeros_like(log_ratio, dtype=torch.bool)
    in_population[population] = True
    self_counted = in_population & (log_ratio <= threshold)  # the same comparison searchsorted made
    count -= self_counted.double()
    denominator = (population.numel() - in_population.double()).clamp_min(1.0)
    if tie_break:
        all_sorted = log_ratio.sort().values
        count += torch.searchsorted(all_sorted, log_ratio, right=False).double() / log_ratio.numel()
    return count / denominator


def _check_options(gamma: float, a: float) -> None:
    if not gamma > 0:
        raise MiaError(f"attack.rmia.gamma must be > 0, got {gamma}")
    if not 0.0 <= a <= 1.0:
        raise MiaError(f"attack.rmia.a must lie in [0, 1], got {a}")


def choose_offline_a(shadow_logp: Tensor, keep: Tensor, *, gamma: float, num_z: int, seed: int,
           grid: tuple[float, ...] = A_GRID) -> tuple[float | None, dict[str, Any]]:
    """Choose offline `a` with shadow 0 as pseudo-target (its keep row is the truth).

    Uses no target membership at all; returns None when it cannot (K < 2, or shadow 0
    trained on all or none of the points).
    """
    truth = keep[0] if keep.shape[0] else None
    if keep.shape[0] < 2 or truth.all() or not truth.any():
        return None, {"tune_a": "skipped (needs >= 2 shadows and a pseudo-target with IN and OUT points)"}
    pseudo_member = torch.where(truth, 1, 0).to(torch.int8)
    population, _ = population_index(pseudo_member, keep.shape[1], num_z, seed)
    aucs = []
    for a in grid:
        log_ref, _ = log_reference_prob(shadow_logp[1:], keep[1:], online=False, a=a)
        scores = rmia_from_log_ratio(shadow_logp[0] - log_ref, population, gamma=gamma, tie_break=True)
        aucs.append(auc(scores, truth))
    best = max(range(len(grid)), key=lambda i: (aucs[i], -i))
    return float(grid[best]), {"tune_a_auc": round(aucs[best], 6)}


def rmia_from_log_probs(target_logp: Tensor, shadow_logp: Tensor, keep: Tensor, population: Tensor, *,
                        online: bool = True, gamma: float = 1.0, a: float = 0.3, tie_break: bool = True,
                        tune: bool = False, num_z: int = 2500, seed: int = 0) -> tuple[Tensor, dict[str, Any]]:
    """RMIA scores float64 [N] from log Pr(x | target) [N] and the shadows' [K, N]."""
    _check_options(gamma, a)
    notes: dict[str, Any] = {"online": online, "gamma": gamma, "tie_break": tie_break}
    if not online:
        if tune:
            tuned, tune_notes = choose_offline_a(shadow_logp, keep, gamma=gamma, num_z=num_z, seed=seed)
            notes.update(tune_notes)
            a = tuned if tuned is not None else a
        notes["a"] = a
    elif tune:
        notes["tune_a"] = "ignored (online RMIA does not use a)"
    log_ref, ref_notes = log_reference_prob(shadow_logp, keep, online=online, a=a)
    notes.update(ref_notes)
    return rmia_from_log_ratio(target_logp - log_ref, population, gamma=gamma, tie_break=tie_break), notes


def rmia(target_logits: Tensor, shadow_logits: Tensor, keep: Tensor, labels: Tensor, *,
         known_membership: Tensor | None = None, online: bool = True, gamma: float = 1.0, a: float = 0.3,
         tune_a: bool = False, num_z: int = 2500, temperature: float = 1.0, seed: int = 0,
         tie_break: bool = True) -> Tensor:
    """RMIA scores float64 [N]; the population is the known non-members (known_membership == 0)."""
    target_logp = log_prob_from_phi(true_class_margin(target_logits, labels, temperature))
    shadow_logp = log_prob_from_phi(true_class_margin(shadow_logits, labels, temperature))
    population, _ = population_index(known_membership, target_logits.shape[0], num_z, seed)
    return rmia_from_log_probs(target_logp, shadow_logp, keep, population, online=online, gamma=gamma, a=a,
                               tie_break=tie_break, tune=tune_a, num_z=num_z, seed=seed)[0]


def run_rmia(ctx: AttackContext) -> AttackResult:
    cfg: RmiaConfig = ctx.attack.rmia
    inputs = ctx.inputs
    population, notes = population_index(inputs.known_membership, inputs.num_points, cfg.num_z,
                                         derive_seed(ctx.seed, "rmia", "population"))
    scores, more = rmia_from_log_probs(
        log_prob_from_phi(ctx.signals.phi("target", cfg.temperature)),
        log_prob_from_phi(ctx.signals.phi("shadow", cfg.temperature)),
        inputs.keep, population, online=cfg.online, gamma=cfg.gamma, a=cfg.a, tie_break=cfg.tie_break,
        tune=cfg.tune_a, num_z=cfg.num_z, seed=derive_seed(ctx.seed, "rmia", "tune_a"))
    notes.update(more)
    return AttackResult(scores, held_out=False, notes=notes)
