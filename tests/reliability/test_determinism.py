"""Determinism on CPU: the same command with the same seed gives bit-identical shadows
(weights.pt, last.ckpt's state_dict), logits, keep mask, metrics.json attack numbers and
submission.csv. (What differs on GPU is documented in the README's Guarantees section.)"""

from __future__ import annotations

import json

import torch

from conftest import fresh_store, make_cfg, run_mia
from mia_lightning.pipeline import run_pipeline

from .runs import FAULT_ARGS, ONE_THREAD, assert_same_result, collect


def test_same_command_twice_gives_identical_checkpoints_logits_and_metrics(tiny_task_dir, tmp_path, reference_run):
    store = fresh_store(tiny_task_dir, tmp_path)
    run_mia(*FAULT_ARGS, f"store.root={store}", f"hydra.run.dir={store / 'run'}", env=ONE_THREAD)
    again = collect(store)
    assert_same_result(again, reference_run)
    assert [len(s) for s in again.fit_starts.values()] == [1, 1]


def test_attack_stage_rerun_from_the_store_reproduces_the_metrics(reference_run, tmp_path):
    """`mia stage=attacks` (here in-process, without plots or TensorBoard) on the stored logits:
    the same attack numbers as the run that trained them."""
    cfg = make_cfg(*FAULT_ARGS, f"store.root={reference_run.root}", "stage=attacks", "logger=none",
                   "report.plots=false")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the reference run (runs.ONE_THREAD)
    try:
        run_pipeline(cfg, tmp_path / "run")
    finally:
        torch.set_num_threads(threads)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    for key in ("attacks", "attacks_pub", "submit"):
        assert metrics[key] == reference_run.metrics[key], key
    assert (tmp_path / "run" / "submission.csv").read_text() == reference_run.submission
