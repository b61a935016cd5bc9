"""Simulate a TML25-style task from a real dataset, with the true membership kept aside.

Draw a pool from the source, train a ResNet18 target (a Lightning run) on a random part
of it, then write the task exactly as the assignment distributes one: `pub.pt` (a
fraction of the pool with membership), `priv_out.pt` (the rest, membership None),
`01_MIA.pt` (the target's state_dict) — plus `truth.pt`, which only the scorer reads.
The task directory is keyed by a hash of everything that shapes it, so every run and
every sweep job of the same config reuses one simulated task.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from mia_lightning.config.recipe import recipe_values
from mia_lightning.config.task import TaskConfig
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_torch_save, atomic_write_json, atomic_write_text
from mia_lightning.io.locks import locked
from mia_lightning.logits.infer import compute_logits
from mia_lightning.logits.queries import parse_query
from mia_lightning.models.resnet import Normalize
from mia_lightning.shadows.fingerprint import config_hash
from mia_lightning.task.sources import load_source
from mia_lightning.task.tml25_format import write_task_file
from mia_lightning.training.fit import FitSpec, fit_classifier
from mia_lightning.training.progress import finished
from mia_lightning.utils.provenance import training_environment
from mia_lightning.utils.seeding import derive_seed

log = logging.getLogger("mia")

FILES = {"pub": "pub.pt", "priv": "priv_out.pt", "target": "01_MIA.pt", "truth": "truth.pt"}


def simulation_key(task_cfg: TaskConfig, stem: str) -> dict[str, Any]:
    """Every value that changes the simulated task's files."""
    return {
        "source": task_cfg.source, "pool_size": int(task_cfg.pool_size), "pub_fraction": float(task_cfg.pub_fraction),
        "member_fraction": float(task_cfg.member_fraction), "image_size": int(task_cfg.image_size),
        "image_format": task_cfg.image_format, "seed": int(task_cfg.seed), "stem": stem,
        "mean": [float(v) for v in task_cfg.mean], "std": [float(v) for v in task_cfg.std],
        "train": recipe_values(task_cfg.train),
    }


def simulated_task_dir(task_cfg: TaskConfig, stem: str, store_root: Path) -> Path:
    return store_root / "tasks" / f"{task_cfg.source}-{config_hash(simulation_key(task_cfg, stem))}"


def _stratified_pub(members: torch.Tensor, fraction: float, generator: torch.Generator) -> torch.Tensor:
    """bool [pool]: pub takes `fraction` of the members and of the non-members (like TML25's 50/50 pub)."""
    pub = torch.zeros(members.shape[0], dtype=torch.bool)
    for value in (True, False):
        where = (members == value).nonzero().squeeze(1)
        chosen = where[torch.randperm(len(where), generator=generator)[: round(fraction * len(where))]]
        pub[chosen] = True
    return pub


def simulate_task(task_cfg: TaskConfig, stem: str, settings: TrainerSettings, store_root: Path,
                  channels_last: bool = True) -> tuple[Path, bool]:
    """Create (once) the directory of a simulated task; return it and whether this call
    trained the target (False where it was stored, or another process made it meanwhile).

    The target's recipe is `task.train` alone: trainer flags that change what a model
    learns (`+trainer.gradient_clip_val`, ...) are meant for the shadows and are not applied.
    """
    task_dir = simulated_task_dir(task_cfg, stem, store_root)
    if (task_dir / "done").is_file():
        return task_dir, False
    task_dir.mkdir(parents=True, exist_ok=True)
    with locked(task_dir / "lock"):
        if (task_dir / "done").is_file():  # another process simulated it while we waited
            return task_dir, False
        _simulate_into(task_dir, task_cfg, stem, settings.execution_only(), channels_last)
    return task_dir, True


def _simulate_into(task_dir: Path, task_cfg: TaskConfig, stem: str, settings: TrainerSettings,
                   channels_last: bool) -> None:
    task_cfg.validate("task")
    images, labels = load_source(task_cfg.source, task_cfg.data_root, task_cfg.download, task_cfg.image_size)
    pool_size = int(task_cfg.pool_size)
    if not 4 <= pool_size <= len(labels):
        raise MiaError(f"task.pool_size must be in [4, {len(labels)}] for source {task_cfg.source}, got {pool_size}")
    num_classes = int(labels.max()) + 1
    generator = torch.Generator().manual_seed(derive_seed(task_cfg.seed, "simulate"))
    pool = torch.randperm(len(labels), generator=generator)[:pool_size]
    # quantise to 8 bits: what the target trains on is exactly what the PIL files hold
    images = (images[pool] * 255).round() / 255
    labels = labels[pool]
    members = torch.zeros(pool_size, dtype=torch.bool)
    members[torch.randperm(pool_size, generator=generator)[: round(float(task_cfg.member_fraction) * pool_size)]] = True
    ids = torch.randperm(15 * pool_size, generator=generator)[:pool_size]  # non-contiguous ids, like TML25's

    start = time.monotonic()
    log.info("simulating task %s: training its target (%d epochs on %d of %d %s images) in %s", task_cfg.name,
             task_cfg.train.epochs, int(members.sum()), pool_size, task_cfg.source, task_dir)
    spec = FitSpec(images=images, labels=labels, train_index=members.nonzero().squeeze(1), num_classes=num_classes,
                   stem=stem, mean=list(task_cfg.mean), std=list(task_cfg.std), recipe=task_cfg.train,
                   seed=derive_seed(task_cfg.seed, "target"), channels_last=channels_last)
    net = fit_classifier(spec, task_dir / "target", settings, "target")
    logits = compute_logits(net, Normalize(task_cfg.mean, task_cfg.std), images, [parse_query("identity")])[:, 0]
    correct = (logits.argmax(1) == labels).float()
    accuracy = {"train_acc": float(correct[members].mean()), "test_acc": float(correct[~members].mean())}
    finished(f"target: train acc {accuracy['train_acc']:.3f}  test acc {accuracy['test_acc']:.3f}  "
             f"{time.monotonic() - start:.1f} s")  # like a shadow's line (shadows/runner.py)

    pub = _stratified_pub(members, float(task_cfg.pub_fraction), generator)
    priv = ~pub
    fmt = task_cfg.image_format
    write_task_file(task_dir / FILES["pub"], ids[pub].tolist(), images[pub], labels[pub].tolist(),
                    members[pub].int().tolist(), fmt)
    write_task_file(task_dir / FILES["priv"], ids[priv].tolist(), images[priv], labels[priv].tolist(),
                    [None] * int(priv.sum()), fmt)
    atomic_torch_save(task_dir / FILES["target"], {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
    atomic_torch_save(task_dir / FILES["truth"], {"ids": ids[priv].clone(), "membership": members[priv].to(torch.int8)})
    info = {
        "source": task_cfg.source, "pool_size": pool_size, "pub": int(pub.sum()), "priv": int(priv.sum()),
        "members": int(members.sum()), "num_classes": num_classes, "stem": stem,
        "target": {**accuracy, "seconds": round(time.monotonic() - start, 1),
                   "trained_on": training_environment(settings.inference_device())},
        "key": simulation_key(task_cfg, stem),
    }
    atomic_write_json(task_dir / "task.json", info)
    atomic_write_text(task_dir / "done", json.dumps(info["target"]) + "\n")
