"""A per-run progress bar that says which model is training (e.g. "shadow 3/8")."""

from __future__ import annotations

import sys

from lightning.pytorch.callbacks import TQDMProgressBar

# Off a terminal (a SLURM log, a pipe) every redraw is a new line: per step that is ~130 KB
# of log per shadow. There the bar redraws only at the end of each epoch.
LOG_REFRESH_RATE = 1_000_000


class LabelledProgressBar(TQDMProgressBar):
    """Lightning's epoch bar, labelled, placed below an outer bar over models."""

    def __init__(self, label: str, position: int = 1) -> None:
        super().__init__(refresh_rate=1 if sys.stdout.isatty() else LOG_REFRESH_RATE, process_position=position)
        self.label = label

    def init_train_tqdm(self):  # type: ignore[override]
        bar = super().init_train_tqdm()
        bar.set_description(self.label)
        return bar

    def on_train_epoch_start(self, trainer, *args) -> None:  # type: ignore[override]
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(f"{self.label} epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")
