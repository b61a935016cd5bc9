"""One store entry's shadows as a training job: what any of them needs to be trained and queried.

`train_shadow` trains (or resumes) one shadow in its store directory; `finish_shadow`
persists a trained one (weights, logits, summary, then `done`). The stacked path
(shadows/stacked_training.py) and the scheduler over locks (shadows/runner.py) build on
these two.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from pathlib import Path

from torch import Tensor, nn

from mia_lightning.config.recipe import TrainRecipe
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_torch_save, atomic_write_json, atomic_write_text
from mia_lightning.logits.infer import Inference
from mia_lightning.logits.logits_file import ensure_logits, write_logits
from mia_lightning.logits.queries import Query
from mia_lightning.shadows.fingerprint import tensor_digest
from mia_lightning.models.resnet import ModelSpec
from mia_lightning.shadows.store import DONE, ShadowStore
from mia_lightning.task.weights import load_target_weights
from mia_lightning.training.fit import FitSpec, fit_classifier
from mia_lightning.utils.provenance import training_environment
from mia_lightning.utils.seeding import derive_seed


@dataclass
class ShadowJob:
    """Everything needed to train and query any shadow of one store entry."""

    store: ShadowStore
    images: Tensor  # float32 [N, 3, S, S] pool
    labels: Tensor  # int64 [N]
    keep: Tensor  # bool [K, N]
    model: ModelSpec
    recipe: TrainRecipe
    seed: int
    trainer: TrainerSettings
    inference: Inference
    stack: int = 1  # shadow.stack
    fast: bool = True  # shadow.fast: in-memory batches + device augmentation (False: plain DataLoader)
    wait_timeout_s: float = 86400.0

    def shadow_seed(self, index: int) -> int:
        return derive_seed(self.seed, "shadow", index)

    def label(self, index: int) -> str:
        """`shadow_003 (4/8)`: the shadow's directory name and its place among the keep mask's rows."""
        return f"shadow_{index:03d} ({index + 1}/{self.keep.shape[0]})"


def accuracy_summary(logits: Tensor, labels: Tensor, keep_row: Tensor) -> dict[str, float]:
    """Train (IN points) and test (OUT points) accuracy from identity-query logits."""
    correct = (logits.argmax(-1) == labels).float()
    train = float(correct[keep_row].mean()) if keep_row.any() else float("nan")
    test = float(correct[~keep_row].mean()) if (~keep_row).any() else float("nan")
    return {"train_acc": train, "test_acc": test}


def finish_shadow(job: ShadowJob, index: int, net: nn.Module, seconds: float) -> dict[str, Any]:
    """Persist a trained shadow: weights, logits, summary, then the `done` marker."""
    shadow_dir = job.store.shadow_dir(index)
    atomic_torch_save(shadow_dir / "weights.pt", {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
    logits = job.inference.logits(net, job.images)
    write_logits(shadow_dir / "logits.pt", {q.name: logits[:, i] for i, q in enumerate(job.inference.queries)})
    summary = {"index": index, **accuracy_summary(logits[:, 0], job.labels, job.keep[index]),
               "seconds": round(seconds, 2), "in_points": int(job.keep[index].sum()),
               "trained_on": training_environment(job.inference.device)}
    atomic_write_json(shadow_dir / "summary.json", summary)
    atomic_write_text(shadow_dir / DONE, json.dumps(summary) + "\n")
    return summary


def train_shadow(job: ShadowJob, index: int) -> dict[str, Any]:
    """Train (or resume) one shadow in its store directory; caller holds its lock."""
    start = time.monotonic()
    spec = FitSpec(
        images=job.images, labels=job.labels, train_index=job.keep[index].nonzero().squeeze(1),
        num_classes=job.model.num_classes, stem=job.model.stem, mean=job.inference.mean, std=job.inference.std,
        recipe=job.recipe, seed=job.shadow_seed(index), channels_last=job.model.channels_last, fast=job.fast,
    )
    net = fit_classifier(spec, job.store.shadow_dir(index), job.trainer, job.label(index))
    return finish_shadow(job, index, net, time.monotonic() - start)


def load_shadow_weights(path: Path, model: ModelSpec) -> dict[str, Tensor]:
    """A stored shadow's weights, checked like the target's (a store may be shared or copied)."""
    state, num_classes, _ = load_target_weights(path, None, model.stem)
    if num_classes != model.num_classes:
        raise MiaError(f"{path}: has {num_classes} classes but the task has {model.num_classes}; "
                       "delete this shadow's directory to retrain it")
    return state


def logits_of_weights(job: ShadowJob, state: dict[str, Tensor], queries: list[Query]) -> Tensor:
    net = job.model.build()
    net.load_state_dict(state)
    return job.inference.logits(net, job.images, queries)


def shadow_logits(job: ShadowJob, index: int, queries: list[Query] | None = None) -> Tensor:
    """float32 [N, A, C] of a done shadow for `queries` (default: the job's), computing and
    storing only the views its logits.pt lacks."""
    shadow_dir = job.store.shadow_dir(index)

    def compute(missing: list[Query]) -> Tensor:
        return logits_of_weights(job, load_shadow_weights(shadow_dir / "weights.pt", job.model), missing)

    return ensure_logits(shadow_dir / "logits.pt", job.inference.queries if queries is None else queries,
                         job.images.shape[0], compute)


def target_logits(job: ShadowJob, target_state: dict[str, Tensor], queries: list[Query] | None = None) -> Tensor:
    """float32 [N, A, C] of the target on the pool, stored next to the shadows (by weights hash)."""
    weights_hash = tensor_digest(*[target_state[k] for k in sorted(target_state)])[:12]
    return ensure_logits(job.store.target_dir(weights_hash) / "logits.pt",
                         job.inference.queries if queries is None else queries, job.images.shape[0],
                         lambda missing: logits_of_weights(job, target_state, missing))
