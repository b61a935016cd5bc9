"""`mia-store prune`: delete the resume checkpoints of finished models, keep everything else.

Every shadow (and every simulated target) keeps `checkpoints/last.ckpt` while it trains, so that
a killed job resumes bit-identically. Once its `done` marker is written nothing reads that file
again: its weights are in `weights.pt` (`01_MIA.pt` for a target) and its logits in `logits.pt`.
It is twice the weights (a ResNet18's optimizer state beside them: 90 MB against 45 MB), so a
64-shadow store is about 8.6 GB where 2.9 GB hold everything later stages read. Training keeps
it on purpose (the resume and determinism checks compare it); pruning is the user's choice.

Only a model whose `done` marker exists loses its checkpoint: one that is unfinished (killed, or
training now) keeps its resume point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mia_lightning.errors import MiaError
from mia_lightning.shadows.store import DONE
from mia_lightning.training.fit import LAST_CHECKPOINT

# <root>/<task-fingerprint>/<entry>/shadow_NNN/checkpoints/last.ckpt, done beside checkpoints/
SHADOW_CHECKPOINTS = f"*/*/shadow_*/{LAST_CHECKPOINT.as_posix()}"
# <root>/tasks/<name>/target/checkpoints/last.ckpt, done in tasks/<name>/
TARGET_CHECKPOINTS = f"tasks/*/target/{LAST_CHECKPOINT.as_posix()}"


@dataclass
class PruneReport:
    finished: list[Path] = field(default_factory=list)  # checkpoints of finished models (removed unless a dry run)
    unfinished: list[Path] = field(default_factory=list)  # resume points kept
    bytes: int = 0  # the size of `finished`

    def line(self, root: Path, dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        return (f"{verb} {len(self.finished)} resume checkpoints of finished models under {root} "
                f"({self.bytes / 1e9:.2f} GB); kept {len(self.unfinished)} of unfinished models")


def _marker(checkpoint: Path, pattern: str) -> Path:
    """The `done` file that says the model of `checkpoint` is finished."""
    model_dir = checkpoint.parent.parent  # shadow_NNN/ or tasks/<name>/target/
    return (model_dir if pattern == SHADOW_CHECKPOINTS else model_dir.parent) / DONE


def prune_store(root: Path, dry_run: bool = False) -> PruneReport:
    """Remove (or, with `dry_run`, list) `last.ckpt` of every finished model under the store `root`."""
    if not root.is_dir():
        raise MiaError(f"{root}: not a directory (give the store's root: store.root, or $MIA_STORE)")
    report = PruneReport()
    for pattern in (SHADOW_CHECKPOINTS, TARGET_CHECKPOINTS):
        for checkpoint in sorted(root.glob(pattern)):
            if not _marker(checkpoint, pattern).is_file():
                report.unfinished.append(checkpoint)
                continue
            report.finished.append(checkpoint)
            report.bytes += checkpoint.stat().st_size
            if not dry_run:
                checkpoint.unlink(missing_ok=True)
                try:
                    checkpoint.parent.rmdir()  # checkpoints/, when nothing else is in it
                except OSError:
                    pass
    return report
