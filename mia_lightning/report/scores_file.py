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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ScoresFile:
    """A checked scores.pt: every field the attack stage writes, shapes agreeing."""

    path: Path
    ids: Tensor  # int64 [N]
    is_pub: Tensor  # bool [N]
    membership: Tensor  # int8 [N]: pub's published label, -1 on priv
    attacks: list[str]
    scores: Tensor  # float64 [N, M]

    def column(self, attack: str) -> Tensor:
        """float64 [N]: one attack's scores, or a one-line error naming what the file has."""
        if attack not in self.attacks:
            raise MiaError(f"{self.path}: no attack {attack!r} (it has {', '.join(self.attacks)})")
        return self.scores[:, self.attacks.index(attack)].double()


def read_scores_file(path: str | os.PathLike) -> ScoresFile:
    """Load a scores.pt (restricted unpickler) and check its fields, so a truncated, foreign or
    hand-edited file gives one line naming it rather than a traceback in the reader."""
    obj = safe_torch_load(path)
    fields = ("ids", "is_pub", "membership", "attacks", "scores")
    if not (isinstance(obj, dict) and all(key in obj for key in fields) and isinstance(obj["attacks"], list)
            and all(isinstance(obj[key], Tensor) for key in ("ids", "is_pub", "membership", "scores"))):
        raise MiaError(f"{path}: not a scores file (expected {', '.join(fields)})")
    ids, table, names = obj["ids"], obj["scores"], obj["attacks"]
    if table.dim() != 2 or table.shape != (ids.numel(), len(names)):
        raise MiaError(f"{path}: scores have shape {list(table.shape)} for {ids.numel()} ids and "
                       f"{len(names)} attacks")
    if obj["is_pub"].shape != ids.shape or obj["membership"].shape != ids.shape:
        raise MiaError(f"{path}: is_pub / membership do not have one entry per id ({ids.numel()})")
    return ScoresFile(path=Path(path), ids=ids, is_pub=obj["is_pub"].bool(), membership=obj["membership"], attacks=names,
                      scores=table)


def read_scores(path: str | os.PathLike) -> dict[str, Tensor]:
    """{attack: float64 [N]} plus "ids" from a scores.pt, checked."""
    saved = read_scores_file(path)
    return {"ids": saved.ids, **{name: saved.scores[:, i] for i, name in enumerate(saved.attacks)}}
