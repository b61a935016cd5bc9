"""The recipe search's record: its candidates, its choice, and what it cost (recipe_search.json).

Two searches with the same key (a study run and a second process beside it, or two SLURM
jobs) walk the same candidate list and train each pilot once between them, through the
store's locks; each writes its record when it ends. Written as is, the last one to end
would count only its own pilots and its own wall time (on `smooth`: 18 of 31 pilot
trainings). So a process that finds a record of the same key already written merges into
it: a pilot counts as trained by the search when any process trained it, the wall time
runs from the first start to the last end, and `pilot_seconds` sums the training time of
every pilot the search trained (the compute cost, whatever the number of processes).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mia_lightning.config.recipe import TrainRecipe, recipe_values
from mia_lightning.config.search import SearchConfig
from mia_lightning.io.atomic import atomic_write_json
from mia_lightning.io.locks import locked
from mia_lightning.recipes.moves import describe

log = logging.getLogger("mia")


@dataclass
class Candidate:
    """One recipe the search trained pilots for, and how they matched the target."""

    move: str  # how it was reached: "given", or the knob move from its parent
    round: int
    step: float  # the step of the move (1: the coarse grid; below 1: a refinement)
    recipe: TrainRecipe
    entry: str  # its store entry (the chosen one's full shadow set lives there)
    scores: dict[str, float]
    pilots: list[dict[str, Any]]  # the pilots' summaries (train/test accuracy on IN/OUT)
    seconds: float  # pilot training (0 when the store already had them) + matching

    def as_json(self) -> dict[str, Any]:
        return {"move": self.move, "round": self.round, "step": self.step, "recipe": recipe_values(self.recipe),
                "describe": describe(self.recipe), "entry": self.entry, "scores": self.scores,
                "pilots": self.pilots, "seconds": round(self.seconds, 2)}


@dataclass
class SearchResult:
    chosen: Candidate
    candidates: list[Candidate] = field(default_factory=list)
    match: str = "distribution"
    seconds: float = 0.0
    started: float = 0.0  # wall clock (epoch s): records of two processes merge by it (merge_records)
    finished: float = 0.0
    # one pilot's seed spread among the finalists (pooled sd of their per-pilot scores), and
    # whether the chosen one beat the runner-up by less than the standard error of that gap
    pilot_spread: float | None = None
    tie: bool = False

    def as_json(self, settings: SearchConfig) -> dict[str, Any]:
        candidates = [c.as_json() for c in self.candidates]
        trainings, pilot_seconds = pilot_cost(candidates)
        return {"chosen": self.chosen.as_json(), "match": self.match, "seconds": round(self.seconds, 2),
                "started": self.started, "finished": self.finished, "processes": 1,
                "pilot_trainings": trainings, "pilot_seconds": pilot_seconds,
                "pilot_spread": self.pilot_spread, "finalists_tied": self.tie,
                "settings": asdict(settings), "candidates": candidates}


def pilot_cost(candidates: list[dict[str, Any]]) -> tuple[int, float]:
    """(pilots trained by the search, their training seconds) over a record's candidates."""
    trained = [p for c in candidates for p in c.get("pilots", []) if p.get("trained_here")]
    return len(trained), round(sum(float(p.get("seconds", 0.0)) for p in trained), 2)


def merge_records(earlier: dict[str, Any], mine: dict[str, Any]) -> dict[str, Any]:
    """`mine` with what another process's `earlier` record of the same search adds (see above);
    `mine` unchanged when the keys differ (a stale record of another search)."""
    if earlier.get("key") != mine.get("key"):
        return mine
    theirs = {json.dumps(c["recipe"], sort_keys=True): c for c in earlier.get("candidates", [])}
    candidates = []
    for candidate in mine["candidates"]:
        other = theirs.get(json.dumps(candidate["recipe"], sort_keys=True), {})
        by_index = {p.get("index"): p for p in other.get("pilots", [])}
        pilots = [{**p, "trained_here": bool(p.get("trained_here")) or
                   bool(by_index.get(p.get("index"), {}).get("trained_here"))} for p in candidate["pilots"]]
        candidates.append({**candidate, "pilots": pilots})
    if earlier.get("chosen", {}).get("recipe") != mine["chosen"]["recipe"]:
        log.warning("recipe search: another process chose %s, this one %s (pilots scored differently?); "
                    "this record keeps this process's choice", earlier.get("chosen", {}).get("describe"),
                    mine["chosen"]["describe"])
    started = min(earlier.get("started", mine["started"]), mine["started"])
    finished = max(earlier.get("finished", mine["finished"]), mine["finished"])
    trainings, seconds = pilot_cost(candidates)
    return {**mine, "candidates": candidates, "started": started, "finished": finished,
            "seconds": round(max(finished - started, mine["seconds"], earlier.get("seconds", 0.0)), 2),
            "processes": int(earlier.get("processes", 1)) + int(mine.get("processes", 1)),
            "pilot_trainings": trainings, "pilot_seconds": seconds}


def write_record(path: Path, record: dict[str, Any], copies: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Write the search's record at `path` (and `copies`), merged with a record of the same
    search that another process wrote while this one searched; the record as written."""
    with locked(path.with_name(path.name + ".lock")):
        if path.is_file():
            try:
                record = merge_records(json.loads(path.read_text()), record)
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable: this process's record replaces it
        for target in (path, *copies):
            atomic_write_json(target, record)
    return record


def now() -> float:
    """Wall-clock seconds (epoch): records of different processes compare their starts and ends."""
    return round(time.time(), 2)
