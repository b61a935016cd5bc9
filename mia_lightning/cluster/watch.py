"""Wait for submitted jobs: done when the result file is there, failed when the job has
left the queue without one for `vanished_after_s` (instead of waiting for ever)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from mia_lightning.cluster.queue import FINAL_STATES, NEVER_STARTS, QueueEntry, queue_entries


@dataclass
class Watched:
    """One job as the launcher sees it: where its result will appear, since when the queue
    has stopped listing it as alive, and whether it was reported as unable to start."""

    job_id: str
    result: Path
    gone_since: float | None = None
    last_state: str = "not in squeue"
    stuck_reported: bool = False


def wait_for_results(jobs: Sequence[Watched], check_s: float, vanished_after_s: float,
                     on_vanished: Callable[[Watched], None], on_stuck: Callable[[Watched, str], None],
                     entries: Callable[[], dict[str, QueueEntry] | None] = queue_entries) -> list[Watched]:
    """Block until every job has a result file or has vanished; returns the vanished ones.

    A job counts as gone while squeue does not list it or lists it in a final state; a
    result file appearing later (a slow shared filesystem) within `vanished_after_s` still
    counts as done. `on_vanished` is called as soon as a job is given up on, `on_stuck` once
    for a job pending for a reason that does not clear by itself (it stays waited for: an
    admin may fix the partition, the user may scancel it). When squeue cannot answer,
    nothing is concluded.
    """
    pending = list(jobs)
    vanished: list[Watched] = []
    next_check = 0.0
    while pending:
        pending = [job for job in pending if not job.result.exists()]
        now = time.monotonic()
        if pending and now >= next_check:
            listed = entries()
            next_check = now + check_s
            for job in pending if listed is not None else []:
                entry = listed.get(job.job_id)
                if entry is None or entry.state in FINAL_STATES:
                    job.last_state = entry.state if entry else "not in squeue"
                    job.gone_since = now if job.gone_since is None else job.gone_since
                    continue
                job.last_state, job.gone_since = entry.state, None
                if entry.state == "PENDING" and entry.reason in NEVER_STARTS and not job.stuck_reported:
                    job.stuck_reported = True
                    on_stuck(job, entry.reason)
        for job in [j for j in pending if j.gone_since is not None and now - j.gone_since >= vanished_after_s]:
            if not job.result.exists():
                vanished.append(job)
                on_vanished(job)
            pending.remove(job)
        if pending:
            time.sleep(1)
    return vanished
