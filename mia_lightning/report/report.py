"""The report of an attack run: honest metrics, ROC plots, the submission, TensorBoard.

Metrics are measured on the hidden truth of priv when the task has it (simulated
tasks), else on pub. Attacks that trained on pub's membership labels are scored on pub
only through held-out folds, and the report marks them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import torch
from rich.console import Console
from rich.table import Table
from torch import Tensor

from mia_lightning.attacks.base import AttackResult
from mia_lightning.errors import MiaError
from mia_lightning.metrics.roc import roc_curve, summarize
from mia_lightning.shadows.runner import ShadowContext
from mia_lightning.task.data import Task
from mia_lightning.task.submission import write_submission

if TYPE_CHECKING:
    from mia_lightning.pipeline import Run

log = logging.getLogger("mia")
HEADLINE = "tpr@0.05"


def evaluation_points(task: Task, mode: str) -> tuple[str, Tensor, Tensor]:
    """(name, pool indices, bool membership) of the points the metrics are measured on."""
    if mode == "truth" or (mode == "auto" and task.truth is not None):
        if task.truth is None:
            raise MiaError("report.eval=truth, but this task has no hidden truth (set task.truth or use report.eval=pub)")
        return "truth", torch.arange(len(task.pub), task.pool_size), task.truth.bool()
    return "pub", torch.arange(len(task.pub)), task.pub.membership.bool()


def score_attacks(results: dict[str, AttackResult], index: Tensor, truth: Tensor) -> dict[str, dict[str, float]]:
    return {name: summarize(result.scores[index], truth) for name, result in results.items()}


def choose_submission(requested: str, metrics: dict[str, dict[str, float]]) -> str:
    if requested != "best":
        return requested
    return max(metrics, key=lambda name: (metrics[name][HEADLINE], metrics[name]["auc"]))


def resolve_metric(path: str, metrics: dict[str, Any], submit: str) -> float | None:
    """`attacks.<name|best>.<metric>` -> its value (the value Hydra sweepers optimise).

    `attacks_pub.<name>.<metric>` reads the metrics on pub of a simulated task (evaluated on
    the hidden truth of priv): a search tuned on pub leaves the reported priv metrics honest.
    """
    section, _, rest = path.partition(".")
    if section not in ("attacks", "attacks_pub") or "." not in rest:
        raise MiaError(f"optimized_metric={path!r} must look like attacks.<name or best>.<metric> "
                       "(or attacks_pub.<name or best>.<metric>)")
    name, key = rest.split(".", 1)
    name = submit if name == "best" else name
    if section not in metrics:
        raise MiaError(f"optimized_metric={path!r}: this run has no {section} (attacks_pub exists only when "
                       "the metrics are measured on the hidden truth of a simulated task; use attacks.)")
    try:
        return float(metrics[section][name][key])
    except KeyError:
        raise MiaError(f"optimized_metric={path!r}: no such attack or metric in this run") from None


def print_table(metrics: dict[str, Any], held_out: set[str]) -> None:
    table = Table(title=f"{metrics['task']}: membership inference (eval on {metrics['eval']}, "
                        f"{metrics['eval_points']} points, {metrics['shadows']} shadows)")
    for column in ("attack", "AUC", "TPR@5%FPR", "TPR@1%FPR", "TPR@0.1%FPR", ""):
        table.add_column(column, justify="left" if column in ("attack", "") else "right")
    for name, row in sorted(metrics["attacks"].items(), key=lambda item: -item[1][HEADLINE]):
        flags = ["submitted" if name == metrics["submit"] else "", "held-out folds" if name in held_out else ""]
        table.add_row(name, f"{row['auc']:.4f}", f"{row['tpr@0.05']:.4f}", f"{row['tpr@0.01']:.4f}",
                      f"{row['tpr@0.001']:.4f}", ", ".join(f for f in flags if f))
    Console(stderr=False).print(table)


def write_report(
    run: "Run", task: Task, ctx: ShadowContext, results: dict[str, AttackResult], count: int
) -> dict[str, Any]:
    """Metrics, submission.csv, ROC plots and TensorBoard logs; returns the metrics dict."""
    cfg = run.cfg
    run.run_dir.mkdir(parents=True, exist_ok=True)
    eval_name, index, truth = evaluation_points(task, cfg.report.eval)
    attack_metrics = score_attacks(results, index, truth)
    submit = choose_submission(cfg.report.submit, attack_metrics)
    held_out = {name for name, result in results.items() if result.held_out}
    metrics: dict[str, Any] = {
        "task": task.name,
        "eval": eval_name,
        "eval_points": int(index.numel()),
        "attacks": attack_metrics,
        "submit": submit,
        "held_out": sorted(held_out),
        "notes": {name: result.notes for name, result in results.items()},
        "shadows": count,
        "queries": [q.name for q in ctx.queries],
        "store": str(ctx.store.dir),
        "task_dir": task.meta.get("dir"),
    }
    if eval_name == "truth":
        pub_index = torch.arange(len(task.pub))
        metrics["attacks_pub"] = score_attacks(results, pub_index, task.pub.membership.bool())
    metrics["optimized_metric"] = resolve_metric(str(cfg.optimized_metric), metrics, submit)
    priv_index = torch.arange(len(task.pub), task.pool_size)
    write_submission(run.run_dir / "submission.csv", task.priv.ids, results[submit].scores[priv_index],
                     str(cfg.task.submission_id_column))
    curves = {name: roc_curve(result.scores[index], truth)[:2] for name, result in results.items()}
    if cfg.report.plots:
        from mia_lightning.report.plots import plot_roc

        plot_roc(curves, run.run_dir / "roc.png", run.run_dir / "roc_log.png",
                 title=f"{task.name} (eval on {eval_name})")
    print_table(metrics, held_out)
    if cfg.logger.enabled:
        from mia_lightning.report.tensorboard import log_run

        log_run(run.run_dir / "tb", cfg, metrics, curves)
    return metrics
