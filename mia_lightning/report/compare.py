"""`mia-summarize DIR --compare a,b`: is attack a really better than b here? The paired bootstrap.

Every run dir keeps its bootstrap replicates in `bootstrap.pt` (report/intervals.py): every
attack's metrics on the same 1,000 resamples of the evaluation points. The difference a - b
on each resample is the paired bootstrap of the difference, and its 95% interval says
whether the run's data can tell the two apart ("a > b" only when the interval excludes 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from mia_lightning.errors import MiaError
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.metrics.bootstrap import LEVEL, measurable, percentile_interval


def read_bootstrap(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "bootstrap.pt"
    obj = safe_torch_load(path)
    if not (isinstance(obj, dict) and isinstance(obj.get("attacks"), list)
            and isinstance(obj.get("replicates"), torch.Tensor) and isinstance(obj.get("point"), torch.Tensor)):
        raise MiaError(f"{path}: not a bootstrap file (expected attacks, metrics, replicates, point)")
    return obj


def paired(run_dir: Path, first: str, second: str, pub: bool = False) -> dict[str, dict[str, Any]]:
    """{metric: {first, second, diff, ci, verdict}} of first - second on the run's shared resamples."""
    saved = read_bootstrap(run_dir)
    suffix = "_pub" if pub else ""
    if f"replicates{suffix}" not in saved:
        raise MiaError(f"{run_dir}: no pub bootstrap (it exists when the metrics are measured on a hidden truth)")
    names = saved["attacks"]
    for name in (first, second):
        if name not in names:
            raise MiaError(f"--compare {first},{second}: {name} is not in {run_dir} (it has {', '.join(names)})")
    i, j = names.index(first), names.index(second)
    replicates, point = saved[f"replicates{suffix}"], saved[f"point{suffix}"]
    negatives = int(saved.get(f"negatives{suffix}", 0)) or None
    ok = measurable(negatives) if negatives else {}
    bounds = percentile_interval(replicates[i] - replicates[j], LEVEL)
    out: dict[str, dict[str, Any]] = {}
    for k, metric in enumerate(saved["metrics"]):
        low, high = float(bounds[k, 0]), float(bounds[k, 1])
        verdict = f"{first} > {second}" if low > 0 else f"{second} > {first}" if high < 0 else "no difference"
        if not ok.get(metric, True):
            verdict = "not measurable"
        out[metric] = {first: float(point[i, k]), second: float(point[j, k]),
                       "diff": float(point[i, k] - point[j, k]), "ci": [low, high], "verdict": verdict}
    return out


def run_dirs(root: Path) -> list[Path]:
    """`root` itself when it is a run dir, else every run dir below it with a bootstrap.pt."""
    root = Path(root)
    if (root / "bootstrap.pt").is_file():
        return [root]
    found = sorted(path.parent for path in root.rglob("bootstrap.pt"))
    if not found:
        raise MiaError(f"{root}: no bootstrap.pt in it or below it (runs write one since the error bars came in; "
                       "rerun `mia stage=attacks` there)")
    return found


def print_compare(root: Path, first: str, second: str, pub: bool = False) -> list[dict[str, Any]]:
    from rich.console import Console
    from rich.table import Table

    rows = []
    for run_dir in run_dirs(root):
        result = paired(run_dir, first, second, pub)
        table = Table(title=f"{first} - {second}: paired bootstrap, {LEVEL:.0%} interval{' (pub)' if pub else ''}",
                      caption=str(run_dir))
        for column in ("metric", first, second, "difference [interval]", "verdict"):
            table.add_column(column, justify="left" if column in ("metric", "verdict") else "right")
        for metric, row in result.items():
            table.add_row(metric, f"{row[first]:.3f}", f"{row[second]:.3f}",
                          f"{row['diff']:+.3f} [{row['ci'][0]:+.3f}, {row['ci'][1]:+.3f}]", row["verdict"])
        console = Console()
        if not console.is_terminal:  # a log file or a pipe: wide enough for one line per row
            console = Console(width=max(120, console.width))
        console.print(table)
        rows.append({"run_dir": str(run_dir), **result})
    return rows
