"""Fixtures of the reliability suite: one uninterrupted reference run that the fault,
concurrency and determinism tests compare their results with, exactly."""

from __future__ import annotations

import pytest

from conftest import fresh_store, run_mia

from .runs import FAULT_ARGS, ONE_THREAD, RunArtifacts, collect


@pytest.fixture(scope="session")
def reference_run(tiny_task_dir, tmp_path_factory) -> RunArtifacts:
    """`mia` end to end (2 shadows, every attack) on a copy of the tiny task, uninterrupted."""
    root = tmp_path_factory.mktemp("reference")
    fresh_store(tiny_task_dir, root)
    run_mia(*FAULT_ARGS, f"store.root={root}", f"hydra.run.dir={root / 'run'}", env=ONE_THREAD)
    return collect(root)
