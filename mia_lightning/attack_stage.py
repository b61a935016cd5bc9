"""The attack stage: every configured attack on the stored logits, then the report."""

from __future__ import annotations

import logging
import shutil
import time
from typing import TYPE_CHECKING

from torch import Tensor

from mia_lightning.attacks.base import AttackInputs
from mia_lightning.attacks.registry import run_attacks
from mia_lightning.io.atomic import atomic_write_json
from mia_lightning.report.report import write_report
from mia_lightning.shadows.runner import ShadowContext
from mia_lightning.task.data import Task

if TYPE_CHECKING:
    from mia_lightning.pipeline import Run

log = logging.getLogger("mia")


def attack_and_report(run: "Run", task: Task, ctx: ShadowContext, target: Tensor, shadows: Tensor) -> float | None:
    cfg = run.cfg
    count = int(shadows.shape[0])
    inputs = AttackInputs(
        target_logits=target, shadow_logits=shadows, keep=ctx.keep[:count],
        labels=task.pool_labels, known_membership=task.known_membership,
    )
    started = time.monotonic()
    # the master's TensorBoard runs (<run dir>/master/<version>): a rerun of this job replaces them
    shutil.rmtree(run.run_dir / "master", ignore_errors=True)
    log_dir = run.run_dir if cfg.logger.enabled else None
    results = run_attacks(inputs, cfg.attack, cfg.master, cfg.trainer, int(cfg.seed), log_dir)
    run.timed("attacks", started)
    started = time.monotonic()
    metrics = write_report(run, task, ctx, results, count)
    run.timed("report", started)
    metrics["seconds"] = dict(run.seconds)
    atomic_write_json(run.run_dir / "metrics.json", metrics)
    return metrics.get("optimized_metric")
