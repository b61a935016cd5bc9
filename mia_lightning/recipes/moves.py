"""The one-knob moves of the recipe search: every recipe next to a given one.

Each knob changes alone, by a factor (lr, epochs, weight decay) or to another value
(optimizer family at its usual lr, and at its usual weight decay where the decay's meaning
changes; augmentation; label smoothing), so that a round of the search asks one question
per knob: "does the target look more like this?". At a
step below 1 (the search's refinement) only the numeric knobs move, by each factor to
the power `step` (e.g. epochs x2 becomes x1.41 at step 0.5), so the search can land
between the points of the coarse grid.
"""

from __future__ import annotations

from dataclasses import replace

from mia_lightning.config.recipe import AugmentConfig, TrainRecipe
from mia_lightning.config.search import SearchConfig

COUPLED_WEIGHT_DECAY = 5e-4  # where a move to SGD/Adam from AdamW, or from no decay, starts
AUGMENT_VALUES = {"none": AugmentConfig(0, False), "flip": AugmentConfig(0, True), "crop_flip": AugmentConfig(4, True)}


def augment_name(augment: AugmentConfig) -> str:
    if augment.crop_padding == 0:
        return "flip" if augment.flip else "none"
    return f"crop{augment.crop_padding}" + ("+flip" if augment.flip else "")


def describe(recipe: TrainRecipe) -> str:
    """`sgd lr 0.05 wd 5e-04, 30 epochs, batch 128, augment none, smoothing 0`: one line per recipe."""
    opt = recipe.optimizer
    return (f"{opt.name} lr {opt.lr:.3g} wd {opt.weight_decay:.0e}, {recipe.epochs} epochs, batch {recipe.batch_size}, "
            f"augment {augment_name(recipe.augment)}, smoothing {recipe.label_smoothing:g}")


def _usual_weight_decay(name: str, search: SearchConfig) -> float:
    """Where a decay starts for optimizer `name`: AdamW's own (decoupled) or the coupled 5e-4."""
    return search.adamw_weight_decay if name == "adamw" else COUPLED_WEIGHT_DECAY


def _moved_weight_decay(recipe: TrainRecipe, name: str, search: SearchConfig) -> float:
    """The decay a move to optimizer `name` starts from: the family's usual one where the
    decay's meaning changes (decoupled AdamW against SGD/Adam's L2), else the recipe's own."""
    current = recipe.optimizer.weight_decay
    if name == "adamw":
        return _usual_weight_decay(name, search)
    if recipe.optimizer.name == "adamw":
        return _usual_weight_decay(name, search) if current else 0.0
    return current


def _optimizer_moves(recipe: TrainRecipe, search: SearchConfig) -> list[tuple[str, TrainRecipe]]:
    out = []
    for name in search.optimizers:
        if name != recipe.optimizer.name:
            lr = search.sgd_lr if name == "sgd" else search.adam_lr
            wd = _moved_weight_decay(recipe, name, search)
            moved = replace(recipe.optimizer, name=name, lr=lr, weight_decay=wd,
                            momentum=0.9 if name == "sgd" else recipe.optimizer.momentum)
            text = f"optimizer {recipe.optimizer.name}->{name} (lr {lr:g}"
            text += f", wd {wd:g})" if wd != recipe.optimizer.weight_decay else ")"
            out.append((text, replace(recipe, optimizer=moved)))
    return out


def _factor_moves(recipe: TrainRecipe, search: SearchConfig, knob: str, step: float) -> list[tuple[str, TrainRecipe]]:
    out = []
    if knob == "lr":
        for factor in (f ** step for f in search.lr_factors):
            lr = float(f"{recipe.optimizer.lr * factor:.3g}")
            out.append((f"lr {recipe.optimizer.lr:g}->{lr:g}", replace(recipe, optimizer=replace(recipe.optimizer, lr=lr))))
    elif knob == "epochs":
        for factor in (f ** step for f in search.epoch_factors):
            epochs = max(1, min(search.max_epochs, round(recipe.epochs * factor)))
            out.append((f"epochs {recipe.epochs}->{epochs}", replace(recipe, epochs=epochs)))
    elif knob == "weight_decay":
        # from none, a move goes to the family's usual decay first
        base = recipe.optimizer.weight_decay or _usual_weight_decay(recipe.optimizer.name, search)
        factors = [f ** step for f in search.weight_decay_factors] if recipe.optimizer.weight_decay else [1.0]
        for factor in factors:
            wd = float(f"{base * factor:.3g}")
            out.append((f"weight decay {recipe.optimizer.weight_decay:g}->{wd:g}",
                        replace(recipe, optimizer=replace(recipe.optimizer, weight_decay=wd))))
    return out


def moves(recipe: TrainRecipe, search: SearchConfig, step: float = 1.0) -> list[tuple[str, TrainRecipe]]:
    """(description, recipe) for every one-knob change of `recipe` the search config allows;
    below step 1 only the numeric knobs, by their factors to the power `step`."""
    out: list[tuple[str, TrainRecipe]] = []
    for knob in search.knobs:
        if knob in ("lr", "epochs", "weight_decay"):
            out += _factor_moves(recipe, search, knob, step)
        elif step < 1:
            continue
        elif knob == "optimizer":
            out += _optimizer_moves(recipe, search)
        elif knob == "augment":
            for name in search.augments:
                value = AUGMENT_VALUES[name]
                if value != recipe.augment:
                    out.append((f"augment {augment_name(recipe.augment)}->{name}", replace(recipe, augment=value)))
        elif knob == "label_smoothing":
            for value in search.label_smoothings:
                if value != recipe.label_smoothing:
                    out.append((f"label smoothing {recipe.label_smoothing:g}->{value:g}",
                                replace(recipe, label_smoothing=float(value))))
    return [(text, moved) for text, moved in out if moved != recipe]
