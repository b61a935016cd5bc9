"""In-memory task data: what every stage after loading works with."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import Tensor

UNKNOWN = -1  # membership value of a point whose membership is not known


@dataclass
class TaskSplit:
    """One file's worth of points (pub or priv), normalised to fixed dtypes.

    images: float32 [N, 3, S, S] in [0, 1]; ids: int64 [N] (unique);
    labels: int64 [N]; membership: int8 [N] with 1, 0 or UNKNOWN.
    """

    ids: Tensor
    images: Tensor
    labels: Tensor
    membership: Tensor

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    @property
    def membership_known(self) -> bool:
        return bool((self.membership != UNKNOWN).all())


@dataclass
class Task:
    """A whole MIA task: published points, private points, the target's weights.

    The attack pool is pub followed by priv (pool index i < len(pub) is a pub point).
    `files["truth"]` (membership of priv) exists only for simulated tasks; the scorer reads
    it (report/metrics.py), no attack or search ever does.
    """

    name: str
    pub: TaskSplit
    priv: TaskSplit
    target_state: dict[str, Tensor]
    num_classes: int
    stem: str
    mean: list[float]
    std: list[float]
    truth: Optional[Tensor] = None  # int8 [len(priv)], only once the scorer has read files["truth"]
    files: dict[str, Path] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def pool_size(self) -> int:
        return len(self.pub) + len(self.priv)

    @property
    def pool_images(self) -> Tensor:
        return torch.cat([self.pub.images, self.priv.images])

    @property
    def pool_labels(self) -> Tensor:
        return torch.cat([self.pub.labels, self.priv.labels])

    @property
    def pool_ids(self) -> Tensor:
        return torch.cat([self.pub.ids, self.priv.ids])

    @property
    def known_membership(self) -> Tensor:
        """int8 [pool]: pub's membership, UNKNOWN for every priv point."""
        return torch.cat([self.pub.membership, torch.full((len(self.priv),), UNKNOWN, dtype=torch.int8)])
