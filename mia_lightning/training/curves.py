"""TensorBoard for training curves: Lightning's logger without its `epoch` series.

Lightning adds the epoch number to every logged step, which TensorBoard then draws as the
first chart of the Scalars tab ("epoch", a staircase) above the curves that matter
(`train/loss`, `train/acc`, `master/train_loss`). The step axis already orders the points.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger


class CurveLogger(TensorBoardLogger):
    """A TensorBoardLogger that drops Lightning's automatic `epoch` scalar."""

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        kept = {key: value for key, value in metrics.items() if key != "epoch"}
        if kept:
            super().log_metrics(kept, step)
