"""Stage 4, the attacks: every attack of `attack.names` on the stored logits.

Reads: the `LogitSet`, the pool's labels and pub's membership. Writes: the master MLP's
TensorBoard runs under `<run dir>/master/`. Returns: `AttackResults` (a score per point).
"""

from __future__ import annotations

import shutil

from mia_lightning.artifacts import AttackResults, LogitSet
from mia_lightning.attacks.base import AttackInputs
from mia_lightning.attacks.registry import check_names, run_attacks
from mia_lightning.config.schema import Config
from mia_lightning.run import Run
from mia_lightning.task.data import Task


def check(config: Config) -> None:
    """The attack names must be registered ones (checked before any work starts)."""
    check_names(config.attack.names)


def attack(run: Run, task: Task, logits: LogitSet) -> AttackResults:
    config = run.config
    inputs = AttackInputs(target_logits=logits.target, shadow_logits=logits.shadows, keep=logits.keep,
                          labels=task.pool_labels, known_membership=task.known_membership)
    # the master's TensorBoard runs (<run dir>/master/<version>): a rerun of this job replaces them
    shutil.rmtree(run.run_dir / "master", ignore_errors=True)
    log_dir = run.run_dir if config.logger.enabled else None
    with run.timed("attacks"):
        return run_attacks(inputs, config.attack, config.master, run.trainer, config.seed, log_dir)
