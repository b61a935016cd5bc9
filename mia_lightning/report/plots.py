"""ROC figures: every attack on one plot, linear and log-log (ML Privacy Meter style).

The log-log view is the one that matters: MIA quality is the TPR at FPR 1e-3 .. 1e-2,
which the linear plot squeezes into its corner. It starts at the smallest FPR the
evaluation set can measure (1 / non-members), so a small set shows how little it can say
at low FPR instead of a line drawn from an invented corner. Figures are built with the object API
(no pyplot global state, Agg canvas) so they can go to a PNG or to TensorBoard's
`add_figure` alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mia_lightning.io.atomic import atomic_path
from mia_lightning.metrics.roc import curve_auc, curve_tpr_at, roc_curve

Curve = tuple[Any, Any]  # (fpr, tpr): tensors, arrays or lists of equal length


def _as_tensor(values: Any) -> torch.Tensor:
    return torch.as_tensor(values, dtype=torch.float64).detach().cpu()


def log_axis_floor(curves: Mapping[str, Curve], negatives: int | None = None) -> float:
    """Lower FPR limit of the log plot: the smallest FPR the evaluation set can measure,
    1 / negatives (one false positive). Below it a ROC has no data, only the line a plot
    would draw from an invented corner. Without `negatives`: the smallest FPR step of the curves."""
    if negatives is not None:
        return 1.0 / max(int(negatives), 1)
    steps = [_as_tensor(fpr) for fpr, _ in curves.values()]
    positive = [float(s[s > 0].min()) for s in steps if (s > 0).any()]
    return min(positive) if positive else 1e-3


def legend_label(name: str, fpr: Any, tpr: Any, submitted: bool = False) -> str:
    """The legend entry, e.g. "lira_online (AUC 0.672, TPR@5% 0.148)", "[submitted]" on the submitted one."""
    fpr, tpr = _as_tensor(fpr), _as_tensor(tpr)
    mark = " [submitted]" if submitted else ""
    return f"{name}{mark} (AUC {curve_auc(fpr, tpr):.3f}, TPR@5% {curve_tpr_at(fpr, tpr, 0.05):.3f})"


def counts_title(title: str, positives: int | None, negatives: int | None) -> str:
    """The title with the evaluation set's size: how much a TPR at low FPR can be trusted."""
    if positives is None or negatives is None:
        return title
    return f"{title}\n{positives} members, {negatives} non-members (smallest FPR 1/{negatives} = {1 / negatives:.1e})"


STYLES = ("-", "--", "-.", ":")  # curves that coincide (threshold and loss often do) stay visible


def roc_figure(curves: Mapping[str, Curve], title: str, log_scale: bool = False, *, negatives: int | None = None,
               positives: int | None = None, submitted: str | None = None) -> Figure:
    """One figure with every attack's ROC and the chance diagonal; log_scale=True for log-log.

    On the log plot the FPR axis starts at 1 / negatives and the TPR axis at 1 / positives
    (or the FPR floor, if lower): only points the evaluation set can measure are drawn.
    The submitted attack is drawn last, thicker, and marked in the legend."""
    figure = Figure(figsize=(5.5, 5.2), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    x_floor = log_axis_floor(curves, negatives) if log_scale else 0.0
    y_floor = min(x_floor, 1.0 / max(int(positives), 1)) if (log_scale and positives) else x_floor
    order = sorted(curves, key=lambda name: name == submitted)  # the submitted one on top
    for number, name in enumerate(order):
        fpr_t, tpr_t = _as_tensor(curves[name][0]), _as_tensor(curves[name][1])
        x, y = fpr_t, tpr_t
        if log_scale:  # measurable points only: FPR >= 1/negatives, TPR > 0
            shown = fpr_t >= x_floor * (1 - 1e-9)
            x, y = fpr_t[shown], torch.where(tpr_t[shown] > 0, tpr_t[shown], torch.nan)
        is_submitted = name == submitted
        axes.plot(x.numpy(), y.numpy(), label=legend_label(name, fpr_t, tpr_t, is_submitted),
                  linewidth=2.6 if is_submitted else 1.3, linestyle="-" if is_submitted else STYLES[number % 4],
                  zorder=3 if is_submitted else 2)
    axes.plot([x_floor, 1.0], [x_floor, 1.0], linestyle="--", color="grey", linewidth=0.8, label="chance")
    if log_scale:
        axes.set_xscale("log")
        axes.set_yscale("log")
    axes.set_xlim(x_floor, 1.0)
    axes.set_ylim(y_floor, 1.0)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(counts_title(title, positives, negatives), fontsize=9)
    axes.grid(True, which="major", alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    first = [i for i, label in enumerate(labels) if "[submitted]" in label]  # the legend lists it first
    ranked = first + [i for i in range(len(labels)) if i not in first]
    axes.legend([handles[i] for i in ranked], [labels[i] for i in ranked], loc="lower right", fontsize=7)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """Write a PNG atomically (temp file in the same directory, then os.replace)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


def plot_roc(curves: Mapping[str, Curve], path_linear: Path, path_log: Path, title: str, *,
             negatives: int | None = None, positives: int | None = None,
             submitted: str | None = None) -> tuple[Figure, Figure]:
    """roc.png and roc_log.png for all attacks; returns both figures (e.g. for TensorBoard)."""
    options = {"negatives": negatives, "positives": positives, "submitted": submitted}
    linear = roc_figure(curves, title, log_scale=False, **options)
    log = roc_figure(curves, title, log_scale=True, **options)
    save_figure(linear, Path(path_linear))
    save_figure(log, Path(path_log))
    return linear, log


def curves_from_scores(scores: Mapping[str, Any], is_member: Any) -> dict[str, Curve]:
    """ROC (fpr, tpr) per attack from raw scores, ready for plot_roc."""
    out: dict[str, Curve] = {}
    for name, values in scores.items():
        fpr, tpr, _ = roc_curve(values, is_member)
        out[name] = (fpr, tpr)
    return out

