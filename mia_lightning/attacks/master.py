"""The master attack: train the MLP of models/master.py on confidence features, score points.

labels="shadow": rows are (shadow, point) pairs labelled by the keep mask, and the model
scores the target's rows; it never sees target membership, so its pub metrics are honest.
labels="target_pub" (the seed's variant): rows are the target on pub points labelled by
pub's membership. Each pub point is then scored by a model trained on the other folds
(cross-fitting), priv points by a model trained on all of pub.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackContext, AttackResult
from mia_lightning.attacks.crossfit import assign_folds
from mia_lightning.config.master import MASTER_LABELS as LABEL_MODES, MasterConfig
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.data.features import FeatureDataModule, build_features, check_features, feature_dim, shadow_table
from mia_lightning.errors import MiaError
from mia_lightning.models.master import MasterMLP
from mia_lightning.training.curves import CurveLogger
from mia_lightning.training.progress import ModelProgressBar, finished
from mia_lightning.training.trainer import build_trainer, single_device
from mia_lightning.utils.seeding import derive_seed


def master_trainer(settings: TrainerSettings, epochs: int, log_dir: Path | None, version: str) -> L.Trainer:
    """The `trainer` group's Trainer on one device, deterministic, without checkpoints."""
    logger: Any = False
    if log_dir is not None:
        logger = CurveLogger(save_dir=str(log_dir), name="master", version=version, default_hp_metric=False)
    bar = [ModelProgressBar(f"master MLP ({version})")] if settings.progress_bar else []  # on a terminal only
    return build_trainer(settings, max_epochs=epochs, logger=logger, devices=single_device(settings.flags.get("devices")),
                         strategy="auto", enable_checkpointing=False, deterministic=True, callbacks=bar,
                         default_root_dir=str(log_dir) if log_dir is not None else None)


def fit_master(features: Tensor, targets: Tensor, master: MasterConfig, settings: TrainerSettings, seed: int,
               log_dir: Path | None = None, version: str = "all") -> MasterMLP:
    """Train one MasterMLP on a feature table; the same (seed, version) gives the same weights."""
    run_seed = derive_seed(seed, "master", version) % 2**32
    L.seed_everything(run_seed, workers=False, verbose=False)
    mean, std = MasterMLP.standardizer(features)
    model = MasterMLP(features.shape[1], master.hidden_widths(), lr=master.lr, weight_decay=master.weight_decay,
                      feature_mean=mean, feature_std=std)
    datamodule = FeatureDataModule(features, targets, master.batch_size, run_seed)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cublas = os.environ.get("CUBLAS_WORKSPACE_CONFIG")
    started = time.monotonic()
    try:
        trainer = master_trainer(settings, master.epochs, log_dir, version)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            trainer.fit(model, datamodule=datamodule)
        loss = trainer.callback_metrics.get("master/train_loss")
        finished(f"master MLP ({version}): {master.epochs} epochs on {targets.numel()} rows"
                 f"{f', loss {float(loss):.3f}' if loss is not None else ''}  {time.monotonic() - started:.1f} s")
    finally:  # Trainer(deterministic=True) flips process-wide state: put it back
        torch.use_deterministic_algorithms(was_deterministic, warn_only=warn_only)
        if cublas is None:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)
    return model.cpu()


def _shadow_mode(target_logits: Tensor, shadow_logits: Tensor, keep: Tensor, labels: Tensor, names: list[str],
                 master: MasterConfig, settings: TrainerSettings, seed: int,
                 log_dir: Path | None) -> tuple[Tensor, dict[str, Any]]:
    if keep.shape[0] == 0 or keep.all() or not keep.any():
        raise MiaError("master.labels=shadow needs shadows with both IN and OUT points (shadow.count >= 1); "
                       "use master.labels=target_pub or drop `master` from attack.names")
    features, targets = shadow_table(shadow_logits, keep, labels, names, master.max_samples, seed)
    model = fit_master(features, targets, master, settings, seed, log_dir, version="shadow")
    scores = model.member_logit(build_features(target_logits, labels, names))
    return scores, {"train_rows": int(targets.numel())}


def _target_pub_mode(target_logits: Tensor, labels: Tensor, known_membership: Tensor, names: list[str],
                     master: MasterConfig, settings: TrainerSettings, seed: int,
                     log_dir: Path | None) -> tuple[Tensor, dict[str, Any]]:
    folds = master.folds
    known = known_membership >= 0
    members = int((known_membership == 1).sum())
    if members == 0 or members == int(known.sum()):
        raise MiaError("master.labels=target_pub needs known members and known non-members in pub")
    if folds < 2 or folds > int(known.sum()):
        raise MiaError(f"master.folds must be in [2, number of known points = {int(known.sum())}], got {folds}")
    fold = assign_folds(known_membership, folds, seed)
    features = build_features(target_logits, labels, names)
    targets = known_membership.long()
    scores = torch.zeros(features.shape[0], dtype=torch.float64)
    for f in range(folds):
        test = fold == f
        train = known & ~test
        model = fit_master(features[train], targets[train], master, settings, seed, log_dir, version=f"fold{f}")
        scores[test] = model.member_logit(features[test])
    unknown = ~known
    if unknown.any():
        model = fit_master(features[known], targets[known], master, settings, seed, log_dir, version="all")
        scores[unknown] = model.member_logit(features[unknown])
    sizes = [int((fold == f).sum()) for f in range(folds)]
    return scores, {"folds": folds, "fold_sizes": sizes, "train_rows": int(known.sum())}


def master_attack(target_logits: Tensor, shadow_logits: Tensor, keep: Tensor, labels: Tensor,
                  known_membership: Tensor, *, master: MasterConfig, trainer: TrainerSettings, seed: int,
                  log_dir: Path | None = None) -> tuple[Tensor, bool, dict[str, Any]]:
    """(scores float64 [N], held_out, notes) for either label mode."""
    names = check_features(master.features)
    mode = master.labels
    notes: dict[str, Any] = {"labels": mode, "features": names, "widths": master.hidden_widths()}
    if mode == "shadow":
        scores, extra = _shadow_mode(target_logits, shadow_logits, keep, labels, names, master, trainer, seed, log_dir)
        held_out = False
    elif mode == "target_pub":
        scores, extra = _target_pub_mode(target_logits, labels, known_membership, names, master, trainer, seed,
                                         log_dir)
        held_out = True
    else:
        raise MiaError(f"master.labels must be one of {LABEL_MODES}, got {mode!r}")
    notes.update(extra)
    notes["input_dim"] = feature_dim(names, target_logits.shape[-1], target_logits.shape[1]) if labels.numel() else 0
    return scores, held_out, notes


def run_master(ctx: AttackContext) -> AttackResult:
    inputs = ctx.inputs
    scores, held_out, notes = master_attack(inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels,
                                            inputs.known_membership, master=ctx.master, trainer=ctx.trainer,
                                            seed=ctx.seed, log_dir=ctx.log_dir)
    return AttackResult(scores, held_out=held_out, notes=notes)
