"""Signals every attack shares, computed on first use and kept for the others.

phi of every shadow on every point and query is the expensive part of the attack stage;
LiRA online/offline, RMIA and the attacks built on them all read it from here, and any
attack can keep a derived signal (LiRA's Gaussian fits) under a key of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from torch import Tensor

from mia_lightning.attacks.signals import true_class_margin


class SignalCache:
    """phi of the target and of the shadows, and any memoised derived signal."""

    def __init__(self, target_logits: Tensor, shadow_logits: Tensor, keep: Tensor, labels: Tensor) -> None:
        self.target_logits, self.shadow_logits, self.keep, self.labels = target_logits, shadow_logits, keep, labels
        self._values: dict[Hashable, Any] = {}

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """`compute()` the first time `key` is asked for, the kept value afterwards."""
        if key not in self._values:
            self._values[key] = compute()
        return self._values[key]

    def phi(self, which: str, temperature: float = 1.0) -> Tensor:
        """float64 phi of the "target" [N, A] or of the "shadow"s [K, N, A]."""
        logits = self.target_logits if which == "target" else self.shadow_logits
        return self.memo(("phi", which, float(temperature)),
                         lambda: true_class_margin(logits, self.labels, temperature))
