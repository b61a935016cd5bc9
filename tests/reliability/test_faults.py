"""Faults: `mia` killed (SIGKILL, SIGTERM) at seeded random points of every stage, then rerun,
ends with exactly the result of an uninterrupted run; concurrent runs on the same store
never train a shadow twice and both end correct.

Kill points are drawn by a seeded `random.Random`: which pipeline points (triggers, in
order), how long after each trigger, which signal. After every kill the store and run dir
are audited: every artifact a later stage could read must be complete (see runs.audit).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time

import pytest
import torch

from conftest import fit_starts, fresh_store, MIA, REPO, run_mia
from mia_lightning.io.safe_load import safe_torch_load

from .runs import (FAULT_ARGS, ONE_THREAD, TRIGGERS, Attempt, Trigger, assert_same_result, assert_same_tensors,
                   audit, check_exit, collect, entry_dir, run_and_kill)

SIGNALS = (signal.SIGKILL, signal.SIGTERM)


def kill_plan(seed: int, kills: int) -> list[tuple[int, float, signal.Signals]]:
    """`kills` distinct triggers in pipeline order, each with a random delay and signal."""
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(TRIGGERS)), kills))
    return [(i, rng.uniform(0, TRIGGERS[i].max_delay), rng.choice(SIGNALS)) for i in chosen]


def kill_and_resume(tiny_task_dir, root, seed: int, kills: int) -> list[Attempt]:
    """Run the plan against one store (each attempt resumes the last), then finish the run."""
    store = fresh_store(tiny_task_dir, root)
    args = [*FAULT_ARGS, f"store.root={store}", f"hydra.run.dir={store / 'run'}"]
    attempts = []
    for index, delay, sig in kill_plan(seed, kills):
        attempt = run_and_kill(args, store, TRIGGERS[index], delay, sig)
        check_exit(attempt)
        audit(store)
        attempts.append(attempt)
    run_mia(*args, env=ONE_THREAD)
    audit(store)
    # temp files of writers killed mid-write are removed by whoever takes the shadow over
    assert not [p for p in store.glob("*/*/shadow_*/**/.tmp-*")], "stale temp files left in shadow dirs"
    summary = [(a.stage, a.signal, a.delay, a.killed, a.returncode) for a in attempts]
    print("kill points (stage, signal, delay after trigger, killed, exit status):", json.dumps(summary))
    return attempts


def check_resumed_result(store, reference_run, attempts) -> None:
    result = collect(store)
    assert_same_result(result, reference_run)
    # each shadow's fit started once per attempt that reached it, and ended trained exactly once:
    # every start after the first is a resume from last.ckpt or a fresh start (killed before epoch 1)
    for index, starts in result.fit_starts.items():
        assert 1 <= len(starts) <= len(attempts) + 1, (index, starts)
        assert starts[0]["resume"] is False


def test_kills_at_random_points_then_rerun_equal_an_uninterrupted_run(tiny_task_dir, tmp_path, reference_run):
    """Seed 71 draws SIGTERM while shadow_001 trains, SIGKILL while the target's logits are
    computed, SIGKILL while the master MLP trains; the final rerun equals the reference bit for bit."""
    attempts = kill_and_resume(tiny_task_dir, tmp_path, seed=71, kills=3)
    assert sum(a.killed for a in attempts) >= 2, attempts
    check_resumed_result(tmp_path, reference_run, attempts)


@pytest.mark.slow
def test_kills_in_every_stage_then_rerun_equal_an_uninterrupted_run(tiny_task_dir, tmp_path, reference_run):
    """A longer chain: 6 of the 8 points of runs.TRIGGERS (seed 12 draws one in every stage:
    startup, mid-epoch / after a checkpoint / between weights and done, the target logits,
    the master MLP, the report), SIGKILL and SIGTERM mixed."""
    attempts = kill_and_resume(tiny_task_dir, tmp_path, seed=12, kills=6)
    assert sum(a.killed for a in attempts) >= 4, attempts
    killed_in = {a.stage for a in attempts if a.killed}
    assert "shadows" in killed_in and killed_in & {"logits", "attacks", "report"}, attempts
    check_resumed_result(tmp_path, reference_run, attempts)


def test_sigterm_during_training_exits_143_with_one_line_and_the_rerun_resumes(tiny_task_dir, tmp_path):
    """Lightning turns SIGTERM inside `fit` into SystemExit() with status 0; a preempted cluster
    job must not look successful. `mia` exits 143 with one line, and the rerun resumes."""
    store = fresh_store(tiny_task_dir, tmp_path)
    args = [*FAULT_ARGS, "shadow.epochs=3", "stage=shadows", "shadow.only=0", f"store.root={store}",
            f"hydra.run.dir={store / 'run'}"]
    trigger = Trigger("shadow_000's first checkpoint (2 epochs still to go)", "shadows",
                      "*/*/shadow_000/checkpoints/last.ckpt", 0.0)
    attempt = run_and_kill(args, store, trigger, 0.0, signal.SIGTERM)
    assert attempt.killed and attempt.returncode == 143, attempt
    check_exit(attempt)
    audit(store)
    run_mia(*args, env=ONE_THREAD)
    (shadow,) = store.glob("*/*/shadow_000")
    assert [s["resume"] for s in fit_starts(shadow)] == [False, True]
    assert (shadow / "done").is_file()


def start(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([*MIA, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **ONE_THREAD})


def test_two_processes_on_the_same_shadows_train_each_once_and_both_end_correct(tiny_task_dir, tmp_path,
                                                                                 reference_run):
    """Started together on one store: a full run and a shadows-only job on shadow 0. The
    flock per shadow lets exactly one of them train each shadow (history.jsonl: one fit
    start each); the other waits for it; both exit 0 and the result is the reference's."""
    store = fresh_store(tiny_task_dir, tmp_path)
    common = [*FAULT_ARGS, f"store.root={store}"]
    full = start([*common, f"hydra.run.dir={store / 'run'}"])
    only0 = start([*common, "stage=shadows", "shadow.only=0", f"hydra.run.dir={store / 'run_only0'}"])
    for proc in (full, only0):
        _, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr[-3000:]
    entry = entry_dir(store)
    starts = {i: fit_starts(entry / f"shadow_{i:03d}") for i in (0, 1)}
    assert [len(s) for s in starts.values()] == [1, 1], starts
    trainers = {s[0]["pid"] for s in starts.values()}
    assert trainers <= {full.pid, only0.pid}
    assert_same_result(collect(store), reference_run)


@pytest.mark.slow
def test_a_waiting_process_takes_over_when_the_trainer_is_killed(tiny_task_dir, tmp_path, reference_run):
    """B waits on shadow 0 while A trains it; A is SIGKILLed mid-training; the kernel drops A's
    flock, B takes the shadow over, resumes it from A's last checkpoint and finishes."""
    store = fresh_store(tiny_task_dir, tmp_path)
    args = [*FAULT_ARGS, f"store.root={store}", "stage=shadows", "shadow.only=0"]
    first = start([*args, f"hydra.run.dir={store / 'a'}"])
    deadline = time.monotonic() + 600
    while not list(store.glob("*/*/shadow_000/checkpoints/last.ckpt")):
        assert first.poll() is None and time.monotonic() < deadline, "A ended before its first checkpoint"
        time.sleep(0.02)
    second = start([*args, f"hydra.run.dir={store / 'b'}"])
    time.sleep(random.Random(3).uniform(0.2, 1.0))
    first.send_signal(signal.SIGKILL)
    first.wait()
    _, stderr = second.communicate(timeout=900)
    assert second.returncode == 0, stderr[-3000:]
    (shadow,) = store.glob("*/*/shadow_000")
    starts = fit_starts(shadow)
    assert [s["pid"] for s in starts] == [first.pid, second.pid] and starts[1]["resume"] is True, starts
    audit(store)
    ours, theirs = safe_torch_load(shadow / "weights.pt"), reference_run.weights[0]
    assert_same_tensors(ours, theirs, "shadow 0 weights.pt (taken over)")
    assert torch.equal(safe_torch_load(shadow / "logits.pt")["logits"], reference_run.shadow_logits[0])
