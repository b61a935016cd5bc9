"""`logits.pt`: one model's logits on every pool point, one slice per augmentation query.

Stored as `{"queries": [name, ...], "logits": float32 [N, A, C]}` so that a sweep over
`attack.queries` reuses what is there and computes only the missing views.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_torch_save
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.logits.queries import Query


def read_logits(path: str | os.PathLike, num_points: int | None = None) -> dict[str, Tensor]:
    """{query name: float32 [N, C]} from a logits file, validated."""
    obj = safe_torch_load(path)
    names = obj.get("queries") if isinstance(obj, dict) else None
    logits = obj.get("logits") if isinstance(obj, dict) else None
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names) and isinstance(logits, Tensor)):
        raise MiaError(f"{path}: not a logits file (expected queries + logits); delete it to recompute")
    if logits.dim() != 3 or logits.shape[1] != len(names) or not logits.is_floating_point():
        raise MiaError(f"{path}: logits have shape {list(logits.shape)} for {len(names)} queries; delete it to recompute")
    if num_points is not None and logits.shape[0] != num_points:
        raise MiaError(f"{path}: logits cover {logits.shape[0]} points, the task has {num_points}; delete it to recompute")
    if not torch.isfinite(logits).all():
        raise MiaError(f"{path}: logits hold NaN or infinite values; delete it to recompute")
    return {name: logits[:, index].float() for index, name in enumerate(names)}


def write_logits(path: str | os.PathLike, by_query: dict[str, Tensor]) -> None:
    names = list(by_query)
    atomic_torch_save(path, {"queries": names, "logits": torch.stack([by_query[n] for n in names], dim=1).contiguous()})


def ensure_logits(
    path: Path, queries: list[Query], num_points: int, compute: Callable[[list[Query]], Tensor]
) -> Tensor:
    """float32 [N, A, C] for `queries`, computing (and storing) only the views not yet on disk."""
    stored = read_logits(path, num_points) if path.is_file() else {}
    missing = [q for q in queries if q.name not in stored]
    if missing:
        fresh = compute(missing)
        for index, query in enumerate(missing):
            stored[query.name] = fresh[:, index]
        write_logits(path, stored)
    return torch.stack([stored[q.name] for q in queries], dim=1)
