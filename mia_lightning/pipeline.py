"""The pipeline: task -> shadows -> logits -> attacks -> report, and the `stage=` slice of it.

Each stage is one module in `stages/` that takes the previous stage's typed artifact and
returns its own (artifacts.py); each reads and writes files, so `stage=...` can rerun,
resume or farm out any one of them, and `stage=all` runs them in order, skipping
whatever is already done.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig

from mia_lightning.config.schema import Config, typed_config
from mia_lightning.logits.queries import parse_queries
from mia_lightning.outcome import closing_line
from mia_lightning.run import Run
from mia_lightning.stages import attacks, calibrate, logits, report, shadows, task


def validate_config(cfg: DictConfig | Config) -> Config:
    """The typed config, checked in full before any work: its own ranges, then what the
    stages own (attack names from the attack registry, query names)."""
    config = typed_config(cfg)
    attacks.check(config)
    parse_queries(list(config.attack.queries), config.shadow.augment.flip)
    return config


def open_run(cfg: DictConfig | Config, run_dir: Path) -> Run:
    """A `Run` of the checked config in `run_dir` (nothing is read or written yet)."""
    return Run(validate_config(cfg), Path(run_dir), composed=cfg if isinstance(cfg, DictConfig) else None)


def run_pipeline(cfg: DictConfig | Config, run_dir: Path) -> float | None:
    """Run the configured stage(s); returns `optimized_metric` after an attack stage. Ends with
    one line: what was trained or reused, and where the results are (outcome.py)."""
    started = time.monotonic()
    run = open_run(cfg, run_dir)
    result = run_stages(run)
    print(closing_line(run, time.monotonic() - started), flush=True)
    return result


def run_stages(run: Run) -> float | None:
    """The stages of `run.stage`, in order; each records what it did in `run.outcome`."""
    run.trainer.probe()  # before any work: e.g. trainer=gpu on a machine without one
    with run.timed("task"):
        the_task = task.obtain_task(run)
    if run.stage == "simulate":
        return None
    choice = calibrate.shadow_recipe(run, the_task)
    run.outcome["recipe_search"] = choice.search
    if run.stage == "calibrate":
        return None
    shadow_set = shadows.shadow_set(run, the_task, choice.recipe, choice=choice)
    run.outcome["store_dir"] = str(shadow_set.store.dir)
    if run.stage != "shadows":  # checked before any training: hours of shadows are no use if this cannot fit
        logits.check_logits_fit(run, the_task, shadow_set)
    if run.stage in ("shadows", "all"):
        trained = shadows.train_shadows(run, the_task, shadow_set)
        run.outcome.update(shadows_trained=len(trained),
                           shadows_reused=len(run.config.shadow.indices()) - len(trained))
        if run.stage == "shadows":
            return None
    else:
        run.outcome["shadows_reused"] = shadow_set.count
    logit_set = logits.collect_logits(run, the_task, shadow_set)
    if run.stage == "logits":
        return None
    results = attacks.attack(run, the_task, logit_set)
    metrics = report.report(run, the_task, shadow_set, logit_set, results)
    run.outcome["reported"] = True
    return metrics.get("optimized_metric")
