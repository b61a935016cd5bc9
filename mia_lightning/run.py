"""One `mia` invocation: its typed config, its run directory, and how long each stage took."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mia_lightning.config.schema import Config
from mia_lightning.config.trainer import TrainerSettings


@dataclass
class Run:
    config: Config  # typed, validated (config/schema.py)
    run_dir: Path  # the Hydra run dir: metrics.json, plots, submission.csv, tb/
    composed: DictConfig | None = None  # the config as Hydra composed it (shown in TensorBoard's Text tab)
    seconds: dict[str, float] = field(default_factory=dict)
    # what the stages did, for the run's closing line (outcome.py): target_trained, shadows_trained,
    # shadows_reused, task_dir, store_dir, recipe_search, reported
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def trainer(self) -> TrainerSettings:
        return self.config.trainer_settings()

    @property
    def store_root(self) -> Path:
        return Path(str(self.config.store.root)).expanduser()

    @property
    def stage(self) -> str:
        return self.config.stage

    @contextlib.contextmanager
    def timed(self, stage: str) -> Iterator[None]:
        """Add the wall time of the `with` block to `seconds[stage]` (metrics.json "seconds")."""
        started = time.monotonic()
        try:
            yield
        finally:
            self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.monotonic() - started, 2)
