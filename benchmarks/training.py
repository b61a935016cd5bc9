"""The training and inference timings behind `mia-bench` (see benchmarks/cli.py for the variants).

Throughput is steady-state: the time between consecutive optimizer steps after the warm-up
steps, so the whole step is counted (data, augmentation, hooks, logging) but not the
one-off Trainer setup and end-of-run checkpoint, which "fit wall" reports separately.
"""


from __future__ import annotations

import contextlib
import io
import math
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import Callback

from mia_lightning.config.recipe import recipe_from_values
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.data.augment import random_crop_flip
from mia_lightning.logits.infer import compute_logits
from mia_lightning.logits.queries import parse_queries
from mia_lightning.models.resnet import Normalize, build_resnet18

MEAN, STD = [0.2980, 0.2962, 0.2987], [0.2886, 0.2875, 0.2889]


@dataclass
class Result:
    """Timings of one training variant: seconds per optimizer step (after warmup), run by run."""

    name: str
    models: int  # models trained per step (G for a stack, else 1)
    runs: list[list[float]] = field(default_factory=list)
    walls: list[float] = field(default_factory=list)  # whole run (setup + all steps + checkpoints)

    def rate(self, batch: int, stat: str = "run") -> float:
        """Training images/s per model (per shadow).

        `run` (the headline): the median step of the least disturbed run, i.e. the fastest
        run median; on a machine shared with other jobs a whole run can be slowed, and every
        variant gets the same number of chances at a quiet one. `median`: the median of
        all steps pooled. `best`: the fastest single step.
        """
        steps = [t for run in self.runs for t in run]
        if not steps:
            return float("nan")
        if stat == "run":
            return batch / min(statistics.median(run) for run in self.runs if run)
        return batch / (statistics.median(steps) if stat == "median" else min(steps))

    def wall_rate(self, batch: int, steps: int) -> float:
        return batch * steps / min(self.walls) if self.walls else float("nan")


class StepTimer(Callback):
    """Timestamps after every optimizer step (synchronised), and one before the first."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stamps: list[float] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:  # type: ignore[override]
        if not self.stamps:
            sync_device(self.device)
            self.stamps.append(time.perf_counter())

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # type: ignore[override]
        sync_device(self.device)
        self.stamps.append(time.perf_counter())


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _durations(stamps: list[float], warmup: int) -> list[float]:
    return [b - a for a, b in zip(stamps[:-1], stamps[1:])][warmup:]


@dataclass
class Setup:
    """Everything the variants share: data, recipe, device, step counts."""

    images: torch.Tensor  # float32 [N, 3, S, S] in [0, 1], on the CPU
    labels: torch.Tensor
    classes: int
    stem: str
    batch: int
    steps: int
    warmup: int
    device: torch.device
    recipe: dict[str, Any]
    channels_last: bool
    trainer: TrainerSettings
    workdir: Path

    @property
    def bf16(self) -> bool:
        return self.device.type == "cuda"


def hand_loop(setup: Setup) -> tuple[list[float], float]:
    """(a) The minimal loop: what one would write by hand for the same recipe."""
    start = time.perf_counter()
    device, batch, steps = setup.device, setup.batch, setup.steps
    torch.manual_seed(0)
    net = build_resnet18(setup.classes, setup.stem).to(device)
    fmt = torch.channels_last if setup.channels_last else torch.contiguous_format
    net = net.to(memory_format=fmt).train()
    opt_cfg, aug = setup.recipe["optimizer"], setup.recipe["augment"]
    optimizer = torch.optim.SGD(net.parameters(), lr=opt_cfg["lr"], momentum=opt_cfg["momentum"],
                                weight_decay=opt_cfg["weight_decay"], nesterov=True)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    images, labels = setup.images.to(device), setup.labels.to(device)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)
    generator = torch.Generator().manual_seed(0)
    augment = aug["crop_padding"] > 0 or aug["flip"]
    sync_device(device)
    stamps = [time.perf_counter()]
    while len(stamps) <= steps:
        order = torch.randperm(len(labels), generator=generator).to(device)
        for first in range(0, len(labels) - batch + 1, batch):
            index = order[first: first + batch]
            x, y = images[index], labels[index]
            if augment:
                x = random_crop_flip(x, aug["crop_padding"], aug["flip"], generator)
            x = ((x - mean) / std).contiguous(memory_format=fmt)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=setup.bf16):
                loss = F.cross_entropy(net(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            sync_device(device)
            stamps.append(time.perf_counter())
            if len(stamps) > steps:
                break
    return _durations(stamps, setup.warmup), time.perf_counter() - start


def _recipe_for(setup: Setup) -> Any:
    """The recipe as a TrainRecipe, with enough epochs for `steps` optimizer steps."""
    per_epoch = len(setup.labels) // setup.batch
    return recipe_from_values({**setup.recipe, "epochs": math.ceil(setup.steps / per_epoch)})


def lightning_path(setup: Setup, fast: bool = True) -> tuple[list[float], float]:
    """(b) / (d) `fit_classifier` itself, in a fresh run dir, stopped after `steps` steps."""
    from mia_lightning.training.fit import FitSpec, fit_classifier

    spec = FitSpec(images=setup.images, labels=setup.labels, train_index=torch.arange(len(setup.labels)),
                   num_classes=setup.classes, stem=setup.stem, mean=MEAN, std=STD, recipe=_recipe_for(setup),
                   seed=0, channels_last=setup.channels_last, fast=fast)
    timer = StepTimer(setup.device)
    run_dir = Path(tempfile.mkdtemp(prefix="fit-", dir=setup.workdir))
    start = time.perf_counter()
    with _quiet():
        fit_classifier(spec, run_dir, setup.trainer, "bench", callbacks=[timer], max_steps=setup.steps)
    return _durations(timer.stamps, setup.warmup), time.perf_counter() - start


def stacked_path(setup: Setup, g: int) -> tuple[list[float], float]:
    """(c) `fit_stack`: G models, each on the same images with its own seed (own order, own augmentation)."""
    from mia_lightning.shadows.stacked_training import StackSpec, fit_stack

    spec = StackSpec(images=setup.images, labels=setup.labels, train_indices=[torch.arange(len(setup.labels))] * g,
                     num_classes=setup.classes, stem=setup.stem, mean=MEAN, std=STD, recipe=_recipe_for(setup),
                     seeds=list(range(g)), channels_last=setup.channels_last)
    timer = StepTimer(setup.device)
    run_dir = Path(tempfile.mkdtemp(prefix=f"stack{g}-", dir=setup.workdir))
    start = time.perf_counter()
    with _quiet():
        fit_stack(spec, run_dir, setup.trainer, "bench", callbacks=[timer], max_steps=setup.steps)
    return _durations(timer.stamps, setup.warmup), time.perf_counter() - start


@contextlib.contextmanager
def _quiet():
    """Swallow Lightning's banner lines, warnings and the progress bar (it still runs and costs)."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stderr(sink), contextlib.redirect_stdout(sink):
        warnings.simplefilter("ignore")
        yield


def inference(setup: Setup, repeats: int, batch_size: int) -> dict[str, float]:
    """`compute_logits` (eval, inference_mode) on every image, identity query only."""
    net = build_resnet18(setup.classes, setup.stem)
    normalize = Normalize(MEAN, STD)
    queries = parse_queries(["identity"])
    compute_logits(net, normalize, setup.images[:batch_size], queries, batch_size, setup.device)  # warm-up
    times = []
    for _ in range(repeats):
        sync_device(setup.device)
        start = time.perf_counter()
        compute_logits(net, normalize, setup.images, queries, batch_size, setup.device)
        sync_device(setup.device)
        times.append(time.perf_counter() - start)
    n = len(setup.images)
    return {"images_per_s": n / min(times), "images_per_s_median": n / statistics.median(times),
            "batch_size": batch_size, "images": n, "repeats": repeats}


def attack_stage(threads: int | None) -> dict[str, Any]:
    from .attack_stage import attack_stage_benchmark

    timings = attack_stage_benchmark(num_shadows=64, num_points=40000, queries=2, classes=44, threads=threads)
    return {"seconds": timings, "target_s": 2.0, "met": timings["total"] < 2.0,
            "case": "64 shadows x 40000 points x 2 queries x 44 classes"}


def run_training(setup: Setup, variants: list[tuple[str, int, Callable[[], tuple[list[float], float]]]],
                 repeats: int, log: Callable[[str], None]) -> dict[str, Result]:
    results = {name: Result(name, models) for name, models, _ in variants}
    for round_ in range(repeats):
        shift = round_ % len(variants)
        for name, _, run in variants[shift:] + variants[:shift]:
            durations, wall = run()
            results[name].runs.append(durations)
            results[name].walls.append(wall)
            per_model = setup.batch / statistics.median(durations)
            log(f"  round {round_ + 1}/{repeats} {name:<10s} {per_model:8.1f} img/s per model  (run {wall:5.1f} s)")
    return results


