"""What every attack reads and returns.

The stored logits of the target and of K shadows on the same N pool points, plus the
keep mask and what is known of the target's membership: that is all the attack stage
sees, so attacks can be rerun from the store without any training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.cache import SignalCache
from mia_lightning.config.attack import AttackConfig
from mia_lightning.config.master import MasterConfig
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.errors import MiaError


@dataclass(frozen=True, eq=False)
class AttackInputs:
    target_logits: Tensor  # float32 [N, A, C]; query 0 is the identity
    shadow_logits: Tensor  # float32 [K, N, A, C]; K may be 0
    keep: Tensor  # bool [K, N]: shadow k was trained on point n
    labels: Tensor  # int64 [N] true class labels
    known_membership: Tensor  # int8 [N]: 1 member, 0 non-member (pub), -1 unknown (priv)
    images: Tensor | None = None  # float32 [N, 3, S, S] in [0, 1]: the pool, for attacks that read images (qmia)

    def __post_init__(self) -> None:
        check_shapes(self)

    @property
    def num_points(self) -> int:
        return int(self.target_logits.shape[0])

    @property
    def num_shadows(self) -> int:
        return int(self.shadow_logits.shape[0])


@dataclass
class AttackResult:
    scores: Tensor  # float64 [N], finite, higher = more likely member
    held_out: bool  # trained on known_membership, with pub scores cross-fitted
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttackContext:
    """What one attack is run with: the inputs, the shared signals, and the typed settings."""

    inputs: AttackInputs
    signals: SignalCache
    attack: AttackConfig
    master: MasterConfig
    trainer: TrainerSettings
    seed: int
    log_dir: Path | None = None  # where Lightning-trained attacks keep their TensorBoard runs
    results: dict[str, "AttackResult"] = field(default_factory=dict)  # attacks already run (for combiners)


def check_shapes(inputs: AttackInputs) -> None:
    """Cheap structural checks (no pass over the data): shapes, dtypes, label range."""
    t, s = inputs.target_logits, inputs.shadow_logits
    if t.dim() != 3:
        raise MiaError(f"target_logits must be [N, A, C], got shape {tuple(t.shape)}")
    n, a, c = t.shape
    if a < 1 or c < 1:
        raise MiaError(f"target_logits needs at least one query and one class, got shape {tuple(t.shape)}")
    if s.dim() != 4 or tuple(s.shape[1:]) != (n, a, c):
        raise MiaError(f"shadow_logits must be [K, {n}, {a}, {c}] like target_logits, got {tuple(s.shape)}")
    k = s.shape[0]
    if inputs.keep.dtype != torch.bool or tuple(inputs.keep.shape) != (k, n):
        raise MiaError(f"keep must be bool [{k}, {n}], got {inputs.keep.dtype} {tuple(inputs.keep.shape)}")
    labels = inputs.labels
    if labels.dtype.is_floating_point or labels.dtype == torch.bool or tuple(labels.shape) != (n,):
        raise MiaError(f"labels must be integer [{n}], got {labels.dtype} {tuple(labels.shape)}")
    if n and (int(labels.min()) < 0 or int(labels.max()) >= c):
        raise MiaError(f"labels must lie in [0, {c}), got range [{int(labels.min())}, {int(labels.max())}]")
    known = inputs.known_membership
    if tuple(known.shape) != (n,) or known.dtype.is_floating_point:
        raise MiaError(f"known_membership must be integer [{n}] in {{-1, 0, 1}}, "
                       f"got {known.dtype} {tuple(known.shape)}")
    if n and not torch.isin(known, torch.tensor([-1, 0, 1], dtype=known.dtype)).all():
        raise MiaError("known_membership may only hold -1 (unknown), 0 (non-member) or 1 (member)")
    images = inputs.images
    if images is not None and (images.dim() != 4 or images.shape[0] != n or not images.is_floating_point()):
        raise MiaError(f"images must be float [{n}, channels, H, W], got {images.dtype} {tuple(images.shape)}")


def check_finite(inputs: AttackInputs) -> None:
    """Refuse NaN/inf logits (a diverged model) with the models at fault named.

    A per-model sum is a cheap first pass (non-finite values make it non-finite); only
    when a sum is not finite is the exact element-wise check run.
    """
    for name, tensor in (("target_logits", inputs.target_logits[None]), ("shadow_logits", inputs.shadow_logits)):
        for model in range(tensor.shape[0]):
            if torch.isfinite(tensor[model].sum()):  # overflow of a finite sum only costs the exact check
                continue
            bad = int((~torch.isfinite(tensor[model])).sum())
            if bad:
                where = "" if name == "target_logits" else f" (shadow {model})"
                raise MiaError(f"{name}{where} has {bad} non-finite values: that model diverged; "
                               "retrain it or leave it out")
