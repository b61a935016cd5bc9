"""Which points the metrics are measured on, the metrics of every attack, and the submitted one.

Metrics are measured on the hidden truth of priv when the task has it (simulated tasks),
else on pub. Attacks that trained on pub's membership labels are scored on pub only
through held-out folds (their `held_out` flag), and the report marks them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackResult
from mia_lightning.errors import MiaError
from mia_lightning.metrics.roc import summarize
from mia_lightning.task.data import Task
from mia_lightning.task.load import read_truth

HEADLINE = "tpr@0.05"


def evaluation_points(task: Task, mode: str) -> tuple[str, Tensor, Tensor]:
    """(name, pool indices, bool membership) of the points the metrics are measured on."""
    if mode == "truth" or (mode == "auto" and "truth" in task.files):
        if "truth" not in task.files:
            raise MiaError("report.eval=truth, but this task has no hidden truth (set task.truth or use report.eval=pub)")
        if task.truth is None:  # the only place mia reads the hidden truth
            task.truth = read_truth(task.files["truth"], task.priv)
        return "truth", torch.arange(len(task.pub), task.pool_size), task.truth.bool()
    return "pub", torch.arange(len(task.pub)), task.pub.membership.bool()


def score_attacks(results: dict[str, AttackResult], index: Tensor, truth: Tensor) -> dict[str, dict[str, float]]:
    return {name: summarize(result.scores[index], truth) for name, result in results.items()}


def choose_submission(requested: str, pub_metrics: dict[str, dict[str, float]]) -> tuple[str, list[str]]:
    """The attack whose scores go into submission.csv, and the attacks `best` passed over.

    `best` is judged on pub (held-out folds for attacks trained there), never on a hidden
    truth: the highest TPR@5%FPR (then AUC) among attacks with AUC >= 0.5 on pub; an attack
    below chance there is never submitted. A named attack is submitted as asked.
    """
    if requested != "best":
        return requested, []
    fair = {name: row for name, row in pub_metrics.items() if row["auc"] >= 0.5}
    skipped = sorted(set(pub_metrics) - set(fair))
    pool = fair or pub_metrics  # all below chance: the least bad (its warning says so)
    return max(pool, key=lambda name: (pool[name][HEADLINE], pool[name]["auc"])), skipped


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
