"""A training recipe: what decides a trained model's weights besides its data and seed.

The simulated target (`task.train`) and the shadows (`shadow.*`) share this shape, so a
recipe can be copied from one to the other (`shadow.recipe=oracle`) or searched
(`shadow.recipe=auto`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from mia_lightning.config.checks import at_least, choice, fraction, positive

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "none")


@dataclass
class OptimizerConfig:
    """Optimizer and learning-rate schedule of one training recipe."""

    name: str = "sgd"  # sgd (Nesterov when momentum > 0) | adam | adamw
    lr: float = 0.05
    momentum: float = 0.9  # sgd only
    weight_decay: float = 5e-4
    scheduler: str = "cosine"  # cosine (per step, to 0) | none

    def validate(self, key: str) -> None:
        choice(self.name, OPTIMIZERS, f"{key}.name")
        choice(self.scheduler, SCHEDULERS, f"{key}.scheduler")
        positive(self.lr, f"{key}.lr")
        at_least(self.weight_decay, 0, f"{key}.weight_decay")
        at_least(self.momentum, 0, f"{key}.momentum")


@dataclass
class AugmentConfig:
    """Training-time augmentation, applied per batch on the training device."""

    crop_padding: int = 0  # random crop after zero padding by this many pixels; 0 = off
    flip: bool = False  # random horizontal flip

    def validate(self, key: str) -> None:
        at_least(self.crop_padding, 0, f"{key}.crop_padding")


@dataclass
class TrainRecipe:
    """Everything that decides a trained model's weights, besides data and seed."""

    epochs: int = 30
    batch_size: int = 128
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    # cross-entropy against (1 - s) one-hot + s uniform: members' confidence saturates at
    # 1 - s + s/C, which changes their loss and phi distributions (a common real-target knob)
    label_smoothing: float = 0.0

    def validate(self, key: str) -> None:
        at_least(self.epochs, 1, f"{key}.epochs")
        at_least(self.batch_size, 2, f"{key}.batch_size")
        self.optimizer.validate(f"{key}.optimizer")
        self.augment.validate(f"{key}.augment")
        fraction(self.label_smoothing, f"{key}.label_smoothing", low_open=False)


def recipe_values(recipe: TrainRecipe) -> dict[str, Any]:
    """The recipe as plain values, as store keys and logs record it.

    Knobs added after the first release enter only when set away from their default, so
    the keys of existing stores and simulated tasks stay what they were.
    """
    values = {"epochs": int(recipe.epochs), "batch_size": int(recipe.batch_size),
              "optimizer": asdict(recipe.optimizer), "augment": asdict(recipe.augment)}
    if recipe.label_smoothing:
        values["label_smoothing"] = float(recipe.label_smoothing)
    return values


def recipe_from_values(values: dict[str, Any]) -> TrainRecipe:
    """The inverse of `recipe_values` (missing knobs take their defaults)."""
    return TrainRecipe(
        epochs=int(values["epochs"]), batch_size=int(values["batch_size"]),
        optimizer=OptimizerConfig(**values["optimizer"]), augment=AugmentConfig(**values["augment"]),
        label_smoothing=float(values.get("label_smoothing", 0.0)),
    )


def with_changes(recipe: TrainRecipe, changes: dict[str, Any], key: str) -> TrainRecipe:
    """`recipe` with some of its values replaced (nested dicts merge); checked, errors name `key`."""
    from mia_lightning.errors import MiaError

    values = recipe_values(recipe)
    values.setdefault("label_smoothing", recipe.label_smoothing)
    for name, value in changes.items():
        if name not in values:
            raise MiaError(f"{key}: {name!r} is not a recipe key (epochs, batch_size, optimizer, augment, "
                           "label_smoothing)")
        if isinstance(values[name], dict):
            if not isinstance(value, dict) or set(value) - set(values[name]):
                raise MiaError(f"{key}.{name}: expected a mapping of {', '.join(values[name])}, got {value!r}")
            values[name] = {**values[name], **value}
        else:
            values[name] = value
    try:
        changed = recipe_from_values(values)
    except (TypeError, ValueError) as error:
        raise MiaError(f"{key}: {error}") from None
    changed.validate(key)
    return changed


def plain_recipe(recipe: TrainRecipe) -> TrainRecipe:
    """Just the recipe of a config that extends it (`shadow.*` also holds count, split, ...)."""
    return TrainRecipe(recipe.epochs, recipe.batch_size, replace(recipe.optimizer), replace(recipe.augment),
                       recipe.label_smoothing)
