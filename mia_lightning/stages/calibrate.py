"""Stage 1b, calibrate: which recipe the shadows are trained with (`shadow.recipe`).

`given` takes `shadow.*` as it is; `oracle` takes a simulated target's own recipe
(`task.train`, for studies of the mismatch); `auto` searches it on pub (recipes/search.py):
pilot shadows per candidate recipe, each an ordinary store entry, judged by how much they
behave like the target on pub's members and non-members.
Reads: the task, the store. Writes: pilots into the store, and
`<store>/<task-fingerprint>/recipe_search_<hash>.json` (every candidate, its scores, the
choice), reused by every later run with the same search, task and target.
Returns: the recipe for the shadows stage.
"""

from __future__ import annotations

import json
import logging
import math
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from mia_lightning.artifacts import RecipeChoice
from mia_lightning.config.recipe import TrainRecipe, plain_recipe, recipe_from_values, recipe_values
from mia_lightning.errors import MiaError
from mia_lightning.logits.queries import parse_queries
from mia_lightning.recipes.moves import describe
from mia_lightning.recipes.parallel import PilotPool
from mia_lightning.recipes.record import write_record
from mia_lightning.recipes.search import RecipeSearch
from mia_lightning.run import Run
from mia_lightning.shadows.fingerprint import config_hash, tensor_digest
from mia_lightning.shadows.job import target_logits
from mia_lightning.stages.shadows import shadow_job
from mia_lightning.task.data import Task

log = logging.getLogger("mia")

# shadow.search.* keys left out of a search record's key: mix and mix_within act on the record
# after the search; workers changes how fast the pilots train, not which are trained
NOT_IN_KEY = ("mix", "mix_within", "workers")


def shadow_recipe(run: Run, task: Task) -> RecipeChoice:
    """The recipe the shadows of this run are trained with."""
    mode = run.config.shadow.recipe
    if mode == "oracle":
        if run.config.task.kind != "simulate":
            raise MiaError("shadow.recipe=oracle needs a simulated task (its task.train is the target's recipe); "
                           "use shadow.recipe=given or auto")
        return RecipeChoice("oracle", plain_recipe(run.config.task.train))
    if mode == "auto" or run.stage == "calibrate":
        found = search(run, task)
        record = found["record"]
        settings = run.config.shadow.search
        also = runners_up(record, settings.mix - 1, settings.mix_within)
        if also:
            log.info("shadow.search.mix=%d: the shadow set's pairs alternate between %s", len(also) + 1,
                     " | ".join(describe(r) for r in (found["recipe"], *also)))
        return RecipeChoice("auto", found["recipe"], found["path"], len(record["candidates"]), record["seconds"],
                            also=also, tied=bool(record.get("finalists_tied")))
    return RecipeChoice("given", plain_recipe(run.config.shadow))


def runners_up(record: dict[str, Any], count: int, within: float = math.inf) -> tuple[TrainRecipe, ...]:
    """Up to `count` best candidates of a search record after the chosen one (by its criterion;
    the finalists, scored on more pilots, before the rest, whose one-pilot scores are noisier),
    leaving out (with a log line) any that scored more than `within` times the chosen one."""
    if count <= 0:
        return ()
    match, chosen = record["match"], record["chosen"]
    ranked = sorted((c for c in record["candidates"] if c["recipe"] != chosen["recipe"] and match in c["scores"]),
                    key=lambda c: (-len(c.get("pilots", [])), c["scores"][match]))[:count]
    best = chosen["scores"][match]
    close = [c for c in ranked if c["scores"][match] <= within * best]
    for far in ranked[len(close):]:
        log.info("shadow.search.mix: %s stays out of the shadow set: its %s score %.3g is more than "
                 "shadow.search.mix_within=%g times the chosen recipe's %.3g", far["describe"], match,
                 far["scores"][match], within, best)
    return tuple(recipe_from_values(c["recipe"]) for c in close)


def search_path(run: Run, task: Task, start: TrainRecipe) -> tuple[Path, dict[str, Any]]:
    """Where this search's record lives, and the key it is stored under."""
    base = shadow_job(run, task, start)
    weights = tensor_digest(*[task.target_state[k] for k in sorted(task.target_state)])[:12]
    settings = {k: v for k, v in asdict(run.config.shadow.search).items() if k not in NOT_IN_KEY}
    key = {"target": weights, "start": recipe_values(start), "settings": settings,
           "entry": {k: v for k, v in base.store.recipe.items() if k not in recipe_values(start)}}
    return base.store.task_dir / f"recipe_search_{config_hash(key)}.json", key


def search(run: Run, task: Task) -> dict[str, Any]:
    """Run (or read back) the recipe search; {"recipe": TrainRecipe, "record": its JSON}."""
    start = plain_recipe(run.config.shadow)
    path, key = search_path(run, task, start)
    if path.is_file():
        try:
            record = json.loads(path.read_text())
            if record.get("key") == key:
                chosen = recipe_from_values(record["chosen"]["recipe"])
                log.info("recipe search: reusing %s: %s", path, describe(chosen))
                return {"recipe": chosen, "record": record, "path": str(path)}
        except (OSError, ValueError, KeyError):
            pass  # unreadable: search again (the pilots are in the store, so this is cheap)
    if run.stage in ("logits", "attacks"):
        raise MiaError(f"shadow.recipe=auto: no recipe search for this task and target in {path.parent} yet "
                       "(run `mia stage=calibrate` or `mia stage=all` first)")
    settings = run.config.shadow.search
    base = shadow_job(run, task, start)
    logits = target_logits(base, task.target_state, parse_queries(list(settings.queries)))
    pub = torch.arange(len(task.pub))
    gpus = PilotPool.visible_gpus(run.trainer.wants_gpu)
    workers = PilotPool(settings.workers, gpus) if settings.workers > 1 else None
    with run.timed("calibrate"), workers or nullcontext() as pool:
        rows = max(settings.pilots, settings.finalist_pilots)
        engine = RecipeSearch(settings, lambda recipe: shadow_job(run, task, recipe, rows=rows),
                              logits, task.pool_labels, pub, task.pub.membership.bool(), pool)
        result = engine.run(start)
    # merged with the record of a second process that ran the same search beside this one
    record = write_record(path, {"key": key, **result.as_json(settings)},
                          copies=(Path(result.chosen.entry) / "recipe_search.json",))
    return {"recipe": result.chosen.recipe, "record": record, "path": str(path)}
