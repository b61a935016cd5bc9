"""Bootstrap intervals of the ROC metrics and paired differences (metrics/bootstrap.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mia_lightning.metrics.bootstrap import (METRICS, bootstrap, intervals, measurable, paired_difference,
                                             resample_weights, weighted_metrics)
from mia_lightning.metrics.roc import summarize

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def attacks(points: int, seed: int = 0, strengths=(0.5, 1.0, 2.0)):
    """Scores [M, n] of attacks of known strength (member shift in units of noise) and the truth."""
    g = torch.Generator().manual_seed(seed)
    member = torch.rand(points, generator=g) < 0.5
    noise = torch.randn(len(strengths), points, generator=g, dtype=torch.float64)
    shift = torch.tensor(strengths, dtype=torch.float64).view(-1, 1)
    return noise + shift * member.double(), member


def test_unit_weights_give_exactly_the_point_estimates():
    scores, member = attacks(3000)
    scores[0, :200] = 0.0  # ties: one ROC point for all of them
    for row in scores:
        got = weighted_metrics(row, member, torch.ones(1, 3000, dtype=torch.float64))[0]
        assert got.tolist() == [summarize(row, member)[key] for key in METRICS]


def test_a_weighted_resample_equals_the_metrics_of_the_repeated_points():
    """Weights are multiplicities: the same numbers as the resampled data set written out."""
    scores, member = attacks(400, seed=1)
    weights = resample_weights(member, 5, seed=3)
    assert (weights[:, member].sum(1) == int(member.sum())).all()  # stratified: the counts stay
    assert (weights[:, ~member].sum(1) == int((~member).sum())).all()
    for b in range(5):
        index = torch.repeat_interleave(torch.arange(400), weights[b].long())
        for row in scores:
            want = summarize(row[index], member[index])
            got = weighted_metrics(row, member, weights[b:b + 1])[0]
            np.testing.assert_allclose(got.numpy(), [want[key] for key in METRICS], rtol=1e-12, atol=1e-12)


def test_intervals_contain_the_point_estimate_and_shrink_with_more_points():
    widths = {}
    for points in (400, 6400):
        scores, member = attacks(points, seed=2)
        replicates = bootstrap(scores, member, resamples=400, seed=0)
        bounds = intervals(replicates, ["weak", "mid", "strong"], int((~member).sum()))
        for i, name in enumerate(("weak", "mid", "strong")):
            point = summarize(scores[i], member)
            for key in METRICS:
                if bounds[name][key] is None:
                    continue
                low, high = bounds[name][key]
                assert low <= point[key] <= high, (points, name, key)
        widths[points] = {key: bounds["mid"][key][1] - bounds["mid"][key][0] for key in ("auc", "tpr@0.05")}
    for key in ("auc", "tpr@0.05"):  # 16x the points: about 1/4 the width
        assert widths[6400][key] < 0.5 * widths[400][key], key


def test_bootstrap_is_seeded_and_independent_of_chunking():
    scores, member = attacks(500, seed=4)
    first = bootstrap(scores, member, resamples=64, seed=7)
    assert torch.equal(first, bootstrap(scores, member, resamples=64, seed=7, chunk_elements=500 * 5))
    assert not torch.equal(first, bootstrap(scores, member, resamples=64, seed=8))
    assert first.shape == (3, len(METRICS), 64)


def test_tpr_below_one_over_negatives_is_not_measurable():
    scores, member = attacks(160, seed=5)  # about 80 negatives: 1% and 0.1% FPR are below 1/80
    negatives = int((~member).sum())
    assert measurable(negatives) == {"auc": True, "tpr@0.05": True, "tpr@0.01": False, "tpr@0.001": False}
    assert measurable(1000)["tpr@0.001"] and not measurable(999)["tpr@0.001"]
    bounds = intervals(bootstrap(scores, member, resamples=50), ["a", "b", "c"], negatives)
    assert bounds["a"]["tpr@0.01"] is None and bounds["a"]["tpr@0.001"] is None
    assert len(bounds["a"]["tpr@0.05"]) == 2


def test_paired_difference_separates_a_clearly_better_attack_and_not_a_copy():
    scores, member = attacks(4000, seed=6, strengths=(1.0, 1.0, 2.0))
    scores[1] = scores[0] + 1e-9 * torch.randn(4000, dtype=torch.float64)  # the same attack, jittered
    replicates = bootstrap(scores, member, resamples=300, seed=1)
    point = torch.tensor([[summarize(row, member)[k] for k in METRICS] for row in scores], dtype=torch.float64)
    paired = paired_difference(replicates, point, ["ref", "copy", "strong"], "ref", int((~member).sum()))
    assert set(paired) == {"copy", "strong"}
    assert paired["strong"]["auc"]["excludes_zero"] and paired["strong"]["auc"]["diff"] > 0.1
    assert paired["strong"]["tpr@0.05"]["ci"][0] > 0
    # the same resamples for every attack: a copy's difference is ~0 on every one of them, while
    # each attack alone varies by about +-0.008 in AUC between resamples
    low, high = paired["copy"]["auc"]["ci"]
    assert high - low < 1e-4 < float(replicates[0, 0].std())
