"""Numerical edge cases at the level of the attack stage and the report.

Stored logits are crafted and planted in a store (the shadows marked done), then the real
attack stage runs on them (`run_pipeline(stage=attacks)`: read_logits -> run_attacks ->
write_report). Whatever the logits, no attack may emit NaN and the metrics must exist.
Cases the pipeline cannot produce (a hand-made keep mask, one class, no shadows) go
through `run_attacks` and `metrics.summarize` directly.
"""

from __future__ import annotations

import dataclasses

import json
import math
from pathlib import Path

import pytest
import torch

from conftest import fresh_store, make_cfg, TINY
from mia_lightning.attacks.base import AttackInputs
from mia_lightning.attacks.registry import ATTACK_NAMES, run_attacks
from mia_lightning.config.attack import AttackConfig, RmiaConfig
from mia_lightning.config.master import MasterConfig
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_write_text
from mia_lightning.logits.logits_file import write_logits
from mia_lightning.metrics.roc import summarize
from mia_lightning.pipeline import open_run, run_pipeline
from mia_lightning.stages.shadows import shadow_set
from mia_lightning.stages.task import obtain_task
from mia_lightning.shadows.fingerprint import tensor_digest
from mia_lightning.task.submission import read_submission

QUERIES = ["identity", "mirror"]
METRIC_KEYS = {"auc", "tpr@0.05", "tpr@0.01", "tpr@0.001"}


@pytest.fixture
def edge_store(tiny_task_dir, tmp_path) -> Path:
    """A store holding a copy of the tiny task, and no shadows."""
    store = tmp_path / "store"
    fresh_store(tiny_task_dir, store)
    return store


def craft(kind: str, models: int, points: int, classes: int, seed: int = 0) -> torch.Tensor:
    """float32 [models, points, queries, classes] logits of one pathological kind."""
    generator = torch.Generator().manual_seed(seed)
    shape = (models, points, len(QUERIES), classes)
    if kind == "random":
        return torch.randn(shape, generator=generator) * 3
    if kind == "huge":  # +-1e4: softmax saturates; phi must still be exact and finite
        return (torch.randint(0, 2, shape, generator=generator).float() * 2 - 1) * 1e4
    if kind == "constant":  # every model says the same thing about every point: phi is constant
        return torch.zeros(shape)
    if kind == "one-hot-huge":  # the true class (or another) at +1e4, the rest at -1e4
        out = torch.full(shape, -1e4)
        hot = torch.randint(0, classes, (models, points), generator=generator)
        out.scatter_(3, hot[:, :, None, None].expand(-1, -1, len(QUERIES), 1), 1e4)
        return out
    raise ValueError(kind)


def plant_and_attack(store: Path, run_dir: Path, kind: str, count: int, *extra: str) -> dict:
    """Write crafted logits for the target and `count` shadows, then run the attack stage."""
    overrides = [*TINY, f"store.root={store}", f"shadow.count={count}", "stage=attacks", "logger=none", *extra]
    cfg = make_cfg(*overrides)
    run = open_run(cfg, run_dir)
    task = obtain_task(run)
    ctx = shadow_set(run, task)
    logits = craft(kind, count + 1, task.pool_size, task.num_classes)
    weights_hash = tensor_digest(*[task.target_state[k] for k in sorted(task.target_state)])[:12]
    write_logits(ctx.store.target_dir(weights_hash) / "logits.pt", {q: logits[0, :, i] for i, q in enumerate(QUERIES)})
    for index in range(count):
        shadow_dir = ctx.store.shadow_dir(index)
        write_logits(shadow_dir / "logits.pt", {q: logits[index + 1, :, i] for i, q in enumerate(QUERIES)})
        atomic_write_text(shadow_dir / "done", json.dumps({"index": index, "crafted": kind}) + "\n")
    run_pipeline(cfg, run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["attacks"]) == set(cfg.attack.names)
    for name, row in metrics["attacks"].items():
        assert set(row) == METRIC_KEYS, name
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in row.values()), (name, row)
    scores = read_submission(run_dir / "submission.csv")
    assert len(scores) == len(task.priv) and all(math.isfinite(s) for s in scores.values())
    return metrics


@pytest.mark.parametrize("kind, count", [("huge", 2), ("constant", 2), ("one-hot-huge", 1), ("random", 1)])
def test_attack_stage_on_crafted_logits_gives_finite_scores_and_metrics(kind, count, edge_store, tmp_path):
    """+-1e4 logits, constant phi (every score ties), a single shadow (each point has either
    no IN or no OUT shadow): all six attacks, metrics, submission."""
    metrics = plant_and_attack(edge_store, tmp_path / "run", kind, count,
                               *(() if kind == "huge" else ("report.plots=false",)))
    if kind == "constant":  # nothing distinguishes any point: chance AUC for the score-only attacks
        for name in ("threshold", "loss", "lira_online", "lira_offline"):
            assert metrics["attacks"][name]["auc"] == pytest.approx(0.5), name
    if count == 1:
        notes = metrics["notes"]["lira_online"]
        assert json.dumps(notes)  # the borrowed-side counts are reported, not silently dropped


def inputs(target: torch.Tensor, shadows: torch.Tensor, keep: torch.Tensor, labels: torch.Tensor) -> AttackInputs:
    n = target.shape[0]
    known = torch.full((n,), -1, dtype=torch.int8)
    known[: n // 2] = (torch.arange(n // 2) % 2).to(torch.int8)
    return AttackInputs(target_logits=target, shadow_logits=shadows, keep=keep, labels=labels, known_membership=known)


# the typed configs, as Hydra composes them (every key present; only these values differ)
# (qmia reads images and trains a regressor: its edge cases are in tests/test_new_attacks.py)
ATTACK_CFG = AttackConfig(names=[n for n in ATTACK_NAMES if n != "qmia"], queries=QUERIES, rmia=RmiaConfig(num_z=50))
MASTER_CFG = MasterConfig(depth=1, width=8, epochs=1, batch_size=64, weight_decay=0.0,
                          features=["sorted", "max", "loss", "phi"], folds=2, max_samples=2000)
TRAINER_CFG = TrainerSettings.cpu(enable_progress_bar=False, log_every_n_steps=1)


def all_finite(results) -> None:
    for name, result in results.items():
        assert result.scores.dtype == torch.float64 and torch.isfinite(result.scores).all(), name
        truth = torch.arange(result.scores.numel()) % 2 == 0
        assert all(math.isfinite(v) for v in summarize(result.scores, truth).values()), name


def test_points_with_no_in_or_no_out_shadow():
    """A keep mask where some points are IN every shadow and others OUT of every shadow."""
    n, k, c = 64, 4, 5
    generator = torch.Generator().manual_seed(0)
    keep = torch.rand(k, n, generator=generator) < 0.5
    keep[:, :8] = True  # never OUT
    keep[:, 8:16] = False  # never IN
    logits = torch.randn(k + 1, n, 2, c, generator=generator)
    results = run_attacks(inputs(logits[0], logits[1:], keep, torch.arange(n) % c), ATTACK_CFG, MASTER_CFG,
                          TRAINER_CFG, seed=0)
    all_finite(results)


@pytest.mark.parametrize("kind", ["random", "huge", "constant"])
def test_single_class_logits(kind):
    """C = 1: every softmax is 1, phi is +inf before clamping."""
    n, k = 32, 2
    logits = craft(kind, k + 1, n, 1)
    keep = torch.stack([torch.arange(n) % 2 == 0, torch.arange(n) % 2 == 1])
    names = ["threshold", "loss", "lira_online", "lira_offline", "rmia"]
    results = run_attacks(inputs(logits[0], logits[1:], keep, torch.zeros(n, dtype=torch.int64)),
                          dataclasses.replace(ATTACK_CFG, names=names), MASTER_CFG, TRAINER_CFG, seed=0)
    all_finite(results)


def test_without_shadows_the_shadow_free_attacks_still_run():
    n, c = 32, 4
    logits = torch.randn(n, 2, c)
    results = run_attacks(inputs(logits, torch.zeros(0, n, 2, c), torch.zeros(0, n, dtype=torch.bool),
                                 torch.arange(n) % c), dataclasses.replace(ATTACK_CFG, names=["threshold", "loss"]),
                          MASTER_CFG, TRAINER_CFG, seed=0)
    all_finite(results)


def test_all_tied_scores_give_chance_metrics():
    truth = torch.tensor([True, False] * 50)
    metrics = summarize(torch.zeros(100, dtype=torch.float64), truth)
    assert metrics == {"auc": 0.5, "tpr@0.05": 0.0, "tpr@0.01": 0.0, "tpr@0.001": 0.0}
    metrics = summarize(torch.full((100,), 1e300, dtype=torch.float64), truth)
    assert metrics["auc"] == 0.5


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_logits_are_one_clear_error(bad):
    n, c = 16, 3
    logits = torch.randn(3, n, 2, c)
    logits[2, 5, 1, 0] = bad
    keep = torch.stack([torch.arange(n) % 2 == 0, torch.arange(n) % 2 == 1])
    with pytest.raises(MiaError, match=r"shadow_logits \(shadow 1\) has 1 non-finite"):
        run_attacks(inputs(logits[0], logits[1:], keep, torch.arange(n) % c), ATTACK_CFG, MASTER_CFG, TRAINER_CFG, 0)


def test_nan_scores_are_refused_by_the_metrics():
    with pytest.raises(MiaError, match="NaN"):
        summarize(torch.tensor([0.1, float("nan")]), torch.tensor([True, False]))
