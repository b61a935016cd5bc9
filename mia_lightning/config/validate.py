"""Range and consistency checks that the structured config's types cannot express.

Each failure is one `MiaError` naming the config key, raised before any work starts.
"""

from __future__ import annotations

from typing import Any

from mia_lightning.errors import MiaError

STAGES = ("simulate", "shadows", "logits", "attacks", "all")
TASK_KINDS = ("tml25", "simulate")
OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULERS = ("cosine", "none")
SPLITS = ("halves", "disjoint")
STEMS = ("auto", "imagenet", "cifar")
VARIANCES = ("auto", "global", "per_example")
CENTERS = ("median", "mean")
MASTER_FEATURES = ("softmax", "sorted", "max", "entropy", "loss", "phi")
MASTER_LABELS = ("shadow", "target_pub")
EVALS = ("auto", "truth", "pub")
ATTACK_NAMES = ("threshold", "loss", "lira_online", "lira_offline", "rmia", "master")


def _choice(value: Any, options: tuple[str, ...], key: str) -> None:
    if value not in options:
        raise MiaError(f"{key}={value!r} is not one of {', '.join(options)}")


def _positive(value: Any, key: str, minimum: float = 1) -> None:
    if not value >= minimum:  # NaN fails too
        raise MiaError(f"{key} must be >= {minimum}, got {value}")


def _fraction(value: float, key: str) -> None:
    if not 0 < value < 1:
        raise MiaError(f"{key} must be in (0, 1), got {value}")


def _recipe(recipe: Any, key: str) -> None:
    _positive(recipe.epochs, f"{key}.epochs")
    _positive(recipe.batch_size, f"{key}.batch_size", 2)
    _choice(recipe.optimizer.name, OPTIMIZERS, f"{key}.optimizer.name")
    _choice(recipe.optimizer.scheduler, SCHEDULERS, f"{key}.optimizer.scheduler")
    if not recipe.optimizer.lr > 0:
        raise MiaError(f"{key}.optimizer.lr must be > 0, got {recipe.optimizer.lr}")
    if not (recipe.optimizer.weight_decay >= 0 and recipe.optimizer.momentum >= 0):  # NaN fails too
        raise MiaError(f"{key}.optimizer.weight_decay and momentum must be >= 0")
    _positive(recipe.augment.crop_padding, f"{key}.augment.crop_padding", 0)


def shadow_indices(only: Any, count: int) -> list[int]:
    """`shadow.only` (None, an int, or a list of ints) as a sorted list of indices."""
    if only is None:
        return list(range(count))
    values = list(only) if isinstance(only, (list, tuple)) or hasattr(only, "__iter__") and not isinstance(only, str) else [only]
    indices = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise MiaError(f"shadow.only must be an index or a list of indices, got {value!r}")
        if not 0 <= value:
            raise MiaError(f"shadow.only: index {value} is negative")
        indices.append(int(value))
    return sorted(set(indices))


def _known_keys(node: Any, schema: type, prefix: str) -> None:
    """Refuse keys the schema does not have. Hydra answers a misspelt `shadow.epoch=3` with
    "use +shadow.epoch=3 to append", and an appended key would otherwise be silently ignored."""
    import dataclasses
    import typing

    hints = typing.get_type_hints(schema)
    for key in node.keys():
        if key not in hints:
            raise MiaError(f"{prefix}{key} is not a config key of {prefix.rstrip('.') or 'the config'} "
                           f"(known: {', '.join(sorted(hints))})")
        child = node.get(key)
        if dataclasses.is_dataclass(hints[key]) and hasattr(child, "keys"):
            _known_keys(child, hints[key], f"{prefix}{key}.")


def validate_config(cfg: Any) -> None:
    from mia_lightning.config.schema import Config

    _known_keys(cfg, Config, "")
    _choice(cfg.stage, STAGES, "stage")
    _choice(cfg.task.kind, TASK_KINDS, "task.kind")
    _choice(cfg.model.stem, STEMS, "model.stem")
    if cfg.model.arch != "resnet18":
        raise MiaError(f"model.arch={cfg.model.arch!r} is not supported (resnet18)")
    if cfg.task.kind == "simulate":
        _recipe(cfg.task.train, "task.train")
        _fraction(cfg.task.pub_fraction, "task.pub_fraction")
        _fraction(cfg.task.member_fraction, "task.member_fraction")
        _positive(cfg.task.pool_size, "task.pool_size", 4)
    _positive(cfg.task.image_size, "task.image_size", 8)
    if len(cfg.task.mean) != 3 or len(cfg.task.std) != 3 or not all(0 < v < float("inf") for v in cfg.task.std):
        raise MiaError(f"task.mean and task.std need 3 values each, std > 0; got {list(cfg.task.mean)}, {list(cfg.task.std)}")
    shadow = cfg.shadow
    _recipe(shadow, "shadow")
    _positive(shadow.count, "shadow.count", 1)
    _choice(shadow.split, SPLITS, "shadow.split")
    if shadow.split == "halves" and shadow.count > 1 and shadow.count % 2:
        raise MiaError(
            f"shadow.count={shadow.count}: the halves split pairs each shadow with its complement, "
            "so use 1 or an even count"
        )
    _fraction(shadow.in_fraction, "shadow.in_fraction")
    _positive(shadow.stack, "shadow.stack", 1)
    shadow_indices(shadow.only, shadow.count)
    attack = cfg.attack
    for name in attack.names:
        _choice(name, ATTACK_NAMES, "attack.names")
    if not attack.names:
        raise MiaError("attack.names is empty")
    _choice(attack.lira.variance, VARIANCES, "attack.lira.variance")
    _choice(attack.lira.center, CENTERS, "attack.lira.center")
    if not attack.lira.min_std > 0:
        raise MiaError("attack.lira.min_std must be > 0")
    if not 0 <= attack.threshold.tau <= 1:
        raise MiaError(f"attack.threshold.tau must be in [0, 1], got {attack.threshold.tau}")
    if not attack.rmia.gamma > 0:
        raise MiaError(f"attack.rmia.gamma must be > 0, got {attack.rmia.gamma}")
    if not 0 <= attack.rmia.a <= 1:
        raise MiaError(f"attack.rmia.a must be in [0, 1], got {attack.rmia.a}")
    _positive(attack.rmia.num_z, "attack.rmia.num_z")
    if not attack.rmia.temperature > 0:
        raise MiaError(f"attack.rmia.temperature must be > 0, got {attack.rmia.temperature}")
    _positive(attack.lira.global_below, "attack.lira.global_below", 0)
    from mia_lightning.logits.queries import parse_queries

    parse_queries(list(attack.queries), bool(cfg.shadow.augment.flip))  # names attack.queries on an unknown or duplicate query
    master = cfg.master
    _positive(master.depth, "master.depth", 1)
    _positive(master.epochs, "master.epochs")
    _positive(master.width, "master.width")
    _positive(master.folds, "master.folds", 2)
    _positive(master.batch_size, "master.batch_size")
    _positive(master.max_samples, "master.max_samples")
    if not master.lr > 0:
        raise MiaError(f"master.lr must be > 0, got {master.lr}")
    _positive(master.weight_decay, "master.weight_decay", 0)
    if master.widths is not None:
        if not master.widths or any(w < 1 for w in master.widths):
            raise MiaError(f"master.widths must be positive integers, got {list(master.widths)}")
    for feature in master.features:
        _choice(feature, MASTER_FEATURES, "master.features")
    if not master.features:
        raise MiaError("master.features is empty")
    _choice(master.labels, MASTER_LABELS, "master.labels")
    _choice(cfg.report.eval, EVALS, "report.eval")
    if cfg.report.submit != "best":
        _choice(cfg.report.submit, tuple(attack.names), "report.submit (must be best or one of attack.names)")
    _positive(cfg.trainer.inference_batch_size, "trainer.inference_batch_size")
    _positive(cfg.trainer.log_every_n_steps, "trainer.log_every_n_steps")
    if not cfg.trainer.max_memory_gb >= 0:
        raise MiaError(f"trainer.max_memory_gb must be >= 0 (0 = read from the machine), got {cfg.trainer.max_memory_gb}")
    _positive(shadow.wait_timeout_s, "shadow.wait_timeout_s", 0)
