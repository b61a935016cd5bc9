"""Stage 3, the logits: every model's logits on every pool point, for every query.

Reads: the target's weights (in the task) and each used shadow's `weights.pt`. Writes:
`<store>/<task-fingerprint>/target_<weights-hash>/logits.pt` and each shadow's `logits.pt`,
computing only the queries not stored yet.
Returns: a `LogitSet`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from mia_lightning.artifacts import LogitSet, ShadowSet
from mia_lightning.errors import MiaError
from mia_lightning.run import Run
from mia_lightning.shadows.job import shadow_logits, target_logits
from mia_lightning.task.data import Task
from mia_lightning.utils.memory import check_fits


def check_logits_fit(run: Run, task: Task, shadows: ShadowSet) -> None:
    """Refuse, before any training, a logits tensor that cannot fit in memory."""
    queries = len(shadows.job.inference.queries)
    check_fits((shadows.count + 1) * task.pool_size * queries * task.num_classes * 4, "the logits tensor",
               "shadow.count or attack.queries", run.trainer.max_memory_gb)


def used_shadow_logits(shadows: ShadowSet) -> Tensor:
    """float32 [K, N, A, C] for the first `count` shadows (each from the entry holding it), which
    must all be done."""
    job = shadows.job
    out = []
    for index in range(shadows.count):
        job = shadows.job_of(index)
        if not job.store.is_done(index):
            raise MiaError(
                f"shadow {index} of shadow.count={shadows.count} is not trained yet in {job.store.dir} "
                "(run `mia stage=shadows` or `mia stage=all` first)"
            )
        out.append(shadow_logits(job, index))
    if out:
        return torch.stack(out)
    return torch.zeros(0, job.images.shape[0], len(job.inference.queries), job.model.num_classes)


def collect_logits(run: Run, task: Task, shadows: ShadowSet) -> LogitSet:
    with run.timed("logits"):
        target = target_logits(shadows.job, task.target_state)
        stacked = used_shadow_logits(shadows)
    return LogitSet(target=target, shadows=stacked, keep=shadows.keep,
                    queries=[q.name for q in shadows.job.inference.queries])
