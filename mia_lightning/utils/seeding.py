"""Derived seeds: every random stream is a pure function of the run's seed and a name.

Deriving (rather than drawing from one global stream) is what makes a shadow's weights
independent of which other shadows were trained before it, in which process, and of
whether its run was interrupted and resumed.
"""

from __future__ import annotations

import hashlib


def derive_seed(seed: int, *parts: object) -> int:
    """A 32-bit seed (what numpy and seed_everything accept) from `seed` and any labels (stream name, shadow index, epoch...)."""
    text = "/".join([str(int(seed))] + [str(part) for part in parts])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
