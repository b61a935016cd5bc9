"""Every place mia reads a `.pt` (or pickle) file, as `path -> result` callables.

Each loader either returns a validated result or raises one `MiaError`; the untrusted-file
suite feeds every one of them the same hostile files. Loaders that read from a fixed
location (the store's keep.pt, a shadow's weights.pt / logits.pt, Lightning's last.ckpt,
CIFAR-10's batches) first copy the file into place.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from omegaconf import OmegaConf

from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.logits.logits_file import ensure_logits, read_logits
from mia_lightning.logits.queries import parse_queries
from mia_lightning.models.resnet import build_resnet18
from mia_lightning.shadows.job import load_shadow_weights
from mia_lightning.shadows.store import ShadowStore
from mia_lightning.task.data import TaskSplit
from mia_lightning.task.load import load_task, read_split, read_truth
from mia_lightning.task.sources import read_cifar_folder
from mia_lightning.task.tml25_format import write_task_file
from mia_lightning.task.weights import load_target_weights
from mia_lightning.training.checkpoint_io import AtomicCheckpointIO

IMAGE_SIZE = 8
NUM_POINTS = 6  # pool = pub (3) + priv (3)
NUM_CLASSES = 10


def small_split_files(root: Path) -> dict[str, Path]:
    """A valid tiny task on disk: pub/priv (PIL format, 8x8), target weights, truth."""
    root.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator().manual_seed(0)
    images = (torch.rand(NUM_POINTS, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator) * 255).round() / 255
    files = {"pub": root / "pub.pt", "priv": root / "priv.pt", "target": root / "target.pt", "truth": root / "truth.pt"}
    write_task_file(files["pub"], [10, 11, 12], images[:3], [0, 1, 2], [1, 0, 1])
    write_task_file(files["priv"], [20, 21, 22], images[3:], [3, 4, 5], [None, None, None])
    torch.manual_seed(0)
    torch.save(build_resnet18(NUM_CLASSES, "imagenet").state_dict(), files["target"])
    torch.save({"ids": torch.tensor([20, 21, 22]), "membership": torch.tensor([1, 0, 1], dtype=torch.int8)}, files["truth"])
    return files


def task_cfg(files: dict[str, Path], **override: Any) -> Any:
    values = {"name": "t", "pub": str(files["pub"]), "priv": str(files["priv"]), "target": str(files["target"]),
              "truth": None, "image_size": IMAGE_SIZE, "resize": False,
              "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}
    values.update({k: (str(v) if isinstance(v, Path) else v) for k, v in override.items()})
    return OmegaConf.create(values)


def priv_split() -> TaskSplit:
    return TaskSplit(ids=torch.tensor([20, 21, 22]), images=torch.zeros(3, 3, IMAGE_SIZE, IMAGE_SIZE),
                     labels=torch.tensor([3, 4, 5]), membership=torch.full((3,), -1, dtype=torch.int8))


def build_loaders(work: Path, files: dict[str, Path]) -> dict[str, Callable[[Path], Any]]:
    """name -> loader(path); `work` is scratch space for the loaders that read fixed locations."""
    store = ShadowStore(work / "store", "fingerprint", {"split": "halves", "in_fraction": 0.5, "seed": 0})
    queries = parse_queries(["identity", "mirror"])
    shadow_ctx = SimpleNamespace(stem="imagenet", num_classes=NUM_CLASSES)

    def place(path: Path, where: Path) -> Path:
        where.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, where)
        return where

    def keep_mask(path: Path) -> Any:
        place(path, store.dir / "keep.pt")
        return store.keep_mask(2, NUM_POINTS, 3)

    def stored_logits(path: Path) -> Any:
        target = place(path, work / "shadow" / "logits.pt")
        return ensure_logits(target, queries, NUM_POINTS, lambda missing: torch.zeros(NUM_POINTS, len(missing), NUM_CLASSES))

    def cifar(path: Path) -> Any:
        place(path, work / "cifar" / "data_batch_1")
        return read_cifar_folder(work / "cifar")

    return {
        "read_split": lambda path: read_split(path, "task.pub", IMAGE_SIZE),
        "load_task(pub)": lambda path: load_task(task_cfg(files, pub=path)),
        "load_task(priv)": lambda path: load_task(task_cfg(files, priv=path)),
        "load_target_weights": lambda path: load_target_weights(path, "task.target"),
        "read_truth": lambda path: read_truth(path, priv_split()),
        "read_logits": lambda path: read_logits(path, NUM_POINTS),
        "stored logits.pt": stored_logits,
        "keep.pt": keep_mask,
        "shadow weights.pt": lambda path: load_shadow_weights(place(path, work / "shadow" / "weights.pt"), shadow_ctx),
        "checkpoint (AtomicCheckpointIO)": lambda path: AtomicCheckpointIO().load_checkpoint(path),
        "safe_torch_load": lambda path: safe_torch_load(path),
        "cifar batch": cifar,
    }
