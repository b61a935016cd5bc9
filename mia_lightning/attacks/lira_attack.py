"""LiRA as an attack: the run's settings and phi scale, computed once per run and shared.

`lira.py` holds the tensor functions; this module ties them to an AttackContext, memoising
the fits and scores that `lira_calibrated`, `rmia_calibrated` and `stack` reuse.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.lira import SideFit, choose_transform, fit_sides, lira_from_phi, scaled_phi
from mia_lightning.config.attack import LiraConfig


def lira_transform(ctx: AttackContext) -> tuple[str, dict[str, Any]]:
    """`attack.lira.transform`, with `auto` resolved once per run on the shadows."""
    cfg: LiraConfig = ctx.attack.lira
    if cfg.transform != "auto":
        return cfg.transform, {}
    return ctx.signals.memo("lira_transform", lambda: choose_transform(
        ctx.signals.phi("shadow"), ctx.inputs.keep, pseudo_targets=cfg.transform_pseudo_targets,
        points=cfg.transform_points, variance=cfg.variance, global_below=cfg.global_below, min_std=cfg.min_std,
        center=cfg.center))


def lira_phi(ctx: AttackContext, which: str, transform: str) -> Tensor:
    """The "target"'s or the "shadow"s' phi on LiRA's scale, computed once per run."""
    return ctx.signals.memo(("lira_phi", which, transform), lambda: scaled_phi(ctx.signals.phi(which), transform))


def shadow_fits(ctx: AttackContext, center: str, transform: str) -> tuple[SideFit, SideFit]:
    """LiRA's IN/OUT fits of the shadows' phi (on `transform`'s scale), shared by every attack that needs them."""
    return ctx.signals.memo(("lira_fits", center, transform),
                            lambda: fit_sides(lira_phi(ctx, "shadow", transform), ctx.inputs.keep, center))


def lira_scores(ctx: AttackContext, online: bool) -> tuple[Tensor, dict[str, Any]]:
    """Online or offline LiRA with the run's settings and scale, computed once per run: the
    attacks and `stack`'s features share it."""
    def compute() -> tuple[Tensor, dict[str, Any]]:
        cfg: LiraConfig = ctx.attack.lira
        transform, choice = lira_transform(ctx)
        scores, notes = lira_from_phi(lira_phi(ctx, "target", transform), lira_phi(ctx, "shadow", transform),
                                      ctx.inputs.keep, online=online, variance=cfg.variance,
                                      global_below=cfg.global_below, min_std=cfg.min_std, center=cfg.center,
                                      fits=shadow_fits(ctx, cfg.center, transform) if ctx.inputs.num_shadows else None)
        return scores, {**notes, **choice, "transform": transform}
    return ctx.signals.memo(("lira_scores", online), compute)


def _run(ctx: AttackContext, online: bool) -> AttackResult:
    scores, notes = lira_scores(ctx, online)
    return AttackResult(scores, held_out=False, notes=dict(notes))  # the registry adds to its own copy


def run_lira_online(ctx: AttackContext) -> AttackResult:
    return _run(ctx, online=True)


def run_lira_offline(ctx: AttackContext) -> AttackResult:
    return _run(ctx, online=False)
