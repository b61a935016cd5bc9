"""Load a whole task (pub, priv, target weights, optional truth) and check it fits together."""

from __future__ import annotations

import os
from pathlib import Path
import torch

from mia_lightning.config.task import TaskConfig
from mia_lightning.errors import MiaError
from mia_lightning.io.safe_load import describe_path, safe_torch_load
from mia_lightning.task.data import Task, TaskSplit
from mia_lightning.task.fields import to_split
from mia_lightning.task.tml25_format import load_raw
from mia_lightning.task.weights import load_target_weights


def read_split(path: str | os.PathLike, key: str, image_size: int = 32, resize: bool = False) -> TaskSplit:
    """Read one TML25-format file (pub.pt / priv_out.pt) safely into a TaskSplit."""
    where = describe_path(path, key)
    fields = load_raw(path, key)
    try:
        return to_split(fields, where, image_size, resize)
    except (TypeError, ValueError, RuntimeError, IndexError, KeyError, AttributeError, OverflowError) as err:
        # a backstop at the untrusted-file boundary: the checks in fields.py name most problems
        raise MiaError(f"{where}: malformed task file: {type(err).__name__}: {' '.join(str(err).split())[:200]}") from None


def read_truth(path: str | os.PathLike, priv: TaskSplit, key: str = "task.truth") -> torch.Tensor:
    """int8 [len(priv)] membership of the private points, aligned to priv's order by id."""
    where = describe_path(path, key)
    obj = safe_torch_load(path, key=key)
    if not (isinstance(obj, dict) and isinstance(obj.get("ids"), torch.Tensor) and isinstance(obj.get("membership"), torch.Tensor)):
        raise MiaError(f"{where}: expected a dict with tensors 'ids' and 'membership'")
    ids, membership = obj["ids"], obj["membership"]
    if ids.dim() != 1 or membership.dim() != 1 or ids.shape != membership.shape:
        raise MiaError(f"{where}: 'ids' and 'membership' must be 1-D and of equal length, "
                       f"got shapes {list(ids.shape)} and {list(membership.shape)}")
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise MiaError(f"{where}: 'ids' must hold integers, got {ids.dtype}")
    if not bool(((membership == 0) | (membership == 1)).all()):
        raise MiaError(f"{where}: membership must be 0 or 1")
    truth = dict(zip(ids.tolist(), membership.to(torch.int8).tolist()))
    missing = [i for i in priv.ids.tolist() if i not in truth]
    if missing:
        raise MiaError(f"{where}: no membership for {len(missing)} private ids (first {missing[0]})")
    return torch.tensor([truth[i] for i in priv.ids.tolist()], dtype=torch.int8)


def class_count_warnings(num_classes: int, pub: TaskSplit, priv: TaskSplit, target_path: Path) -> list[str]:
    """Weights with more output classes than the labels use (44-class weights on 10-class
    files) load and run, but the shadows then learn a 44-way problem of 10 classes and the
    files are most likely from different releases: say so (log and metrics.json `warnings`)."""
    used = int(max(int(pub.labels.max()), int(priv.labels.max()))) + 1
    if used >= num_classes:
        return []
    return [f"task.target={target_path} has {num_classes} output classes, but the labels of task.pub and "
            f"task.priv use only {used} (0..{used - 1}): are the weights and the files from the same release? "
            f"(the shadows are trained with {num_classes} classes)"]


def _required(cfg: TaskConfig, key: str) -> Path:
    value = {"pub": cfg.pub, "priv": cfg.priv, "target": cfg.target}[key]
    if not value:
        raise MiaError(f"task.{key} is not set: pass task.{key}=path/to/file")
    return Path(str(value)).expanduser()


def load_task(cfg: TaskConfig, model_stem: str = "auto", *, read_truth_file: bool = False) -> Task:
    """Build a Task from a `task` config whose pub/priv/target point at files.

    The hidden truth (`task.truth`) is only located here, not read: the scorer reads it in
    the report stage (`read_truth_file=True` reads and checks it now), so no stage before
    the report, the recipe search included, can even see it.
    """
    resize = cfg.resize
    pub_path, priv_path, target_path = (_required(cfg, k) for k in ("pub", "priv", "target"))
    pub = read_split(pub_path, "task.pub", cfg.image_size, resize)
    priv = read_split(priv_path, "task.priv", cfg.image_size, resize)
    if not pub.membership_known:
        raise MiaError(f"task.pub={pub_path}: every public point needs membership 0 or 1")
    overlap = set(pub.ids.tolist()) & set(priv.ids.tolist())
    if overlap:
        raise MiaError(f"task.pub and task.priv share {len(overlap)} ids (e.g. {min(overlap)})")
    state, num_classes, stem = load_target_weights(target_path, "task.target", model_stem)
    for split, key, path in ((pub, "task.pub", pub_path), (priv, "task.priv", priv_path)):
        top = int(split.labels.max())
        if top >= num_classes:
            raise MiaError(
                f"{key}={path}: label {top} does not fit the target's {num_classes} classes "
                f"(task.target={target_path}); are the files from the same release?"
            )
    warnings = class_count_warnings(num_classes, pub, priv, target_path)
    truth_path = Path(str(cfg.truth)).expanduser() if cfg.truth else None
    if truth_path is not None and not truth_path.is_file():
        raise MiaError(f"task.truth={truth_path}: file not found")
    if len(cfg.mean) != 3 or len(cfg.std) != 3 or min(cfg.std) <= 0:
        raise MiaError("task.mean and task.std need 3 values each, std > 0")
    task = Task(
        name=str(cfg.name), pub=pub, priv=priv, target_state=state, num_classes=num_classes, stem=stem,
        mean=[float(m) for m in cfg.mean], std=[float(s) for s in cfg.std],
        files={"pub": pub_path, "priv": priv_path, "target": target_path,
               **({"truth": truth_path} if truth_path is not None else {})},
        meta={"warnings": warnings},
    )
    if read_truth_file and truth_path is not None:
        task.truth = read_truth(truth_path, priv)
    return task
