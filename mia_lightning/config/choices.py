"""Which of the user's explicit choices an experiment overrode: the rule, and its warning.

The rule: an experiment picks its task through its defaults list (`override /task: ...`),
so a `task=...` on the command line replaces that pick and the rest of the experiment
stays. An experiment file can still set `task.*` keys directly (a user's own, say); those
would silently win over the task chosen on the command line (`experiment=mine task=tml25`
running mine's simulation), so mia compares the composed task with the chosen one alone
and warns about every key the experiment changed.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from mia_lightning.config.resolvers import override_key, parse_overrides


def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted leaves of a plain container."""
    if not isinstance(node, dict):
        return {prefix.rstrip("."): node}
    out: dict[str, Any] = {}
    for key, value in node.items():
        out.update(flat(value, f"{prefix}{key}."))
    return out


def task_overridden(cfg: DictConfig, overrides: list[str], experiment: str | None) -> str | None:
    """One warning line when `experiment` changed keys of the task chosen with `task=...`, else None.

    The comparison is the same command without `experiment=...`: what differs in `task` then is
    the experiment's doing (keys given on the command line, sweeper values such as
    `+task/train=adam15` and the user's config dirs are in both)."""
    parsed = parse_overrides(overrides)
    chosen = [o for o in parsed if override_key(o) == "task" and not o.is_sweep_override()]
    if not chosen or not experiment:
        return None
    from hydra import compose

    kept = [line for line in overrides
            if not str(line).lstrip("+~").startswith("experiment=")
            and (not str(line).lstrip("+~").startswith("hydra") or str(line).lstrip("+~").startswith("hydra.searchpath"))]
    try:
        alone = compose(config_name="config", overrides=kept)
    except Exception:  # an override that only makes sense with the experiment: nothing to compare with
        return None
    composed = flat(OmegaConf.to_container(cfg.task, resolve=False))
    expected = flat(OmegaConf.to_container(alone.task, resolve=False))
    changed = sorted(key for key, value in composed.items() if expected.get(key, object()) != value)
    if not changed:
        return None
    option = str(chosen[-1].value())
    keys = ", ".join(f"task.{key}" for key in changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    return (f"experiment={experiment} sets {keys} over the task you chose (task={option}); its values win. "
            "Set them on the command line to override them, or use an experiment that picks its task with "
            "`defaults: [override /task: ...]`")
