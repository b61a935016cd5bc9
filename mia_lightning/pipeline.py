"""The stages of a run: task -> shadows -> logits -> attacks -> report.

Each stage reads what the previous one left on disk (the simulated task's files, the
store's shadows and logits), so `stage=...` can rerun, resume or farm out any one of
them; `stage=all` runs them in order and skips whatever is already done.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from mia_lightning.config.validate import shadow_indices, validate_config
from mia_lightning.errors import MiaError
from mia_lightning.logits.infer import compute_logits
from mia_lightning.logits.logits_file import ensure_logits
from mia_lightning.logits.queries import Query, parse_queries
from mia_lightning.models.resnet import Normalize, build_resnet18
from mia_lightning.shadows.fingerprint import task_fingerprint, tensor_digest
from mia_lightning.shadows.runner import ShadowContext, ensure_shadows
from mia_lightning.shadows.store import ShadowStore
from mia_lightning.task.data import Task
from mia_lightning.task.load import load_task
from mia_lightning.task.weights import load_target_weights
from mia_lightning.task.simulate import FILES, simulate_task
from mia_lightning.utils.memory import check_fits, training_bytes

log = logging.getLogger("mia")


@dataclass
class Run:
    """One `mia` invocation: its config, run directory and what the stages produced."""

    cfg: DictConfig
    run_dir: Path
    seconds: dict[str, float] = field(default_factory=dict)

    def timed(self, stage: str, started: float) -> None:
        self.seconds[stage] = round(self.seconds.get(stage, 0.0) + time.monotonic() - started, 2)


def store_root(cfg: DictConfig) -> Path:
    return Path(str(cfg.store.root)).expanduser()


def inference_device(cfg: DictConfig) -> str:
    return "cuda" if cfg.trainer.accelerator in ("gpu", "cuda") and torch.cuda.is_available() else "cpu"


def obtain_task(cfg: DictConfig) -> Task:
    """Simulate the task if the config asks for it (once per config), then load it."""
    task_cfg = cfg.task
    if task_cfg.kind == "simulate":
        stem = "imagenet" if cfg.model.stem == "auto" else cfg.model.stem
        task_dir = simulate_task(task_cfg, stem, cfg.trainer, store_root(cfg), cfg.model.channels_last)
        task_cfg = OmegaConf.merge(task_cfg, {key: str(task_dir / name) for key, name in FILES.items()})
    task = load_task(task_cfg, cfg.model.stem)
    task.meta["dir"] = str(task.files["pub"].parent)
    return task


def shadow_recipe(cfg: DictConfig, task: Task) -> dict[str, Any]:
    """Every value that decides a shadow's weights — the store key (and nothing else)."""
    shadow = cfg.shadow
    recipe = {
        "arch": cfg.model.arch, "stem": task.stem, "num_classes": task.num_classes,
        "mean": task.mean, "std": task.std, "seed": int(cfg.seed),
        "epochs": int(shadow.epochs), "batch_size": int(shadow.batch_size),
        "optimizer": OmegaConf.to_container(shadow.optimizer), "augment": OmegaConf.to_container(shadow.augment),
        "split": shadow.split, "in_fraction": float(shadow.in_fraction),
    }
    if shadow.split == "disjoint":  # its partitions depend on the count
        recipe["count"] = int(shadow.count)
    return recipe


def shadow_context(cfg: DictConfig, task: Task, num_models: int) -> ShadowContext:
    images, labels = task.pool_images, task.pool_labels
    store = ShadowStore(store_root(cfg), task_fingerprint(task.pool_ids, labels, images), shadow_recipe(cfg, task))
    store.prepare()
    keep = store.keep_mask(num_models, task.pool_size, len(task.pub))
    recipe = {k: store.recipe[k] for k in ("epochs", "batch_size", "optimizer", "augment")}
    return ShadowContext(
        store=store, images=images, labels=labels, keep=keep, num_classes=task.num_classes, stem=task.stem,
        mean=task.mean, std=task.std, recipe=recipe, seed=int(cfg.seed), trainer_cfg=cfg.trainer,
        queries=parse_queries(list(cfg.attack.queries), bool(cfg.shadow.augment.flip)), inference_batch_size=int(cfg.trainer.inference_batch_size),
        inference_device=inference_device(cfg), channels_last=bool(cfg.model.channels_last),
        stack=int(cfg.shadow.stack), fast=bool(cfg.shadow.fast), wait_timeout_s=float(cfg.shadow.wait_timeout_s),
    )


def _logits_of_weights(state: dict[str, Tensor], ctx: ShadowContext, queries: list[Query]) -> Tensor:
    net = build_resnet18(ctx.num_classes, ctx.stem)
    net.load_state_dict(state)
    return compute_logits(net, Normalize(ctx.mean, ctx.std), ctx.images, queries,
                          ctx.inference_batch_size, ctx.inference_device)


def target_logits(task: Task, ctx: ShadowContext) -> Tensor:
    """float32 [N, A, C] logits of the target on the pool, stored next to the shadows."""
    weights_hash = tensor_digest(*[task.target_state[k] for k in sorted(task.target_state)])[:12]
    path = ctx.store.target_dir(weights_hash) / "logits.pt"
    return ensure_logits(path, ctx.queries, task.pool_size,
                         lambda queries: _logits_of_weights(task.target_state, ctx, queries))


def load_shadow_weights(path: Path, ctx: ShadowContext) -> dict[str, Tensor]:
    """A stored shadow's weights, checked like the target's (a store may be shared or copied)."""
    state, num_classes, _ = load_target_weights(path, None, ctx.stem)
    if num_classes != ctx.num_classes:
        raise MiaError(f"{path}: has {num_classes} classes but the task has {ctx.num_classes}; "
                       "delete this shadow's directory to retrain it")
    return state


def shadow_logits(ctx: ShadowContext, count: int) -> Tensor:
    """float32 [K, N, A, C] for the first `count` shadows, which must all be done."""
    out = []
    for index in range(count):
        if not ctx.store.is_done(index):
            raise MiaError(
                f"shadow {index} of shadow.count={count} is not trained yet in {ctx.store.dir} "
                "(run `mia stage=shadows` or `mia stage=all` first)"
            )
        shadow_dir = ctx.store.shadow_dir(index)

        def compute(queries: list[Query], shadow_dir: Path = shadow_dir) -> Tensor:
            state = load_shadow_weights(shadow_dir / "weights.pt", ctx)
            return _logits_of_weights(state, ctx, queries)

        out.append(ensure_logits(shadow_dir / "logits.pt", ctx.queries, ctx.images.shape[0], compute))
    return torch.stack(out) if out else torch.zeros(0, ctx.images.shape[0], len(ctx.queries), ctx.num_classes)


def run_pipeline(cfg: DictConfig, run_dir: Path) -> float | None:
    """Run the configured stage(s); returns `optimized_metric` after an attack stage."""
    validate_config(cfg)
    run = Run(cfg, run_dir)
    stage = cfg.stage
    started = time.monotonic()
    task = obtain_task(cfg)
    run.timed("task", started)
    log.info("task %s: %d public + %d private points, %d classes (%s stem), files in %s",
             task.name, len(task.pub), len(task.priv), task.num_classes, task.stem, task.meta["dir"])
    if stage == "simulate":
        return None
    count = int(cfg.shadow.count)
    indices = shadow_indices(cfg.shadow.only, count)
    ctx = shadow_context(cfg, task, max([count] + [i + 1 for i in indices]))
    limit_gb = float(cfg.trainer.max_memory_gb)
    if stage != "shadows":  # checked before any training: hours of shadows are no use if this cannot fit
        check_fits((count + 1) * task.pool_size * len(ctx.queries) * task.num_classes * 4, "the logits tensor",
                   "shadow.count or attack.queries", limit_gb)
    if stage in ("shadows", "all"):
        if not all(ctx.store.is_done(i) for i in indices):
            check_fits(training_bytes(task.pool_size, int(cfg.task.image_size), int(ctx.recipe["batch_size"]),
                                      task.stem, ctx.stack),
                       "shadow training (the in-memory pool, one batch per model, weights and optimizer state)",
                       "shadow.batch_size or shadow.stack", limit_gb, ctx.inference_device)
        started = time.monotonic()
        ensure_shadows(ctx, indices)
        run.timed("shadows", started)
        if stage == "shadows":
            log.info("shadows %s done in %s", indices, ctx.store.dir)
            return None
    started = time.monotonic()
    target = target_logits(task, ctx)
    shadows = shadow_logits(ctx, count)
    run.timed("logits", started)
    if stage == "logits":
        return None
    from mia_lightning.attack_stage import attack_and_report

    return attack_and_report(run, task, ctx, target, shadows)
