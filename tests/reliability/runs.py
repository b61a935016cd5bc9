"""Running `mia` as a real subprocess, killing it at chosen points, and checking what it left.

`collect` reads every artifact of a finished run (store and run dir); `assert_same_result`
compares two runs exactly (tensors bit for bit, metrics numbers with ==); `audit` checks,
after a kill, that every artifact a later stage could read is complete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from conftest import fit_starts, MIA, REPO, TINY
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.logits.logits_file import read_logits
from mia_lightning.task.tml25_format import load_raw
from mia_lightning.task.weights import load_target_weights

# The tiny digits task with 2 shadows of 2 epochs (so a shadow has a mid-training checkpoint)
# and every attack; every fault, concurrency and determinism test runs this command.
FAULT_ARGS = [*TINY, "shadow.epochs=2"]
# One intra-op thread per `mia` process: two processes (the concurrency tests) never oversubscribe
# two cores, and a shared CI machine does not slow OpenMP barriers down several-fold. Every run
# the suite compares uses the same setting (float reduction order depends on the thread count).
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
NUM_POINTS = 320
QUERIES = ["identity", "mirror"]


@dataclass
class RunArtifacts:
    root: Path
    keep: torch.Tensor
    weights: dict[int, dict[str, torch.Tensor]]
    shadow_logits: dict[int, torch.Tensor]
    checkpoint_states: dict[int, dict[str, torch.Tensor]]
    fit_starts: dict[int, list[dict[str, Any]]]
    target_logits: torch.Tensor
    metrics: dict[str, Any]
    submission: str


def entry_dir(root: Path) -> Path:
    (entry,) = [p.parent for p in root.glob("*/*/recipe.json")]
    return entry


def collect(root: Path, run_dir: Path | None = None) -> RunArtifacts:
    entry = entry_dir(root)
    run_dir = run_dir or root / "run"
    shadows = sorted(entry.glob("shadow_*"))
    (target,) = entry.parent.glob("target_*/logits.pt")
    return RunArtifacts(
        root=root,
        keep=safe_torch_load(entry / "keep.pt"),
        weights={i: safe_torch_load(d / "weights.pt") for i, d in enumerate(shadows)},
        shadow_logits={i: safe_torch_load(d / "logits.pt")["logits"] for i, d in enumerate(shadows)},
        checkpoint_states={i: safe_torch_load(d / "checkpoints" / "last.ckpt")["state_dict"] for i, d in enumerate(shadows)},
        fit_starts={i: fit_starts(d) for i, d in enumerate(shadows)},
        target_logits=safe_torch_load(target)["logits"],
        metrics=json.loads((run_dir / "metrics.json").read_text()),
        submission=(run_dir / "submission.csv").read_text(),
    )


def assert_same_tensors(ours: dict[str, torch.Tensor], theirs: dict[str, torch.Tensor], what: str) -> None:
    assert ours.keys() == theirs.keys(), what
    for name in ours:
        assert ours[name].dtype == theirs[name].dtype, (what, name)
        assert torch.equal(ours[name], theirs[name]), f"{what}: {name} differs"


def assert_same_result(ours: RunArtifacts, theirs: RunArtifacts) -> None:
    """Bit-identical store artifacts and identical attack numbers."""
    assert torch.equal(ours.keep, theirs.keep)
    assert ours.weights.keys() == theirs.weights.keys() == {0, 1}
    for index in ours.weights:
        assert_same_tensors(ours.weights[index], theirs.weights[index], f"shadow {index} weights.pt")
        assert_same_tensors(ours.checkpoint_states[index], theirs.checkpoint_states[index], f"shadow {index} last.ckpt")
        assert torch.equal(ours.shadow_logits[index], theirs.shadow_logits[index]), f"shadow {index} logits.pt"
    assert torch.equal(ours.target_logits, theirs.target_logits), "target logits.pt"
    for key in ("attacks", "attacks_pub", "submit", "optimized_metric", "eval", "eval_points", "shadows"):
        assert ours.metrics[key] == theirs.metrics[key], key
    assert ours.submission == theirs.submission


# --- the audit: nothing a reader can see is ever half-written -----------------------------

PNG_END = b"IEND\xaeB`\x82"


def audit(root: Path, run_dir: Path | None = None) -> int:
    """Check that every artifact present under the store and the run dir is complete and
    readable (temp files aside), and that `done` implies a complete shadow. Returns how
    many files were checked."""
    checked = 0
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.name.startswith(".tmp-") or "tb" in path.parts or ".hydra" in path.parts:
            continue
        name = path.name
        if name in ("lock",) or name.startswith("events.out"):
            continue
        if name in ("pub.pt", "priv_out.pt"):
            load_raw(path)
        elif name.endswith((".pt", ".ckpt")):
            obj = safe_torch_load(path)
            if name == "logits.pt":
                assert set(read_logits(path, NUM_POINTS)) >= {"identity"}, path
            if name == "weights.pt":
                load_target_weights(path, None)
            if name.endswith(".ckpt"):
                assert "state_dict" in obj and "loops" in obj, path
        elif name.endswith(".json") or name == "done":
            json.loads(path.read_text())
        elif name == "history.jsonl":
            for line in path.read_text().splitlines():
                json.loads(line)
        elif name == "submission.csv":
            rows = path.read_text().splitlines()
            assert rows[0] == "ids,score" and len(rows) == 1 + NUM_POINTS // 2, path
        elif name.endswith(".png"):
            assert path.read_bytes().endswith(PNG_END), path
        else:
            continue
        checked += 1
    for done in root.glob("*/*/shadow_*/done"):
        for name in ("weights.pt", "logits.pt", "summary.json"):
            assert (done.parent / name).is_file(), f"{done} without {name}"
        assert set(read_logits(done.parent / "logits.pt", NUM_POINTS)) == set(QUERIES)
    return checked


# --- killing a run at a chosen point -------------------------------------------------------


@dataclass(frozen=True)
class Trigger:
    """Kill `delay` seconds after `pattern` (a glob under the store root) is written by this attempt."""

    name: str
    stage: str
    pattern: str | None  # None: from the start of the process
    max_delay: float


# In pipeline order; the delay after the trigger is drawn uniformly from [0, max_delay].
TRIGGERS = [
    Trigger("process start (imports, task load, trainer setup)", "startup", None, 5.0),
    Trigger("shadow_000 fit started", "shadows", "*/*/shadow_000/history.jsonl", 2.0),
    Trigger("shadow_000 checkpoint written", "shadows", "*/*/shadow_000/checkpoints/last.ckpt", 1.5),
    Trigger("shadow_000 weights written (its logits next)", "shadows", "*/*/shadow_000/weights.pt", 0.4),
    Trigger("shadow_001 fit started", "shadows", "*/*/shadow_001/history.jsonl", 2.0),
    Trigger("shadow_001 done (target logits next)", "logits", "*/*/shadow_001/done", 0.6),
    Trigger("master MLP training started (attack stage)", "attacks", "run/master/*/events.out.tfevents.*", 1.0),
    Trigger("submission.csv written (plots, tensorboard, metrics next)", "report", "run/submission.csv", 0.5),
]


@dataclass
class Attempt:
    trigger: str
    stage: str
    signal: str
    delay: float
    killed: bool = False
    returncode: int | None = None
    seconds: float = 0.0
    stderr_tail: str = field(default="", repr=False)


def _written_since(root: Path, pattern: str, since: float) -> bool:
    return any(p.stat().st_mtime >= since for p in root.glob(pattern) if p.is_file())


def run_and_kill(args: list[str], root: Path, trigger: Trigger, delay: float, sig: signal.Signals,
                 timeout: float = 600) -> Attempt:
    """Start `mia args`, wait for the trigger, wait `delay`, send `sig` (if still running)."""
    attempt = Attempt(trigger.name, trigger.stage, sig.name, round(delay, 3))
    log = root / f"attempt-{time.monotonic_ns()}.stderr"
    with open(log, "w") as stderr:
        started_wall, started = time.time() - 0.01, time.monotonic()
        proc = subprocess.Popen([*MIA, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=stderr,
                                env={**os.environ, **ONE_THREAD, "MIA_DEBUG": ""})
        try:
            while trigger.pattern is not None and not _written_since(root, trigger.pattern, started_wall):
                if proc.poll() is not None:
                    break
                assert time.monotonic() - started < timeout, f"{trigger.name} never happened"
                time.sleep(0.02)
            if proc.poll() is None:
                time.sleep(delay)
            if proc.poll() is None:
                proc.send_signal(sig)
                attempt.killed = True
            attempt.returncode = proc.wait(timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    attempt.seconds = round(time.monotonic() - started, 2)
    attempt.stderr_tail = log.read_text()[-3000:]
    log.unlink()
    return attempt


def check_exit(attempt: Attempt) -> None:
    """How a killed `mia` must end: SIGKILL -9; SIGTERM either dies of it (-15, outside a
    Lightning fit) or, inside one, exits 143 with one line saying how to resume."""
    if not attempt.killed:
        assert attempt.returncode == 0, attempt
        return
    if attempt.signal == "SIGKILL":
        assert attempt.returncode in (-signal.SIGKILL, 0), attempt  # 0: it finished just before the signal
    else:
        assert attempt.returncode in (-signal.SIGTERM, 143, 0), attempt
        if attempt.returncode == 143:
            lines = [line for line in attempt.stderr_tail.splitlines() if line.strip()]
            assert lines[-1] == "mia: terminated (SIGTERM); rerun the same command to resume", lines[-3:]
        assert "Traceback" not in attempt.stderr_tail, attempt.stderr_tail
