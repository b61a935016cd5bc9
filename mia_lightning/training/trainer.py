"""The one lightning.Trainer factory: the `trainer` group's flags, plus what each caller must add.

Target, shadows and stacks add a checkpoint callback, a labelled progress bar, TensorBoard
and the atomic checkpoint IO (training/fit.py); the master MLP asks for one device and
determinism (attacks/master.py). Nothing else differs between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from mia_lightning.config.trainer import TrainerSettings

# mia trains from in-memory tensors, without validation loops or model summaries; a
# user's own flag wins over these (the caller's `overrides` win over both).
BASE_FLAGS: dict[str, Any] = {
    "enable_model_summary": False, "limit_val_batches": 0, "num_sanity_val_steps": 0,
    "use_distributed_sampler": False,  # our samplers shard by rank; Lightning's wrapper would shard twice
}


def build_trainer(settings: TrainerSettings, *, max_epochs: int, max_steps: int = -1, logger: Any = False,
                  callbacks: Sequence[Callback] = (), plugins: Sequence[Any] = (), **overrides: Any) -> L.Trainer:
    """A Trainer from `settings.flags`; `overrides` are what this kind of run must have."""
    flags = {**BASE_FLAGS, **settings.flags, **overrides}
    return L.Trainer(**flags, max_epochs=int(max_epochs), max_steps=int(max_steps), logger=logger,
                     callbacks=list(callbacks), plugins=list(plugins))


def single_device(devices: Any) -> Any:
    """One device of the configured ones (a small MLP gains nothing from several, and DDP
    would re-launch the whole script under Hydra)."""
    if isinstance(devices, (int, str)) or devices is None:
        return 1
    chosen = list(devices)[:1]  # an explicit device list: keep its first
    return [int(chosen[0])] if chosen else 1
