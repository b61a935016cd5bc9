"""The few checks every option dataclass uses: one `MiaError` naming the config key."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from mia_lightning.errors import MiaError


def choice(value: Any, options: Iterable[str], key: str) -> None:
    options = tuple(options)
    if value not in options:
        raise MiaError(f"{key}={value!r} is not one of {', '.join(options)}")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def at_least(value: Any, minimum: float, key: str) -> None:
    if not (_number(value) and value >= minimum):  # NaN fails too
        raise MiaError(f"{key} must be a number >= {minimum}, got {value!r}")


def positive(value: Any, key: str) -> None:
    if not (_number(value) and value > 0):  # NaN fails too
        raise MiaError(f"{key} must be a number > 0, got {value!r}")


def fraction(value: Any, key: str, low_open: bool = True, high_open: bool = True) -> None:
    low_ok = value > 0 if low_open else value >= 0
    high_ok = value < 1 if high_open else value <= 1
    if not (low_ok and high_ok):
        bounds = f"{'(' if low_open else '['}0, 1{')' if high_open else ']'}"
        raise MiaError(f"{key} must be in {bounds}, got {value}")


def non_empty(values: Any, key: str) -> None:
    if not values:
        raise MiaError(f"{key} is empty")


def did_you_mean(word: str, options: Iterable[str]) -> str:
    """' (did you mean X?)' when a known option is close to `word`, else ''."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""
