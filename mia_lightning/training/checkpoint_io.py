"""Lightning checkpoint I/O that never leaves a torn file and never fully unpickles.

Saves go to a temporary name and are renamed into place, so a job killed while writing
`last.ckpt` leaves the previous, complete checkpoint. Loads use the restricted unpickler
(`weights_only=True`), so a checkpoint someone else put in the store cannot run code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from mia_lightning.io.atomic import atomic_write
from mia_lightning.io.safe_load import safe_torch_load


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        atomic_write(Path(path), lambda handle: torch.save(checkpoint, handle))

    def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: Any = None) -> dict[str, Any]:
        return safe_torch_load(path, key="checkpoint")
