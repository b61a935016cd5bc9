"""A simulated task on real data: right sizes, disjoint ids, a target that overfits."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import FMNIST_PRESENT
from mia_lightning.task.load import read_split, read_truth
from mia_lightning.task.sources import load_source
from mia_lightning.task.weights import load_target_weights


def test_simulated_digits_task(tiny_task_dir):
    pub = read_split(tiny_task_dir / "pub.pt", "task.pub")
    priv = read_split(tiny_task_dir / "priv_out.pt", "task.priv")
    assert len(pub) + len(priv) == 320
    assert len(pub) == 160 and len(priv) == 160
    assert not set(pub.ids.tolist()) & set(priv.ids.tolist())
    assert pub.membership_known and not priv.membership_known
    assert int(pub.membership.sum()) == 80  # half of pub are members, like TML25's pub
    truth = read_truth(tiny_task_dir / "truth.pt", priv)
    assert int(truth.sum()) == 80
    _, num_classes, stem = load_target_weights(tiny_task_dir / "01_MIA.pt")
    assert (num_classes, stem) == (10, "imagenet")
    info = json.loads((tiny_task_dir / "task.json").read_text())
    assert info["target"]["train_acc"] > info["target"]["test_acc"]
    assert info["target"]["train_acc"] > 0.8


def test_simulation_is_reused_not_redone(tiny_task_dir, session_store):
    from conftest import TINY, make_cfg
    from mia_lightning.pipeline import run_pipeline

    before = (tiny_task_dir / "pub.pt").stat().st_mtime_ns
    run_pipeline(make_cfg(*TINY, "stage=simulate", f"store.root={session_store}"), session_store / "again")
    assert (tiny_task_dir / "pub.pt").stat().st_mtime_ns == before
    assert len(list((session_store / "tasks").iterdir())) == 1


@pytest.mark.skipif(not FMNIST_PRESENT, reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_source_reads_the_debian_idx_files():
    images, labels = load_source("fmnist", None, download=False)
    assert images.shape == (70000, 3, 32, 32)
    assert labels.shape == (70000,) and int(labels.max()) == 9
    assert 0 <= float(images.min()) and float(images.max()) <= 1
    assert torch.equal(images[:, 0], images[:, 1])  # grey repeated to RGB
