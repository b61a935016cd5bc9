"""The shadow store: where trained shadows, their logits and the keep mask live.

```
<store.root>/<task-fingerprint>/<shadow-config-hash>/
    recipe.json   keep.pt
    shadow_000/   checkpoints/last.ckpt  weights.pt  logits.pt  summary.json  history.jsonl  lock  done
<store.root>/<task-fingerprint>/target_<weights-hash>/logits.pt
<store.root>/tasks/<simulation-hash>/  pub.pt  priv_out.pt  01_MIA.pt  truth.pt  task.json  done
```
Each shadow is written only by the process holding its `lock`; shared files (keep.pt,
recipe.json) are written atomically and are identical whoever writes them, because they
are pure functions of the config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_torch_save, atomic_write_json
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.shadows.fingerprint import config_hash
from mia_lightning.shadows.keep_mask import build_keep_mask

DONE = "done"


@dataclass
class ShadowStore:
    root: Path
    task_fingerprint: str
    recipe: dict[str, Any]  # every value that decides a shadow's weights

    @property
    def recipe_hash(self) -> str:
        return config_hash(self.recipe)

    @property
    def task_dir(self) -> Path:
        return self.root / self.task_fingerprint

    @property
    def dir(self) -> Path:
        return self.task_dir / self.recipe_hash

    def shadow_dir(self, index: int) -> Path:
        return self.dir / f"shadow_{index:03d}"

    def lock_path(self, index: int) -> Path:
        """The file whose lock says a process is training shadow `index` (shadows/runner.py)."""
        return self.shadow_dir(index) / "lock"

    def is_done(self, index: int) -> bool:
        return (self.shadow_dir(index) / DONE).is_file()

    def summary(self, index: int) -> dict[str, Any] | None:
        """The shadow's `summary.json` (accuracies, seconds), or None if it has none (yet)."""
        try:
            return json.loads((self.shadow_dir(index) / "summary.json").read_text())
        except (OSError, ValueError):
            return None

    def target_dir(self, weights_hash: str) -> Path:
        return self.task_dir / f"target_{weights_hash}"

    def prepare(self) -> None:
        """Create the entry and record its recipe (readable by humans and `mia-summarize`)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        recipe_file = self.dir / "recipe.json"
        if not recipe_file.is_file():
            atomic_write_json(recipe_file, self.recipe)

    def keep_mask(self, num_models: int, num_points: int, num_public: int) -> Tensor:
        """bool [num_models, N]; keep.pt holds the largest mask built so far (a prefix-stable mask)."""
        split = self.recipe["split"]
        built = num_models
        path = self.dir / "keep.pt"
        if path.is_file():
            stored = safe_torch_load(path)
            if not isinstance(stored, Tensor) or stored.dtype != torch.bool or stored.dim() != 2 or stored.shape[1] != num_points:
                raise MiaError(f"{path}: not a keep mask for {num_points} points; delete it to rebuild")
            built = max(built, int(stored.shape[0])) if split == "halves" else built
        mask = build_keep_mask(split, built, num_points, num_public, self.recipe["in_fraction"], self.recipe["seed"])
        if path.is_file():
            if not torch.equal(mask[: stored.shape[0]], stored[: mask.shape[0]]):
                raise MiaError(f"{path}: differs from the mask this config builds; the store is inconsistent")
        if not path.is_file() or mask.shape[0] > stored.shape[0]:
            atomic_torch_save(path, mask)
        return mask[:num_models]
