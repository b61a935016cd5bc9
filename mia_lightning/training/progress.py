"""What a run shows while models train: one labelled bar per model on a terminal, one line
per finished model everywhere.

Lightning's own TQDM bar printed a stray "Training: 0/?" and "Epoch 0: 0%" before each
model, counted epochs from 0, showed the logger version as `v_num` and, nested under an
outer bar, wrote cursor-up escapes (`ESC[A`) into log files. This bar is drawn only when
stderr is a terminal, starts labelled ("shadow_003 (4/8) epoch 1/30"), and is removed when
its model is done, leaving the caller's one-line summary (`finished`). Off a terminal (a
pipe, a SLURM log) nothing is drawn and only those summary lines appear.
"""

from __future__ import annotations

import math
import sys
from typing import Any

from lightning.pytorch.callbacks.progress.progress_bar import ProgressBar
from tqdm.auto import tqdm


def on_terminal() -> bool:
    """Bars only where someone watches them redraw (a pipe or a log file gets summary lines)."""
    return sys.stderr.isatty()


def finished(line: str) -> None:
    """One line for a finished model (printed above a live bar, if there is one)."""
    tqdm.write(line, file=sys.stdout)
    sys.stdout.flush()


class ModelProgressBar(ProgressBar):
    """One bar per model over all its training steps, labelled with the model's name."""

    def __init__(self, label: str, show: bool | None = None) -> None:
        super().__init__()
        self.label = label
        self.show = on_terminal() if show is None else show
        self._bar: Any = None

    def disable(self) -> None:
        self.show = False

    def enable(self) -> None:
        self.show = True

    def _description(self, trainer: Any) -> str:
        return f"{self.label} epoch {min(trainer.current_epoch + 1, trainer.max_epochs)}/{trainer.max_epochs}"

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not self.show:
            return
        per_epoch = trainer.num_training_batches
        total = per_epoch * trainer.max_epochs if math.isfinite(per_epoch) else None
        if trainer.max_steps and trainer.max_steps > 0:
            total = min(total, trainer.max_steps) if total else trainer.max_steps
        self._bar = tqdm(total=total, initial=trainer.global_step, desc=self._description(trainer), unit="step",
                         leave=False, dynamic_ncols=True, file=sys.stderr)

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._bar is not None:
            self._bar.set_description(self._description(trainer), refresh=False)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._bar is not None:
            shown = {key.rsplit("/", 1)[-1]: f"{float(value):.3f}" for key, value in trainer.progress_bar_metrics.items()}
            self._bar.set_postfix(shown, refresh=True)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)
