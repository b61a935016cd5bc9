"""`base`: BASE (Lassila, Östman, Ngo, Graell i Amat, NeurIPS 2025, "Practical Bayes-optimal
membership inference attacks", arXiv 2505.24089).

Sablayrolles et al.'s Bayes-optimal membership posterior depends on the target's loss on x
minus a per-point threshold, a log-mean-exp of the losses of models that did not train on
x; BASE approximates that expectation with the reference (shadow) models:

    score(x) = log p_T(y|x) - log( 1/M sum_j p_j(y|x) ),   p = softmax(z / T)_y

online (the M references are all shadows) or offline (only the shadows that did not train on
x, the threshold scaled by `offline_scale`, as in the authors' LeakPro implementation,
leakpro/attacks/mia_attacks/base.py). With several queries p is the mean over queries, as
in RMIA. (The module is not `base.py`: that name holds what every attack reads.)

At T = 1, online, this is log of RMIA's ratio Pr(x|target) / Pr(x); RMIA's score, the
fraction of population points z whose ratio x beats by gamma, is then a non-decreasing
function of BASE's score for every gamma, so both rank the points outside RMIA's population
alike (the equivalence the paper states; tests/test_new_attacks.py checks it). BASE skips the
pairwise comparison and the population altogether.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.rmia import _log_mean_exp, log_prob_from_phi
from mia_lightning.attacks.signals import true_class_margin


def base_from_log_probs(target_logp: Tensor, shadow_logp: Tensor, keep: Tensor, *, online: bool = True,
                        offline_scale: float = 0.33) -> tuple[Tensor, dict[str, Any]]:
    """BASE scores float64 [N] from tempered log p(y|x) of the target [N] and the shadows [K, N]."""
    notes: dict[str, Any] = {"online": online, "shadows": int(shadow_logp.shape[0])}
    if shadow_logp.shape[0] == 0:
        notes["fallback"] = "no shadows: score = log p_T(y|x)"
        return target_logp.double(), notes
    everyone = torch.ones_like(keep)
    if online:
        return target_logp - _log_mean_exp(shadow_logp, everyone)[0], notes
    threshold, count = _log_mean_exp(shadow_logp, ~keep)
    missing = count == 0
    notes.update({"offline_scale": offline_scale, "no_out_points": int(missing.sum())})
    if missing.any():  # no OUT shadow: all shadows stand in
        threshold = torch.where(missing, _log_mean_exp(shadow_logp, everyone)[0], threshold)
    return target_logp - offline_scale * threshold, notes


def base_attack(target_logits: Tensor, shadow_logits: Tensor, keep: Tensor, labels: Tensor, *,
                temperature: float = 2.0, online: bool = True, offline_scale: float = 0.33) -> Tensor:
    """BASE scores float64 [N] from logits (target [N, A, C], shadows [K, N, A, C])."""
    target_logp = log_prob_from_phi(true_class_margin(target_logits, labels, temperature))
    shadow_logp = log_prob_from_phi(true_class_margin(shadow_logits, labels, temperature))
    return base_from_log_probs(target_logp, shadow_logp, keep, online=online, offline_scale=offline_scale)[0]


def run_base(ctx: AttackContext) -> AttackResult:
    cfg = ctx.attack.base
    target_logp = log_prob_from_phi(ctx.signals.phi("target", cfg.temperature))
    shadow_logp = ctx.signals.memo(("tempered_logp", float(cfg.temperature)),
                                   lambda: log_prob_from_phi(ctx.signals.phi("shadow", cfg.temperature)))
    scores, notes = base_from_log_probs(target_logp, shadow_logp, ctx.inputs.keep, online=cfg.online,
                                        offline_scale=cfg.offline_scale)
    notes["temperature"] = cfg.temperature
    return AttackResult(scores, held_out=False, notes=notes)
