"""The shadow (reference) models: how many, on which split, and their training recipe."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mia_lightning.config.checks import at_least, choice, fraction
from mia_lightning.config.recipe import TrainRecipe
from mia_lightning.config.search import RECIPE_MODES, SearchConfig
from mia_lightning.errors import MiaError

SPLITS = ("halves", "disjoint")  # halves: LiRA's keep mask | disjoint: the seed's partitions


@dataclass
class ShadowConfig(TrainRecipe):
    count: int = 8
    only: Any = None  # None = all of range(count); an int or a list of indices for cluster jobs
    split: str = "halves"
    in_fraction: float = 0.5  # disjoint split: fraction of each partition a shadow trains on
    stack: int = 1  # train this many shadows in one grouped network (slower on CPU, see README)
    fast: bool = True  # in-memory batches, device-side augmentation
    wait_timeout_s: float = 86400.0  # how long to wait for a shadow another process is training
    # given: the recipe above | auto: search it on pub (shadow.search) | oracle: the simulated
    # target's own recipe (task.train; for studies of the mismatch)
    recipe: str = "given"
    search: SearchConfig = field(default_factory=SearchConfig)

    def validate(self, key: str = "shadow") -> None:
        super().validate(key)
        at_least(self.count, 1, f"{key}.count")
        choice(self.split, SPLITS, f"{key}.split")
        if self.split == "halves" and self.count > 1 and self.count % 2:
            raise MiaError(f"{key}.count={self.count}: the halves split pairs each shadow with its complement, "
                           "so use 1 or an even count")
        fraction(self.in_fraction, f"{key}.in_fraction")
        at_least(self.stack, 1, f"{key}.stack")
        at_least(self.wait_timeout_s, 0, f"{key}.wait_timeout_s")
        shadow_indices(self.only, self.count)
        choice(self.recipe, RECIPE_MODES, f"{key}.recipe")
        self.search.validate(f"{key}.search")

    def indices(self) -> list[int]:
        """The shadows this job trains: `only`, or all of range(count)."""
        return shadow_indices(self.only, self.count)


def shadow_indices(only: Any, count: int) -> list[int]:
    """`shadow.only` (None, an int, or a list of ints) as a sorted list of indices."""
    if only is None:
        return list(range(count))
    values = list(only) if not isinstance(only, (str, bytes)) and hasattr(only, "__iter__") else [only]
    indices = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MiaError(f"shadow.only must be an index or a list of indices, got {value!r}")
        if value < 0:
            raise MiaError(f"shadow.only: index {value} is negative")
        indices.append(int(value))
    return sorted(set(indices))
