"""Attacks calibrated on the target's own pub membership (stack, lira_calibrated, rmia_calibrated), the model
report and its warnings, and the honest choice of the submitted attack."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, fresh_store, make_cfg
from mia_lightning.attacks.base import AttackInputs
from mia_lightning.attacks.ensemble import rank_average
from mia_lightning.attacks.lira_calibrated import calibrated_lira, robust_line
from mia_lightning.attacks.registry import run_attacks
from mia_lightning.attacks.rmia import log_prob_from_phi, log_reference_prob, rmia_from_log_ratio
from mia_lightning.attacks.rmia_calibrated import calibrated_rmia
from mia_lightning.config.attack import DEFAULT_ATTACKS, AttackConfig, StackConfig
from mia_lightning.config.master import MasterConfig
from mia_lightning.config.newer_attacks import CalibratedEnsembleConfig
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.errors import MiaError
from mia_lightning.metrics.roc import auc
from mia_lightning.pipeline import run_pipeline
from mia_lightning.report.metrics import choose_submission
from mia_lightning.report.models import model_report, model_warnings

TRAINER = TrainerSettings.cpu(enable_progress_bar=False)


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shadow_world(points: int = 600, shadows: int = 8, classes: int = 5, seed: int = 0, leak: float = 1.0):
    """Logits of a target and shadows where membership raises the true class's logit by `leak`
    per model; pub = the first half of the points, with the target's membership."""
    labels = torch.randint(0, classes, (points,), generator=gen(seed))
    hardness = torch.rand(points, generator=gen(seed + 1)) * 3
    keep = torch.rand(shadows, points, generator=gen(seed + 2)).argsort(0) < shadows // 2
    member = torch.rand(points, generator=gen(seed + 3)) < 0.5

    def logits(inside: torch.Tensor, g: int) -> torch.Tensor:
        out = torch.randn(points, 1, classes, generator=gen(100 + g))
        boost = 2.0 - hardness + leak * inside.float()
        out[torch.arange(points), 0, labels] += boost
        return out

    target = logits(member, 0)
    shadow_logits = torch.stack([logits(keep[k], k + 1) for k in range(shadows)])
    known = torch.full((points,), -1, dtype=torch.int8)
    known[: points // 2] = member[: points // 2].to(torch.int8)
    return AttackInputs(target, shadow_logits, keep, labels, known), member


def test_calibrated_attacks_are_scored_on_held_out_folds_and_find_a_real_leak():
    inputs, member = shadow_world(leak=2.0)
    attack = AttackConfig(names=["lira_online", "lira_calibrated", "rmia_calibrated", "stack"],
                          stack=StackConfig(max_iter=50))
    results = run_attacks(inputs, attack, MasterConfig(), TRAINER, seed=0)
    pub = torch.arange(300)
    for name in ("lira_calibrated", "rmia_calibrated", "stack"):
        assert results[name].held_out and results[name].notes["folds"] == 5, name
        assert auc(results[name].scores[pub], member[pub]) > 0.7, name
    assert not results["lira_online"].held_out


def test_the_calibrated_ensemble_ranks_stack_with_the_shadow_attacks_after_them_on_held_out_folds():
    """Listed first, it still runs last; it is the mean normalised rank of its members; through
    stack it learned from pub, so pub counts as held-out; and it finds the leak."""
    inputs, member = shadow_world(leak=2.0)
    attack = AttackConfig(names=["ensemble_calibrated", "lira_online", "base", "stack"], stack=StackConfig(max_iter=50))
    attack.validate()
    results = run_attacks(inputs, attack, MasterConfig(), TRAINER, seed=0)
    combined = results["ensemble_calibrated"]
    assert list(results)[-1] == "ensemble_calibrated" and combined.notes["members"] == ["lira_online", "base", "stack"]
    want = rank_average(torch.stack([results[name].scores for name in ("lira_online", "base", "stack")]))
    assert torch.equal(combined.scores, want)
    assert combined.held_out and not results["base"].held_out
    assert auc(combined.scores[300:], member[300:]) > 0.7
    with pytest.raises(MiaError, match="ensemble_calibrated.members.*stack not in attack.names"):
        AttackConfig(names=["lira_online", "base", "ensemble_calibrated"]).validate()
    with pytest.raises(MiaError, match="may not contain a combiner"):
        AttackConfig(names=["lira_online", "base", "ensemble", "ensemble_calibrated"],
                     ensemble_calibrated=CalibratedEnsembleConfig(members=["lira_online", "ensemble"])).validate()


def test_held_out_scores_are_honest_when_pub_membership_is_noise():
    """Random pub labels, no leak: fitted in-sample, gradient boosting would memorise them
    (AUC near 1 on pub); cross-fitted, the pub AUC stays at chance."""
    inputs, _ = shadow_world(leak=0.0, seed=5)
    noise = (torch.rand(600, generator=gen(9)) < 0.5)
    known = inputs.known_membership.clone()
    known[:300] = noise[:300].to(torch.int8)
    inputs = AttackInputs(inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels, known)
    attack = AttackConfig(names=["stack", "lira_calibrated", "rmia_calibrated", "lira_online", "base",
                                 "ensemble_calibrated"], stack=StackConfig(max_iter=300, max_leaf_nodes=63, l2=0.0))
    results = run_attacks(inputs, attack, MasterConfig(), TRAINER, seed=0)
    for name in ("stack", "lira_calibrated", "rmia_calibrated", "ensemble_calibrated"):
        assert abs(auc(results[name].scores[:300], noise[:300]) - 0.5) < 0.1, name


def test_robust_line_recovers_a_line_despite_exploding_values():
    x = torch.linspace(-3, 3, 400, dtype=torch.float64)
    y = 1.5 + 0.5 * x + 0.1 * torch.randn(400, generator=gen(1), dtype=torch.float64)
    y[:8] = 400.0  # a shadow whose logits exploded on a few points
    intercept, slope, std = robust_line(x, y, 1e-3)
    assert abs(intercept - 1.5) < 0.05 and abs(slope - 0.5) < 0.05 and 0.05 < std < 0.2


def test_robust_line_falls_back_to_theil_sen_where_the_huber_solver_fails(monkeypatch):
    """scikit-learn raises when L-BFGS ends ABNORMAL (seen on +-1e4 logits with a newer scipy):
    the line must still come out, and still robust."""
    from sklearn.linear_model import HuberRegressor

    def fail(*_args, **_kwargs):
        raise ValueError("HuberRegressor convergence failed: l-BFGS-b solver terminated with ABNORMAL")

    monkeypatch.setattr(HuberRegressor, "fit", fail)
    x = torch.linspace(-3, 3, 400, dtype=torch.float64)
    y = 1.5 + 0.5 * x + 0.1 * torch.randn(400, generator=gen(1), dtype=torch.float64)
    y[:8] = 400.0
    intercept, slope, std = robust_line(x, y, 1e-3)
    assert abs(intercept - 1.5) < 0.05 and abs(slope - 0.5) < 0.05 and 0.05 < std < 0.2


def test_calibration_absorbs_shadows_on_another_scale():
    """Shadows twice as confident as the target on both sides: plain centres are off, the fitted
    lines map them back, and the calibrated score separates members."""
    points = 1000
    member = torch.rand(points, generator=gen(2)) < 0.5
    hardness = torch.rand(points, generator=gen(3), dtype=torch.float64) * 4
    phi = (torch.where(member, 6.0, 2.0) - hardness + 0.5 * torch.randn(points, generator=gen(4), dtype=torch.float64))
    mu_in, mu_out = 2 * (6.0 - hardness), 2 * (2.0 - hardness)
    known = torch.full((points,), -1, dtype=torch.int8)
    known[:500] = member[:500].to(torch.int8)
    scores, notes = calibrated_lira(phi[:, None], mu_in[:, None], mu_out[:, None], known, folds=5, seed=0)
    a_in, b_in = notes["lines_all_pub"]["query0"][:2]
    assert abs(b_in - 0.5) < 0.05 and abs(a_in) < 0.3
    assert auc(scores[500:], member[500:]) > 0.95


def test_calibrated_rmia_maps_shadows_of_another_recipe_back_and_beats_plain_rmia():
    """Shadows that saturate (phi twice the target's on both sides, from a longer run): plain
    RMIA's Pr(x) is dominated by the hardness the shadows exaggerate; mapped back through the
    lines fitted on pub, Pr(x) matches the target and the ratio separates its members."""
    points, shadows = 1200, 8
    member = torch.rand(points, generator=gen(5)) < 0.5
    hardness = torch.rand(points, generator=gen(6), dtype=torch.float64) * 4
    keep = torch.rand(shadows, points, generator=gen(7)).argsort(0) < shadows // 2

    def phi(inside: torch.Tensor, scale: float, seed: int) -> torch.Tensor:
        noise = 0.5 * torch.randn(points, generator=gen(seed), dtype=torch.float64)
        return (scale * (torch.where(inside, 1.5, 1.0) - hardness) + noise)[:, None]

    target = phi(member, 1.0, 8)
    shadow = torch.stack([phi(keep[k], 2.5, 20 + k) for k in range(shadows)])
    in_mask, out_mask = keep.unsqueeze(-1).double(), (~keep).unsqueeze(-1).double()
    mu_in = (shadow * in_mask).sum(0) / in_mask.sum(0)
    mu_out = (shadow * out_mask).sum(0) / out_mask.sum(0)
    known = torch.full((points,), -1, dtype=torch.int8)
    known[:600] = member[:600].to(torch.int8)
    scores, notes = calibrated_rmia(target, shadow, keep, mu_in, mu_out, known, folds=5, seed=0, population_seed=1,
                                    gamma=1.0, num_z=2500)
    a_in, b_in, a_out, b_out = notes["lines_all_pub"][0]
    assert abs(b_in - 0.4) < 0.05 and abs(b_out - 0.4) < 0.05  # 1 / 2.5
    population = torch.nonzero(known == 0).flatten()
    plain = rmia_from_log_ratio(log_prob_from_phi(target) - log_reference_prob(
        log_prob_from_phi(shadow), keep, online=True, a=0.0)[0], population, gamma=1.0, tie_break=True)
    priv = torch.arange(600, points)
    calibrated_auc, plain_auc = auc(scores[priv], member[priv]), auc(plain[priv], member[priv])
    assert calibrated_auc > plain_auc + 0.05, (calibrated_auc, plain_auc)


@pytest.mark.parametrize("overrides", [["attack=calibrated"], ["experiment=tml25"], ["experiment=study_recipe_mismatch"]])
def test_presets_for_unknown_recipes_run_the_defaults_plus_two_calibrated_attacks(overrides):
    names = list(make_cfg(*overrides).attack.names)
    extra = ("rmia_calibrated", "ensemble_calibrated")
    assert set(extra) <= set(names) and not set(extra) & set(DEFAULT_ATTACKS)
    assert [name for name in names if name not in extra] == DEFAULT_ATTACKS


def test_best_is_chosen_on_pub_and_never_below_chance():
    pub = {"rmia": {"auc": 0.48, "tpr@0.05": 0.30}, "loss": {"auc": 0.55, "tpr@0.05": 0.06},
           "lira_online": {"auc": 0.62, "tpr@0.05": 0.12}}
    assert choose_submission("best", pub) == ("lira_online", ["rmia"])
    assert choose_submission("rmia", pub) == ("rmia", [])


def test_model_report_compares_sides_and_warns_on_chance_shadows():
    classes, points = 10, 400
    labels = torch.arange(points) % classes
    member = torch.arange(200) % 2 == 0
    keep = torch.stack([torch.arange(points) % 2 == 0, torch.arange(points) % 2 == 1])
    confident = torch.full((points, 1, classes), -5.0)
    confident[torch.arange(points), 0, labels] = 5.0
    target = confident.clone()
    target[200:][~torch.cat([member, member])[200:]] *= 0.2  # the target is unsure of its non-members
    chance = torch.randn(2, points, 1, classes, generator=gen(0)) * 0.01
    report = model_report(target, chance, keep, labels, 200, member)
    assert report["target"]["member"]["acc"] == 1.0 and report["shadows"]["count"] == 2
    warnings = model_warnings(report)
    assert any(w.startswith("shadows are near chance") for w in warnings), warnings
    assert model_warnings(model_report(target, torch.stack([target[:, :]] * 2), keep, labels, 200, member)) == []


def test_the_gap_tolerance_grows_with_the_noise_of_a_small_pub_and_not_beyond():
    """The same 0.14 difference between the shadows' IN-OUT gap and the target's: within the
    noise of 80 pub points per side (2 se ~0.1), a mismatch on 2,000 per side (2 se ~0.03)."""
    def report(points: int) -> dict:
        shadow_side = {"acc_std": 0.01, "phi_median": 1.0}
        return {"chance": 0.1, "target": {"member": {"acc": 0.99, "points": points, "phi_median": 5.0},
                                          "non_member": {"acc": 0.78, "points": points, "phi_median": 2.0}},
                "shadows": {"count": 8, "in": {**shadow_side, "acc": 0.85, "phi_median": 4.0},
                            "out": {**shadow_side, "acc": 0.78}}}

    assert model_warnings(report(80)) == []
    (line,) = model_warnings(report(2000))
    assert line.startswith("shadows' IN-OUT accuracy gap 0.070 differs from the target's member/non-member gap 0.210 "
                           "(tolerance 0.12"), line


@pytest.mark.slow
def test_warnings_fire_on_chance_shadows_and_stay_quiet_on_matching_ones(tiny_task_dir, tmp_path):
    fresh_store(tiny_task_dir, tmp_path)
    quick = [*TINY, f"store.root={tmp_path}", "logger=none", "report.plots=false",
             "attack.names=[loss,lira_online,rmia,stack,lira_calibrated,rmia_calibrated]"]
    run_pipeline(make_cfg(*quick, "shadow.epochs=1", "shadow.optimizer.lr=1e-5"), tmp_path / "chance")
    chance = json.loads((tmp_path / "chance" / "metrics.json").read_text())
    assert any(w.startswith("shadows are near chance") for w in chance["warnings"]), chance["warnings"]
    run_pipeline(make_cfg(*quick, "shadow.recipe=oracle"), tmp_path / "oracle")
    oracle = json.loads((tmp_path / "oracle" / "metrics.json").read_text())
    model_lines = [w for w in oracle["warnings"] if w.startswith("shadows")]
    assert model_lines == [], oracle["models"]
    assert oracle["recipe"]["mode"] == "oracle" and oracle["recipe"]["chosen"]["epochs"] == 12
    assert {"stack", "lira_calibrated", "rmia_calibrated"} <= set(oracle["held_out"])
    assert oracle["attacks_pub"][oracle["submit"]]["auc"] >= 0.5
