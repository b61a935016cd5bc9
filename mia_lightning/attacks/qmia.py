"""`qmia`: quantile-regression membership inference (Bertran et al., NeurIPS 2023, "Scalable
membership inference attacks via quantile regression"; amazon-science/quantile-mia).

No shadow models: a regressor (models/quantile.py) learns, from images that are known
non-members of the target (pub's non-members), the q-quantile of the target's score
s(x) given the image, with the pinball loss. A non-member's score then exceeds its own
predicted quantile with probability about 1 - q, a member's (fitted, confident) far more
often, so score(x) = s(x) - q_hat(x). s is the paper's hinge z_y - max_{y' != y} z_y' (or
LiRA's phi) of the target on the identity query.

Each fit is a Lightning run (the `trainer` group's Trainer from training/trainer.py, one
device, deterministic). It trains on pub's membership labels (its non-members), so pub
points are scored by regressors that never saw them (attacks/crossfit.py: `folds` fits)
and priv points by one fitted on all of pub's non-members: folds + 1 fits in all.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor
from torch.utils.data import DataLoader

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.crossfit import cross_fit
from mia_lightning.config.newer_attacks import QmiaConfig
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.data.memory import EpochBatchSampler, TensorBatches, rank_and_world
from mia_lightning.errors import MiaError
from mia_lightning.models.quantile import QuantileRegressor
from mia_lightning.training.trainer import build_trainer, single_device
from mia_lightning.utils.seeding import derive_seed


def target_signal(target_logits: Tensor, labels: Tensor, signal: str) -> Tensor:
    """float64 [N]: the target's hinge z_y - max_{y' != y} z_y' or phi, identity query."""
    logits = target_logits[:, 0].double()
    true = logits.gather(1, labels.view(-1, 1)).squeeze(1)
    others = logits.scatter(1, labels.view(-1, 1), float("-inf"))
    if logits.shape[1] == 1:  # one class: nothing to compare with
        return torch.zeros_like(true)
    rest = others.amax(1) if signal == "hinge" else torch.logsumexp(others, 1)
    return true - rest


class RegressionData(L.LightningDataModule):
    """Shuffled in-memory batches of (image, [label, score]), order a function of seed and epoch."""

    def __init__(self, images: Tensor, labels: Tensor, scores: Tensor, batch_size: int, seed: int) -> None:
        super().__init__()
        self.images = images
        self.packed = torch.stack([labels.float(), scores.float()], dim=1)
        self.batch_size, self.seed = int(batch_size), int(seed)

    def train_dataloader(self) -> DataLoader:
        rank, world = rank_and_world(self.trainer)
        sampler = EpochBatchSampler(len(self.packed), self.batch_size, self.seed, rank, world)
        return DataLoader(TensorBatches(self.images, self.packed), batch_size=None, sampler=sampler, num_workers=0)


def fit_regressor(images: Tensor, labels: Tensor, scores: Tensor, num_classes: int, cfg: QmiaConfig,
                  settings: TrainerSettings, seed: int, log_dir: Path | None = None,
                  version: str = "all") -> QuantileRegressor:
    """One regressor on (images [n, 3, S, S] in [0, 1], labels [n], target scores [n])."""
    if images.shape[0] < 2:
        raise MiaError(f"qmia needs at least 2 known non-members to train on, got {images.shape[0]}")
    run_seed = derive_seed(seed, "qmia", version) % 2**32
    L.seed_everything(run_seed, workers=False, verbose=False)
    channels = images.transpose(0, 1).reshape(images.shape[1], -1).double()
    model = QuantileRegressor(num_classes, cfg.quantile, cfg.arch, cfg.width, cfg.lr, cfg.weight_decay, cfg.epochs,
                              image_mean=channels.mean(1).float(), image_std=channels.std(1).clamp_min(1e-6).float(),
                              target_mean=float(scores.mean()), target_std=max(float(scores.std()), 1e-6))
    logger: Any = False
    if log_dir is not None:
        logger = TensorBoardLogger(save_dir=str(log_dir), name="qmia", version=version, default_hp_metric=False)
    trainer = build_trainer(settings, max_epochs=cfg.epochs, logger=logger,
                            devices=single_device(settings.flags.get("devices")), strategy="auto",
                            enable_checkpointing=False, deterministic=True,
                            default_root_dir=str(log_dir) if log_dir is not None else None)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.fit(model, datamodule=RegressionData(images, labels, scores, cfg.batch_size, run_seed))
    finally:  # Trainer(deterministic=True) flips process-wide state: put it back
        torch.use_deterministic_algorithms(was_deterministic, warn_only=warn_only)
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    return model.cpu()


def qmia_scores(images: Tensor, labels: Tensor, signal: Tensor, known_membership: Tensor, num_classes: int,
                cfg: QmiaConfig, settings: TrainerSettings, seed: int,
                log_dir: Path | None = None) -> tuple[Tensor, dict[str, Any]]:
    """s(x) - q_hat(x), float64 [N]; pub cross-fitted, each fit on the non-members of its folds."""
    fits: list[str] = []

    def fit_and_score(train: Tensor, score: Tensor) -> Tensor:
        non_members = train & (known_membership == 0)
        version = "all" if len(fits) == cfg.folds else f"fold{len(fits)}"
        fits.append(version)
        model = fit_regressor(images[non_members], labels[non_members], signal[non_members], num_classes, cfg,
                              settings, seed, log_dir, version)
        return signal[score] - model.predict_quantile(images[score], labels[score])

    scores, notes = cross_fit(known_membership, cfg.folds, seed, "qmia", fit_and_score)
    pub_non_members = known_membership == 0
    notes.update({"train_rows_all": int(pub_non_members.sum()), "fits": len(fits)})
    return scores, notes


def run_qmia(ctx: AttackContext) -> AttackResult:
    inputs, cfg = ctx.inputs, ctx.attack.qmia
    if inputs.images is None:
        raise MiaError("qmia needs the pool images (AttackInputs.images); the attack stage passes them")
    signal = target_signal(inputs.target_logits, inputs.labels, cfg.signal)
    scores, notes = qmia_scores(inputs.images, inputs.labels, signal, inputs.known_membership,
                                int(inputs.target_logits.shape[-1]), cfg, ctx.trainer, ctx.seed, ctx.log_dir)
    notes.update({"quantile": cfg.quantile, "signal": cfg.signal, "arch": cfg.arch, "epochs": cfg.epochs})
    return AttackResult(scores, held_out=True, notes=notes)
