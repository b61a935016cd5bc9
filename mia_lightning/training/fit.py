"""Train one classifier as a resumable Lightning run in a fixed directory.

Used for the simulated target and for every shadow. The run's directory is fixed (not
the Hydra run dir), so `trainer.fit(ckpt_path=<dir>/checkpoints/last.ckpt)` really
resumes across processes; Lightning's own `ckpt_path="last"` would silently start from
scratch in a new run dir.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, Checkpoint
from torch import Tensor, nn

from mia_lightning.config.recipe import TrainRecipe
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.data.memory import InMemoryDataModule, PlainDataModule
from mia_lightning.errors import MiaError
from mia_lightning.models.classifier import ClassifierModule
from mia_lightning.training.checkpoint_io import AtomicCheckpointIO
from mia_lightning.training.curves import CurveLogger
from mia_lightning.training.progress import ModelProgressBar
from mia_lightning.training.trainer import build_trainer

LAST_CHECKPOINT = Path("checkpoints") / "last.ckpt"  # a run's resume point, relative to its directory


@dataclass
class FitSpec:
    """What to train: data, architecture and recipe."""

    images: Tensor
    labels: Tensor
    train_index: Tensor
    num_classes: int
    stem: str
    mean: list[float]
    std: list[float]
    recipe: TrainRecipe
    seed: int
    channels_last: bool = True
    # True: the fast path (pool on the device, batch augmentation on the device);
    # False: the plain path (DataLoader, per-sample CPU augmentation, collation, host->device
    # copy per batch). Both train exactly the same recipe (same batches, same augmentation).
    fast: bool = True


def append_history(run_dir: Path, event: dict[str, Any]) -> None:
    """One JSON line per training start: how often a model was (re)trained, by whom."""
    run_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": time.time(), "pid": os.getpid(), **event}) + "\n"
    with open(run_dir / "history.jsonl", "a") as handle:
        handle.write(line)


class EpochCheckpoint(Checkpoint):
    """`checkpoints/last.ckpt` at the end of every training epoch, through the CheckpointIO plugin.

    Lightning's own `ModelCheckpoint(save_top_k=0, save_last=True)` writes `last.ckpt` only
    when training ends (2.6 saves "last" only after a top-k save), so a killed run had no
    checkpoint to resume from. Being a `Checkpoint`, this one runs after the other callbacks'
    epoch-end hooks, and Lightning adds no default ModelCheckpoint next to it.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.fast_dev_run:
            return
        trainer.save_checkpoint(self.path, weights_only=False)  # full state: resume needs it


def run_trainer(run_dir: Path, settings: TrainerSettings, label: str, max_epochs: int, logger: bool = True,
                callbacks: Sequence[Callback] = (), max_steps: int = -1) -> L.Trainer:
    """The Trainer of one resumable run in `run_dir` (shadows, stacks, the target).

    Checkpoint `checkpoints/last.ckpt` after every epoch (atomically), TensorBoard in `tb/`,
    no validation, and a progress bar labelled with the model's name.
    """
    all_callbacks: list[Callback] = [EpochCheckpoint(run_dir / LAST_CHECKPOINT), *callbacks]
    if settings.progress_bar:  # drawn on a terminal only (training/progress.py)
        all_callbacks.append(ModelProgressBar(label))
    tensorboard = CurveLogger(save_dir=str(run_dir), name="tb", version="", default_hp_metric=False)
    return build_trainer(settings, max_epochs=max_epochs, max_steps=max_steps, logger=tensorboard if logger else False,
                         callbacks=all_callbacks, plugins=[AtomicCheckpointIO()], default_root_dir=run_dir)


def fit_resuming(module: L.LightningModule, datamodule: L.LightningDataModule, run_dir: Path,
                 settings: TrainerSettings, label: str, max_epochs: int, logger: bool, callbacks: Sequence[Callback],
                 max_steps: int, history_dirs: Sequence[Path] = (), **event: Any) -> None:
    """`trainer.fit` in `run_dir`, resumed from its `last.ckpt` when one is there; each start
    is a `fit_start` line (plus `event`) in the history of `run_dir` and of `history_dirs`.

    A run that a Trainer flag stopped early (`trainer.max_time`) raises, so that it is
    never taken for a finished model; rerunning resumes it.
    """
    last = run_dir / LAST_CHECKPOINT
    resume = last.is_file()
    for directory in [run_dir, *history_dirs]:
        append_history(directory, {"event": "fit_start", "resume": resume, "label": label, **event})
    trainer = run_trainer(run_dir, settings, label, max_epochs, logger, callbacks, max_steps)
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None,
                weights_only=True)  # our CheckpointIO loads restricted anyway; say so
    if max_steps < 0 and trainer.current_epoch < max_epochs and not trainer.interrupted:
        raise MiaError(f"{label} stopped after {trainer.current_epoch} of {max_epochs} epochs "
                       f"(a trainer flag such as trainer.max_time); rerun the same command to resume it")


def fit_classifier(spec: FitSpec, run_dir: Path, settings: TrainerSettings, label: str, logger: bool = True, *,
                   callbacks: Sequence[Callback] = (), max_steps: int = -1) -> nn.Module:
    """Train (or resume) in `run_dir`; returns the trained torchvision network on CPU.

    `callbacks` are added to the run's own (checkpointing, progress bar); `max_steps`
    stops early (the benchmark uses both); neither changes what a full run trains.
    """
    L.seed_everything(spec.seed, workers=False, verbose=False)
    recipe = spec.recipe
    module = ClassifierModule(
        num_classes=spec.num_classes, stem=spec.stem, mean=spec.mean, std=spec.std,
        optimizer=asdict(recipe.optimizer), augment=asdict(recipe.augment), seed=spec.seed,
        channels_last=spec.channels_last, device_augment=spec.fast, label_smoothing=recipe.label_smoothing,
    )
    if spec.fast:
        datamodule: L.LightningDataModule = InMemoryDataModule(
            spec.images, spec.labels, spec.train_index, recipe.batch_size, spec.seed)
    else:
        datamodule = PlainDataModule(spec.images, spec.labels, spec.train_index, recipe.batch_size, spec.seed,
                                     asdict(recipe.augment))
    fit_resuming(module, datamodule, run_dir, settings, label, recipe.epochs, logger, callbacks, max_steps)
    return module.net.to("cpu").to(memory_format=torch.contiguous_format)
