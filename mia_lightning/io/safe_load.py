"""The only way mia reads a `.pt` file: `torch.load(weights_only=True)` with an allow-list.

Task files, weights and checkpoints are passed around between people; a full unpickle
would run whatever code a file asks for. The restricted unpickler refuses every global
that is not on the allow-list (and every global of `os`, `sys`, `posix`), so such a
file fails with a one-line `MiaError` and its payload never runs.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import torch

from mia_lightning.errors import MiaError

SafeGlobal = Callable[..., Any] | tuple[Callable[..., Any], str]


def describe_path(path: str | os.PathLike, key: str | None) -> str:
    return f"{key}={path}" if key else str(path)


def safe_torch_load(
    path: str | os.PathLike,
    *,
    key: str | None = None,
    allow: Iterable[SafeGlobal] = (),
) -> Any:
    """Load `path` with the restricted unpickler; any failure becomes a one-line MiaError.

    `key` names the config key the path came from, so the message points at what to fix.
    `allow` extends torch's default allow-list (tensors, containers) for this call only.
    """
    where = describe_path(path, key)
    file = Path(path)
    if not file.is_file():
        raise MiaError(f"{where}: file not found")
    if file.stat().st_size == 0:
        raise MiaError(f"{where}: file is empty")
    try:
        with torch.serialization.safe_globals(list(allow)):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise MiaError(f"{where}: refused to load: {_first_line(err)} (mia never fully unpickles files)") from None
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError, TypeError, AttributeError,
            KeyError, IndexError, OverflowError, MemoryError, UnicodeDecodeError, OSError) as err:
        raise MiaError(f"{where}: not a readable torch file (truncated or corrupt?): {_first_line(err)}") from None


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("Weights only load failed"):
            if "WeightsUnpickler error:" in line:
                line = line.split("WeightsUnpickler error:", 1)[1].strip()
            return line[:300]
    return text.splitlines()[0][:300]
