"""`scores.csv` and `scores.pt`: every attack's score on every pool point, in the run dir.

One row per pool point: `id`, `split` (pub / priv), `membership` (pub's published label;
empty for priv: the hidden truth of a simulated task is never written here), then one
column per attack (float64 written as Python's shortest round-trip repr, so the file gives
back the exact scores). `scores.pt` holds the same as tensors (`ids` int64 [N], `is_pub` bool [N],
`membership` int8 [N] with -1 for priv, `attacks` names, `scores` float64 [N, M]) for
`torch.load(weights_only=True)` / mia's safe loader. Written by the attack stage, so
`mia stage=attacks` rewrites them.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackResult
from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_torch_save, atomic_write_text
from mia_lightning.io.safe_load import safe_torch_load


def score_table(results: dict[str, AttackResult], num_points: int) -> tuple[list[str], Tensor]:
    """(attack names, float64 [N, M]) in the order the attacks ran."""
    names = list(results)
    if not names:
        return names, torch.zeros(num_points, 0, dtype=torch.float64)
    return names, torch.stack([results[name].scores.double() for name in names], dim=1)


def write_scores(run_dir: str | os.PathLike, ids: Tensor, num_pub: int, pub_membership: Tensor,
                 results: dict[str, AttackResult]) -> tuple[Path, Path]:
    """Write scores.csv and scores.pt into `run_dir`; pool = pub (first num_pub) then priv."""
    run_dir = Path(run_dir)
    ids = ids.to(torch.int64)
    if ids.unique().numel() != ids.numel():
        raise MiaError("the pool's ids are not unique; scores.csv needs one row per id")
    names, table = score_table(results, ids.numel())
    membership = torch.full((ids.numel(),), -1, dtype=torch.int8)
    membership[:num_pub] = pub_membership.to(torch.int8)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["id", "split", "membership", *names])
    for row, (point_id, member) in enumerate(zip(ids.tolist(), membership.tolist())):
        writer.writerow([point_id, "pub" if row < num_pub else "priv", "" if member < 0 else member,
                         *map(repr, table[row].tolist())])
    csv_path = atomic_write_text(run_dir / "scores.csv", buffer.getvalue())
    is_pub = torch.arange(ids.numel()) < num_pub
    pt_path = atomic_torch_save(run_dir / "scores.pt", {"ids": ids, "is_pub": is_pub, "membership": membership,
                                                        "attacks": names, "scores": table.contiguous()})
    return csv_path, pt_path


def read_scores(path: str | os.PathLike) -> dict[str, Tensor]:
    """{attack: float64 [N]} plus "ids" from a scores.pt, checked."""
    obj = safe_torch_load(path)
    if not (isinstance(obj, dict) and isinstance(obj.get("attacks"), list) and isinstance(obj.get("scores"), Tensor)
            and isinstance(obj.get("ids"), Tensor)):
        raise MiaError(f"{path}: not a scores file (expected ids, attacks, scores)")
    table, names = obj["scores"], obj["attacks"]
    if table.dim() != 2 or table.shape != (obj["ids"].numel(), len(names)):
        raise MiaError(f"{path}: scores have shape {list(table.shape)} for {obj['ids'].numel()} ids and "
                       f"{len(names)} attacks")
    return {"ids": obj["ids"], **{name: table[:, i] for i, name in enumerate(names)}}
