"""ROC plots: both files written atomically, log axes down to min(1e-3, 1/N), legends."""

from __future__ import annotations

import torch
from matplotlib.figure import Figure

from mia_lightning.metrics.roc import summarize
from mia_lightning.report.plots import curves_from_scores, legend_label, log_axis_floor, plot_roc, roc_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _curves(points: int = 4000):
    gen = torch.Generator().manual_seed(0)
    member = torch.rand(points, generator=gen) < 0.5
    scores = {
        "lira_online": torch.randn(points, generator=gen, dtype=torch.float64) + 1.5 * member,
        "loss": torch.randn(points, generator=gen, dtype=torch.float64) + 0.3 * member,
    }
    return curves_from_scores(scores, member), scores, member


def test_plot_roc_writes_both_pngs_atomically(tmp_path):
    curves, _, _ = _curves()
    linear, log = tmp_path / "roc.png", tmp_path / "roc_log.png"
    figures = plot_roc(curves, linear, log, title="test task", num_points=4000)
    assert all(isinstance(f, Figure) for f in figures)
    for path in (linear, log):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roc.png", "roc_log.png"]  # no temp files left
    plot_roc(curves, linear, log, title="again")  # overwrites in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roc.png", "roc_log.png"]


def test_log_figure_axes_and_legend():
    curves, scores, member = _curves(points=20_000)
    figure = roc_figure(curves, "t", log_scale=True, num_points=20_000)
    axes = figure.axes[0]
    assert axes.get_xscale() == "log" and axes.get_yscale() == "log"
    assert axes.get_xlim()[0] == 1 / 20_000 and axes.get_xlim()[1] == 1.0
    texts = [t.get_text() for t in axes.get_legend().get_texts()]
    want = summarize(scores["lira_online"], member)
    assert texts[0] == f"lira_online (AUC {want['auc']:.3f}, TPR@5% {want['tpr@0.05']:.3f})"
    assert texts[-1] == "chance"
    linear = roc_figure(curves, "t", log_scale=False).axes[0]
    assert linear.get_xscale() == "linear" and linear.get_xlim() == (0.0, 1.0)


def test_axis_floor_rule():
    curves, _, _ = _curves(points=500)
    assert log_axis_floor(curves, num_points=500) == 1e-3  # 1/N = 2e-3 is above 1e-3
    assert log_axis_floor(curves, num_points=50_000) == 2e-5
    assert log_axis_floor(curves) <= 1e-3
    assert legend_label("x", [0, 0.5, 1], [0, 1, 1]).startswith("x (AUC 0.750, TPR@5% 0.000)")
