"""Fixtures of the reliability suite: one uninterrupted reference run that the fault,
concurrency and determinism tests compare their results with, exactly."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import run_mia

from .runs import FAULT_ARGS, ONE_THREAD, RunArtifacts, collect


@pytest.fixture(scope="session")
def reference_run(tiny_task_dir, tmp_path_factory) -> RunArtifacts:
    """`mia` end to end (2 shadows, every attack) on a copy of the tiny task, uninterrupted."""
    root = tmp_path_factory.mktemp("reference")
    shutil.copytree(tiny_task_dir.parent, root / "tasks")
    run_mia(*FAULT_ARGS, f"store.root={root}", f"hydra.run.dir={root / 'run'}", env=ONE_THREAD)
    return collect(root)


def fresh_store(tiny_task_dir: Path, root: Path) -> Path:
    """A new store root holding a copy of the simulated tiny task (and nothing else)."""
    shutil.copytree(tiny_task_dir.parent, root / "tasks")
    return root
