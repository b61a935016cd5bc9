"""The master MLP: real Lightning training, cross-fitting without leaks, the seed preset."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from conftest import make_cfg
import mia_lightning.attacks.master as master_module
from mia_lightning.attacks.master import assign_folds, fit_master, master_attack
from mia_lightning.config.master import MasterConfig
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.data.features import build_features, feature_dim
from mia_lightning.errors import MiaError
from mia_lightning.metrics.roc import auc
from mia_lightning.models.master import MasterMLP
from mia_lightning.pipeline import validate_config

TRAINER = TrainerSettings.cpu(enable_progress_bar=False)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def separable_task(points=400, models=4, classes=4, seed=0):
    """Members (of the target or of a shadow) get a much larger true-class logit."""
    g = gen(seed)
    labels = torch.randint(0, classes, (points,), generator=g)
    onehot = torch.nn.functional.one_hot(labels, classes).float().unsqueeze(1)

    def model_logits(member):
        return torch.randn(points, 1, classes, generator=g) + (0.5 + 4.0 * member.float()).view(-1, 1, 1) * onehot

    keep = torch.rand(models, points, generator=g).argsort(0) < models // 2
    member = torch.rand(points, generator=g) < 0.5
    known = torch.where(torch.arange(points) < points // 2, member.to(torch.int8),
                        torch.tensor(-1, dtype=torch.int8))
    shadows = torch.stack([model_logits(k) for k in keep])
    return model_logits(member), shadows, keep, labels, known, member


def test_seed_preset_layer_sizes():
    """`master=seed` is the seed's 46 -> 44 -> 64 -> 128 -> 180 -> 150 -> 105 -> 64 -> 32 -> 2."""
    master = validate_config(make_cfg("master=seed")).master
    assert list(master.widths) == [44, 64, 128, 180, 150, 105, 64, 32]
    assert feature_dim(master.features, classes=44, queries=1) == 46
    model = MasterMLP(46, master.hidden_widths())
    linear = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    sizes = [46, *master.widths, 2]
    assert linear == list(zip(sizes[:-1], sizes[1:]))
    assert sorted(master.features) == ["loss", "max", "softmax"]  # 44 softmax values + loss + max


def test_widths_schedule_from_depth_and_width():
    assert MasterConfig(depth=3, width=16).hidden_widths() == [16, 16, 16]
    assert MasterConfig(depth=3, width=16, widths=[8, 4]).hidden_widths() == [8, 4]
    with pytest.raises(MiaError, match="widths"):
        MasterConfig(widths=[8, 0]).hidden_widths()


def test_features_match_direct_computations():
    logits = 2 * torch.randn(30, 2, 5, generator=gen())
    labels = torch.randint(0, 5, (30,), generator=gen(1))
    table = build_features(logits, labels, ["softmax", "sorted", "max", "entropy", "loss", "phi"])
    assert table.shape == (30, feature_dim(["softmax", "sorted", "max", "entropy", "loss", "phi"], 5, 2))
    probs = torch.softmax(logits.double(), -1)
    per_query = table.view(30, 2, -1).double()
    assert torch.allclose(per_query[..., :5], probs, atol=1e-6)
    assert torch.allclose(per_query[..., 5:10], probs.sort(-1, descending=True).values, atol=1e-6)
    assert torch.allclose(per_query[..., 10], probs.max(-1).values, atol=1e-6)
    assert torch.allclose(per_query[..., 11], -(probs * probs.log()).sum(-1), atol=1e-5)
    p_true = probs.gather(-1, labels.view(-1, 1, 1).expand(30, 2, 1)).squeeze(-1)
    assert torch.allclose(per_query[..., 12], -p_true.log(), atol=1e-5)
    assert torch.allclose(per_query[..., 13], (p_true / (1 - p_true)).log(), atol=1e-4)
    with pytest.raises(MiaError, match="master.features"):
        build_features(logits, labels, ["softmax", "margin"])


def test_shadow_labels_learn_a_separable_leak_and_log_to_tensorboard(tmp_path):
    target, shadows, keep, labels, known, member = separable_task()
    master = MasterConfig(widths=[32, 32], epochs=12, batch_size=256, lr=3e-3, features=["sorted", "loss", "phi"])
    scores, held_out, notes = master_attack(target, shadows, keep, labels, known, master=master, trainer=TRAINER,
                                            seed=0, log_dir=tmp_path)
    assert scores.dtype == torch.float64 and torch.isfinite(scores).all() and scores.shape == (400,)
    assert not held_out and notes["train_rows"] == 4 * 400 and notes["input_dim"] == 4 + 1 + 1
    assert auc(scores, member) > 0.9
    assert list((tmp_path / "master").rglob("events.out.tfevents.*"))
    assert not torch.are_deterministic_algorithms_enabled()  # the Trainer's global flag was given back
    again, _, _ = master_attack(target, shadows, keep, labels, known, master=master, trainer=TRAINER, seed=0)
    assert torch.equal(scores, again)  # same seed, same scores on CPU


def test_target_pub_never_scores_a_point_with_a_model_that_saw_it(monkeypatch):
    """A stand-in 'model' that flags exactly the rows it was trained on: any leak shows."""
    target, shadows, keep, labels, known, member = separable_task(points=120)
    calls = []

    class Memorizer:
        def __init__(self, features):
            self.seen = {tuple(row.tolist()) for row in features}

        def member_logit(self, features):
            return torch.tensor([float(tuple(row.tolist()) in self.seen) for row in features], dtype=torch.float64)

    def fake_fit(features, targets, *args, **kwargs):
        calls.append(kwargs.get("version"))
        return Memorizer(features)

    monkeypatch.setattr(master_module, "fit_master", fake_fit)
    master = MasterConfig(labels="target_pub", folds=4, features=["softmax", "phi"])
    scores, held_out, notes = master_attack(target, shadows, keep, labels, known, master=master, trainer=TRAINER,
                                            seed=0)
    assert held_out and notes["folds"] == 4 and sum(notes["fold_sizes"]) == int((known >= 0).sum())
    assert calls == ["fold0", "fold1", "fold2", "fold3", "all"]
    assert (scores == 0).all()  # no pub point was scored by a model trained on it, nor a priv point


def test_folds_are_stratified_and_cover_pub_once():
    known = torch.tensor([1] * 23 + [0] * 17 + [-1] * 10, dtype=torch.int8)
    fold = assign_folds(known, 5, seed=0)
    assert (fold[known < 0] == -1).all() and ((fold[known >= 0] >= 0) & (fold[known >= 0] < 5)).all()
    for f in range(5):
        members = int(((fold == f) & (known == 1)).sum())
        assert members in (4, 5)
    assert torch.equal(fold, assign_folds(known, 5, seed=0))


def test_target_pub_held_out_is_honest_on_random_labels():
    """Random membership: a model scored in-sample memorises it, cross-fitted scores do not."""
    points = 200
    logits = torch.randn(points, 1, 6, generator=gen(5))
    labels = torch.randint(0, 6, (points,), generator=gen(6))
    known = (torch.rand(points, generator=gen(7)) < 0.5).to(torch.int8)
    master = MasterConfig(labels="target_pub", folds=3, widths=[256, 256], epochs=150, lr=3e-3,
                          weight_decay=0.0, features=["softmax", "loss", "phi"])
    features = build_features(logits, labels, master.features)
    leaky = fit_master(features, known.long(), master, TRAINER, seed=0).member_logit(features)
    assert auc(leaky, known) > 0.85
    scores, held_out, _ = master_attack(logits, logits[None, :0], torch.zeros(0, points, dtype=torch.bool), labels,
                                        known, master=master, trainer=TRAINER, seed=0)
    assert held_out and abs(auc(scores, known) - 0.5) < 0.12


def test_master_refuses_unusable_setups():
    target, shadows, keep, labels, known, _ = separable_task(points=20)
    with pytest.raises(MiaError, match="shadow.count"):
        master_attack(target, shadows[:0], keep[:0], labels, known, master=MasterConfig(), trainer=TRAINER, seed=0)
    with pytest.raises(MiaError, match="master.labels"):
        master_attack(target, shadows, keep, labels, known, master=MasterConfig(labels="pub"), trainer=TRAINER,
                      seed=0)
    no_members = torch.where(known == 1, torch.tensor(0, dtype=torch.int8), known)
    with pytest.raises(MiaError, match="known members"):
        master_attack(target, shadows, keep, labels, no_members, master=MasterConfig(labels="target_pub"),
                      trainer=TRAINER, seed=0)
