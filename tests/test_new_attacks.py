"""The issue-13 attacks against independent references on synthetic data whose answer is known:
calibrated_loss, attack_r, base (and its equivalence with RMIA), ensemble, qmia."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import special, stats
from sklearn.metrics import mean_pinball_loss

from mia_lightning.attacks.base import AttackInputs
from mia_lightning.attacks.bayes_base import base_attack
from mia_lightning.attacks.calibrated_loss import (attack_r_scores, lexicographic,
                                                   loss_from_phi, quantile_level, reference_mask)
from mia_lightning.attacks.ensemble import ensemble_scores, vote_thresholds
from mia_lightning.attacks.qmia import target_signal
from mia_lightning.attacks.registry import run_attacks
from mia_lightning.attacks.rmia import population_index, rmia
from mia_lightning.attacks.signals import true_class_margin
from mia_lightning.config.attack import AttackConfig
from mia_lightning.config.master import MasterConfig
from mia_lightning.config.newer_attacks import BaseConfig, CalibratedLossConfig, EnsembleConfig, QmiaConfig
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.errors import MiaError
from mia_lightning.metrics.roc import auc, summarize
from mia_lightning.models.quantile import pinball_loss

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TRAINER = TrainerSettings.cpu(enable_progress_bar=False, log_every_n_steps=1)
NEW = ["calibrated_loss", "attack_r", "base", "ensemble"]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def leaky_world(points=600, models=8, classes=5, queries=1, seed=0, leak=2.0, hardness=3.0):
    """Logits where membership raises the true class's logit by `leak`, for the target and for
    each shadow on its IN points; per-point hardness (up to `hardness`) shared by every model;
    pub = the first half."""
    labels = torch.randint(0, classes, (points,), generator=gen(seed))
    hardness = hardness * torch.rand(points, generator=gen(seed + 1))
    keep = torch.rand(models, points, generator=gen(seed + 2)).argsort(0) < models // 2
    member = torch.rand(points, generator=gen(seed + 3)) < 0.5
    onehot = torch.nn.functional.one_hot(labels, classes).float().unsqueeze(1)

    def logits(inside, g):
        boost = (2.0 - hardness + leak * inside.float()).view(-1, 1, 1)
        return torch.randn(points, queries, classes, generator=gen(100 + g)) + boost * onehot

    known = torch.full((points,), -1, dtype=torch.int8)
    known[: points // 2] = member[: points // 2].to(torch.int8)
    shadows = torch.stack([logits(keep[k], k + 1) for k in range(models)])
    return AttackInputs(logits(member, 0), shadows, keep, labels, known), member


def run(inputs, names, **overrides):
    return run_attacks(inputs, AttackConfig(names=list(names), **overrides), MasterConfig(), TRAINER, seed=0)


def np_loss(logits, labels):
    """Cross-entropy per model and point ([..., N, A, C] -> [..., N]), averaged over queries, with scipy."""
    logp = special.log_softmax(logits.double().numpy(), axis=-1)
    index = labels.numpy().reshape((1,) * (logp.ndim - 3) + (-1, 1, 1))
    return -np.take_along_axis(logp, np.broadcast_to(index, logp.shape[:-1] + (1,)), -1)[..., 0].mean(-1)


# ---------------------------------------------------------------- calibrated_loss


@pytest.mark.parametrize("center", ["mean", "median"])
@pytest.mark.parametrize("references", ["out", "all"])
def test_calibrated_loss_equals_a_per_point_numpy_loop(center, references):
    inputs, _ = leaky_world(points=80, models=7, queries=2)
    inputs.keep[:, :3] = True  # three points with no OUT model: they fall back to every shadow
    scores = run(inputs, ["calibrated_loss"], calibrated_loss=CalibratedLossConfig(center, references))
    target, shadow = np_loss(inputs.target_logits, inputs.labels), np_loss(inputs.shadow_logits, inputs.labels)
    keep = inputs.keep.numpy()
    want = np.zeros(80)
    for n in range(80):
        use = ~keep[:, n] if references == "out" and (~keep[:, n]).any() else np.ones(7, dtype=bool)
        ref = shadow[use, n]
        want[n] = (np.median(ref) if center == "median" else ref.mean()) - target[n]
    np.testing.assert_allclose(scores["calibrated_loss"].scores.numpy(), want, rtol=1e-6, atol=1e-6)  # phi: float32 logits
    if references == "out":
        assert scores["calibrated_loss"].notes["no_out_points"] == 3


def test_calibrated_loss_corrects_for_difficulty_where_the_raw_loss_cannot():
    """Hardness varies more between points than membership moves the loss: the raw loss mostly
    ranks easy points first, the calibrated loss finds the members."""
    inputs, member = leaky_world(points=2000, models=16, leak=1.5, seed=3, hardness=10.0)
    results = run(inputs, ["loss", "calibrated_loss", "attack_r"])
    raw, calibrated = auc(results["loss"].scores, member), auc(results["calibrated_loss"].scores, member)
    assert calibrated > raw + 0.05 and calibrated > 0.7
    assert auc(results["attack_r"].scores, member) > raw + 0.05


# ---------------------------------------------------------------- attack_r


def test_attack_r_levels_are_the_inverse_of_numpys_interpolated_quantile():
    """Member at level alpha iff loss <= np.quantile(reference losses, alpha): thresholding the
    attack's quantile level at alpha makes exactly those decisions, for every alpha."""
    g = np.random.default_rng(0)
    models, points = 9, 300
    shadow_loss = torch.from_numpy(g.gamma(2.0, 1.0, (models, points)))
    target_loss = torch.from_numpy(g.gamma(2.0, 1.0, points) * g.uniform(0.3, 1.5, points))
    mask = torch.from_numpy(g.random((models, points)) < 0.6)
    mask[0, :5], mask[1:, :5] = True, False  # one reference only
    mask[:, 5] = False  # (reference_mask never leaves a point without references; level 0.5 here)
    level = quantile_level(target_loss, shadow_loss, mask)
    for alpha in (0.01, 0.1, 0.25, 0.5, 0.77, 0.9, 0.99):
        for n in [n for n in range(points) if n != 5]:
            refs = shadow_loss[mask[:, n], n].numpy()
            assert bool(level[n] <= alpha) == bool(target_loss[n] <= np.quantile(refs, alpha)), (alpha, n)
    assert ((level == 0) | (level == 1))[:5].all() and level[5] == 0.5
    scores = attack_r_scores(target_loss, shadow_loss, mask, tie_break=False)
    assert torch.equal(scores, -level)


def test_attack_r_tie_break_only_orders_ties():
    inputs, member = leaky_world(points=1500, models=4)
    target = loss_from_phi(true_class_margin(inputs.target_logits, inputs.labels))
    shadow = loss_from_phi(true_class_margin(inputs.shadow_logits, inputs.labels))
    np.testing.assert_allclose(shadow.numpy(), np_loss(inputs.shadow_logits, inputs.labels), rtol=1e-6, atol=1e-6)
    mask, _ = reference_mask(inputs.keep, "out")
    plain = attack_r_scores(target, shadow, mask, tie_break=False)
    broken = attack_r_scores(target, shadow, mask, tie_break=True)
    higher = plain.unsqueeze(1) > plain.unsqueeze(0)
    assert (broken.unsqueeze(1) > broken.unsqueeze(0))[higher].all()
    assert int((plain == plain.max()).sum()) > 100 and broken.unique().numel() == 1500  # level 0: a big tie
    assert summarize(broken, member)["tpr@0.01"] >= summarize(plain, member)["tpr@0.01"]


def test_lexicographic_orders_by_primary_then_secondary():
    primary = torch.tensor([0.0, 1.0, 0.0, 1.0, 2.0], dtype=torch.float64)
    secondary = torch.tensor([5.0, -1.0, 7.0, 3.0, -9.0], dtype=torch.float64)
    assert torch.argsort(lexicographic(primary, secondary)).tolist() == [0, 2, 1, 3, 4]


# ---------------------------------------------------------------- BASE


def _base_reference(target_logits, shadow_logits, keep, labels, temperature, online, scale):
    """The authors' recipe (LeakPro's AttackBASE) with scipy, single query, per point."""
    def log_conf(z):
        logp = special.log_softmax(z[:, 0].double().numpy() / temperature, axis=-1)
        return logp[np.arange(len(labels)), labels.numpy()]

    target = log_conf(target_logits)
    shadows = np.stack([log_conf(z) for z in shadow_logits])
    if online:
        return target - (special.logsumexp(shadows, axis=0) - np.log(len(shadows)))
    out = np.where(~keep.numpy(), shadows, -np.inf)
    return target - scale * (special.logsumexp(out, axis=0) - np.log((~keep.numpy()).sum(0)))


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
@pytest.mark.parametrize("online", [True, False])
def test_base_equals_the_authors_recipe(temperature, online):
    inputs, _ = leaky_world(points=200, models=6)
    got = base_attack(inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels,
                      temperature=temperature, online=online, offline_scale=0.33)
    want = _base_reference(inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels, temperature,
                           online, 0.33)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("gamma", [1.0, 2.0, 0.5])
def test_base_at_temperature_one_is_rmia(gamma):
    """The paper's equivalence: online BASE at T = 1 is log RMIA's ratio, so RMIA's score is the
    fraction of the population whose BASE score is at most BASE(x) - log gamma, and both rank
    every point outside the population identically."""
    inputs, member = leaky_world(points=800, models=8, queries=2)
    args = (inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels)
    population, _ = population_index(inputs.known_membership, 800, 2500, seed=0)
    base = torch.from_numpy(_base_reference(inputs.target_logits[:, :1], inputs.shadow_logits[:, :, :1],
                                            inputs.keep, inputs.labels, 1.0, True, 1.0))
    single = (inputs.target_logits[:, :1], inputs.shadow_logits[:, :, :1], inputs.keep, inputs.labels)
    plain = rmia(*single, known_membership=inputs.known_membership, gamma=gamma, tie_break=False)
    outside = torch.ones(800, dtype=torch.bool)
    outside[population] = False
    ecdf = (base[population].unsqueeze(0) <= base.unsqueeze(1) - np.log(gamma) + 1e-9).double().mean(1)
    assert torch.allclose(plain[outside], ecdf[outside], atol=1e-12)
    # with the tie-break RMIA is strictly monotone in BASE outside the population: the same order
    ours = base_attack(*args, temperature=1.0)
    broken = rmia(*args, known_membership=inputs.known_membership, gamma=gamma, tie_break=True)
    assert torch.equal(torch.argsort(ours[outside]), torch.argsort(broken[outside]))
    assert summarize(ours[outside], member[outside]) == summarize(broken[outside], member[outside])
    # at another temperature BASE is a different attack
    hotter = base_attack(*args, temperature=3.0)
    assert not torch.equal(torch.argsort(hotter[outside]), torch.argsort(broken[outside]))


def test_base_edge_cases_stay_finite():
    inputs, _ = leaky_world(points=60, models=4)
    for keep in (inputs.keep, torch.ones_like(inputs.keep), torch.zeros_like(inputs.keep)):
        for online in (True, False):
            scores = base_attack(1e4 * torch.sign(inputs.target_logits), 1e4 * torch.sign(inputs.shadow_logits),
                                 keep, inputs.labels, online=online)
            assert torch.isfinite(scores).all()
    none = run(AttackInputs(inputs.target_logits, inputs.shadow_logits[:0], inputs.keep[:0], inputs.labels,
                            inputs.known_membership), ["base"])["base"]
    assert "fallback" in none.notes and torch.isfinite(none.scores).all()


# ---------------------------------------------------------------- ensemble


def test_rank_ensemble_equals_the_mean_of_scipy_ranks():
    scores = torch.randn(3, 500, generator=gen(0), dtype=torch.float64)
    scores[1, :50] = 0.0  # ties
    want = np.mean([stats.rankdata(row) / 500 for row in scores.numpy()], axis=0)
    got, _ = ensemble_scores(scores, mode="rank")
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-15)


def test_fisher_ensemble_is_the_mean_minus_log_tail_fraction_and_keeps_one_members_tail():
    scores = torch.randn(3, 400, generator=gen(4), dtype=torch.float64)
    scores[2, :40] = 0.0  # ties share the largest count: a conservative p-value
    at_least = (scores.unsqueeze(2) >= scores.unsqueeze(1)).double().sum(1)  # [M, N]: points scoring >= each one
    got, _ = ensemble_scores(scores, mode="fisher")
    np.testing.assert_allclose(got.numpy(), (-(at_least / 400).log().mean(0)).numpy(), rtol=1e-12)
    # one member's top point, median for the others, against a point in every member's top 15%:
    # fisher ranks the former first, the rank mean the latter
    scores = torch.arange(1000.0, dtype=torch.float64).expand(3, 1000).clone()
    scores[:, 0] = torch.tensor([1e4, 500.5, 500.5])  # fisher (6.9 + 0.69 + 0.69) / 3, ranks (1 + 0.5 + 0.5) / 3
    scores[:, 849] = 849.5  # fisher -log(0.151) = 1.9, ranks 0.85
    fisher, _ = ensemble_scores(scores, mode="fisher")
    rank, _ = ensemble_scores(scores, mode="rank")
    assert fisher[0] > fisher[849] and rank[0] < rank[849]


def test_vote_thresholds_keep_the_fpr_on_the_non_members():
    scores = torch.randn(4, 1000, generator=gen(1), dtype=torch.float64)
    non_members = torch.rand(1000, generator=gen(2)) < 0.5
    for fpr in (0.01, 0.05, 0.3):
        thresholds = vote_thresholds(scores, non_members, fpr)
        above = (scores[:, non_members] > thresholds.unsqueeze(1)).double().mean(1)
        assert (above <= fpr).all() and (above > fpr - 2 / non_members.sum()).all()


def test_ensemble_runs_after_its_members_and_beats_the_weakest():
    inputs, member = leaky_world(points=1200, models=8, leak=1.5)
    results = run(inputs, ["ensemble", "lira_online", "rmia", "base", "attack_r"])
    assert list(results)[-1] == "ensemble" and not results["ensemble"].held_out
    aucs = {name: auc(r.scores, member) for name, r in results.items()}
    assert aucs["ensemble"] > min(aucs[m] for m in ("lira_online", "rmia", "base", "attack_r"))
    vote = run(inputs, ["lira_online", "rmia", "base", "attack_r", "ensemble"],
               ensemble=EnsembleConfig(mode="vote"))["ensemble"]
    assert vote.held_out and vote.notes["folds"] == 5 and auc(vote.scores, member) > 0.7
    with pytest.raises(MiaError, match="ensemble.members"):
        AttackConfig(names=["lira_online", "ensemble"]).validate()


# ---------------------------------------------------------------- qmia


def test_pinball_loss_is_sklearns_and_is_minimised_by_the_quantile():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(5000, generator=g, dtype=torch.float64)
    prediction = torch.randn(5000, generator=g, dtype=torch.float64)
    for q in (0.1, 0.5, 0.95):
        want = mean_pinball_loss(target.numpy(), prediction.numpy(), alpha=q)
        assert float(pinball_loss(prediction, target, q)) == pytest.approx(want, rel=1e-12)
        grid = torch.linspace(-3, 3, 601, dtype=torch.float64)
        losses = torch.stack([pinball_loss(c.expand(5000), target, q) for c in grid])
        assert float(grid[losses.argmin()]) == pytest.approx(float(torch.quantile(target, q)), abs=0.02)


def test_target_signal_is_the_hinge_or_phi():
    logits = torch.tensor([[[3.0, 1.0, 2.0]], [[0.0, 5.0, -1.0]]])
    labels = torch.tensor([0, 2])
    assert target_signal(logits, labels, "hinge").tolist() == [1.0, -6.0]
    phi = target_signal(logits, labels, "phi")
    assert phi[0].item() == pytest.approx(3 - np.log(np.exp(1) + np.exp(2)))


def qmia_world(points=480, seed=0):
    """8x8 images whose brightness sets the non-members' hinge (hard/easy points); members'
    hinge is higher by 3. A regressor that reads the image predicts each point's own quantile."""
    g = gen(seed)
    brightness = torch.rand(points, generator=g)
    images = (brightness.view(-1, 1, 1, 1) + 0.05 * torch.randn(points, 3, 8, 8, generator=g)).clamp(0, 1)
    labels = torch.randint(0, 2, (points,), generator=g)
    member = torch.rand(points, generator=g) < 0.5
    hinge = 6 * brightness + 0.5 * torch.randn(points, generator=g) + 3 * member.float()
    logits = torch.zeros(points, 1, 2)
    logits[torch.arange(points), 0, labels] = hinge  # the other class's logit is 0: hinge = z_y
    known = torch.full((points,), -1, dtype=torch.int8)
    known[: points // 2] = member[: points // 2].to(torch.int8)
    keep = torch.zeros(0, points, dtype=torch.bool)
    return AttackInputs(logits, torch.zeros(0, points, 1, 2), keep, labels, known, images=images), member, hinge


@pytest.mark.slow
def test_qmia_learns_per_image_quantiles_from_non_members_only():
    inputs, member, hinge = qmia_world()
    cfg = QmiaConfig(epochs=25, width=8, batch_size=32, lr=3e-3, folds=2, quantile=0.9)
    results = run(inputs, ["qmia", "loss"], qmia=cfg)
    qmia = results["qmia"]
    assert qmia.held_out and qmia.notes["fits"] == 3 and qmia.scores.dtype == torch.float64
    priv = torch.arange(240, 480)
    non = priv[~member[priv]]
    # about 90% of non-members fall below their own predicted 0.9-quantile (score = hinge - q < 0)
    coverage = float((qmia.scores[non] < 0).double().mean())
    assert 0.75 < coverage < 0.99, coverage
    # knowing each image's difficulty beats the raw score, which brightness confounds
    assert auc(qmia.scores[priv], member[priv]) > auc(hinge[priv], member[priv]) + 0.05
    with pytest.raises(MiaError, match="images"):
        run(AttackInputs(inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels,
                         inputs.known_membership), ["qmia"], qmia=cfg)


# ---------------------------------------------------------------- all of them


@pytest.mark.parametrize("case", ["K=0", "K=1", "huge logits", "one class", "all IN"])
def test_new_attacks_never_emit_nan(case):
    inputs, _ = leaky_world(points=80, models=4)
    t, s, keep, labels = inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels
    if case == "K=0":
        s, keep = s[:0], keep[:0]
    elif case == "K=1":
        s, keep = s[:1], keep[:1]
    elif case == "huge logits":
        t, s = 1e4 * torch.sign(t), 1e4 * torch.sign(s)
    elif case == "one class":
        t, s, labels = t[..., :1], s[..., :1], torch.zeros_like(labels)
    else:
        keep = torch.ones_like(keep)
    names = ["lira_online", "rmia", *NEW]
    for offline in (False, True):
        results = run(AttackInputs(t, s, keep, labels, inputs.known_membership), names,
                      base=BaseConfig(online=not offline))
        for name, result in results.items():
            assert result.scores.dtype == torch.float64 and torch.isfinite(result.scores).all(), (case, name)
