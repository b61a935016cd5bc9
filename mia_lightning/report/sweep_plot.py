"""`summary.png` of a multirun: TPR@5%FPR and AUC against a swept key, one line per attack,
one row of panels per value of the other swept keys."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mia_lightning.config.resolvers import format_value
from mia_lightning.report.sweep import Job

MAX_PANEL_ROWS = 6


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


def plot_summary(jobs: list[Job], swept: list[str], attacks: list[str], x_key: str | None, path: Path,
                 title: str) -> Path:
    """TPR@5%FPR and AUC against `x_key`, one line per attack, one row of panels per value
    of the other swept keys (one panel with every point when they are too many)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from mia_lightning.report.plots import save_figure

    done = [job for job in jobs if job.metrics is not None]
    if x_key is None:
        x_of = {job.label: job.num for job in done}
        x_name, rest = "job", []
    else:
        x_of = {job.label: job.values.get(x_key) for job in done}
        x_name, rest = x_key, [key for key in swept if key != x_key]
    xs = [x_of[job.label] for job in done]
    numeric = _numeric(xs)
    categories = list(dict.fromkeys(format_value(x) for x in xs))
    groups: dict[str, list[Job]] = {}
    for job in done:
        groups.setdefault(",".join(f"{k}={format_value(job.values.get(k))}" for k in rest), []).append(job)
    note = ""
    if len(groups) > MAX_PANEL_ROWS:
        note = f" ({', '.join(rest)} vary too: all {len(done)} jobs in one panel)"
        groups = {"": done}
    figure = Figure(figsize=(10, 3.4 * len(groups) + 0.6), dpi=110)
    FigureCanvasAgg(figure)
    colors = {attack: f"C{i % 10}" for i, attack in enumerate(attacks)}
    first_row: list[Any] = []
    for row, (group, members) in enumerate(groups.items()):
        for col, (metric, label, chance) in enumerate((("tpr@0.05", "TPR at 5% FPR", 0.05), ("auc", "AUC", 0.5))):
            # one y scale per metric, so the panel rows compare at a glance
            axes = figure.add_subplot(len(groups), 2, 2 * row + col + 1, sharey=first_row[col] if row else None)
            if not row:
                first_row.append(axes)
            for attack in attacks:
                points = []
                for job in members:
                    value = job.metrics.get("attacks", {}).get(attack, {}).get(metric)
                    if value is not None:
                        x = x_of[job.label]
                        points.append((x if numeric else categories.index(format_value(x)), value))
                if not points:
                    continue
                points.sort()
                px, py = zip(*points)
                style = "o" if len(set(px)) < len(px) else "o-"  # repeated x (search, not grid): points only
                axes.plot(px, py, style, color=colors[attack], label=attack, markersize=4, linewidth=1.3)
            axes.axhline(chance, linestyle="--", color="grey", linewidth=0.8)
            if numeric:
                values = sorted({float(x) for x in xs})
                if values[0] > 0 and values[-1] / values[0] >= 8:
                    axes.set_xscale("log")
                if len(values) <= 12:
                    axes.set_xticks(values)
                    axes.set_xticklabels([format_value(x) for x in sorted(set(xs), key=float)])
                    axes.minorticks_off()
            else:
                axes.set_xticks(range(len(categories)))
                axes.set_xticklabels(categories, rotation=30 if max(map(len, categories)) > 8 else 0,
                                     ha="right" if max(map(len, categories)) > 8 else "center", fontsize=7)
            axes.set_xlabel(x_name)
            axes.set_ylabel(label)
            axes.set_title(f"{label}" + (f"  [{group}]" if group else ""), fontsize=9)
            axes.grid(True, alpha=0.3)
    handles, labels = figure.axes[0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="upper center", ncol=min(len(labels), 6), fontsize=8,
                      bbox_to_anchor=(0.5, 1.0 - 0.02 / max(len(groups), 1)))
    figure.suptitle(title + note, fontsize=10, y=0.0, va="bottom")
    figure.tight_layout(rect=(0, 0.04, 1, 1 - 0.09 / len(groups)))
    return save_figure(figure, path)


