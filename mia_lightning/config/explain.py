"""Hydra's composition errors, said the way a user can act on them.

Hydra answers a misspelt key (`shadow.cont=3`) with "Could not override 'shadow.cont'. To
append to your config use +shadow.cont=3" (advice that only leads to a second error) and
an unknown group option (`trainer=tpu`) with its whole config search path. Here the first
becomes "unknown key shadow.cont; did you mean shadow.count?" and the second
"trainer=tpu is not an option of the trainer group (available: cpu, ddp, gpu; ...)".
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import typing
from typing import Any

_OVERRIDE = re.compile(r"Could not override '([^']+)'\.")
_TRAINER = object()  # the trainer group: an open mapping of Lightning flags, not a dataclass


def closest(word: str, options: typing.Iterable[str]) -> str | None:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def schema_keys(path: str) -> list[str] | None:
    """The keys the typed config knows under the dotted `path` ("" = the root), or None
    when `path` is not a node of the schema."""
    from mia_lightning.config.schema import Config
    from mia_lightning.config.trainer import MIA_KEYS, RESERVED, trainer_arguments

    node: Any = Config
    for part in [p for p in path.split(".") if p]:
        if node is _TRAINER:
            return None
        hints = typing.get_type_hints(node)
        if part not in hints:
            return None
        node = _TRAINER if (node is Config and part == "trainer") else hints[part]
        if node is not _TRAINER and not dataclasses.is_dataclass(node):
            return None
    if node is _TRAINER:
        return sorted({*trainer_arguments(), *MIA_KEYS} - set(RESERVED))
    return sorted(typing.get_type_hints(node))


def unknown_key(full_key: str) -> str:
    """'unknown key a.b.c; did you mean a.b.d?' (or the keys of a.b when nothing is close).

    The key is taken at its deepest known parent: `shadw.count` is an unknown `shadw`."""
    parts = full_key.split(".")
    for depth in range(len(parts) - 1, -1, -1):
        keys = schema_keys(".".join(parts[:depth]))
        if keys is not None:
            break
    parent, leaf = ".".join(parts[:depth]), parts[depth]
    prefix = f"{parent}." if parent else ""
    near = closest(leaf, keys or [])
    if near:
        return f"unknown key {prefix}{leaf}; did you mean {prefix}{near}?"
    return f"unknown key {prefix}{leaf} (the keys of {parent or 'the config'}: {', '.join(keys or [])})"


def explain(error: BaseException) -> str | None:
    """One actionable line for the Hydra composition errors that have one; None for the others."""
    from hydra.errors import MissingConfigException

    if isinstance(error, MissingConfigException) and error.missing_cfg_file and error.options is not None:
        group, _, option = str(error.missing_cfg_file).rpartition("/")
        if group:
            near = closest(option, error.options)
            hint = f"; did you mean {group}={near}?" if near else ""
            return (f"{group}={option} is not an option of the {group} group{hint} "
                    f"(available: {', '.join(sorted(error.options)) or 'none'}; `mia --help` lists every group)")
    match = _OVERRIDE.search(str(error))
    if match and "No match in the defaults list" not in str(error):
        # the cause names the key that is really unknown (`attack.threshold={tau:0.5,tou:1}`: tou)
        full_key = getattr(error.__cause__, "full_key", None) or match.group(1).lstrip("+~")
        return unknown_key(str(full_key))
    return None
