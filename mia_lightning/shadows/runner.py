"""Train the shadows a run needs, each once, whatever other processes do at the same time.

A shadow is trained only by the process holding its lock; the others first train the
shadows nobody holds, then wait for the rest. A crashed trainer's lock dies with it, and
whoever takes the lock next resumes from `last.ckpt`. `done` is written last, after the
weights and logits, so a reader never sees a half-finished shadow as finished.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from tqdm.auto import tqdm

from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_torch_save, atomic_write_json, atomic_write_text, remove_stale_temps
from mia_lightning.io.locks import FileLock
from mia_lightning.logits.infer import compute_logits
from mia_lightning.logits.logits_file import write_logits
from mia_lightning.logits.queries import Query
from mia_lightning.models.resnet import Normalize
from mia_lightning.shadows.store import DONE, ShadowStore
from mia_lightning.training.fit import FitSpec, fit_classifier
from mia_lightning.utils.seeding import derive_seed


@dataclass
class ShadowContext:
    """Everything needed to train and query any shadow of one store entry."""

    store: ShadowStore
    images: Tensor  # float32 [N, 3, S, S] pool
    labels: Tensor  # int64 [N]
    keep: Tensor  # bool [K, N]
    num_classes: int
    stem: str
    mean: list[float]
    std: list[float]
    recipe: dict[str, Any]
    seed: int
    trainer_cfg: Any
    queries: list[Query]
    inference_batch_size: int = 1024
    inference_device: str = "cpu"
    channels_last: bool = True
    stack: int = 1
    fast: bool = True  # shadow.fast: in-memory batches + device augmentation (False: plain DataLoader)
    wait_timeout_s: float = 86400.0
    summaries: dict[int, dict[str, Any]] = field(default_factory=dict)

    def shadow_seed(self, index: int) -> int:
        return derive_seed(self.seed, "shadow", index)


def accuracy_summary(logits: Tensor, labels: Tensor, keep_row: Tensor) -> dict[str, float]:
    """Train (IN points) and test (OUT points) accuracy from identity-query logits."""
    correct = (logits.argmax(-1) == labels).float()
    train = float(correct[keep_row].mean()) if keep_row.any() else float("nan")
    test = float(correct[~keep_row].mean()) if (~keep_row).any() else float("nan")
    return {"train_acc": train, "test_acc": test}


def finish_shadow(ctx: ShadowContext, index: int, net: nn.Module, seconds: float) -> dict[str, Any]:
    """Persist a trained shadow: weights, logits, summary, then the `done` marker."""
    shadow_dir = ctx.store.shadow_dir(index)
    atomic_torch_save(shadow_dir / "weights.pt", {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
    logits = compute_logits(net, Normalize(ctx.mean, ctx.std), ctx.images, ctx.queries,
                            ctx.inference_batch_size, ctx.inference_device)
    write_logits(shadow_dir / "logits.pt", {q.name: logits[:, i] for i, q in enumerate(ctx.queries)})
    summary = {"index": index, **accuracy_summary(logits[:, 0], ctx.labels, ctx.keep[index]),
               "seconds": round(seconds, 2), "in_points": int(ctx.keep[index].sum())}
    atomic_write_json(shadow_dir / "summary.json", summary)
    atomic_write_text(shadow_dir / DONE, json.dumps(summary) + "\n")
    return summary


def shadow_label(ctx: ShadowContext, index: int) -> str:
    """`shadow_003 (4/8)`: the shadow's directory name and its place among the keep mask's rows."""
    return f"shadow_{index:03d} ({index + 1}/{ctx.keep.shape[0]})"


def train_shadow(ctx: ShadowContext, index: int) -> dict[str, Any]:
    """Train (or resume) one shadow in its store directory; caller holds its lock."""
    start = time.monotonic()
    spec = FitSpec(
        images=ctx.images, labels=ctx.labels, train_index=ctx.keep[index].nonzero().squeeze(1),
        num_classes=ctx.num_classes, stem=ctx.stem, mean=ctx.mean, std=ctx.std,
        recipe=ctx.recipe, seed=ctx.shadow_seed(index), channels_last=ctx.channels_last, fast=ctx.fast,
    )
    net = fit_classifier(spec, ctx.store.shadow_dir(index), ctx.trainer_cfg, shadow_label(ctx, index))
    return finish_shadow(ctx, index, net, time.monotonic() - start)


def _report(ctx: ShadowContext, summary: dict[str, Any]) -> None:
    tqdm.write(f"{shadow_label(ctx, summary['index'])}: train acc {summary['train_acc']:.3f}  "
               f"test acc {summary['test_acc']:.3f}  {summary['seconds']:.1f} s")


def _train_claimed(ctx: ShadowContext, claimed: list[tuple[int, FileLock]], bar: tqdm) -> None:
    """Train shadows whose locks we hold (in stacks of `ctx.stack` when asked), then release."""
    try:
        for index, _ in claimed:  # a killed trainer's half-written temp files (we hold the lock now)
            remove_stale_temps(ctx.store.shadow_dir(index))
        todo = [index for index, _ in claimed if not ctx.store.is_done(index)]
        groups = [todo[i: i + ctx.stack] for i in range(0, len(todo), ctx.stack)] if ctx.stack > 1 else [[i] for i in todo]
        for group in groups:
            if len(group) > 1:
                from mia_lightning.shadows.stacked_training import train_shadow_stack

                summaries = train_shadow_stack(ctx, group)
            else:
                summaries = [train_shadow(ctx, group[0])]
            for summary in summaries:
                ctx.summaries[summary["index"]] = summary
                _report(ctx, summary)
                bar.update(1)
    finally:
        for _, lock in claimed:
            lock.release()


def ensure_shadows(ctx: ShadowContext, indices: list[int]) -> dict[int, dict[str, Any]]:
    """Make sure every shadow in `indices` is done; returns the summaries of those trained here."""
    ctx.store.prepare()
    pending = [i for i in indices if not ctx.store.is_done(i)]
    bar = tqdm(total=len(indices), initial=len(indices) - len(pending), desc="shadows", position=0,
               disable=not pending, leave=True, dynamic_ncols=True)
    try:
        waiting: list[int] = []
        while pending:
            claimed: list[tuple[int, FileLock]] = []
            for index in pending:
                lock = FileLock(ctx.store.shadow_dir(index) / "lock")
                if lock.try_acquire():
                    claimed.append((index, lock))
                else:
                    waiting.append(index)
            _train_claimed(ctx, claimed, bar)
            pending, waiting = _wait_for_others(ctx, waiting, bar), []
    finally:
        bar.close()
    missing = [i for i in indices if not ctx.store.is_done(i)]
    if missing:
        raise MiaError(f"shadows {missing} are still not done in {ctx.store.dir}")
    return ctx.summaries


def _wait_for_others(ctx: ShadowContext, waiting: list[int], bar: tqdm) -> list[int]:
    """Block on shadows another process is training; return those it left unfinished."""
    unfinished = []
    for index in waiting:
        lock = FileLock(ctx.store.shadow_dir(index) / "lock")
        if not lock.acquire(timeout_s=ctx.wait_timeout_s):
            raise MiaError(
                f"waited {ctx.wait_timeout_s:.0f} s (shadow.wait_timeout_s) for shadow {index}, "
                f"which another process is training in {ctx.store.shadow_dir(index)}"
            )
        lock.release()
        if ctx.store.is_done(index):
            bar.update(1)
        else:
            unfinished.append(index)  # its trainer died: take it over on the next pass
    return unfinished
