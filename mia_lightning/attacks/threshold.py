"""The two reference-free baselines: the target's confidence and its loss.

They need no shadows at all, so they are the floor every calibrated attack must beat,
and the only attacks that run when K = 0.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.signals import max_confidence, true_class_log_prob


def threshold_scores(target_logits: Tensor) -> Tensor:
    """Max softmax confidence of the target on the identity query, float64 [N]."""
    return max_confidence(target_logits[:, 0])


def threshold_attack(target_logits: Tensor, *, tau: float) -> tuple[Tensor, dict[str, Any]]:
    """Scores plus the hard decision `member iff confidence >= tau`, summarised in notes."""
    scores = threshold_scores(target_logits)
    over = float((scores >= tau).double().mean()) if scores.numel() else 0.0
    return scores, {"tau": float(tau), "fraction_over_tau": over}


def loss_scores(target_logits: Tensor, labels: Tensor) -> Tensor:
    """Minus the target's cross-entropy on the true label (Yeom et al.), float64 [N]."""
    return true_class_log_prob(target_logits[:, :1], labels)[:, 0]


def run_threshold(ctx: AttackContext) -> AttackResult:
    scores, notes = threshold_attack(ctx.inputs.target_logits, tau=ctx.attack.threshold.tau)
    return AttackResult(scores, held_out=False, notes=notes)


def run_loss(ctx: AttackContext) -> AttackResult:
    return AttackResult(loss_scores(ctx.inputs.target_logits, ctx.inputs.labels), held_out=False, notes={})
