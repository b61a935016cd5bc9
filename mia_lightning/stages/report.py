"""Stage 5, the report: honest metrics, ROC plots, the submission, TensorBoard.

Reads: the attack results, the task (pub's membership; the hidden truth of priv when a
simulated task has one), the shadow set (for the model summaries). Writes into the run
dir: `metrics.json` (with bootstrap intervals: report/intervals.py), `bootstrap.pt`,
`submission.csv`, `roc.png`, `roc_log.png`, `tb/`.
Returns: the metrics dict (also written as metrics.json).
"""

from __future__ import annotations

from typing import Any

import torch

from mia_lightning.artifacts import AttackResults, LogitSet, ShadowSet
from mia_lightning.io.atomic import atomic_write_json
from mia_lightning.metrics.roc import roc_curve
from mia_lightning.report.intervals import add_intervals
from mia_lightning.report.metrics import choose_submission, evaluation_points, resolve_metric, score_attacks
from mia_lightning.report.models import attack_warnings, model_report, model_warnings
from mia_lightning.report.table import print_models, print_table
from mia_lightning.run import Run
from mia_lightning.task.data import Task
from mia_lightning.task.submission import write_submission


def report(run: Run, task: Task, shadows: ShadowSet, logits: LogitSet, results: AttackResults) -> dict[str, Any]:
    """Metrics, submission.csv, ROC plots and TensorBoard logs; returns the metrics dict."""
    with run.timed("report"):
        metrics = _write_report(run, task, shadows, logits, results)
    metrics["seconds"] = dict(run.seconds)
    atomic_write_json(run.run_dir / "metrics.json", metrics)
    return metrics


def _write_report(run: Run, task: Task, shadows: ShadowSet, logits: LogitSet,
                  results: AttackResults) -> dict[str, Any]:
    config = run.config
    run.run_dir.mkdir(parents=True, exist_ok=True)
    eval_name, index, truth = evaluation_points(task, config.report.eval)
    attack_metrics = score_attacks(results, index, truth)
    pub_index = torch.arange(len(task.pub))
    pub_metrics = attack_metrics if eval_name == "pub" else score_attacks(results, pub_index,
                                                                          task.pub.membership.bool())
    submit, skipped = choose_submission(config.report.submit, pub_metrics)
    held_out = {name for name, result in results.items() if result.held_out}
    models = model_report(logits.target, logits.shadows, logits.keep, task.pool_labels, len(task.pub),
                          task.pub.membership.bool())
    warnings = [*task.meta.get("warnings", []),  # issue 14: task-level warnings (task/load.py)
                *model_warnings(models), *attack_warnings(pub_metrics)]
    metrics: dict[str, Any] = {
        "task": task.name,
        "eval": eval_name,
        "eval_points": int(index.numel()),
        "attacks": attack_metrics,
        "submit": submit,
        "submit_rule": ("report.submit=best: the highest tpr@0.05 on pub (held-out folds for attacks trained "
                        "there) among attacks with AUC >= 0.5 on pub") if config.report.submit == "best" else
                       f"report.submit={config.report.submit}",
        "submit_skipped": skipped,
        "held_out": sorted(held_out),
        "models": models,
        "warnings": warnings,
        "notes": {name: result.notes for name, result in results.items()},
        "shadows": shadows.count,
        "recipe": shadows.choice.as_json() if shadows.choice else None,
        "queries": list(logits.queries),
        "store": str(shadows.store.dir),
        "stores": [str(job.store.dir) for job in shadows.jobs],
        "task_dir": task.meta.get("dir"),
    }
    if eval_name == "truth":
        metrics["attacks_pub"] = pub_metrics
    # issue 13: 95% bootstrap intervals (ci, ci_pub), paired differences to lira_online (paired)
    add_intervals(metrics, results, index, truth, task.pub.membership.bool() if eval_name == "truth" else None,
                  run.run_dir, config.seed)
    metrics["optimized_metric"] = resolve_metric(str(config.optimized_metric), metrics, submit)
    priv_index = torch.arange(len(task.pub), task.pool_size)
    write_submission(run.run_dir / "submission.csv", task.priv.ids, results[submit].scores[priv_index],
                     config.task.submission_id_column)
    curves = {name: roc_curve(result.scores[index], truth)[:2] for name, result in results.items()}
    if config.report.plots:
        from mia_lightning.report.plots import plot_roc

        plot_roc(curves, run.run_dir / "roc.png", run.run_dir / "roc_log.png",
                 title=f"{task.name} (eval on {eval_name})", submitted=submit,  # issue 14: counts, submitted
                 positives=int(truth.sum()), negatives=int((~truth).sum()))
    print_models(models, warnings)
    print_table(metrics, held_out)
    if config.logger.enabled:
        from mia_lightning.report.tensorboard import log_run

        log_run(run, metrics, curves, positives=int(truth.sum()), negatives=int((~truth).sum()))
    return metrics
