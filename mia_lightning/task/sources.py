"""Real datasets a task can be simulated from, as float [N, 3, 32, 32] images in [0, 1].

Grey images are repeated to three channels and resized to the task's size, so one
ResNet18 recipe serves every source. Nothing is downloaded when a local copy exists;
tests only ever use the local copies (sklearn's digits ship with scikit-learn,
Fashion-MNIST with the Debian package `dataset-fashion-mnist`).
"""

from __future__ import annotations

import gzip
import os
import socket
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mia_lightning.errors import MiaError

SOURCES = ("fmnist", "digits", "cifar10")
FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SYSTEM_FMNIST = Path("/usr/share/datasets/fashion-mnist")


def search_dirs(data_root: str | None) -> list[Path]:
    """Where local copies are looked for, in order: task.data_root, $MIA_DATA, system, ./data."""
    dirs = [Path(data_root).expanduser()] if data_root else []
    if os.environ.get("MIA_DATA"):
        dirs.append(Path(os.environ["MIA_DATA"]).expanduser())
    dirs += [SYSTEM_FMNIST.parent, Path("data")]
    return dirs


def _read_idx(path: Path) -> torch.Tensor:
    """Parse an IDX file (optionally gzipped) into a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise MiaError(f"{path}: not a uint8 IDX file")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = 1
    for dim in dims:
        expected *= dim
    if len(data) - offset != expected:
        raise MiaError(f"{path}: IDX file is truncated ({len(data) - offset} of {expected} bytes)")
    return torch.frombuffer(bytearray(data[offset:]), dtype=torch.uint8).view(*dims)


def _find_idx(name: str, dirs: list[Path]) -> Path | None:
    for base in dirs:
        for folder in (base, base / "fashion-mnist", base / "FashionMNIST" / "raw"):
            for candidate in (folder / f"{name}.gz", folder / name):
                if candidate.is_file():
                    return candidate
    return None


def _network_up(host: str = "github.com", timeout: float = 2.0) -> bool:
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def load_fmnist(data_root: str | None, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    dirs = search_dirs(data_root)
    images, labels = [], []
    for image_name, label_name in FMNIST_FILES.values():
        image_path, label_path = _find_idx(image_name, dirs), _find_idx(label_name, dirs)
        if image_path is None or label_path is None:
            return _download_fmnist(dirs, download)
        images.append(_read_idx(image_path))
        labels.append(_read_idx(label_path))
    return torch.cat(images).unsqueeze(1), torch.cat(labels).to(torch.int64)


def _download_fmnist(dirs: list[Path], download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    hint = (
        "Fashion-MNIST not found in " + ", ".join(str(d) for d in dirs)
        + ": install it with `apt-get install dataset-fashion-mnist`, or put the IDX files under "
        "task.data_root / $MIA_DATA"
    )
    if not download or not _network_up():
        raise MiaError(hint)
    from torchvision.datasets import FashionMNIST

    root = Path("data")
    parts = [FashionMNIST(str(root), train=train, download=True) for train in (True, False)]
    return (torch.cat([p.data for p in parts]).unsqueeze(1), torch.cat([p.targets for p in parts]).to(torch.int64))


def load_digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    return images, torch.tensor(bunch.target, dtype=torch.int64)


CIFAR_BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


def read_cifar_folder(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10's python batches (uint8 [N, 3, 32, 32], labels), read without a full unpickle."""
    from mia_lightning.io.restricted_pickle import load_array_pickle

    images, labels = [], []
    for name in CIFAR_BATCHES:
        path = folder / name
        if not path.is_file():
            raise MiaError(f"{folder}: CIFAR-10 batch {name} is missing")
        batch = load_array_pickle(path)
        data = batch.get("data", batch.get(b"data")) if isinstance(batch, dict) else None
        targets = batch.get("labels", batch.get(b"labels")) if isinstance(batch, dict) else None
        if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2 and data.shape[1] == 3072
                and isinstance(targets, (list, tuple, np.ndarray)) and len(targets) == data.shape[0]
                and all(isinstance(t, (int, np.integer)) and not isinstance(t, bool) and 0 <= t < 10
                        for t in targets)):
            raise MiaError(f"{path}: not a CIFAR-10 batch (expected uint8 data [N, 3072] and N labels in 0..9)")
        images.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        labels.append(torch.tensor([int(t) for t in targets], dtype=torch.int64))
    return torch.cat(images), torch.cat(labels)


def load_cifar10(data_root: str | None, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    dirs = search_dirs(data_root)
    for base in dirs:
        if (base / "cifar-10-batches-py").is_dir():
            return read_cifar_folder(base / "cifar-10-batches-py")
    if not download or not _network_up():
        raise MiaError(
            "CIFAR-10 not found (looked for cifar-10-batches-py in " + ", ".join(str(d) for d in dirs)
            + "): put torchvision's CIFAR-10 folder under task.data_root or $MIA_DATA"
        )
    from torchvision.datasets.utils import download_and_extract_archive

    download_and_extract_archive("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "data",
                                 md5="c58f30108f718f92721af3b95e74349a")
    return read_cifar_folder(Path("data") / "cifar-10-batches-py")


def load_source(name: str, data_root: str | None, download: bool, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 [N, 3, size, size] in [0, 1], labels int64 [N]) of a real dataset."""
    if name == "fmnist":
        images, labels = load_fmnist(data_root, download)
    elif name == "digits":
        images, labels = load_digits()
    elif name == "cifar10":
        images, labels = load_cifar10(data_root, download)
    else:
        raise MiaError(f"task.source must be one of {SOURCES}, got {name!r}")
    if images.dtype == torch.uint8:
        images = images.to(torch.float32) / 255.0
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-1] != size or images.shape[-2] != size:
        images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return images.clamp(0, 1).contiguous(), labels
