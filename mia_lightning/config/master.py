"""The meta-classifier ("master", the seed's word for its approach 3): a deep MLP on
confidence features of the shadows (or of the target on pub)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from mia_lightning.config.checks import at_least, choice, non_empty, positive
from mia_lightning.errors import MiaError

MASTER_FEATURES = ("softmax", "sorted", "max", "entropy", "loss", "phi")
MASTER_LABELS = ("shadow", "target_pub")  # shadow: the shadows' keep mask | target_pub: pub's membership


@dataclass
class MasterConfig:
    name: str = "default"
    depth: int = 4  # hidden layers
    widths: Optional[list[int]] = None  # explicit hidden widths; overrides depth/width
    width: int = 128
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4
    # softmax | sorted | max | entropy | loss | phi  (per query, concatenated)
    features: list[str] = field(default_factory=lambda: ["sorted", "max", "entropy", "loss", "phi"])
    labels: str = "shadow"
    folds: int = 5  # held-out folds whenever it trains on pub's membership
    max_samples: int = 200000  # cap on shadow (model, point) pairs used for training

    def validate(self, key: str = "master") -> None:
        at_least(self.depth, 1, f"{key}.depth")
        at_least(self.epochs, 1, f"{key}.epochs")
        at_least(self.width, 1, f"{key}.width")
        at_least(self.folds, 2, f"{key}.folds")
        at_least(self.batch_size, 1, f"{key}.batch_size")
        at_least(self.max_samples, 1, f"{key}.max_samples")
        positive(self.lr, f"{key}.lr")
        at_least(self.weight_decay, 0, f"{key}.weight_decay")
        if self.widths is not None and (not self.widths or any(w < 1 for w in self.widths)):
            raise MiaError(f"{key}.widths must be positive integers, got {list(self.widths)}")
        non_empty(self.features, f"{key}.features")
        for feature in self.features:
            choice(feature, MASTER_FEATURES, f"{key}.features")
        choice(self.labels, MASTER_LABELS, f"{key}.labels")

    def hidden_widths(self) -> list[int]:
        """`widths` when given, else `depth` layers of `width` units."""
        widths = [int(w) for w in self.widths] if self.widths is not None else [int(self.width)] * int(self.depth)
        if any(w < 1 for w in widths):
            raise MiaError(f"master.widths / master.width must be positive, got {widths}")
        return widths
