"""One attack of run A over one attack of run B on priv's hidden truth (or pub), with a paired interval.

    python scripts/paired_ratio.py RUN_A:ATTACK RUN_B:ATTACK --truth <store>/tasks/<task>/truth.pt
    python scripts/paired_ratio.py RUN_A:ATTACK RUN_B:ATTACK --split pub

For two runs on the same task whose own `bootstrap.pt` files cannot be paired, because
they were drawn with different `seed`s (e.g. two oracle shadow draws, `seed=0` against
`seed=1`): both runs' priv scores (`scores.pt`) are scored on one shared set of stratified
resamples (metrics/bootstrap.py), and the ratio A / B is taken resample by resample, as in
scripts/study_recipe_mismatch.py. Prints TPR@5%FPR and TPR@1%FPR: A / B = ratio [95% interval].
With --truth it reads truth.pt, so it is a measurement, never a step that chooses anything.
`--split pub` scores the public points against pub's own membership (in scores.pt; the
cross-fitted held-out scores for attacks trained on pub), the same comparison a real
attacker can make, e.g. "are the searched shadows better than the given ones beyond pub's
noise?"; it reads no truth.pt.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import Tensor

from mia_lightning.errors import MiaError
from mia_lightning.metrics.bootstrap import METRICS, bootstrap, ratio_interval
from mia_lightning.metrics.roc import summarize
from mia_lightning.report.scores_file import read_scores_file
from mia_lightning.task.load import read_truth

HEADLINE = ("tpr@0.05", "tpr@0.01")


def split_scores(spec: str, split: str = "priv") -> tuple[Tensor, Tensor, Tensor]:
    """(ids, float64 scores, scores.pt's membership) of the `split` points for `RUN_DIR:ATTACK`
    (the membership is pub's own on pub, unknown on priv)."""
    run_dir, sep, attack = spec.rpartition(":")
    if not sep or not run_dir or not attack:
        raise MiaError(f"{spec}: expected RUN_DIR:ATTACK")
    saved = read_scores_file(Path(run_dir) / "scores.pt")
    column = saved.column(attack)
    chosen = saved.is_pub if split == "pub" else ~saved.is_pub
    return saved.ids[chosen], column[chosen], saved.membership[chosen]


def membership(truth_path: str, ids: Tensor) -> Tensor:
    """bool [n]: the hidden membership of `ids`, in their order, through the scorer's own checked
    reader (read_truth uses only the split's ids)."""
    return read_truth(truth_path, SimpleNamespace(ids=ids), key="--truth").bool()


def paired_ratios(a: str, b: str, truth: str | None, resamples: int, seed: int, split: str = "priv") -> list[str]:
    (ids_a, scores_a, known_a), (ids_b, scores_b, known_b) = split_scores(a, split), split_scores(b, split)
    what = "public" if split == "pub" else "private"
    if not torch.equal(ids_a, ids_b) or (split == "pub" and not torch.equal(known_a, known_b)):
        raise MiaError(f"{a} and {b}: the runs scored different {what} points (not the same task)")
    if split == "pub":
        is_member = known_a.bool()
    elif truth is None:
        raise MiaError("--truth is required to score priv (or --split pub: pub's own membership)")
    else:
        is_member = membership(truth, ids_a)
    rep_a = bootstrap(scores_a, is_member, resamples=resamples, seed=seed)[0]
    rep_b = bootstrap(scores_b, is_member, resamples=resamples, seed=seed)[0]
    point_a, point_b = summarize(scores_a, is_member), summarize(scores_b, is_member)
    lines = []
    for metric in HEADLINE:
        row = METRICS.index(metric)
        low, high = ratio_interval(rep_a[row], rep_b[row]).tolist()
        ratio = point_a[metric] / max(point_b[metric], 1e-9)
        lines.append(f"{metric}: {point_a[metric]:.3f} / {point_b[metric]:.3f} = {ratio:.2f}x [{low:.2f}, {high:.2f}]")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="RUN_DIR:ATTACK (the numerator)")
    parser.add_argument("b", help="RUN_DIR:ATTACK (the denominator)")
    parser.add_argument("--truth", help="the task's truth.pt (priv's hidden membership; not read with --split pub)")
    parser.add_argument("--split", choices=("priv", "pub"), default="priv",
                        help="pub: score the public points against pub's own membership")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="the shared resamples' seed")
    args = parser.parse_args(argv)
    try:
        print("\n".join(paired_ratios(args.a, args.b, args.truth, args.resamples, args.seed, args.split)))
    except MiaError as err:
        print(f"paired_ratio: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
