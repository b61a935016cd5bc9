"""ROC metrics against hand-computed points, brute force and torchmetrics on ranks."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torchmetrics.classification import BinaryAUROC, BinarySensitivityAtSpecificity

from mia_lightning.errors import MiaError
from mia_lightning.metrics.roc import auc, roc_curve, summarize, tpr_at_fpr

# 4 members, 3 non-members, ties at 0.8 (one of each) and at 0.6 (two non-members)
SCORES = [0.9, 0.8, 0.8, 0.7, 0.6, 0.6, 0.5]
MEMBER = [1, 1, 0, 1, 0, 0, 1]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_roc_curve_hand_computed_with_ties():
    fpr, tpr, thresholds = roc_curve(SCORES, MEMBER)
    assert fpr.dtype == torch.float64 and tpr.dtype == torch.float64
    assert fpr.tolist() == pytest.approx([0, 0, 1 / 3, 1 / 3, 1, 1])
    assert tpr.tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 0.75, 1])
    assert thresholds[0] == math.inf
    assert thresholds[1:].tolist() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5])


def test_auc_and_tpr_hand_computed():
    # Mann-Whitney: 7.5 of 12 (member, non-member) pairs ordered right, the tie counting 1/2
    assert auc(SCORES, MEMBER) == pytest.approx(0.625)
    assert tpr_at_fpr(SCORES, MEMBER, 0.0) == pytest.approx(0.25)
    assert tpr_at_fpr(SCORES, MEMBER, 0.3) == pytest.approx(0.25)  # no interpolation towards 1/3
    assert tpr_at_fpr(SCORES, MEMBER, 1 / 3) == pytest.approx(0.75)
    assert tpr_at_fpr(SCORES, MEMBER, 0.99) == pytest.approx(0.75)
    assert tpr_at_fpr(SCORES, MEMBER, 1.0) == pytest.approx(1.0)


def test_order_of_input_and_label_types_do_not_matter():
    perm = torch.randperm(len(SCORES), generator=torch.Generator().manual_seed(1))
    s = torch.tensor(SCORES)[perm]
    m = torch.tensor(MEMBER, dtype=torch.bool)[perm]
    assert auc(s, m) == pytest.approx(0.625)
    assert auc(s.numpy(), m.int().numpy()) == pytest.approx(0.625)


def _brute_force(scores: list[int], member: list[int], fpr_limit: float) -> tuple[float, float]:
    pos = [s for s, m in zip(scores, member) if m]
    neg = [s for s, m in zip(scores, member) if not m]
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in pos for n in neg)
    best = 0.0
    for t in set(scores):
        tpr = sum(p >= t for p in pos) / len(pos)
        fpr = sum(n >= t for n in neg) / len(neg)
        if fpr <= fpr_limit:
            best = max(best, tpr)
    return wins / (len(pos) * len(neg)), best


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.tuples(st.integers(-5, 5), st.booleans()), min_size=2, max_size=40),
       fpr_limit=st.sampled_from([0.0, 0.05, 0.1, 0.25, 0.5, 1.0]))
def test_matches_brute_force_with_many_ties(data, fpr_limit):
    scores = [s for s, _ in data]
    member = [int(m) for _, m in data]
    if len(set(member)) < 2:
        with pytest.raises(MiaError):
            auc(scores, member)
        return
    want_auc, want_tpr = _brute_force(scores, member, fpr_limit)
    assert auc(scores, member) == pytest.approx(want_auc, abs=1e-12)
    assert tpr_at_fpr(scores, member, fpr_limit) == pytest.approx(want_tpr, abs=1e-12)


def test_agrees_with_torchmetrics_fed_ranks_and_survives_huge_scores():
    gen = torch.Generator().manual_seed(0)
    member = torch.zeros(1994, dtype=torch.bool)
    member[:997] = True  # 997 non-members: no k/997 sits exactly on 5%, 1% or 0.1%
    raw = 1e4 * (torch.randn(1994, generator=gen, dtype=torch.float64) + 0.4 * member)
    ranks = raw.argsort().argsort().double() / (raw.numel() - 1)  # in [0, 1]: no sigmoid inside
    ours = summarize(raw, member)
    assert ours == summarize(ranks, member)  # only the order matters
    reference_auc = BinaryAUROC()(ranks.float(), member.long())
    assert ours["auc"] == pytest.approx(float(reference_auc), abs=1e-5)
    for fpr in (0.05, 0.01, 0.001):
        sensitivity, _ = BinarySensitivityAtSpecificity(min_specificity=1 - fpr)(ranks.float(), member.long())
        assert ours[f"tpr@{fpr:g}"] == pytest.approx(float(sensitivity), abs=1e-6)
    assert ours["tpr@0.01"] > 0.02  # the signal is real, not the collapse to 0


def test_summarize_keys():
    out = summarize(SCORES, MEMBER)
    assert list(out) == ["auc", "tpr@0.05", "tpr@0.01", "tpr@0.001"]
    assert all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize("scores, member, message", [
    ([], [], "zero points"),
    ([0.1, 0.2], [1, 1], "no non-members"),
    ([0.1, 0.2], [0, 0], "no members"),
    ([0.1, float("nan")], [0, 1], "NaN"),
    ([0.1, 0.2, 0.3], [0, 1], "equal length"),
    ([0.1, 0.2], [0, 2], "0/1"),
])
def test_errors_are_clear(scores, member, message):
    with pytest.raises(MiaError, match=message):
        summarize(scores, member)
