"""Stage 4, the attacks: every attack of `attack.names` on the stored logits.

Reads: the `LogitSet`, the pool's labels and pub's membership (and its images, for qmia).
Writes: `scores.csv` / `scores.pt` (every attack's score per pool point) and the master MLP's
and qmia's TensorBoard runs under `<run dir>/master/`, `<run dir>/qmia/`.
Returns: `AttackResults` (a score per point).
"""

from __future__ import annotations

import shutil

from mia_lightning.artifacts import AttackResults, LogitSet
from mia_lightning.attacks.base import AttackInputs
from mia_lightning.attacks.registry import NEEDS_IMAGES, check_names, run_attacks
from mia_lightning.config.newer_attacks import COMBINERS
from mia_lightning.config.schema import Config
from mia_lightning.report.scores_file import write_scores
from mia_lightning.run import Run
from mia_lightning.task.data import Task


def check(config: Config) -> None:
    """The attack names must be registered ones (checked before any work starts)."""
    check_names(config.attack.names)
    for combiner in COMBINERS:
        if combiner in config.attack.names:
            check_names(getattr(config.attack, combiner).members, f"attack.{combiner}.members")


def attack(run: Run, task: Task, logits: LogitSet) -> AttackResults:
    config = run.config
    images = task.pool_images if set(NEEDS_IMAGES) & set(config.attack.names) else None
    inputs = AttackInputs(target_logits=logits.target, shadow_logits=logits.shadows, keep=logits.keep,
                          labels=task.pool_labels, known_membership=task.known_membership, images=images)
    # the master's and qmia's TensorBoard runs (<run dir>/<name>/<version>): a rerun of this job replaces them
    for name in ("master", "qmia"):
        shutil.rmtree(run.run_dir / name, ignore_errors=True)
    log_dir = run.run_dir if config.logger.enabled else None
    with run.timed("attacks"):
        results = run_attacks(inputs, config.attack, config.master, run.trainer, config.seed, log_dir)
    write_scores(run.run_dir, task.pool_ids, len(task.pub), task.pub.membership, results)
    return results
