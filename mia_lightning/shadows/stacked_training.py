"""Stacked shadows (`shadow.stack=G`): G shadows trained as one Lightning run.

One `StackedClassifierModule` (grouped convolutions, one BatchNorm channel set per model,
a grouped head) takes one optimizer step for all G models at once; model g gets its own
batch from its own keep-mask row, its own augmentation and its own initial weights, each
exactly what the single-model path (`job.train_shadow`) would use for that shadow:

* initial weights: `seed_everything(job.shadow_seed(i))` then `build_resnet18`;
* batches: `EpochBatchSampler(IN size, batch size, job.shadow_seed(i))`, epoch by epoch;
* augmentation: the generator seeded by (job.shadow_seed(i), "augment", global_step);
* loss, optimizer and learning-rate schedule: the recipe's, per model.

So a stack trains the same recipe as G single runs (up to float rounding: grouped kernels
add in another order); the store key does not depend on `shadow.stack`.

Unequal IN sets. The stack steps all models together, so their epochs must cut into the
same batch sizes. Shadows whose IN-set sizes give different batch plans (with the halves
split this happens only when an odd pool makes a twin one point larger and that point
adds a batch) are split into sub-stacks of equal plans; a shadow left on its own is
trained by the single path. Nothing is padded, repeated or dropped, so no shadow's recipe
depends on which others it was stacked with.

Files. The stack is a resumable Lightning run in its own fixed directory in the store
entry, named after its members (`stack_000-001`), so a different grouping never resumes
someone else's checkpoint; every member's own dir gets a `history.jsonl` line per start.
After training, each member is written as an ordinary single-model Lightning checkpoint
(`shadow_XXX/checkpoints/last.ckpt`, a `ClassifierModule` checkpoint with its optimizer
and scheduler state) — all of them first, so a crash from then on leaves shadows the
single path finishes without training — then `finish_shadow` writes its weights.pt
(plain torchvision state_dict), logits.pt, summary.json and `done`. The stack's own
checkpoint is deleted once every member is done.

A member that already has its own `checkpoints/last.ckpt` (an interrupted single run, or
an exported stack member) is resumed on its own instead. `shadow.fast=false` (the plain
DataLoader path) applies to single shadows; stacks always use in-memory batches.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor
from torchvision.models import ResNet

from mia_lightning.config.recipe import TrainRecipe
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.data.stacked_memory import StackedMemoryDataModule, batch_plan
from mia_lightning.io.atomic import atomic_torch_save
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.models.resnet import build_resnet18
from mia_lightning.models.stacked_classifier import StackedClassifierModule
from mia_lightning.models.stacked_resnet import member_part, to_torchvision_state_dicts
from mia_lightning.shadows.job import ShadowJob, finish_shadow, train_shadow
from mia_lightning.training.fit import LAST_CHECKPOINT, fit_resuming

__all__ = ["StackSpec", "fit_stack", "export_members", "member_checkpoint", "stack_dir", "stack_spec",
           "train_shadow_stack"]

@dataclass
class StackSpec:
    """What to train: G models on their own IN sets of one pool, one recipe."""

    images: Tensor
    labels: Tensor
    train_indices: list[Tensor]  # model g trains on pool points train_indices[g]
    num_classes: int
    stem: str
    mean: list[float]
    std: list[float]
    recipe: TrainRecipe
    seeds: list[int]  # model g's seed, as the single path's FitSpec.seed
    channels_last: bool = True


def initial_states(spec: StackSpec) -> list[dict[str, Tensor]]:
    """Model g's initial weights: exactly what `fit_classifier` starts from with seed seeds[g]."""
    states = []
    for seed in spec.seeds:
        L.seed_everything(seed, workers=False, verbose=False)
        states.append(build_resnet18(spec.num_classes, spec.stem).state_dict())
    return states


def fit_stack(spec: StackSpec, run_dir: Path, settings: TrainerSettings, label: str, logger: bool = True, *,
              history_dirs: Sequence[Path] = (), callbacks: Sequence[Callback] = (),
              max_steps: int = -1) -> StackedClassifierModule:
    """Train (or resume from `run_dir/checkpoints/last.ckpt`) G models; returns the module on CPU."""
    module = StackedClassifierModule(
        num_models=len(spec.seeds), num_classes=spec.num_classes, stem=spec.stem, mean=spec.mean, std=spec.std,
        optimizer=asdict(spec.recipe.optimizer), augment=asdict(spec.recipe.augment), seeds=list(spec.seeds),
        channels_last=spec.channels_last, initial_states=initial_states(spec),
        label_smoothing=spec.recipe.label_smoothing,
    )
    datamodule = StackedMemoryDataModule(spec.images, spec.labels, spec.train_indices, spec.recipe.batch_size,
                                         spec.seeds)
    fit_resuming(module, datamodule, run_dir, settings, label, spec.recipe.epochs, logger, callbacks, max_steps,
                 history_dirs, stack=run_dir.name)
    module.to("cpu")
    module.net.to(memory_format=torch.contiguous_format)
    return module


def export_members(module: StackedClassifierModule) -> list[ResNet]:
    """The G trained models as plain torchvision ResNet18s (CPU, eval mode)."""
    hp = module.hparams
    nets = []
    for state in to_torchvision_state_dicts(module.net):
        net = build_resnet18(hp["num_classes"], hp["stem"])
        net.load_state_dict(state)
        nets.append(net.eval())
    return nets


def _split(value: Any, name: str, g: int, num_models: int, shape: torch.Size) -> Any:
    """Model g's part of a stacked parameter (or of optimizer state shaped like it)."""
    if not isinstance(value, Tensor) or value.shape != shape:
        return value.clone() if isinstance(value, Tensor) else value  # shared scalars (Adam's step)
    return member_part(name.removeprefix("net."), value, g, num_models)


def member_checkpoint(stacked: dict[str, Any], module: StackedClassifierModule, g: int) -> dict[str, Any]:
    """Model g of a stacked Lightning checkpoint as an ordinary `ClassifierModule` checkpoint.

    Weights, optimizer state (momentum / Adam moments) and the loops' progress carry over,
    so `ClassifierModule.load_from_checkpoint` loads it and `trainer.fit(ckpt_path=...)`
    treats it as a finished run of the single path.
    """
    hp = module.hparams
    num_models = int(hp["num_models"])
    names = [name for name, _ in module.named_parameters()]
    shapes = dict(module.named_parameters())
    single = build_resnet18(hp["num_classes"], hp["stem"])
    if [f"net.{name}" for name, _ in single.named_parameters()] != names:
        raise RuntimeError("StackedResNet18 parameters are not in torchvision's order; cannot split optimizer state")
    out = {key: value for key, value in stacked.items() if key not in ("state_dict", "optimizer_states", "callbacks",
                                                                      "hyper_parameters")}
    out["state_dict"] = {key: member_part(key.removeprefix("net."), value, g, num_models)
                         for key, value in stacked["state_dict"].items()}
    optimizer_states = []
    for opt_state in stacked.get("optimizer_states", []):
        per_param = {}
        for index, entries in opt_state["state"].items():
            name = names[int(index)]
            per_param[index] = {k: _split(v, name, g, num_models, shapes[name].shape) for k, v in entries.items()}
        optimizer_states.append({"state": per_param, "param_groups": [dict(group) for group in opt_state["param_groups"]]})
    out["optimizer_states"] = optimizer_states
    out["hyper_parameters"] = {
        "num_classes": hp["num_classes"], "stem": hp["stem"], "mean": list(hp["mean"]), "std": list(hp["std"]),
        "optimizer": dict(hp["optimizer"]), "augment": dict(hp["augment"]), "seed": int(hp["seeds"][g]),
        "channels_last": bool(hp["channels_last"]), "device_augment": True,
        "label_smoothing": float(hp["label_smoothing"]),
    }
    out["callbacks"] = {}
    return out


def stack_dir(job: ShadowJob, indices: Sequence[int]) -> Path:
    """The stack's fixed run dir in the store entry, named after its members (`stack_000-001`)."""
    return job.store.dir / ("stack_" + "-".join(f"{index:03d}" for index in indices))


def stack_spec(job: ShadowJob, indices: Sequence[int]) -> StackSpec:
    return StackSpec(
        images=job.images, labels=job.labels, train_indices=[job.keep[i].nonzero().squeeze(1) for i in indices],
        num_classes=job.model.num_classes, stem=job.model.stem, mean=job.inference.mean, std=job.inference.std,
        recipe=job.recipe, seeds=[job.shadow_seed(i) for i in indices], channels_last=job.model.channels_last,
    )


def _label(indices: Sequence[int], total: int) -> str:
    return f"shadows {','.join(f'{i:03d}' for i in indices)} (stack of {len(indices)}, {total} in all)"


def _train_stack(job: ShadowJob, indices: list[int]) -> list[dict[str, Any]]:
    start = time.monotonic()
    run_dir = stack_dir(job, indices)
    module = fit_stack(stack_spec(job, indices), run_dir, job.trainer, _label(indices, job.keep.shape[0]),
                       history_dirs=[job.store.shadow_dir(i) for i in indices])
    seconds = (time.monotonic() - start) / len(indices)  # the stack's wall time, shared
    nets = export_members(module)
    stacked = safe_torch_load(run_dir / LAST_CHECKPOINT, key="checkpoint")
    for g, index in enumerate(indices):  # every member resumable on its own before any is finished
        atomic_torch_save(job.store.shadow_dir(index) / LAST_CHECKPOINT, member_checkpoint(stacked, module, g))
    del stacked
    summaries = [finish_shadow(job, index, net, seconds) for index, net in zip(indices, nets)]
    (run_dir / LAST_CHECKPOINT).unlink(missing_ok=True)  # every member has its own copy now
    return summaries


def plan_groups(job: ShadowJob, indices: Sequence[int]) -> tuple[list[list[int]], list[int]]:
    """Split `indices` into stacks (>= 2 members, equal batch plans) and shadows to train alone."""
    alone: list[int] = []
    by_plan: dict[tuple[int, ...], list[int]] = {}
    for index in indices:
        if (job.store.shadow_dir(index) / LAST_CHECKPOINT).is_file():
            alone.append(index)  # its own run (single, or an exported member) is further along
            continue
        plan = batch_plan(int(job.keep[index].sum()), int(job.recipe.batch_size))
        by_plan.setdefault(plan, []).append(index)
    stacks = []
    for members in by_plan.values():
        if len(members) > 1:
            stacks.append(members)
        else:
            alone.extend(members)
    return stacks, sorted(alone)


def train_shadow_stack(job: ShadowJob, indices: list[int]) -> list[dict[str, Any]]:
    """Train (or resume) the shadows `indices` as one stack where possible; caller holds their locks.

    Returns one summary per shadow trained here (as `finish_shadow` writes them).
    """
    todo = [index for index in indices if not job.store.is_done(index)]
    stacks, alone = plan_groups(job, todo)
    summaries: list[dict[str, Any]] = []
    for members in stacks:
        summaries.extend(_train_stack(job, members))
    for index in alone:
        summaries.append(train_shadow(job, index))
    return summaries
