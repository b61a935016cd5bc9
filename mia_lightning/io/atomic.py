"""Write-then-rename helpers, so that no reader ever sees a half-written artifact.

Every file mia produces goes through `atomic_write`: the bytes land in a temporary
file in the same directory, are flushed to disk, and only then `os.replace`d onto the
final name (atomic on POSIX). A process killed mid-write leaves at most a stray
`.tmp-*` file, never a truncated artifact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it is renamed onto `path`."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{final.name}-", dir=final.parent)
    os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; artifacts are shared like normal files
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: str | os.PathLike, writer: Callable[[BinaryIO], None]) -> Path:
    """Call `writer(binary_file)` on a temp file, then rename it onto `path`."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            writer(handle)
    return Path(path)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda handle: handle.write(data))


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """`torch.save` through a temp file (tensors, dicts of tensors, plain containers)."""
    return atomic_write(path, lambda handle: torch.save(obj, handle))


def remove_stale_temps(directory: str | os.PathLike) -> None:
    """Delete the `.tmp-*` files a killed writer left under `directory` (call only while holding
    the directory's lock, so that no live writer's temp file is removed)."""
    for stale in Path(directory).rglob(".tmp-*"):
        if stale.is_file():
            stale.unlink(missing_ok=True)
