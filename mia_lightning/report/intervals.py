"""Error bars in the report: the `ci`, `ci_pub`, `paired` and `bootstrap` sections of metrics.json,
the replicates in `bootstrap.pt` (for `mia-summarize --compare`), and the table's cells.

The intervals are seeded percentile bootstraps over the evaluation points
(metrics/bootstrap.py), 1,000 stratified resamples shared by every attack, so a paired
difference (attack minus the reference, `lira_online` when it ran) is read off the same
resamples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackResult
from mia_lightning.io.atomic import atomic_torch_save
from mia_lightning.metrics.bootstrap import LEVEL, METRICS, bootstrap, intervals, measurable, paired_difference
from mia_lightning.utils.seeding import derive_seed

RESAMPLES = 1000
REFERENCE = "lira_online"


def _replicates(results: dict[str, AttackResult], index: Tensor, truth: Tensor, seed: int) -> Tensor:
    scores = torch.stack([result.scores[index] for result in results.values()])
    return bootstrap(scores, truth, resamples=RESAMPLES, seed=derive_seed(seed, "bootstrap"))


def _point(metrics: dict[str, dict[str, float]], names: list[str]) -> Tensor:
    return torch.tensor([[metrics[name][key] for key in METRICS] for name in names], dtype=torch.float64)


def add_intervals(metrics: dict[str, Any], results: dict[str, AttackResult], index: Tensor, truth: Tensor,
                  pub_truth: Tensor | None, run_dir: Path, seed: int) -> None:
    """Add ci (and ci_pub), paired and bootstrap to `metrics`; write run_dir/bootstrap.pt."""
    names = list(results)
    negatives = int((~truth).sum())
    replicates = _replicates(results, index, truth, seed)
    metrics["ci"] = intervals(replicates, names, negatives)
    saved: dict[str, Any] = {"attacks": names, "metrics": list(METRICS), "eval": metrics["eval"],
                             "negatives": negatives, "replicates": replicates,
                             "point": _point(metrics["attacks"], names)}
    if pub_truth is not None and "attacks_pub" in metrics:
        pub_index = torch.arange(pub_truth.numel())
        pub_replicates = _replicates(results, pub_index, pub_truth, seed)
        metrics["ci_pub"] = intervals(pub_replicates, names, int((~pub_truth).sum()))
        saved.update({"replicates_pub": pub_replicates, "point_pub": _point(metrics["attacks_pub"], names),
                      "negatives_pub": int((~pub_truth).sum())})
    reference = REFERENCE if REFERENCE in names else metrics["submit"]
    metrics["paired"] = {"reference": reference, "level": LEVEL,
                         "attacks": paired_difference(replicates, saved["point"], names, reference, negatives)}
    metrics["bootstrap"] = {"resamples": RESAMPLES, "level": LEVEL, "stratified": True, "method": "percentile",
                            "seed": derive_seed(seed, "bootstrap"), "positives": int(truth.sum()),
                            "negatives": negatives, "measurable": measurable(negatives), "file": "bootstrap.pt"}
    atomic_torch_save(Path(run_dir) / "bootstrap.pt", saved)


def cell(metrics: dict[str, Any], name: str, key: str, digits: int = 3) -> str:
    """`0.708 [0.685, 0.731]`, or `n/m` where the metric is not measurable on these points."""
    value = metrics["attacks"][name][key]
    bounds = metrics.get("ci", {}).get(name, {}).get(key, "absent")
    if bounds is None:
        return "n/m"
    if bounds == "absent":
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{bounds[0]:.{digits}f}, {bounds[1]:.{digits}f}]"
