"""Train the shadows a run needs, each once, whatever other processes do at the same time.

A shadow is trained only by the process holding its lock, and a process holds only the
locks of what it trains now (one shadow, or one stack of `shadow.stack`): so two plain
runs on one store entry share its shadows, each taking the next free one, and wait only
for the last ones the other is still training. A crashed trainer's lock dies with it, and
whoever takes the lock next resumes from `last.ckpt`. `done` is written last, after the
weights and logits, so a reader never sees a half-finished shadow as finished.
"""

from __future__ import annotations

import logging
from typing import Any

from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import remove_stale_temps
from mia_lightning.io.locks import FileLock
from mia_lightning.shadows.job import ShadowJob, train_shadow
from mia_lightning.shadows.stacked_training import train_shadow_stack
from mia_lightning.training.progress import finished

log = logging.getLogger("mia")


def _report(job: ShadowJob, summary: dict[str, Any]) -> None:
    """The one line per finished shadow (its bar, on a terminal, is gone by now)."""
    finished(f"{job.label(summary['index'])}: train acc {summary['train_acc']:.3f}  "
             f"test acc {summary['test_acc']:.3f}  {summary['seconds']:.1f} s")


def _train_claimed(job: ShadowJob, claimed: list[tuple[int, FileLock]], trained: dict[int, dict[str, Any]]) -> None:
    """Train the unfinished shadows whose locks we hold (one shadow, or one stack of
    `job.stack`: what `_claim_next` takes), then release."""
    indices = [index for index, _ in claimed]
    try:
        for index in indices:  # a killed trainer's half-written temp files (we hold the lock now)
            remove_stale_temps(job.store.shadow_dir(index))
        summaries = train_shadow_stack(job, indices) if len(indices) > 1 else [train_shadow(job, indices[0])]
        for summary in summaries:
            trained[summary["index"]] = summary
            _report(job, summary)
    finally:
        for _, lock in claimed:
            lock.release()


def ensure_shadows(job: ShadowJob, indices: list[int], wait: bool = True) -> dict[int, dict[str, Any]]:
    """Make sure every shadow in `indices` is done; returns the summaries of those trained here.
    `wait=False`: train only those no other process is training, and return (some may be
    left undone) instead of waiting for the others: a caller with other work does that first."""
    job.store.prepare()
    pending = [i for i in indices if not job.store.is_done(i)]
    trained: dict[int, dict[str, Any]] = {}
    if pending and wait:
        log.info("training %d of %d shadows (%d already in the store) in %s", len(pending), len(indices),
                 len(indices) - len(pending), job.store.dir)
    while pending:
        claimed = _claim_next(job, pending)
        if claimed:
            if not wait and not trained:  # (said only when this call trains something)
                log.info("training those of %d unfinished shadows that no other process is training, in %s",
                         len(pending), job.store.dir)
            _train_claimed(job, claimed, trained)
            unfinished = [index for index, _ in claimed if not job.store.is_done(index)]
            if unfinished:
                raise MiaError(f"shadows {unfinished} are still not done in {job.store.dir}")
        elif not wait:  # every one left is another process's now
            break
        else:
            _wait_for_other(job, pending[0])
        pending = [i for i in pending if not job.store.is_done(i)]
    return trained


def _claim_next(job: ShadowJob, pending: list[int]) -> list[tuple[int, FileLock]]:
    """The locks of the next free unfinished shadows, as many as one stack trains at once."""
    claimed: list[tuple[int, FileLock]] = []
    for index in pending:
        if len(claimed) >= max(1, job.stack):
            break
        lock = FileLock(job.store.lock_path(index))
        if lock.try_acquire():
            if job.store.is_done(index):  # finished by another process since we looked
                lock.release()
            else:
                claimed.append((index, lock))
    return claimed


def _wait_for_other(job: ShadowJob, index: int) -> None:
    """Block until another process releases shadow `index` (if its trainer died unfinished,
    the caller's next pass takes it over)."""
    log.info("waiting for %s, which another process is training", job.label(index))
    lock = FileLock(job.store.lock_path(index))
    if not lock.acquire(timeout_s=job.wait_timeout_s):
        raise MiaError(
            f"waited {job.wait_timeout_s:.0f} s (shadow.wait_timeout_s) for shadow {index}, "
            f"which another process is training in {job.store.shadow_dir(index)}"
        )
    lock.release()
