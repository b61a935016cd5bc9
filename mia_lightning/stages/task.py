"""Stage 1, the task: load pub/priv/target from files, or simulate them once from a real dataset.

Reads: `task.pub`, `task.priv`, `task.target` (and `task.truth`), or for a simulated task
its files under `<store>/tasks/<source>-<hash>/` (written here the first time).
Returns: a `Task` (task/data.py).
"""

from __future__ import annotations

import dataclasses
import logging

from mia_lightning.run import Run
from mia_lightning.task.data import Task
from mia_lightning.task.load import load_task
from mia_lightning.task.simulate import FILES, simulate_task

log = logging.getLogger("mia")


def obtain_task(run: Run) -> Task:
    """Simulate the task if the config asks for it (once per config), then load it."""
    config = run.config
    task_cfg = config.task
    if task_cfg.kind == "simulate":
        stem = "imagenet" if config.model.stem == "auto" else config.model.stem
        task_dir, run.outcome["target_trained"] = simulate_task(task_cfg, stem, run.trainer, run.store_root,
                                                                config.model.channels_last)
        task_cfg = dataclasses.replace(task_cfg, **{key: str(task_dir / name) for key, name in FILES.items()})
    task = load_task(task_cfg, config.model.stem)
    task.meta["dir"] = str(task.files["pub"].parent)
    run.outcome["task_dir"] = task.meta["dir"]
    for line in task.meta.get("warnings", []):  # e.g. weights with more classes than the labels use
        log.warning(line)
    log.info("task %s: %d public + %d private points, %d classes (%s stem), files in %s",
             task.name, len(task.pub), len(task.priv), task.num_classes, task.stem, task.meta["dir"])
    return task
