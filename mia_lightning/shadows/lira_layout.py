"""The LiRA reference layout (Carlini et al.'s mi_lira_2021 and its PyTorch ports): shadows as `.npy`.

One directory per model, each with `keep.npy` (bool [N]: the model trained on point n) and
its logits on the N points, either `logits.npy` [N, A, C] (lira-pytorch) or the newest
`logits/*.npy` [N, 1, A, C] (the original code, one file per epoch). The models' directories
sit side by side in one directory (lira-pytorch's `--savedir`), named `experiment-NNN` when
mia writes them, so the original code (which looks for `experiment*`) finds them too.

Reading checks everything a store entry needs (same N, A and C in every model, the task's
point and class count, 0/1 keep values, finite logits) and fails with one line naming the
file. `.npy` files are read with `numpy.load(allow_pickle=False)`: an object array (a pickle)
is refused, never unpickled.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mia_lightning.errors import MiaError
from mia_lightning.io.atomic import atomic_write

PREFIX = "experiment-"


@dataclass
class LiraShadows:
    """Shadows in the LiRA layout, as mia's tensors."""

    logits: Tensor  # float32 [K, N, A, C]
    keep: Tensor  # bool [K, N]
    sources: list[str]  # the model directories, in order


def load_npy(path: Path) -> np.ndarray:
    """A plain (non-object) array from `path`, or a one-line MiaError naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as error:  # numpy refuses object arrays without allow_pickle
        raise MiaError(f"{path}: refused to load: {error} (mia never unpickles files)") from None
    except (OSError, EOFError) as error:
        raise MiaError(f"{path}: not a readable .npy file: {error}") from None


def save_npy(path: Path, array: np.ndarray) -> None:
    """np.save through a temp file and a rename (no half-written .npy ever)."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write(path, lambda handle: handle.write(buffer.getvalue()))


def model_dirs(root: Path) -> list[Path]:
    """The model directories under `root`: those holding a keep.npy, in sorted order."""
    if not root.is_dir():
        raise MiaError(f"{root}: not a directory (expected one directory per shadow model, each with keep.npy)")
    found = sorted(d for d in root.iterdir() if d.is_dir() and (d / "keep.npy").is_file())
    if not found:
        raise MiaError(f"{root}: no model directory with a keep.npy in it (the LiRA layout: "
                       "<dir>/<model>/keep.npy and <dir>/<model>/logits.npy)")
    return found


def logits_file(model: Path) -> Path:
    """lira-pytorch's logits.npy, else the newest of the original code's logits/*.npy."""
    if (model / "logits.npy").is_file():
        return model / "logits.npy"
    epochs = sorted((model / "logits").glob("*.npy")) if (model / "logits").is_dir() else []
    if not epochs:
        raise MiaError(f"{model}: no logits.npy (nor logits/*.npy) next to keep.npy")
    return epochs[-1]


def read_keep(path: Path, num_points: int) -> Tensor:
    keep = load_npy(path)
    if keep.shape != (num_points,):
        raise MiaError(f"{path}: keep has shape {list(keep.shape)}, the task has {num_points} points")
    if keep.dtype != np.bool_:
        if not np.issubdtype(keep.dtype, np.integer) or not np.isin(keep, (0, 1)).all():
            raise MiaError(f"{path}: keep must be bool or 0/1 integers, got {keep.dtype}")
    return torch.from_numpy(keep.astype(np.bool_))


def read_model_logits(path: Path, num_points: int, num_classes: int, queries: int | None) -> Tensor:
    logits = load_npy(path)
    if logits.ndim == 4 and logits.shape[1] == 1:  # the original code's [N, 1, A, C]
        logits = logits[:, 0]
    if logits.ndim != 3 or not np.issubdtype(logits.dtype, np.floating):
        raise MiaError(f"{path}: logits must be float [N, A, C] (or [N, 1, A, C]), got {logits.dtype} "
                       f"{list(logits.shape)}")
    n, a, c = logits.shape
    if n != num_points:
        raise MiaError(f"{path}: logits cover {n} points, the task has {num_points}")
    if c != num_classes:
        raise MiaError(f"{path}: logits have {c} classes, the task has {num_classes}")
    if queries is not None and a != queries:
        raise MiaError(f"{path}: logits have {a} queries, expected {queries} (as the other models / --queries)")
    if not np.isfinite(logits).all():
        raise MiaError(f"{path}: logits hold {int((~np.isfinite(logits)).sum())} NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))


def read_lira(root: str | os.PathLike, num_points: int, num_classes: int, queries: int | None = None) -> LiraShadows:
    """Every model under `root`, checked against the task's N and C (and A when given)."""
    dirs = model_dirs(Path(root))
    logits, keep = [], []
    for model in dirs:
        keep.append(read_keep(model / "keep.npy", num_points))
        logits.append(read_model_logits(logits_file(model), num_points, num_classes, queries))
        queries = logits[-1].shape[1]
    return LiraShadows(torch.stack(logits), torch.stack(keep), [str(d) for d in dirs])


def write_lira(root: str | os.PathLike, logits: Tensor, keep: Tensor) -> list[Path]:
    """`root/experiment-NNN/{keep.npy, logits.npy}` per model (logits float32 [K, N, A, C])."""
    if logits.dim() != 4 or keep.shape != logits.shape[:2]:
        raise MiaError(f"cannot export logits {list(logits.shape)} with keep {list(keep.shape)}")
    written = []
    for index in range(logits.shape[0]):
        model = Path(root) / f"{PREFIX}{index:03d}"
        save_npy(model / "keep.npy", keep[index].numpy().astype(np.bool_))
        save_npy(model / "logits.npy", logits[index].float().numpy())
        written.append(model)
    return written
