"""Microbenchmark: training throughput of G stacked ResNet18s vs one plain ResNet18.

Prints training images/s PER MODEL (each of the G models sees its own batch of `--batch`
images per step), for: a plain torchvision ResNet18, `StackedResNet18` (grouped convs) and
`VmapResNet18` (torch.func vmap over stacked weights). One step = forward, summed
cross-entropy, backward, SGD (momentum, weight decay), on random data already in memory,
so this measures the model alone.

Variants are timed round-robin (one step of each per round) and scored by their fastest
and median step, so that other processes sharing a small machine slow all variants alike
instead of whichever happened to run at the time.

    mia-bench micro                                       # CPU defaults, < 3 minutes on 2 cores
    mia-bench micro --device cuda --steps 50 --grouped 2 4 8 16 --vmap 2 4 8
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .training import sync_device
from mia_lightning.models.resnet import build_resnet18
from mia_lightning.models.stacked_resnet import StackedResNet18, VmapResNet18, stack_inputs


@dataclass
class Variant:
    name: str
    g: int
    step: Callable[[], None]
    times: list[float] = field(default_factory=list)


def make_variant(name: str, g: int, args: argparse.Namespace, device: torch.device) -> Variant:
    """Model, optimizer and one fixed batch per model, wrapped as a training-step closure."""
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    if name == "plain":
        model: nn.Module = build_resnet18(args.classes, args.stem)
        forward: Callable[[Tensor], Tensor] = lambda x: model(x[0].contiguous(memory_format=fmt)).unsqueeze(0)
    elif name == "grouped":
        model = StackedResNet18(g, args.classes, args.stem)
        forward = lambda x: model(stack_inputs(x).contiguous(memory_format=fmt))
    elif name == "vmap":
        model = VmapResNet18(g, args.classes, args.stem)
        forward = model
    else:
        raise ValueError(name)
    model.to(device).train()
    if args.channels_last and name != "vmap":
        model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(g, args.batch, 3, args.size, args.size, device=device)
    y = torch.randint(0, args.classes, (g, args.batch), device=device)

    def step() -> None:
        logits = forward(x)  # [G, B, classes]
        loss = F.cross_entropy(logits.flatten(0, 1), y.flatten(), reduction="sum") / args.batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return Variant(name, g, step)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--classes", type=int, default=44)
    p.add_argument("--stem", default="imagenet", choices=["imagenet", "cifar"])
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--grouped", type=int, nargs="*", default=[2, 4, 8])
    p.add_argument("--vmap", type=int, nargs="*", default=[2, 4])
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: leave the default)")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"device={device} threads={torch.get_num_threads()} batch={args.batch} size={args.size} "
        f"classes={args.classes} stem={args.stem} channels_last={args.channels_last} steps={args.steps}",
        flush=True,
    )

    variants = [make_variant("plain", 1, args, device)]
    variants += [make_variant("grouped", g, args, device) for g in args.grouped]
    variants += [make_variant("vmap", g, args, device) for g in args.vmap]
    for v in variants:
        for _ in range(args.warmup):
            v.step()
    for _ in range(args.steps):
        for v in variants:
            sync_device(device)
            start = time.perf_counter()
            v.step()
            sync_device(device)
            v.times.append(time.perf_counter() - start)

    base = args.batch / min(variants[0].times)
    print(f"{'variant':<8} {'G':>3} {'img/s/model':>12} {'(median)':>9} {'img/s total':>12} {'total/plain':>12}")
    for v in variants:
        best, median = args.batch / min(v.times), args.batch / statistics.median(v.times)
        print(f"{v.name:<8} {v.g:>3} {best:>12.1f} {median:>9.1f} {best * v.g:>12.1f} {best * v.g / base:>11.2f}x")


if __name__ == "__main__":
    main()
