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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from mia_lightning.data.memory import InMemoryDataModule
from mia_lightning.models.classifier import ClassifierModule
from mia_lightning.training.checkpoint_io import AtomicCheckpointIO
from mia_lightning.training.progress import LabelledProgressBar


@dataclass
class FitSpec:
    """What to train: data, architecture and recipe (all plain values)."""

    images: Tensor
    labels: Tensor
    train_index: Tensor
    num_classes: int
    stem: str
    mean: list[float]
    std: list[float]
    recipe: dict[str, Any]  # TrainRecipe as a dict: epochs, batch_size, optimizer, augment
    seed: int
    channels_last: bool = True


def trainer_kwargs(trainer_cfg: Any) -> dict[str, Any]:
    """lightning.Trainer arguments from the `trainer` config group."""
    cfg = OmegaConf.to_container(trainer_cfg) if isinstance(trainer_cfg, DictConfig) else dict(vars(trainer_cfg))
    return {
        "accelerator": cfg["accelerator"],
        "devices": cfg["devices"],
        "strategy": cfg["strategy"],
        "precision": cfg["precision"],
        "log_every_n_steps": cfg["log_every_n_steps"],
    }


def append_history(run_dir: Path, event: dict[str, Any]) -> None:
    """One JSON line per training start: how often a model was (re)trained, by whom."""
    run_dir.mkdir(parents=True, exist_ok=True)
    line = json.dumps({"time": time.time(), "pid": os.getpid(), **event}) + "\n"
    with open(run_dir / "history.jsonl", "a") as handle:
        handle.write(line)


def fit_classifier(spec: FitSpec, run_dir: Path, trainer_cfg: Any, label: str, logger: bool = True) -> nn.Module:
    """Train (or resume) in `run_dir`; returns the trained torchvision network on CPU."""
    L.seed_everything(spec.seed, workers=False, verbose=False)
    module = ClassifierModule(
        num_classes=spec.num_classes, stem=spec.stem, mean=spec.mean, std=spec.std,
        optimizer=dict(spec.recipe["optimizer"]), augment=dict(spec.recipe["augment"]),
        seed=spec.seed, channels_last=spec.channels_last,
    )
    datamodule = InMemoryDataModule(spec.images, spec.labels, spec.train_index, spec.recipe["batch_size"], spec.seed)
    last = run_dir / "checkpoints" / "last.ckpt"
    resume = last.is_file()
    append_history(run_dir, {"event": "fit_start", "resume": resume, "label": label})
    show_bar = bool(getattr(trainer_cfg, "enable_progress_bar", True))
    callbacks: list[Any] = [
        ModelCheckpoint(dirpath=run_dir / "checkpoints", save_last=True, save_top_k=0, every_n_epochs=1,
                        save_on_train_epoch_end=True),
    ]
    if show_bar:
        callbacks.append(LabelledProgressBar(label))
    trainer = L.Trainer(
        **trainer_kwargs(trainer_cfg),
        max_epochs=spec.recipe["epochs"],
        default_root_dir=run_dir,
        logger=TensorBoardLogger(save_dir=str(run_dir), name="tb", version="", default_hp_metric=False) if logger else False,
        callbacks=callbacks,
        plugins=[AtomicCheckpointIO()],
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_model_summary=False,
        enable_progress_bar=show_bar,
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=str(last) if resume else None)
    net = module.net.to("cpu").to(memory_format=torch.contiguous_format)
    return net
