"""The attacks table printed at the end of a run (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from mia_lightning.report.intervals import cell
from mia_lightning.report.metrics import HEADLINE


def console() -> Console:
    """The terminal, or 160 columns off a terminal (a log file): tables keep one line per row."""
    import sys

    return Console(stderr=False, width=None if sys.stdout.isatty() else 160)


def print_table(metrics: dict[str, Any], held_out: set[str]) -> None:
    table = Table(title=f"{metrics['task']}: membership inference (eval on {metrics['eval']}, "
                        f"{metrics['eval_points']} points, {metrics['shadows']} shadows)",
                  caption="\\[low, high]: 95% bootstrap interval; n/m: FPR below 1/negatives, not measurable")
    for column in ("attack", "AUC", "TPR@5%FPR", "TPR@1%FPR", "TPR@0.1%FPR", ""):
        table.add_column(column, justify="left" if column in ("attack", "") else "right")
    for name, row in sorted(metrics["attacks"].items(), key=lambda item: -item[1][HEADLINE]):
        flags = ["submitted" if name == metrics["submit"] else "", "held-out folds" if name in held_out else ""]
        table.add_row(name, *(cell(metrics, name, key) for key in ("auc", "tpr@0.05", "tpr@0.01", "tpr@0.001")),
                      ", ".join(f for f in flags if f))
    console().print(table)


def print_models(models: dict[str, Any], warnings: list[str]) -> None:
    """The target on pub next to the shadows on their IN / OUT points, then the warnings."""
    table = Table(title="models (identity query): the target on pub vs the shadows on their IN / OUT points")
    for column in ("model", "side", "accuracy", "mean loss", "mean phi", "median phi"):
        table.add_column(column, justify="left" if column in ("model", "side") else "right")
    for side, row in (("members", models["target"]["member"]), ("non-members", models["target"]["non_member"])):
        table.add_row("target", side, f"{row['acc']:.3f}", f"{row['loss']:.3f}", f"{row['phi']:.2f}",
                      f"{row['phi_median']:.2f}")
    shadows = models["shadows"]
    for side in ("in", "out"):
        if side in shadows:
            row = shadows[side]
            table.add_row(f"{shadows['count']} shadows", f"{side.upper()} (mean ± sd)",
                          f"{row['acc']:.3f} ± {row['acc_std']:.3f}", f"{row['loss']:.3f} ± {row['loss_std']:.3f}",
                          f"{row['phi']:.2f} ± {row['phi_std']:.2f}",
                          f"{row['phi_median']:.2f} ± {row['phi_median_std']:.2f}")
    out = console()
    out.print(table)
    for line in warnings:
        out.print(f"[bold yellow]warning:[/] {line}", soft_wrap=True)
