"""Stage 2, the shadows: the store entry of this run's shadow recipe, trained where asked.

Reads: the task; the store entry `<store>/<task-fingerprint>/<recipe-hash>/` (keep.pt,
shadow_NNN/...). Writes (stage=shadows|all): the shadows of `shadow.only` (default: the
first `shadow.count`), each resumable and trained by one process only.
Returns: a `ShadowSet`.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from mia_lightning.artifacts import RecipeChoice, ShadowSet
from mia_lightning.config.recipe import TrainRecipe, plain_recipe, recipe_values
from mia_lightning.errors import MiaError
from mia_lightning.logits.infer import Inference
from mia_lightning.logits.queries import parse_queries
from mia_lightning.models.resnet import ModelSpec
from mia_lightning.run import Run
from mia_lightning.shadows.fingerprint import task_fingerprint
from mia_lightning.shadows.imported import open_imported
from mia_lightning.shadows.job import ShadowJob
from mia_lightning.shadows.runner import ensure_shadows
from mia_lightning.shadows.store import ShadowStore
from mia_lightning.task.data import Task
from mia_lightning.utils.memory import check_fits, training_bytes

log = logging.getLogger("mia")


def store_key(run: Run, task: Task, recipe: TrainRecipe) -> dict[str, Any]:
    """Every value that decides a shadow's weights: the store entry's key (and nothing else)."""
    config = run.config
    key = {
        "arch": config.model.arch, "stem": task.stem, "num_classes": task.num_classes,
        "mean": task.mean, "std": task.std, "seed": int(config.seed), **recipe_values(recipe),
        "split": config.shadow.split, "in_fraction": float(config.shadow.in_fraction),
    }
    if config.shadow.split == "disjoint":  # its partitions depend on the count
        key["count"] = int(config.shadow.count)
    learning = run.trainer.learning_flags()
    if learning:  # e.g. +trainer.gradient_clip_val: changes the weights, so it changes the entry
        key["trainer"] = learning
    return key


def inference(run: Run, task: Task, recipe: TrainRecipe) -> Inference:
    """How the target and every shadow are queried (attack.queries: `auto` = the views `recipe`
    trains on; trainer.inference_batch_size)."""
    queries = parse_queries(list(run.config.attack.queries), recipe.augment.flip)
    return Inference(task.mean, task.std, queries, run.trainer.inference_batch_size, run.trainer.inference_device())


def shadow_set(run: Run, task: Task, recipe: TrainRecipe | None = None, rows: int = 0,
               choice: RecipeChoice | None = None) -> ShadowSet:
    """The store entry of `recipe` (default: `shadow.*` as given) with its keep mask (at least
    `rows` rows), untrained; with `choice.also` (shadow.search.mix > 1), the runners-up's
    entries beside it, which share the shadow set pair by pair (artifacts.ShadowSet)."""
    config = run.config
    recipe = plain_recipe(config.shadow) if recipe is None else recipe
    main = shadow_job(run, task, recipe, rows)
    # the runners-up are queried with the chosen recipe's views, so every shadow has the same ones
    also = tuple(shadow_job(run, task, other, rows, main.inference) for other in (choice.also if choice else ()))
    for job in also:
        if not torch.equal(job.keep[: config.shadow.count], main.keep[: config.shadow.count]):
            raise MiaError(f"shadow.search.mix: {job.store.dir} has another keep mask than {main.store.dir} "
                           "(delete that entry's keep.pt to rebuild it)")
    return ShadowSet(job=main, count=config.shadow.count, choice=choice, also=also)


def shadow_job(run: Run, task: Task, recipe: TrainRecipe, rows: int = 0,
               queried: Inference | None = None) -> ShadowJob:
    """How to train and query the shadows of `recipe`'s store entry (or of `store.entry`)."""
    config = run.config
    fingerprint = task_fingerprint(task.pool_ids, task.pool_labels, task.pool_images)
    queried = inference(run, task, recipe) if queried is None else queried
    if config.store.entry is not None:  # shadows imported from another tool (mia-store import)
        if config.shadow.recipe != "given":
            raise MiaError(f"store.entry={config.store.entry} (imported shadows) needs shadow.recipe=given")
        store: ShadowStore = open_imported(run.store_root, fingerprint, config.store.entry,
                                           [q.name for q in queried.queries])
    else:
        store = ShadowStore(run.store_root, fingerprint, store_key(run, task, recipe))
        store.prepare()
    rows = max([rows, config.shadow.count] + [i + 1 for i in config.shadow.indices()])
    return ShadowJob(
        store=store, images=task.pool_images, labels=task.pool_labels,
        keep=store.keep_mask(rows, task.pool_size, len(task.pub)),
        model=ModelSpec(task.num_classes, task.stem, config.model.channels_last),
        recipe=plain_recipe(recipe), seed=int(config.seed), trainer=run.trainer, inference=queried,
        stack=config.shadow.stack, fast=config.shadow.fast, wait_timeout_s=config.shadow.wait_timeout_s,
    )


def check_training_fits(run: Run, task: Task, shadows: ShadowSet) -> None:
    """Refuse, before any training, a training set that cannot fit in memory."""
    batch = max(job.recipe.batch_size for job in shadows.jobs)
    check_fits(training_bytes(task.pool_size, run.config.task.image_size, batch, task.stem, shadows.job.stack),
               "shadow training (the in-memory pool, one batch per model, weights and optimizer state)",
               "shadow.batch_size or shadow.stack", run.trainer.max_memory_gb, shadows.job.inference.device)


def train_shadows(run: Run, task: Task, shadows: ShadowSet) -> dict[int, dict[str, Any]]:
    """Train (or finish) the shadows of `shadow.only`; returns the summaries of those trained here."""
    indices = run.config.shadow.indices()
    if not all(shadows.store_of(i).is_done(i) for i in indices):
        check_training_fits(run, task, shadows)
    trained: dict[int, dict[str, Any]] = {}
    with run.timed("shadows"):
        for job in shadows.jobs:
            mine = [i for i in indices if shadows.job_of(i) is job]
            if mine:
                trained.update(ensure_shadows(job, mine))
    if run.stage == "shadows":
        log.info("shadows %s done in %s", indices, ", ".join(str(job.store.dir) for job in shadows.jobs))
    return trained
