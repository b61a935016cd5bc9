"""What the stages hand each other: typed artifacts, each backed by files on disk.

    Task (task/data.py) -> ShadowSet -> LogitSet -> AttackResults -> metrics.json

Each stage reads the previous one's artifact (or rebuilds it from the store), so any stage
can be rerun, resumed or farmed out on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor

from mia_lightning.attacks.base import AttackResult
from mia_lightning.config.recipe import TrainRecipe, recipe_values
from mia_lightning.recipes.moves import describe
from mia_lightning.shadows.job import ShadowJob
from mia_lightning.shadows.store import ShadowStore

AttackResults = dict[str, AttackResult]  # attack name -> scores on every pool point


@dataclass
class RecipeChoice:
    """Which recipe the shadows train with, and why (`shadow.recipe`; the search's record)."""

    mode: str  # given | auto | oracle
    recipe: TrainRecipe
    search: str | None = None  # the recipe search's JSON record (mode auto)
    candidates: int = 0
    seconds: float = 0.0
    also: tuple[TrainRecipe, ...] = ()  # shadow.search.mix > 1: the runners-up that share the shadow set
    tied: bool = False  # the search's best two finalists differ by less than their standard error on pub

    def as_json(self) -> dict[str, Any]:
        out = {"mode": self.mode, "chosen": recipe_values(self.recipe), "describe": describe(self.recipe),
               "search": self.search, "candidates": self.candidates, "seconds": round(self.seconds, 2)}
        if self.also:
            out["mixed_with"] = [{"recipe": recipe_values(r), "describe": describe(r)} for r in self.also]
        if self.tied:
            out["finalists_tied"] = True
        return out


@dataclass
class ShadowSet:
    """The shadows this run uses (the first `count`), and how to train and query them.

    Usually one store entry's. With `shadow.search.mix` > 1 the set is shared by several
    recipes' entries (`job` the chosen one's, `also` the runners-up'): complementary pair p
    (shadows 2p, 2p+1) comes from recipe p mod parts, so every recipe holds whole pairs and
    every point is IN for half of each recipe's shadows. The keep mask depends on the seed
    only, so all entries share it, and shadow i is the same model whichever run trains it.
    """

    job: ShadowJob
    count: int  # shadow.count: the attacks use shadows 0 .. count-1
    choice: RecipeChoice | None = None
    also: tuple[ShadowJob, ...] = ()

    @property
    def jobs(self) -> tuple[ShadowJob, ...]:
        """Every store entry the set draws on, the chosen recipe's first."""
        return (self.job, *self.also)

    def job_of(self, index: int) -> ShadowJob:
        """The store entry (and recipe) that holds shadow `index`."""
        return self.jobs[(index // 2) % len(self.jobs)]

    def store_of(self, index: int) -> ShadowStore:
        return self.job_of(index).store

    @property
    def store(self) -> ShadowStore:
        return self.job.store

    @property
    def recipe(self) -> TrainRecipe:
        return self.job.recipe

    @property
    def keep(self) -> Tensor:
        """bool [count, N]: shadow k trained on pool point n."""
        return self.job.keep[: self.count]

    def summaries(self) -> list[dict[str, Any]]:
        """Each used shadow's `summary.json` (train/test accuracy, seconds), where it has one."""
        return [summary for index in range(self.count) if (summary := self.store_of(index).summary(index)) is not None]


@dataclass
class LogitSet:
    """Every model's logits on every pool point, for every query: what the attacks read."""

    target: Tensor  # float32 [N, A, C]
    shadows: Tensor  # float32 [K, N, A, C]
    keep: Tensor  # bool [K, N]
    queries: list[str]  # the A query names, in order (query 0 is the identity)
