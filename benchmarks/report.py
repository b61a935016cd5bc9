"""The `mia-bench` report: ratios to the hand loop, the JSON layout, and the printed tables."""

from __future__ import annotations

import argparse
import os
import platform
import statistics
from typing import Any

import torch

from .training import Result, Setup


def summary(args: argparse.Namespace, setup: Setup, results: dict[str, Result], infer: dict[str, float],
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
                   "channels_last": setup.channels_last, "precision": setup.trainer.flags['precision'],
                   "progress_bar": setup.trainer.progress_bar, "stack": list(args.stack)},
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


def print_report(console: Any, report: dict[str, Any]) -> None:
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

