"""A simulated task on real data: right sizes, disjoint ids, a target that overfits."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import FMNIST_PRESENT, TINY, make_cfg
from mia_lightning.pipeline import run_pipeline
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
    # where it trained, so two stores' differing digits can be traced to their numerics
    assert info["target"]["trained_on"]["cpu_threads"] == torch.get_num_threads()
    assert info["target"]["trained_on"]["torch"] == torch.__version__


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


def _write_cifar_batches(folder, count_per_batch=4):
    """A CIFAR-10-format folder (python pickles of numpy arrays, like the official files)."""
    import pickle

    import numpy as np

    from mia_lightning.task.sources import CIFAR_BATCHES

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in CIFAR_BATCHES:
        batch = {b"data": rng.integers(0, 256, (count_per_batch, 3072), dtype=np.uint8),
                 b"labels": rng.integers(0, 10, count_per_batch).tolist(), b"batch_label": name.encode()}
        with open(folder / name, "wb") as handle:
            pickle.dump(batch, handle, protocol=2)


def test_cifar10_folder_is_read_without_a_full_unpickle(tmp_path):
    import os
    import pickle

    from mia_lightning.errors import MiaError
    from mia_lightning.task.sources import load_source

    _write_cifar_batches(tmp_path / "cifar-10-batches-py")
    images, labels = load_source("cifar10", str(tmp_path), download=False)
    assert images.shape == (24, 3, 32, 32) and labels.shape == (24,)

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'pwned'}",))

    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as handle:
        pickle.dump({b"data": Payload(), b"labels": []}, handle, protocol=2)
    with pytest.raises(MiaError, match="not allowed in a data file"):
        load_source("cifar10", str(tmp_path), download=False)
    assert not (tmp_path / "pwned").exists()


_HOLD_THEN_FINISH = """
import sys, time
from pathlib import Path
from mia_lightning.io.locks import FileLock
task_dir = Path(sys.argv[1])
lock = FileLock(task_dir / "lock")
assert lock.acquire(10)
print("locked", flush=True)
time.sleep(3)
(task_dir / "done").write_text(sys.argv[2])
lock.release()
"""


def test_a_run_that_waited_for_another_process_to_simulate_does_not_claim_it_trained(tiny_task_dir, tmp_path,
                                                                                       capsys):
    """Two jobs on one new task: the one that waited on the lock says it reused the task."""
    store = tmp_path / "store"
    task_copy = store / "tasks" / tiny_task_dir.name
    shutil.copytree(tiny_task_dir, task_copy)
    done = (task_copy / "done").read_text()
    (task_copy / "done").unlink()  # as if another process were still training the target
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_THEN_FINISH, str(task_copy), done],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        run_pipeline(make_cfg(*TINY, "stage=simulate", f"store.root={store}"), tmp_path / "run")
    finally:
        assert holder.wait(30) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("mia: done") and "trained its target" not in line, line
