"""Pilot shadows of one search round trained side by side (`shadow.search.workers`).

The candidates of a round are known before any of them is scored (the beam's parents are
fixed when the round starts), so their pilots can train at once and be scored afterwards,
in the same order as a one-process search: the same candidates, the same choice. Why
processes and not threads: a shadow's training holds the GIL between kernels and Lightning
keeps per-process state. The workers are spawned (never forked: CUDA and forked parents
do not mix), each with `cores // workers` torch threads, so two workers on two cores do
not fight over them. With several GPUs visible to a GPU run, worker i sees only GPU
i mod their count (CUDA_VISIBLE_DEVICES, set before it touches CUDA): one pilot per GPU;
with one GPU the workers share it (small models leave most of it idle). Measured on a
2-core CPU the workers gain nothing (one model already keeps both cores busy: a pilot
took 31 s alone with 2 threads, 60 s beside another with 1; README "What the search
costs"), so the default is 1. Each worker trains through the store's own locks
(shadows/runner.py), exactly as a farmed-out job would.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

import torch

from mia_lightning.shadows.job import ShadowJob
from mia_lightning.shadows.runner import ensure_shadows
from mia_lightning.utils.quiet import quiet_libraries


def _start_worker(threads: int, gpus: list[str], started: Any) -> None:
    """A spawned worker: its GPU (with several), its share of the torch threads, quiet libraries."""
    if len(gpus) > 1:
        with started.get_lock():
            index, started.value = started.value, started.value + 1
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
    torch.set_num_threads(threads)
    quiet_libraries()


def _train_pilots(job: ShadowJob, indices: list[int]) -> tuple[list[int], float]:
    """In a worker: make sure these pilots are done; (those trained here, seconds)."""
    start = time.monotonic()
    trained = ensure_shadows(job, indices)
    return sorted(trained), time.monotonic() - start


class PilotPool:
    """`workers` spawned processes that train the pilots of many candidates at once."""

    def __init__(self, workers: int, gpus: list[str] | None = None) -> None:
        self.workers = workers
        self.threads = max(1, torch.get_num_threads() // workers)
        self.gpus = list(gpus or [])  # the GPUs a GPU run may use (worker i gets gpus[i % len])
        self._pool: ProcessPoolExecutor | None = None

    @staticmethod
    def visible_gpus(wants_gpu: bool) -> list[str]:
        """The GPUs this process may use, as CUDA_VISIBLE_DEVICES names them (none for a CPU run)."""
        if not wants_gpu or not torch.cuda.is_available():
            return []
        named = [name.strip() for name in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if name.strip()]
        return named or [str(index) for index in range(torch.cuda.device_count())]

    def train(self, jobs: dict[str, ShadowJob], indices: list[int]) -> dict[str, tuple[list[int], float]]:
        """Train `indices` of every job (key -> job); key -> (indices trained here, seconds).
        A worker's error is raised here, after the others have finished."""
        pending = {key: job for key, job in jobs.items() if not all(job.store.is_done(i) for i in indices)}
        if not pending:
            return {}
        if self._pool is None:
            spawn = multiprocessing.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=spawn, initializer=_start_worker,
                                             initargs=(self.threads, self.gpus, spawn.Value("i", 0)))
        futures: dict[str, Future[Any]] = {key: self._pool.submit(_train_pilots, job, indices)
                                           for key, job in pending.items()}
        results, error = {}, None
        for key, future in futures.items():
            try:
                results[key] = future.result()
            except Exception as failure:  # keep collecting, so no worker is left training unseen (Ctrl-C ends at once)
                error = error or failure
        if error is not None:
            raise error
        return results

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> "PilotPool":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
