"""What `squeue` says about our jobs: the one source that knows a job has left the queue.

submitit asks `sacct`, which answers nothing on clusters without accounting storage
("Slurm accounting storage is disabled"), so its state stays UNKNOWN for ever.
"""

from __future__ import annotations

import os
import pwd
import subprocess
from typing import NamedTuple

# States in which a job will not run again by itself (squeue lists them for MinJobAge after
# the end). PREEMPTED is here: with PreemptMode=REQUEUE the job is PENDING again within
# seconds, so it only counts when it stays PREEMPTED (a cluster that cancels preempted jobs).
FINAL_STATES = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL", "OUT_OF_MEMORY",
    "PREEMPTED", "REVOKED", "TIMEOUT",
})
# Pending reasons that do not clear by themselves: the job asks for more than the partition
# has or allows (a cluster without EnforcePartLimits accepts such a job and keeps it pending).
NEVER_STARTS = frozenset({
    "PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "BadConstraints", "InvalidAccount",
    "InvalidQOS",
})


class QueueEntry(NamedTuple):
    state: str  # e.g. PENDING, RUNNING, COMPLETED
    reason: str  # squeue's %r: why it is pending (None when it is not)


def parse_squeue(text: str) -> dict[str, QueueEntry]:
    """`squeue --array --noheader --format=%i|%T|%r` output -> {job id: entry}; array
    elements are `<array id>_<index>`, the ids submitit gives its jobs."""
    entries = {}
    for line in text.splitlines():
        job_id, state, reason = (line.strip().split("|") + ["", ""])[:3]
        if job_id and state:
            entries[job_id] = QueueEntry(state.strip().upper(), reason.strip())
    return entries


def queue_entries(timeout_s: float = 60) -> dict[str, QueueEntry] | None:
    """The current user's jobs in the queue, or None when squeue cannot tell (controller
    unreachable, a slow answer): then nothing is concluded from it."""
    user = pwd.getpwuid(os.getuid()).pw_name
    command = ["squeue", "--array", "--noheader", "--format=%i|%T|%r", f"--user={user}"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return parse_squeue(done.stdout) if done.returncode == 0 else None
