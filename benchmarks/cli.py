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
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .report import print_report, summary
from .training import Setup, attack_stage, hand_loop, inference, lightning_path, run_training, stacked_path
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.io.atomic import atomic_write_json


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
    """The `mia-bench` console script; `mia-bench micro ...` runs benchmarks/stacked_micro.py."""
    import sys

    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["micro"]:
        from .stacked_micro import main as micro

        micro(argv[1:])
        return
    run(argv)


def run(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write the JSON; returns the report."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import sys

    from rich.console import Console

    console = Console(stderr=args.json == "-", width=None if sys.stdout.isatty() else 150)
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.images, 3, 32, 32), generator=generator, dtype=torch.uint8).float() / 255
    labels = torch.randint(0, args.classes, (args.images,), generator=generator)
    recipe = {"epochs": 1, "batch_size": args.batch_size,
              "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "scheduler": "cosine"},
              "augment": {"crop_padding": args.crop_padding, "flip": not args.no_flip}}
    trainer = TrainerSettings({"accelerator": "gpu" if device.type == "cuda" else "cpu", "devices": 1,
                               "strategy": "auto", "precision": "bf16-mixed" if device.type == "cuda" else "32-true",
                               "enable_progress_bar": not args.no_progress_bar, "log_every_n_steps": 10})
    begun = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mia-bench-") as workdir:
        setup = Setup(images, labels, args.classes, args.stem, args.batch_size, args.steps, args.warmup, device,
                      recipe, not args.no_channels_last, trainer, Path(workdir))
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
    report = summary(args, setup, results, infer, attack, time.perf_counter() - begun)
    print_report(console, report)
    if args.json == "-":
        print(json.dumps(report, indent=2))
    elif args.json:
        path = atomic_write_json(args.json, report)
        console.print(f"results written to {path}")
    return report




if __name__ == "__main__":
    main()
