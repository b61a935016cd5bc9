"""The last line of every run: how long it took, what it trained or reused, where the results are.

    mia: done in 12 s; reused 8 stored shadows; results in outputs/2026-12-01/19-22-33 (submission.csv there)

A newcomer's first question after a run is "where did it go?", and after a rerun "did it
train again?": this line answers both without reading the logs.
"""

from __future__ import annotations

import os
from pathlib import Path

from mia_lightning.run import Run


def shown(path: Path | str) -> str:
    """`path` relative to the working directory when it lies below it (shorter, copy-pasteable)."""
    path = Path(path)
    try:
        relative = path.resolve().relative_to(Path.cwd().resolve())
        return str(relative) if str(relative) != "." else "."
    except ValueError:
        return str(path)


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def shadow_words(trained: int, reused: int) -> str:
    if trained and reused:
        return f"trained {trained} shadow{'s' * (trained != 1)}, reused {reused} stored one{'s' * (reused != 1)}"
    if trained:
        return f"trained {trained} shadow{'s' * (trained != 1)}"
    return f"reused {reused} stored shadow{'s' * (reused != 1)} (trained none)"


def closing_line(run: Run, elapsed: float) -> str:
    """The one line a run ends with (run.outcome is filled in by the stages as they go)."""
    outcome = run.outcome
    parts = [f"mia: done in {duration(elapsed)}"]
    if outcome.get("target_trained"):
        parts.append("simulated the task (trained its target)")
    if "shadows_trained" in outcome or "shadows_reused" in outcome:
        parts.append(shadow_words(outcome.get("shadows_trained", 0), outcome.get("shadows_reused", 0)))
    if run.stage == "simulate" and outcome.get("task_dir"):
        parts.append(f"task files in {shown(outcome['task_dir'])}")
    elif run.stage in ("shadows", "logits") and outcome.get("store_dir"):
        parts.append(f"store {shown(outcome['store_dir'])}")
    elif run.stage == "calibrate" and outcome.get("recipe_search"):
        parts.append(f"recipe search {shown(outcome['recipe_search'])}")
    submission = run.run_dir / "submission.csv"
    if outcome.get("reported") and submission.is_file():
        parts.append(f"results in {shown(run.run_dir)}{os.sep} (submission: {shown(submission)})")
    else:
        parts.append(f"run dir {shown(run.run_dir)}")
    return "; ".join(parts)
