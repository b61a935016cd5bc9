"""Attacks against independent references on synthetic data where the answer is known."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from mia_lightning.attacks.base import AttackInputs
from benchmarks.attack_stage import attack_stage_benchmark, synthetic_inputs
from mia_lightning.attacks.lira import choose_transform, lira_from_phi, lira_offline, lira_online, masked_median
from mia_lightning.attacks.registry import ATTACK_NAMES, run_attacks
from mia_lightning.attacks.rmia import A_GRID, choose_offline_a, log_prob_from_phi, population_index, rmia, \
    rmia_from_log_probs
from mia_lightning.attacks.signals import PHI_MAX, true_class_margin
from mia_lightning.attacks.threshold import loss_scores, threshold_attack, threshold_scores
from mia_lightning.config.attack import AttackConfig, LiraConfig, RmiaConfig
from mia_lightning.config.master import MasterConfig
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.errors import MiaError
from mia_lightning.metrics.roc import auc, tpr_at_fpr

FAST = ["threshold", "loss", "lira_online", "lira_offline", "rmia"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def logits_for_phi(phi: torch.Tensor) -> torch.Tensor:
    """Two-class logits [..., 2] whose phi for label 0 is exactly float32(phi)."""
    return torch.stack([phi.float(), torch.zeros_like(phi, dtype=torch.float32)], dim=-1)


def halves_keep(models: int, points: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(models, points, generator=gen(seed)).argsort(0) < models // 2


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(stats.spearmanr(a.numpy(), b.numpy()).statistic)


def run(inputs: AttackInputs, names=FAST, **attack_overrides) -> dict:
    attack = AttackConfig(names=list(names), **attack_overrides)
    return run_attacks(inputs, attack, MasterConfig(), TrainerSettings.cpu(enable_progress_bar=False), seed=0)


# ---------------------------------------------------------------- signals


def test_phi_matches_float64_reference_and_temperature():
    logits = 4 * torch.randn(3, 50, 2, 7, generator=gen())
    labels = torch.randint(0, 7, (50,), generator=gen(1))
    z = logits.double().numpy()
    y = labels.numpy()
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    p_true = np.take_along_axis(p, y[None, :, None, None].repeat(3, 0).repeat(2, 2), -1)[..., 0]
    want = np.log(p_true) - np.log1p(-p_true)
    got = true_class_margin(logits, labels)
    assert got.dtype == torch.float64 and got.shape == (3, 50, 2)
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5, rtol=1e-5)
    assert torch.allclose(true_class_margin(logits, labels, 2.0), true_class_margin(logits / 2, labels), atol=1e-5)


def test_phi_is_exact_for_huge_logits_and_finite_for_one_class():
    logits = torch.tensor([[[1e4, -1e4]], [[-1e4, 1e4]], [[1e4, 1e4]]])
    phi = true_class_margin(logits, torch.tensor([0, 0, 0]))
    assert phi[:, 0].tolist() == [2e4, -2e4, 0.0]
    three = torch.tensor([[[1e4, -1e4, -1e4]]])
    assert true_class_margin(three, torch.tensor([0]))[0, 0].item() == pytest.approx(2e4 - math.log(2))
    one = true_class_margin(torch.randn(4, 2, 1), torch.zeros(4, dtype=torch.long))
    assert torch.isfinite(one).all() and (one == PHI_MAX).all()


# ---------------------------------------------------------------- threshold and loss


def test_threshold_and_loss_match_direct_softmax():
    logits = 3 * torch.randn(200, 2, 5, generator=gen())
    labels = torch.randint(0, 5, (200,), generator=gen(1))
    probs = torch.softmax(logits[:, 0].double(), -1)
    assert torch.allclose(threshold_scores(logits), probs.max(-1).values, atol=1e-12)
    want_loss = torch.log(probs[torch.arange(200), labels])
    assert torch.allclose(loss_scores(logits, labels), want_loss, atol=1e-10)
    scores, notes = threshold_attack(logits, tau=0.6)
    assert notes["fraction_over_tau"] == pytest.approx(float((probs.max(-1).values >= 0.6).double().mean()))


# ---------------------------------------------------------------- LiRA


def _lira_reference(target_phi, shadow_phi, keep, online, per_example, min_std=1e-3, center="median"):
    """Per-point loops with numpy/scipy, the paper's reference code: centre = np.median of
    the side's values, global std = np.std of every value on that side (ddof 1 here)."""
    tp, sp, kp = target_phi.numpy(), shadow_phi.numpy(), keep.numpy()
    n_points, n_queries = tp.shape
    overall = {side: sp.transpose(1, 0, 2)[kp.T == side].std(0, ddof=1) for side in (True, False)}
    scores = np.zeros(n_points)
    for n in range(n_points):
        total = 0.0
        for side, sign in ((True, 1.0), (False, -1.0)):
            vals = sp[kp[:, n] == side, n, :]
            std = vals.std(0, ddof=1) if per_example and len(vals) >= 2 else overall[side]
            std = np.maximum(std, min_std)
            mid = np.median(vals, 0) if center == "median" else vals.mean(0)
            if online:
                total += sign * stats.norm.logpdf(tp[n], mid, std).sum()
            elif not side:
                total += stats.norm.logcdf(tp[n], mid, std).sum()
        scores[n] = total
    return scores


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("variance", ["per_example", "global"])
@pytest.mark.parametrize("center", ["median", "mean"])
@pytest.mark.parametrize("models", [8, 11])
@pytest.mark.parametrize("transform", ["none", "asinh"])
def test_lira_equals_per_point_scipy_reference(online, variance, center, models, transform):
    points, queries = 30, 2
    if models % 2:  # odd K: unequal counts per point, odd and even sides
        keep = torch.rand(models, points, generator=gen(2)) < 0.5
        keep[0], keep[1] = True, False  # every point has at least one IN and one OUT shadow
    else:
        keep = halves_keep(models, points)
    shadow_phi = 2 * torch.randn(models, points, queries, generator=gen(), dtype=torch.float64)
    shadow_phi += keep.unsqueeze(-1) * 1.5
    target_phi = 2 * torch.randn(points, queries, generator=gen(1), dtype=torch.float64)
    shadow_phi = shadow_phi.float().double()  # what the logits can carry exactly
    target_phi = target_phi.float().double()
    labels = torch.zeros(points, dtype=torch.long)
    fn = lira_online if online else lira_offline
    got = fn(logits_for_phi(target_phi), logits_for_phi(shadow_phi), keep, labels, variance=variance, center=center,
             transform=transform)
    scale = np.arcsinh if transform == "asinh" else (lambda x: x)
    want = _lira_reference(scale(target_phi), scale(shadow_phi), keep, online, variance == "per_example", center=center)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9)


def test_lira_median_centre_survives_one_shadow_with_exploding_logits():
    """One of 8 shadows gives phi ~ +200 on a tenth of the points (a model whose logits blew
    up there, as seen on the default task). With mean centres those points' OUT mean jumps
    and they top the ranking whatever the target says; the median keeps the ranking."""
    target, shadow, keep, member, true_llr, _ = _gaussian_task(points=2000, models=8)
    spoiled = shadow.clone()
    outliers = torch.arange(0, 2000, 10)
    spoiled[7, outliers] = 200.0
    clean_auc = auc(lira_from_phi(target, shadow, keep, online=True)[0], member)
    median_scores, notes = lira_from_phi(target, spoiled, keep, online=True, center="median")
    mean_scores, _ = lira_from_phi(target, spoiled, keep, online=True, center="mean")
    assert notes["center"] == "median"
    assert auc(median_scores, member) > clean_auc - 0.03
    assert auc(mean_scores, member) < auc(median_scores, member) - 0.03
    top = mean_scores.argsort(descending=True)[:100]
    assert torch.isin(top, outliers).float().mean() > 0.5  # the spoiled points flood the top of the mean's ranking


def test_masked_median_is_numpys_median():
    values = torch.randn(9, 40, 3, generator=gen(), dtype=torch.float64)
    mask = torch.rand(9, 40, generator=gen(1)) < 0.5
    got = masked_median(values, mask)
    for n in range(40):
        vals = values[mask[:, n], n].numpy()
        want = np.median(vals, 0) if len(vals) else np.zeros(3)
        np.testing.assert_allclose(got[n].numpy(), want, rtol=0, atol=1e-12)


def _gaussian_task(points=1500, models=128, queries=1, seed=0):
    g = gen(seed)
    mu_out = 2 * torch.randn(points, 1, generator=g, dtype=torch.float64)
    mu_in = mu_out + 0.5 + 2.5 * torch.rand(points, 1, generator=g, dtype=torch.float64)
    s_out = 0.5 + torch.rand(points, 1, generator=g, dtype=torch.float64)
    s_in = 0.5 + torch.rand(points, 1, generator=g, dtype=torch.float64)
    keep = halves_keep(models, points, seed)
    noise = torch.randn(models, points, queries, generator=g, dtype=torch.float64)
    shadow = torch.where(keep.unsqueeze(-1), mu_in + s_in * noise, mu_out + s_out * noise)
    member = torch.rand(points, generator=g) < 0.5
    tnoise = torch.randn(points, queries, generator=g, dtype=torch.float64)
    target = torch.where(member.unsqueeze(-1), mu_in + s_in * tnoise, mu_out + s_out * tnoise)
    true_llr = (torch.distributions.Normal(mu_in, s_in).log_prob(target)
                - torch.distributions.Normal(mu_out, s_out).log_prob(target)).sum(-1)
    true_off = torch.special.log_ndtr((target - mu_out) / s_out).sum(-1)
    return target, shadow, keep, member, true_llr, true_off


@pytest.mark.parametrize("queries", [1, 2])
def test_lira_ranks_like_the_true_likelihood_ratio(queries):
    target, shadow, keep, member, true_llr, true_off = _gaussian_task(queries=queries)
    online, _ = lira_from_phi(target, shadow, keep, online=True, variance="per_example")
    offline, _ = lira_from_phi(target, shadow, keep, online=False, variance="per_example")
    assert spearman(online, true_llr) > 0.95
    assert spearman(offline, true_off) > 0.97
    assert abs(auc(online, member) - auc(true_llr, member)) < 0.02
    assert auc(online, member) > 0.8


def test_lira_missing_in_points_borrow_the_global_gap():
    points, models = 200, 16
    mu_out = torch.randn(points, 1, dtype=torch.float64, generator=gen())
    keep = halves_keep(models, points)
    keep[:, :20] = False  # the first 20 points: no IN shadow at all
    noise = 0.1 * torch.randn(models, points, 1, generator=gen(1), dtype=torch.float64)
    shadow = mu_out + 5.0 * keep.unsqueeze(-1) + noise
    target_in_like = mu_out + 5.0
    scores, notes = lira_from_phi(target_in_like, shadow, keep, online=True, variance="global")
    assert notes["no_in_points"] == 20 and notes["no_out_points"] == 0
    assert torch.isfinite(scores).all()
    assert (scores[:20] > 0).all()  # looks IN: the fallback IN mean is mu_out + 5
    out_scores, _ = lira_from_phi(mu_out.clone(), shadow, keep, online=True, variance="global")
    assert (out_scores[:20] < 0).all()


@pytest.mark.parametrize("variance", ["global", "per_example"])
def test_lira_edge_cases_stay_finite(variance):
    points = 60
    target = torch.randn(points, 2, dtype=torch.float64, generator=gen())
    cases = {
        "K=0": (torch.zeros(0, points, 2, dtype=torch.float64), torch.zeros(0, points, dtype=torch.bool)),
        "K=1": (torch.randn(1, points, 2, dtype=torch.float64, generator=gen(2)),
                torch.rand(1, points, generator=gen(3)) < 0.5),
        "constant": (torch.full((6, points, 2), 3.0, dtype=torch.float64), halves_keep(6, points)),
        "all IN": (torch.randn(4, points, 2, dtype=torch.float64, generator=gen(4)),
                   torch.ones(4, points, dtype=torch.bool)),
        "all OUT": (torch.randn(4, points, 2, dtype=torch.float64, generator=gen(5)),
                    torch.zeros(4, points, dtype=torch.bool)),
        "one value": (torch.randn(1, points, 2, dtype=torch.float64), torch.eye(1, points, dtype=torch.bool)),
    }
    for name, (shadow, keep) in cases.items():
        for online in (True, False):
            scores, notes = lira_from_phi(target, shadow, keep, online=online, variance=variance)
            assert scores.dtype == torch.float64 and torch.isfinite(scores).all(), (name, online, notes)
    _, notes = lira_from_phi(target, *cases["K=1"], online=True)
    keep1 = cases["K=1"][1]
    assert notes["no_in_points"] == int((~keep1[0]).sum()) and notes["no_out_points"] == int(keep1[0].sum())
    assert "fallback" in lira_from_phi(target, *cases["all OUT"], online=True)[1]


def _warped_task(warp: bool, seed: int = 0, points: int = 2000, models: int = 8):
    """Per-point Gaussians IN and OUT on the asinh scale (phi = sinh of them: heavy tails, as a
    well-fitted model's phi has) or on the raw scale (phi = 3 x them)."""
    g = gen(seed)
    mu_out = 1.5 + 1.5 * torch.randn(points, 1, generator=g, dtype=torch.float64)
    mu_in = mu_out + 0.3 + 0.6 * torch.rand(points, 1, generator=g, dtype=torch.float64)
    keep = halves_keep(models, points, seed)
    shadow = torch.where(keep.unsqueeze(-1), mu_in, mu_out) + 0.4 * torch.randn(models, points, 1, generator=g,
                                                                                 dtype=torch.float64)
    member = torch.rand(points, generator=g) < 0.5
    target = torch.where(member.unsqueeze(-1), mu_in, mu_out) + 0.4 * torch.randn(points, 1, generator=g,
                                                                                   dtype=torch.float64)
    scale = torch.sinh if warp else (lambda x: 3 * x)
    return scale(target), scale(shadow), keep, member


@pytest.mark.parametrize("warp", [True, False])
def test_lira_transform_auto_chooses_the_scale_the_phi_is_gaussian_on(warp):
    """`auto` sees only the shadows, and its choice is the scale that also finds the target's members better."""
    target, shadow, keep, member = _warped_task(warp)
    chosen, notes = choose_transform(shadow, keep, pseudo_targets=8)
    assert chosen == ("asinh" if warp else "none") and notes["transform_pseudo_targets"] == 8
    assert notes["transform_choice"][chosen] > notes["transform_choice"]["asinh" if chosen == "none" else "none"]
    labels = torch.zeros(target.shape[0], dtype=torch.long)
    scores = {scale: lira_online(logits_for_phi(target), logits_for_phi(shadow), keep, labels, transform=scale)
              for scale in ("none", "asinh")}
    other = "none" if chosen == "asinh" else "asinh"
    assert tpr_at_fpr(scores[chosen], member, 0.05) > tpr_at_fpr(scores[other], member, 0.05) + 0.05
    result = run(AttackInputs(target_logits=logits_for_phi(target), shadow_logits=logits_for_phi(shadow), keep=keep,
                              labels=labels, known_membership=torch.full((target.shape[0],), -1, dtype=torch.int8)),
                 names=["lira_online"])["lira_online"]
    assert result.notes["transform"] == chosen  # the registry's default is auto
    torch.testing.assert_close(result.scores, scores[chosen], rtol=1e-6, atol=1e-6)  # float32 logits: phi to 1e-7


def test_lira_transform_auto_needs_three_shadows():
    target, shadow, keep, _ = _warped_task(True, points=100, models=2)
    assert choose_transform(shadow, keep, pseudo_targets=8)[0] == "none"
    with pytest.raises(MiaError, match="attack.lira.transform"):
        lira_online(logits_for_phi(target), logits_for_phi(shadow), keep, torch.zeros(100, dtype=torch.long),
                    transform="auto")


def test_lira_variance_auto_switches_at_global_below():
    target, shadow, keep, *_ = _gaussian_task(points=50, models=8)
    assert lira_from_phi(target, shadow, keep, online=True, global_below=64)[1]["variance"] == "global"
    assert lira_from_phi(target, shadow, keep, online=True, global_below=8)[1]["variance"] == "per_example"
    with pytest.raises(MiaError, match="variance"):
        lira_from_phi(target, shadow, keep, online=True, variance="pooled")


# ---------------------------------------------------------------- RMIA


def _rmia_reference(target_logits, shadow_logits, keep, labels, population, online, gamma, a):
    """Double loop over (x, z) straight from the paper's definition, in probabilities."""
    def true_prob(logits):
        z = logits.double().numpy()
        p = np.exp(z - z.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        y = labels.numpy()
        return np.take_along_axis(p, np.broadcast_to(y[:, None, None], p.shape[:-1] + (1,)).copy(), -1)[..., 0]

    p_target = true_prob(target_logits).mean(-1)  # [N]
    p_shadow = np.stack([true_prob(s).mean(-1) for s in shadow_logits])  # [K, N]
    kp = keep.numpy()
    n_points = p_target.shape[0]
    ratio = np.zeros(n_points)
    for x in range(n_points):
        if online:
            prior = p_shadow[:, x].mean()
        else:
            prior = ((1 + a) * p_shadow[~kp[:, x], x].mean() + (1 - a)) / 2
        ratio[x] = p_target[x] / prior
    pop = population.tolist()
    scores = np.zeros(n_points)
    for x in range(n_points):
        others = [z for z in pop if z != x]
        scores[x] = sum(ratio[x] / ratio[z] >= gamma for z in others) / len(others)
    return scores


@pytest.mark.parametrize("online", [True, False])
@pytest.mark.parametrize("gamma", [1.0, 2.0, 0.5])
def test_rmia_equals_double_loop(online, gamma):
    points, models, classes = 40, 6, 5
    target = 2 * torch.randn(points, 2, classes, generator=gen())
    shadow = 2 * torch.randn(models, points, 2, classes, generator=gen(1))
    keep = halves_keep(models, points)
    labels = torch.randint(0, classes, (points,), generator=gen(2))
    known = torch.tensor([0, 1, -1, 0] * 10, dtype=torch.int8)
    got = rmia(target, shadow, keep, labels, known_membership=known, online=online, gamma=gamma, a=0.3,
               tie_break=False)
    population = torch.nonzero(known == 0).flatten()
    want = _rmia_reference(target, shadow, keep, labels, population, online, gamma, 0.3)
    assert got.tolist() == want.tolist()  # exact


def test_rmia_tie_break_only_orders_ties():
    inputs = synthetic_inputs(8, 3000, 2, 10)
    args = (inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels)
    plain = rmia(*args, known_membership=inputs.known_membership, num_z=50, tie_break=False)
    broken = rmia(*args, known_membership=inputs.known_membership, num_z=50, tie_break=True)
    higher = plain.unsqueeze(1) > plain.unsqueeze(0)
    assert (broken.unsqueeze(1) > broken.unsqueeze(0))[higher].all()
    assert plain.unique().numel() <= 2 * 51 and broken.unique().numel() > 2900  # 50 or 49 others


def test_rmia_population_subsample_is_seeded_and_falls_back():
    known = torch.tensor([0] * 30 + [1] * 30, dtype=torch.int8)
    first, notes = population_index(known, 60, 10, seed=3)
    again, _ = population_index(known, 60, 10, seed=3)
    other, _ = population_index(known, 60, 10, seed=4)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert notes["num_z"] == 10 and (known[first] == 0).all()
    everyone, notes = population_index(torch.full((60,), -1, dtype=torch.int8), 60, 2500, seed=0)
    assert everyone.numel() == 60 and "population" in notes


def test_rmia_offline_tune_a_picks_the_best_grid_value():
    inputs = synthetic_inputs(6, 2000, 1, 10, seed=1)
    # shadows with a real membership signal so that `a` matters
    phi = true_class_margin(inputs.shadow_logits, inputs.labels) + 2.0 * inputs.keep.unsqueeze(-1)
    shadow_logp = log_prob_from_phi(phi)
    a, notes = choose_offline_a(shadow_logp, inputs.keep, gamma=1.0, num_z=500, seed=0)
    assert a in A_GRID and "tune_a_auc" in notes
    target_logp = log_prob_from_phi(true_class_margin(inputs.target_logits, inputs.labels))
    population = torch.arange(100)
    _, notes = rmia_from_log_probs(target_logp, shadow_logp, inputs.keep, population, online=False, tune=True)
    assert notes["a"] in A_GRID
    assert choose_offline_a(shadow_logp[:1], inputs.keep[:1], gamma=1.0, num_z=10, seed=0)[0] is None


def test_rmia_rejects_bad_options():
    inputs = synthetic_inputs(2, 20, 1, 3)
    args = (inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels)
    with pytest.raises(MiaError, match="gamma"):
        rmia(*args, gamma=0.0)
    with pytest.raises(MiaError, match=r"rmia\.a"):
        rmia(*args, online=False, a=1.5)


# ---------------------------------------------------------------- all attacks together


def _leaky_task(points=600, models=8, classes=4, queries=2, seed=0):
    """Members get a higher true-class logit, in the target and in the shadows that kept them."""
    g = gen(seed)
    labels = torch.randint(0, classes, (points,), generator=g)
    hardness = torch.randn(points, generator=g)
    onehot = torch.nn.functional.one_hot(labels, classes).float()

    def model_logits(member: torch.Tensor) -> torch.Tensor:
        boost = (1.0 + 2.5 * member.float() - hardness).view(-1, 1, 1)
        return torch.randn(points, queries, classes, generator=g) + boost * onehot.unsqueeze(1)

    keep = halves_keep(models, points, seed)
    member = torch.rand(points, generator=g) < 0.5
    known = torch.where(torch.arange(points) < points // 2, member.to(torch.int8), torch.tensor(-1, dtype=torch.int8))
    return AttackInputs(model_logits(member), torch.stack([model_logits(k) for k in keep]), keep, labels, known), member


def test_every_fast_attack_finds_the_leak():
    inputs, member = _leaky_task()
    results = run(inputs)
    assert list(results) == FAST
    for name, result in results.items():
        assert result.scores.dtype == torch.float64 and result.scores.shape == (600,)
        assert torch.isfinite(result.scores).all() and not result.held_out
        assert "seconds" in result.notes
        assert auc(result.scores, member) > 0.75, name
    assert auc(results["lira_online"].scores, member) > auc(results["threshold"].scores, member)


@pytest.mark.parametrize("case", ["K=0", "K=1", "huge logits", "one class", "constant"])
def test_no_attack_emits_nan(case):
    inputs, _ = _leaky_task(points=80, models=4)
    t, s, keep, labels, known = (inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels,
                                 inputs.known_membership)
    if case == "K=0":
        s, keep = s[:0], keep[:0]
    elif case == "K=1":
        s, keep = s[:1], keep[:1]
    elif case == "huge logits":
        t = 1e4 * torch.sign(t)
        s = 1e4 * torch.sign(s)
    elif case == "one class":
        t, s, labels = t[..., :1], s[..., :1], torch.zeros_like(labels)
    else:
        s = torch.ones_like(s)
    results = run(AttackInputs(t, s, keep, labels, known), rmia=RmiaConfig(online=False, tune_a=True))
    for name, result in results.items():
        assert torch.isfinite(result.scores).all(), (case, name, result.notes)


EXTREME = st.sampled_from([0.0, 1.0, -1.0, 1e-30, 88.0, -104.0, 1e4, -1e4, 3e38, -3e38])


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_extreme_logits_never_give_nan(data):
    models, points = data.draw(st.integers(0, 3)), 6
    queries, classes = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 4))
    size = (models + 1) * points * queries * classes
    values = data.draw(st.lists(EXTREME, min_size=size, max_size=size))
    logits = torch.tensor(values, dtype=torch.float32).view(models + 1, points, queries, classes)
    labels = torch.tensor(data.draw(st.lists(st.integers(0, classes - 1), min_size=points, max_size=points)))
    keep = torch.tensor(data.draw(st.lists(st.booleans(), min_size=models * points, max_size=models * points)),
                        dtype=torch.bool).view(models, points)
    known = torch.tensor([0, 1, -1, 0, 1, -1], dtype=torch.int8)
    inputs = AttackInputs(logits[0], logits[1:], keep, labels, known)
    lira = LiraConfig(variance=data.draw(st.sampled_from(["global", "per_example"])))
    rmia_cfg = RmiaConfig(online=data.draw(st.booleans()), tune_a=True, a=data.draw(st.sampled_from([0, 0.3, 1])))
    options = dict(lira=lira, rmia=rmia_cfg)
    for name, result in run(inputs, **options).items():
        assert torch.isfinite(result.scores).all(), (name, result.notes)


def test_registry_rejects_unknown_names_and_bad_inputs():
    inputs, _ = _leaky_task(points=40, models=2)
    with pytest.raises(MiaError, match=r"attack\.names.*lira_onlin"):
        run(inputs, names=["loss", "lira_onlin"])
    assert set(ATTACK_NAMES) >= set(FAST) | {"master"}
    bad = inputs.shadow_logits.clone()
    bad[1, 3, 0, 0] = float("nan")
    with pytest.raises(MiaError, match=r"shadow 1"):
        run(AttackInputs(inputs.target_logits, bad, inputs.keep, inputs.labels, inputs.known_membership))
    with pytest.raises(MiaError, match="keep"):
        AttackInputs(inputs.target_logits, inputs.shadow_logits, inputs.keep[:1], inputs.labels,
                     inputs.known_membership)
    with pytest.raises(MiaError, match="labels"):
        AttackInputs(inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels + 10,
                     inputs.known_membership)


def test_registry_passes_options_through():
    inputs, _ = _leaky_task(points=200, models=4)
    results = run(inputs, names=["lira_online", "rmia", "threshold"],
                  lira=LiraConfig(variance="per_example", min_std=0.5),
                  rmia=RmiaConfig(online=False, a=0.7, num_z=20, gamma=2.0))
    assert list(results) == ["lira_online", "rmia", "threshold"]
    assert results["lira_online"].notes["variance"] == "per_example"
    assert results["rmia"].notes["a"] == 0.7 and results["rmia"].notes["num_z"] == 20
    assert results["rmia"].notes["gamma"] == 2.0


def test_benchmark_helper_reports_every_attack():
    timings = attack_stage_benchmark(num_shadows=4, num_points=2000, queries=2, classes=10)
    assert set(timings) == set(FAST) | {"total"}
    assert all(v >= 0 for v in timings.values())
    assert timings["total"] >= max(v for k, v in timings.items() if k != "total")
