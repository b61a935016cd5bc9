"""The submission file: one membership score per private id, as the assignment's server reads it."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import torch

from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_write_text


def write_submission(
    path: str | os.PathLike, ids: torch.Tensor, scores: torch.Tensor, id_column: str = "ids"
) -> Path:
    """Write `<id_column>,score` rows for every private id; refuses non-finite or duplicate rows."""
    ids_list = [int(i) for i in ids.tolist()]
    score_list = [float(s) for s in scores.to(torch.float64).tolist()]
    if len(ids_list) != len(score_list):
        raise MiaError(f"submission: {len(ids_list)} ids but {len(score_list)} scores")
    if len(set(ids_list)) != len(ids_list):
        raise MiaError("submission: duplicate ids")
    bad = [i for i, s in zip(ids_list, score_list) if not math.isfinite(s)]
    if bad:
        raise MiaError(f"submission: {len(bad)} non-finite scores (first id {bad[0]})")
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow([id_column, "score"])
    writer.writerows((i, repr(s)) for i, s in zip(ids_list, score_list))
    return atomic_write_text(path, text.getvalue())


def read_submission(path: str | os.PathLike) -> dict[int, float]:
    """Read a submission back (for checks and tests)."""
    with open(path, newline="") as handle:
        rows = list(csv.reader(handle))
    header, body = rows[0], rows[1:]
    if len(header) != 2 or header[1] != "score":
        raise MiaError(f"{path}: header must be '<id column>,score', got {','.join(header)}")
    return {int(row[0]): float(row[1]) for row in body}
