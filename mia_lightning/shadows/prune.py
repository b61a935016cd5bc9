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

# Where the resume checkpoints lie under a store's root, and how many folders above the
# checkpoint's own the model's `done` marker lies.
CHECKPOINTS_AND_MARKERS = (
    (f"*/*/shadow_*/{LAST_CHECKPOINT.as_posix()}", 1),  # <fingerprint>/<entry>/shadow_NNN/done
    (f"tasks/*/target/{LAST_CHECKPOINT.as_posix()}", 2),  # tasks/<name>/done
)


@dataclass
class PruneReport:
    finished: list[Path] = field(default_factory=list)  # checkpoints of finished models (removed unless a dry run)
    unfinished: list[Path] = field(default_factory=list)  # resume points kept
    bytes: int = 0  # the size of `finished`

    def line(self, root: Path, dry_run: bool) -> str:
        verb = "would remove" if dry_run else "removed"
        return (f"{verb} {len(self.finished)} resume checkpoints of finished models under {root} "
                f"({self.bytes / 1e9:.2f} GB); kept {len(self.unfinished)} of unfinished models")


def prune_store(root: Path, dry_run: bool = False) -> PruneReport:
    """Remove (or, with `dry_run`, list) `last.ckpt` of every finished model under the store `root`."""
    if not root.is_dir():
        raise MiaError(f"{root}: not a directory (give the store's root: store.root, or $MIA_STORE)")
    report = PruneReport()
    for pattern, marker_up in CHECKPOINTS_AND_MARKERS:
        for checkpoint in sorted(root.glob(pattern)):
            if not (checkpoint.parents[marker_up] / DONE).is_file():
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
