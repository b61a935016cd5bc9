"""Time the attack stage (all attacks but the master) at the real task's size.

The TML25 pool is 40,000 points and 44 classes; 64 shadows with 2 queries make the shadow
logits 0.9 GB of float32, so any per-point Python loop or a second full-size copy shows.
"""

from __future__ import annotations

import time

import torch

from mia_lightning.attacks.base import AttackInputs
from mia_lightning.attacks.registry import run_attacks
from mia_lightning.config.attack import AttackConfig
from mia_lightning.config.master import MasterConfig
from mia_lightning.config.trainer import TrainerSettings

FAST_ATTACKS = ("threshold", "loss", "lira_online", "lira_offline", "rmia")


def synthetic_inputs(num_shadows: int, num_points: int, queries: int, classes: int, seed: int = 0) -> AttackInputs:
    """Random logits with a balanced keep mask and half of the points published (pub)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (num_points,), generator=generator)
    draws = torch.rand(num_shadows, num_points, generator=generator)
    # every point IN exactly half of the shadows (LiRA's mask); one shadow: a random half
    keep = draws.argsort(0) < num_shadows // 2 if num_shadows > 1 else draws < 0.5
    known = torch.full((num_points,), -1, dtype=torch.int8)
    known[: num_points // 2] = (torch.rand(num_points // 2, generator=generator) < 0.5).to(torch.int8)
    return AttackInputs(
        target_logits=3 * torch.randn(num_points, queries, classes, generator=generator),
        shadow_logits=3 * torch.randn(num_shadows, num_points, queries, classes, generator=generator),
        keep=keep, labels=labels, known_membership=known,
    )


def attack_stage_benchmark(num_shadows: int = 64, num_points: int = 40000, queries: int = 2, classes: int = 44,
                           seed: int = 0, threads: int | None = None) -> dict[str, float]:
    """Seconds per non-master attack plus "total" (the whole run_attacks call).

    The shared shadow phi is computed by the first attack that needs it (lira_online by
    default order), so that attack's time includes it. `threads` sets torch's intra-op
    threads for the timed call only: on a CPU that other processes also load, one thread
    beats several waiting on each other at every op.
    """
    inputs = synthetic_inputs(num_shadows, num_points, queries, classes, seed)
    attack = AttackConfig(names=list(FAST_ATTACKS))
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        start = time.perf_counter()
        results = run_attacks(inputs, attack, MasterConfig(), TrainerSettings(), seed=seed)
        total = time.perf_counter() - start
    finally:
        torch.set_num_threads(before)
    timings = {name: float(result.notes["seconds"]) for name, result in results.items()}
    timings["total"] = total
    return timings


if __name__ == "__main__":
    import sys

    chosen = int(sys.argv[1]) if len(sys.argv) > 1 else None
    print(f"attack stage, 64 shadows x 40000 points x 2 queries x 44 classes, threads={chosen or torch.get_num_threads()}")
    for key, value in attack_stage_benchmark(threads=chosen).items():
        print(f"{key:>14s} {value:8.3f} s")
