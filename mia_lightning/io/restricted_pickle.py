"""A plain-pickle reader for data files that only ever hold numpy arrays (CIFAR-10's batches).

torchvision reads CIFAR-10 with a full `pickle.load`; a tampered batch file would run
code. This unpickler resolves only the handful of globals a numpy array needs and
refuses everything else.
"""

from __future__ import annotations

import codecs
import os
import pickle
import struct
from typing import Any

import numpy as np

from mia_lightning.errors import MiaError

_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
}
try:  # numpy >= 2 moved the implementation; pickles name either module
    from numpy._core.multiarray import _reconstruct
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core.multiarray import _reconstruct  # type: ignore[no-redef]
_ALLOWED[("numpy.core.multiarray", "_reconstruct")] = _reconstruct
_ALLOWED[("numpy._core.multiarray", "_reconstruct")] = _reconstruct


class ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data file") from None


def load_array_pickle(path: str | os.PathLike) -> Any:
    """Unpickle a data file holding only dicts/lists/bytes/numpy arrays, or fail with MiaError."""
    try:
        with open(path, "rb") as handle:
            return ArrayOnlyUnpickler(handle, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, MemoryError, RecursionError, struct.error) as err:
        text = " ".join(str(err).split())[:300] or type(err).__name__  # one line
        raise MiaError(f"{path}: refused or unreadable data file: {text}") from None
