"""ROC plots: both files written atomically, log axes from the smallest measurable FPR
(1 / negatives), the submitted attack marked, the counts in the title."""

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
    figures = plot_roc(curves, linear, log, title="test task", negatives=2000, positives=2000)
    assert all(isinstance(f, Figure) for f in figures)
    for path in (linear, log):
        assert path.read_bytes()[:8] == PNG_MAGIC and path.stat().st_size > 10_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roc.png", "roc_log.png"]  # no temp files left
    plot_roc(curves, linear, log, title="again")  # overwrites in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["roc.png", "roc_log.png"]


def test_log_figure_axes_and_legend():
    curves, scores, member = _curves(points=20_000)
    negatives, positives = int((~member).sum()), int(member.sum())
    figure = roc_figure(curves, "t", log_scale=True, negatives=negatives, positives=positives, submitted="loss")
    axes = figure.axes[0]
    assert axes.get_xscale() == "log" and axes.get_yscale() == "log"
    assert axes.get_xlim() == (1 / negatives, 1.0)
    texts = [t.get_text() for t in axes.get_legend().get_texts()]
    want = summarize(scores["lira_online"], member)
    assert texts[0].startswith("loss [submitted] (AUC")  # the submitted attack is marked and listed first
    assert texts[1] == f"lira_online (AUC {want['auc']:.3f}, TPR@5% {want['tpr@0.05']:.3f})"
    assert texts[-1] == "chance"
    assert f"{positives} members, {negatives} non-members" in axes.get_title()
    submitted = [line for line in axes.get_lines() if line.get_label().startswith("loss [submitted]")]
    assert submitted and submitted[0].get_linewidth() > max(line.get_linewidth() for line in axes.get_lines()
                                                            if line not in submitted)
    linear = roc_figure(curves, "t", log_scale=False).axes[0]
    assert linear.get_xscale() == "linear" and linear.get_xlim() == (0.0, 1.0)


def test_log_axis_starts_at_one_over_negatives_and_draws_no_point_below_it():
    """A small evaluation set (80 non-members): nothing is drawn below FPR 1/80, no line from an
    invented (1e-3, 1e-3) corner; zero TPRs are left out rather than drawn at the floor."""
    gen = torch.Generator().manual_seed(1)
    member = torch.arange(160) % 2 == 0
    scores = {"threshold": torch.randn(160, generator=gen, dtype=torch.float64) + 0.2 * member,
              "loss": torch.randn(160, generator=gen, dtype=torch.float64) + 0.2 * member}
    curves = curves_from_scores(scores, member)
    axes = roc_figure(curves, "t", log_scale=True, negatives=80, positives=80, submitted="loss").axes[0]
    assert axes.get_xlim()[0] == 1 / 80
    for line in axes.get_lines()[:-1]:  # the attacks (the last line is the chance diagonal)
        x, y = line.get_xdata(), line.get_ydata()
        assert x.min() >= 1 / 80 * (1 - 1e-9)
        finite = y[y == y]
        assert finite.size and finite.min() >= 1 / 80 * (1 - 1e-9)
    assert log_axis_floor(curves, negatives=80) == 1 / 80
    assert log_axis_floor(curves) == 1 / 80  # without counts: the curves' smallest FPR step


def test_axis_floor_rule():
    curves, _, _ = _curves(points=500)
    assert log_axis_floor(curves, negatives=500) == 2e-3
    assert log_axis_floor(curves, negatives=50_000) == 2e-5
    assert legend_label("x", [0, 0.5, 1], [0, 1, 1]).startswith("x (AUC 0.750, TPR@5% 0.000)")
    assert legend_label("x", [0, 1], [0, 1], submitted=True).startswith("x [submitted] (AUC")
