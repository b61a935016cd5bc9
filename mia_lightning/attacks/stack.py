"""`stack`: a supervised combiner of every signal, trained on the target's own membership in pub.

Per point: the shadow attacks' scores (LiRA online and offline, RMIA's log-ratio), the
target's phi on every query and its loss, confidence and entropy, and the shadow-calibrated
signals phi - mu_out, phi - mu_in and (phi - mu_out) / s_out (the shadows' per-point
medians and LiRA's global OUT std). A scikit-learn model learns on pub which of them, and
how, separate the target's members from its non-members: a standardised LogisticRegression
by default (2,000 labelled points of a weak signal reward a low-variance model: on pub's
held-out folds it beat boosting on every store compared), or HistGradientBoostingClassifier
(`model=hgb`: non-linear, scale-free, seeded). pub points
are scored through held-out folds (attacks/crossfit.py), priv points by the model fitted on
all of pub. Like Carlini et al.'s and the TML25 leaderboard's observation that target-side
supervised models carry signal the shadows miss, it helps most where the shadows are close
to, but not exactly, the target's recipe.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.crossfit import cross_fit
from mia_lightning.attacks.lira import side_centers, side_std
from mia_lightning.attacks.lira_attack import lira_scores, shadow_fits
from mia_lightning.attacks.rmia import log_prob_from_phi, log_reference_prob
from mia_lightning.attacks.signals import entropy, max_confidence, true_class_log_prob
from mia_lightning.config.attack import StackConfig
from mia_lightning.utils.seeding import derive_seed


def stack_features(ctx: AttackContext) -> tuple[Tensor, list[str]]:
    """float64 [N, D] feature table and the column names."""
    inputs, signals = ctx.inputs, ctx.signals
    phi = signals.phi("target")  # [N, A]
    columns: dict[str, Tensor] = {}
    for query in range(phi.shape[1]):
        columns[f"phi_q{query}"] = phi[:, query]
    columns["loss"] = -true_class_log_prob(inputs.target_logits[:, :1], inputs.labels)[:, 0]
    columns["max_confidence"] = max_confidence(inputs.target_logits[:, 0])
    columns["entropy"] = entropy(inputs.target_logits[:, 0])
    if inputs.num_shadows and inputs.keep.any() and not inputs.keep.all():
        lira = ctx.attack.lira
        for online in (True, False):  # LiRA on its own scale (attack.lira.transform), as the attacks ran it
            columns["lira_online" if online else "lira_offline"] = lira_scores(ctx, online)[0]
        inn, out = shadow_fits(ctx, lira.center, "none")  # the raw-phi differences below
        shadow_phi = signals.phi("shadow")
        mu_in, mu_out = side_centers(inn, out)
        std_out = side_std(out, inn, per_example=False, min_std=lira.min_std)
        for query in range(phi.shape[1]):
            columns[f"phi_minus_out_q{query}"] = phi[:, query] - mu_out[:, query]
            columns[f"phi_minus_in_q{query}"] = phi[:, query] - mu_in[:, query]
            columns[f"z_out_q{query}"] = (phi[:, query] - mu_out[:, query]) / std_out[query]
        log_ref, _ = log_reference_prob(log_prob_from_phi(shadow_phi), inputs.keep, online=True, a=ctx.attack.rmia.a)
        columns["rmia_log_ratio"] = log_prob_from_phi(phi) - log_ref
    names = list(columns)
    table = torch.stack([columns[name].double() for name in names], dim=1)
    return torch.nan_to_num(table, nan=0.0, posinf=1e6, neginf=-1e6).clamp(-1e6, 1e6), names


def _model(settings: StackConfig, seed: int) -> Any:
    if settings.model == "hgb":
        from sklearn.ensemble import HistGradientBoostingClassifier

        return HistGradientBoostingClassifier(max_iter=settings.max_iter, learning_rate=settings.learning_rate,
                                              max_leaf_nodes=settings.max_leaf_nodes,
                                              l2_regularization=settings.l2, early_stopping=False,
                                              random_state=seed)
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0 / max(settings.l2, 1e-6), max_iter=2000))


def stack_scores(features: Tensor, known_membership: Tensor, settings: StackConfig,
                 seed: int) -> tuple[Tensor, dict[str, Any]]:
    """Cross-fitted log-odds of membership, float64 [N]."""
    table = features.numpy()
    labels = known_membership.numpy()
    model_seed = derive_seed(seed, "stack") % 2**31

    def fit_and_score(train: Tensor, score: Tensor) -> Tensor:
        model = _model(settings, model_seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(table[train.numpy()], labels[train.numpy()])
        proba = np.clip(model.predict_proba(table[score.numpy()])[:, 1], 1e-12, 1 - 1e-12)
        return torch.from_numpy(np.log(proba) - np.log1p(-proba))

    return cross_fit(known_membership, settings.folds, seed, "stack", fit_and_score)


def run_stack(ctx: AttackContext) -> AttackResult:
    features, names = stack_features(ctx)
    scores, notes = stack_scores(features, ctx.inputs.known_membership, ctx.attack.stack, ctx.seed)
    notes.update({"model": ctx.attack.stack.model, "features": names})
    return AttackResult(scores, held_out=True, notes=notes)
