"""ROC figures: every attack on one plot, linear and log-log (ML Privacy Meter style).

The log-log view is the one that matters: MIA quality is the TPR at FPR 1e-3 .. 1e-2,
which the linear plot squeezes into its corner. Figures are built with the object API
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


def log_axis_floor(curves: Mapping[str, Curve], num_points: int | None = None) -> float:
    """Lower axis limit of the log plot: min(1e-3, 1/N), N taken from the curves if not given."""
    if num_points is None:
        steps = [_as_tensor(fpr) for fpr, _ in curves.values()]
        positive = [s[s > 0].min() for s in steps if (s > 0).any()]
        return min(1e-3, float(min(positive))) if positive else 1e-3
    return min(1e-3, 1.0 / max(int(num_points), 1))


def legend_label(name: str, fpr: Any, tpr: Any) -> str:
    """The legend entry, e.g. "lira_online (AUC 0.672, TPR@5% 0.148)"."""
    fpr, tpr = _as_tensor(fpr), _as_tensor(tpr)
    return f"{name} (AUC {curve_auc(fpr, tpr):.3f}, TPR@5% {curve_tpr_at(fpr, tpr, 0.05):.3f})"


def roc_figure(curves: Mapping[str, Curve], title: str, log_scale: bool = False,
               num_points: int | None = None) -> Figure:
    """One figure with every attack's ROC and the chance diagonal; log_scale=True for log-log."""
    figure = Figure(figsize=(5.5, 5.0), dpi=120)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    floor = log_axis_floor(curves, num_points) if log_scale else 0.0
    for name, (fpr, tpr) in curves.items():
        fpr_t, tpr_t = _as_tensor(fpr), _as_tensor(tpr)
        x, y = (fpr_t.clamp_min(floor), tpr_t.clamp_min(floor)) if log_scale else (fpr_t, tpr_t)
        axes.plot(x.numpy(), y.numpy(), label=legend_label(name, fpr_t, tpr_t), linewidth=1.4)
    axes.plot([floor, 1.0], [floor, 1.0], linestyle="--", color="grey", linewidth=0.8, label="chance")
    if log_scale:
        axes.set_xscale("log")
        axes.set_yscale("log")
    axes.set_xlim(floor, 1.0)
    axes.set_ylim(floor, 1.0)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title(title)
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(loc="lower right", fontsize=7)
    figure.tight_layout()
    return figure


def save_figure(figure: Figure, path: Path) -> Path:
    """Write a PNG atomically (temp file in the same directory, then os.replace)."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png")
    return Path(path)


def plot_roc(curves: Mapping[str, Curve], path_linear: Path, path_log: Path, title: str,
             num_points: int | None = None) -> tuple[Figure, Figure]:
    """roc.png and roc_log.png for all attacks; returns both figures (e.g. for TensorBoard)."""
    linear = roc_figure(curves, title, log_scale=False)
    log = roc_figure(curves, title, log_scale=True, num_points=num_points)
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

