"""Shared fixtures: real Hydra composition, real (tiny) simulated tasks on real data."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from mia_lightning.app import CONFIG_DIR

REPO = Path(__file__).resolve().parent.parent
MIA = [sys.executable, "-m", "mia_lightning.app"]
# Run dirs of the `mia` processes tests start without a hydra.run.dir go here (inherited by
# every subprocess), not into the user's outputs/, where `tensorboard --logdir outputs/` reads.
os.environ["MIA_OUTPUTS"] = tempfile.mkdtemp(prefix="mia-test-outputs-")
atexit.register(shutil.rmtree, os.environ["MIA_OUTPUTS"], True)
FMNIST_PRESENT = Path("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz").is_file()

# A tiny digits task on which a ResNet18 target still learns (and overfits) in seconds.
TINY = [
    "task=simulate_digits", "task.pool_size=320", "task.train.epochs=12", "task.train.batch_size=32",
    "task.train.optimizer.lr=0.05",
    "shadow.epochs=4", "shadow.batch_size=32", "shadow.count=2",
    "master.epochs=3", "master.depth=2", "master.width=32", "attack.rmia.num_z=100",
    "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
    "attack.queries=[identity,mirror]",  # auto would be identity alone (no flips): test the mirror too
]


def fit_starts(shadow_dir: Path) -> list[dict]:
    """The `fit_start` events of one shadow's `history.jsonl`: how often it was (re)trained."""
    path = shadow_dir / "history.jsonl"
    lines = path.read_text().splitlines() if path.is_file() else []
    return [event for event in map(json.loads, lines) if event["event"] == "fit_start"]


def fresh_store(tiny_task_dir: Path, root: Path) -> Path:
    """A new store root holding a copy of the simulated tiny task (and nothing else)."""
    shutil.copytree(tiny_task_dir.parent, root / "tasks")
    return root


def kill_at_first_checkpoint(args: list[str], store: Path, meanwhile=None) -> Path:
    """Start `mia *args` on `store`, SIGKILL it once shadow 0 wrote its first checkpoint, and
    return that shadow's folder (checked unfinished): the half of every resume test.
    `meanwhile(shadow_0_dir)`, if given, runs just before the kill, while shadow 0 trains."""
    import signal
    import time

    proc = subprocess.Popen([*MIA, *args, f"store.root={store}"], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(store.glob("*/*/shadow_000/checkpoints/last.ckpt")):
        assert proc.poll() is None, "the run ended before its first checkpoint"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    if meanwhile is not None:
        meanwhile(next(store.glob("*/*/shadow_000")))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (shadow,) = store.glob("*/*/shadow_000")
    assert not (shadow / "done").exists(), "the shadow finished before the kill: raise shadow.epochs"
    return shadow


def make_cfg(*overrides: str) -> DictConfig:
    """Compose the real config tree with overrides, as `mia` would."""
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def run_mia(*args: str, cwd: Path | None = None, env: dict | None = None, check: bool = True,
            timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real `mia` command in a subprocess."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([*MIA, *args], cwd=cwd or REPO, env=full_env, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mia {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


@pytest.fixture
def one_torch_thread():
    """Tiny tensor ops run 10-30x slower when two OpenMP threads share 2 busy cores with
    other processes; tests of small attacks use one thread (restored afterwards)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def session_store(tmp_path_factory) -> Path:
    """One store for the session, so tests share the tiny simulated task and its shadows."""
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def tiny_task_dir(session_store) -> Path:
    """The tiny digits task, simulated once per session through the real pipeline."""
    from mia_lightning.pipeline import run_pipeline

    cfg = make_cfg(*TINY, "stage=simulate", f"store.root={session_store}")
    run_pipeline(cfg, session_store / "run_simulate")
    (task_dir,) = (session_store / "tasks").iterdir()
    return task_dir
