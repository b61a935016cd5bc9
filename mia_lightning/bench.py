"""`mia-bench`: training and inference throughput of the framework against a hand-written loop.

One run prints, on the same model (torchvision ResNet18), data (random 32x32 images),
batch size and number of steps, the training images/s of

  (a) `hand`:      a minimal hand-written PyTorch loop (data on the device, same augmentation,
                   same optimizer and schedule, nothing else);
  (b) `lightning`: the framework's shadow path, `fit_classifier` itself: ClassifierModule +
                   InMemoryDataModule + lightning.Trainer with the shadow run's callbacks
                   (epoch checkpoints through AtomicCheckpointIO, TensorBoard, progress bar);
  (c) `stack G`:   the stacked path (`fit_stack`, G shadows in one grouped network, each model
                   its own batch of the same size); "shadow img/s" is G x its images/s per
                   model, and its ratio to (b) is the speed-up of stacking G shadows;
  (d) `plain`:     `fit_classifier` with `fast=False` (DataLoader, per-sample CPU augmentation,
                   collation, host->device copies);

with the ratios to (a), then inference images/s (`compute_logits`) and the attack stage's
time on random logits (64 shadows x 40,000 points x 2 queries x 44 classes).

Throughput is steady-state: the time between consecutive optimizer steps after `--warmup`
steps, so the whole step is counted (data, augmentation, hooks, logging) but not the
one-off Trainer setup and end-of-run checkpoint, which "fit wall" reports separately (per
run, so it is dominated by fixed costs at these small step counts). Variants run
interleaved, `--repeats` rounds in a rotating order. The headline images/s of a variant is
the median step of its least disturbed run (other jobs on a shared machine slow whole runs,
and every variant gets the same number of chances at a quiet one); the pooled median and
the single fastest step are shown too. The ratio targets (b)/(a) >= 0.95 on the CPU.

    mia-bench                                   # CPU defaults, a few minutes on 2 cores
    mia-bench --device cuda --steps 60 --stack 2 4 8 16 --json bench.json
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import os
import platform
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

from mia_lightning.io.atomic import atomic_write_json
from mia_lightning.config.schema import TrainerConfig
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
    trainer_cfg: TrainerConfig
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


def _recipe_for(setup: Setup) -> dict[str, Any]:
    per_epoch = len(setup.labels) // setup.batch
    return {**setup.recipe, "epochs": math.ceil(setup.steps / per_epoch)}


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
        fit_classifier(spec, run_dir, setup.trainer_cfg, "bench", callbacks=[timer], max_steps=setup.steps)
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
        fit_stack(spec, run_dir, setup.trainer_cfg, "bench", callbacks=[timer], max_steps=setup.steps)
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
    from mia_lightning.attacks.bench import attack_stage_benchmark

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


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="mia-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--steps", type=int, default=16, help="optimizer steps per run (incl. warmup)")
    p.add_argument("--warmup", type=int, default=3, help="steps left out of the throughput")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--images", type=int, default=4096, help="random training images")
    p.add_argument("--classes", type=int, default=44)
    p.add_argument("--stem", default="imagenet", choices=["imagenet", "cifar"])
    p.add_argument("--stack", type=int, nargs="*", default=None, help="stack sizes G (default: 2 4 on CPU, 2 4 8 on CUDA)")
    p.add_argument("--repeats", type=int, default=4, help="interleaved rounds of every variant")
    p.add_argument("--crop-padding", type=int, default=4)
    p.add_argument("--no-flip", action="store_true")
    p.add_argument("--no-channels-last", action="store_true")
    p.add_argument("--no-plain", action="store_true", help="skip (d), the plain DataLoader path")
    p.add_argument("--no-attack", action="store_true", help="skip the attack-stage timing")
    p.add_argument("--attack-threads", type=int, default=None, help="torch threads for the attack stage")
    p.add_argument("--no-progress-bar", action="store_true", help="run Lightning without its progress bar")
    p.add_argument("--inference-batch-size", type=int, default=1024)
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    p.add_argument("--json", default="outputs/bench.json", help="write the results here ('-': stdout, '': nowhere)")
    args = p.parse_args(argv)
    if args.steps <= args.warmup + 1:
        p.error("--steps must exceed --warmup + 1")
    if args.stack is None:
        args.stack = [2, 4] if args.device == "cpu" else [2, 4, 8]
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device here")
    return args


def main(argv: list[str] | None = None) -> None:
    """The `mia-bench` console script."""
    run(argv)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON; returns the report."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    from rich.console import Console

    console = Console(stderr=args.json == "-", width=None if _is_terminal() else 150)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), generator=generator, dtype=torch.uint8).float() / 255
    labels = torch.randint(0, args.classes, (args.images,), generator=generator)
    recipe = {"epochs": 1, "batch_size": args.batch_size,
              "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "scheduler": "cosine"},
              "augment": {"crop_padding": args.crop_padding, "flip": not args.no_flip}}
    trainer_cfg = TrainerConfig(accelerator="gpu" if device.type == "cuda" else "cpu",
                                precision="bf16-mixed" if device.type == "cuda" else "32-true",
                                enable_progress_bar=not args.no_progress_bar)
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mia-bench-") as workdir:
        setup = Setup(images, labels, args.classes, args.stem, args.batch_size, args.steps, args.warmup, device,
                      recipe, not args.no_channels_last, trainer_cfg, Path(workdir))
        console.print(f"[bold]mia-bench[/]: ResNet18 ({args.stem} stem, {args.classes} classes), {args.images} random "
                      f"32x32 images, batch {args.batch_size}, {args.steps} steps/run ({args.warmup} warm-up), "
                      f"{args.repeats} rounds, device {device}, {torch.get_num_threads()} threads, "
                      f"augment {recipe['augment']}, channels_last {setup.channels_last}")
        hand_loop(Setup(**{**vars(setup), "steps": 2, "warmup": 0}))  # one-off process warm-up, untimed
        variants: list[tuple[str, int, Callable[[], tuple[list[float], float]]]] = [
            ("hand", 1, lambda: hand_loop(setup)),
            ("lightning", 1, lambda: lightning_path(setup, fast=True)),
        ]
        if not args.no_plain:
            variants.append(("plain", 1, lambda: lightning_path(setup, fast=False)))
        for g in args.stack:
            variants.append((f"stack {g}", g, lambda g=g: stacked_path(setup, g)))
        results = run_training(setup, variants, args.repeats, lambda line: console.print(line, style="dim"))
        infer = inference(setup, args.repeats, args.inference_batch_size)
    attack = None if args.no_attack else attack_stage(args.attack_threads)
    report = _report(args, setup, results, infer, attack, time.perf_counter() - begun)
    _print(console, report)
    if args.json == "-":
        print(json.dumps(report, indent=2))
    elif args.json:
        path = atomic_write_json(args.json, report)
        console.print(f"results written to {path}")
    return report


def _report(args: argparse.Namespace, setup: Setup, results: dict[str, Result], infer: dict[str, float],
            attack: dict[str, Any] | None, seconds: float) -> dict[str, Any]:
    batch = setup.batch
    # shadow-images/s: images/s per model times the models trained at once (G for a stack);
    # its ratio to (b) is the speed-up of training shadows stacked over one at a time
    base = {stat: results["hand"].rate(batch, stat) for stat in ("run", "median", "best")}
    lightning = results["lightning"].rate(batch)
    training = {}
    for name, result in results.items():
        rates = {stat: result.rate(batch, stat) * result.models for stat in ("run", "median", "best")}
        training[name] = {
            "models_per_step": result.models,
            "images_per_s_per_model": rates["run"] / result.models,
            "shadow_images_per_s": rates["run"],
            "shadow_images_per_s_pooled_median": rates["median"],
            "shadow_images_per_s_best_step": rates["best"],
            "ratio_to_hand": rates["run"] / base["run"],
            "ratio_to_hand_pooled_median": rates["median"] / base["median"],
            "ratio_to_hand_best_step": rates["best"] / base["best"],
            "ratio_to_lightning": rates["run"] / lightning,
            "fit_wall_s_best": min(result.walls),
            "fit_wall_shadow_images_per_s": result.wall_rate(batch, setup.steps) * result.models,
            "run_medians_images_per_s_per_model": [batch / statistics.median(run) for run in result.runs],
        }
    stacks = {name: v for name, v in training.items() if name.startswith("stack")}
    paying = [name for name, v in stacks.items() if v["ratio_to_lightning"] > 1.0]
    best_stack = max(paying, key=lambda n: stacks[n]["ratio_to_lightning"]) if paying else None
    return {
        "config": {"device": str(setup.device), "threads": torch.get_num_threads(), "batch_size": batch,
                   "steps": setup.steps, "warmup": setup.warmup, "repeats": args.repeats, "images": len(setup.labels),
                   "classes": setup.classes, "stem": setup.stem, "augment": setup.recipe["augment"],
                   "channels_last": setup.channels_last, "precision": setup.trainer_cfg.precision,
                   "progress_bar": setup.trainer_cfg.enable_progress_bar, "stack": list(args.stack)},
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
                    "cuda": torch.cuda.get_device_name(0) if setup.device.type == "cuda" else None,
                    "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None},
        "training": training,
        "targets": {"lightning_over_hand": training["lightning"]["ratio_to_hand"], "lightning_target": 0.95,
                    "lightning_met": training["lightning"]["ratio_to_hand"] >= 0.95,
                    "best_stack": best_stack,
                    "stack_speedup_over_lightning": {n: v["ratio_to_lightning"] for n, v in stacks.items()}},
        "inference": infer,
        "attack": attack,
        "bench_seconds": seconds,
    }


def _is_terminal() -> bool:
    import sys

    return sys.stdout.isatty()


def _print(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    cfg = report["config"]
    table = Table(title=f"training throughput, {cfg['device']} ({cfg['threads']} threads), batch {cfg['batch_size']} "
                        "per model; shadow img/s = images/s per model x models per step")
    for column in ("variant", "G", "img/s per model", "shadow img/s", "pooled median", "best step", "/ hand",
                   "/ hand (pooled)", "/ hand (best step)", "/ lightning", "fit wall s"):
        table.add_column(column, justify="left" if column == "variant" else "right")
    labels = {"hand": "(a) hand loop", "lightning": "(b) lightning", "plain": "(d) plain (fast=false)"}
    for name, v in report["training"].items():
        table.add_row(labels.get(name, f"(c) {name}"), str(v["models_per_step"]),
                      f"{v['images_per_s_per_model']:.1f}", f"{v['shadow_images_per_s']:.1f}",
                      f"{v['shadow_images_per_s_pooled_median']:.1f}", f"{v['shadow_images_per_s_best_step']:.1f}",
                      f"{v['ratio_to_hand']:.3f}", f"{v['ratio_to_hand_pooled_median']:.3f}",
                      f"{v['ratio_to_hand_best_step']:.3f}", f"{v['ratio_to_lightning']:.3f}",
                      f"{v['fit_wall_s_best']:.1f}")
    console.print(table)
    targets = report["targets"]
    verdict = "[green]met[/]" if targets["lightning_met"] else "[red]NOT met[/]"
    console.print(f"lightning / hand = {targets['lightning_over_hand']:.3f} (target >= 0.95: {verdict}); "
                  f"largest paying stack: {targets['best_stack'] or 'none (no G beats the single path here)'}")
    infer = report["inference"]
    console.print(f"inference (compute_logits, identity query, batch {infer['batch_size']}): "
                  f"{infer['images_per_s']:.1f} img/s (best of {infer['repeats']}), {infer['images_per_s_median']:.1f} median")
    attack = report["attack"]
    if attack is None:
        return
    seconds = attack["seconds"]
    parts = ", ".join(f"{k} {v:.2f}" for k, v in seconds.items() if k != "total")
    verdict = "[green]met[/]" if attack["met"] else "[red]NOT met[/]"
    console.print(f"attack stage ({attack['case']}): total {seconds['total']:.2f} s (target < 2 s: {verdict}); {parts}")
    console.print(f"bench time {report['bench_seconds']:.0f} s")


if __name__ == "__main__":
    main()
