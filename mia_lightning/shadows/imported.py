"""Imported shadows: a store entry made from another tool's logits (`mia-store import`).

```
<store.root>/<task-fingerprint>/imported-<name>/
    recipe.json  (what was imported, from where)   keep.pt   entry_done
    shadow_000/  logits.pt  summary.json  done
```
It holds logits, not weights: the attacks read only logits, so every attack runs on it
(`store.entry=<name>`), while anything that needs weights (a query view it lacks, training
more shadows) is refused with one line. The task fingerprint is the pool's, so an entry
imported for one task is never read by another.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_torch_save, atomic_write_json, atomic_write_text
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.logits.logits_file import write_logits
from mia_lightning.shadows.job import accuracy_summary
from mia_lightning.shadows.store import DONE, ShadowStore

ENTRY_DONE = "entry_done"


def entry_dir(root: Path, task_fingerprint: str, name: str) -> Path:
    if not name or "/" in name or name.startswith("."):
        raise MiaError(f"store.entry={name!r}: an imported entry's name must be a plain directory name")
    return Path(root) / task_fingerprint / f"imported-{name}"


def write_entry(root: Path, task_fingerprint: str, name: str, logits: Tensor, keep: Tensor, labels: Tensor,
                queries: list[str], source: dict[str, Any], replace: bool = False) -> Path:
    """A complete entry from logits [K, N, A, C] and keep [K, N]; `entry_done` is written last."""
    directory = entry_dir(root, task_fingerprint, name)
    if directory.exists():
        if not replace:
            raise MiaError(f"{directory}: an imported entry of that name exists (choose another --name, or --replace)")
        shutil.rmtree(directory)
    if logits.shape[2] != len(queries):
        raise MiaError(f"{logits.shape[2]} queries in the logits but {len(queries)} names given: {queries}")
    atomic_write_json(directory / "recipe.json", {"imported": source.get("format", "lira"), "name": name,
                                                  "models": int(logits.shape[0]), "queries": list(queries), **source})
    atomic_torch_save(directory / "keep.pt", keep.to(torch.bool).contiguous())
    for index in range(logits.shape[0]):
        shadow = directory / f"shadow_{index:03d}"
        write_logits(shadow / "logits.pt", {query: logits[index, :, a] for a, query in enumerate(queries)})
        summary = {"index": index, "imported": True, "in_points": int(keep[index].sum())}
        if "identity" in queries:
            summary.update(accuracy_summary(logits[index, :, queries.index("identity")], labels, keep[index]))
        atomic_write_json(shadow / "summary.json", summary)
        atomic_write_text(shadow / DONE, json.dumps(summary) + "\n")
    atomic_write_text(directory / ENTRY_DONE, "\n")
    return directory


@dataclass
class ImportedStore(ShadowStore):
    """A ShadowStore whose entry is an imported one: its keep mask is read, never built."""

    name: str = ""

    @property
    def dir(self) -> Path:
        return entry_dir(self.root, self.task_fingerprint, self.name)

    def prepare(self) -> None:
        """Imported entries are written whole by `mia-store import`; nothing to create here."""

    def keep_mask(self, num_models: int, num_points: int, num_public: int) -> Tensor:
        keep = safe_torch_load(self.dir / "keep.pt")
        if not isinstance(keep, Tensor) or keep.dtype != torch.bool or keep.dim() != 2 or keep.shape[1] != num_points:
            raise MiaError(f"{self.dir / 'keep.pt'}: not a keep mask for {num_points} points; import the entry again")
        if num_models > keep.shape[0]:
            raise MiaError(f"store.entry={self.name} holds {keep.shape[0]} shadows; set shadow.count (and "
                           f"shadow.only) to at most {keep.shape[0]}")
        return keep[:num_models]


def open_imported(root: Path, task_fingerprint: str, name: str, queries: list[str]) -> ImportedStore:
    """The imported entry `name` of this task, checked to be complete and to hold `queries`."""
    directory = entry_dir(root, task_fingerprint, name)
    if not (directory / ENTRY_DONE).is_file():
        others = sorted(p.name[len("imported-"):] for p in directory.parent.glob("imported-*")) \
            if directory.parent.is_dir() else []
        raise MiaError(f"store.entry={name}: no complete imported entry {directory} for this task "
                       f"(imported here: {', '.join(others) or 'none'}; see `mia-store import --help`)")
    recipe = json.loads((directory / "recipe.json").read_text())
    missing = [q for q in queries if q not in recipe.get("queries", [])]
    if missing:
        raise MiaError(f"store.entry={name} holds the queries {recipe.get('queries')} (no weights to compute "
                       f"others): set attack.queries to those, not {queries}")
    return ImportedStore(Path(root), task_fingerprint, recipe, name=name)
