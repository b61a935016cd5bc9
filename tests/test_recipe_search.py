"""shadow.recipe=auto: the search's moves and criteria, and on a real tiny task that it finds
the target's recipe, records every candidate, and never opens the hidden truth."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import REPO, make_cfg
from mia_lightning.config.recipe import TrainRecipe, recipe_values, with_changes
from mia_lightning.config.search import SearchConfig
from mia_lightning.errors import MiaError
from mia_lightning.io.locks import FileLock
from mia_lightning.pipeline import run_pipeline
from mia_lightning.recipes.match import criteria, seed_tie
from mia_lightning.recipes.moves import describe, moves
from mia_lightning.recipes.record import pilot_cost, write_record
from mia_lightning.recipes.search import Candidate, RecipeSearch
from mia_lightning.shadows.store import ShadowStore


def test_every_move_changes_exactly_one_knob():
    start = TrainRecipe()
    found = moves(start, SearchConfig())
    descriptions = [text for text, _ in found]
    assert "epochs 30->15" in descriptions and "epochs 30->60" in descriptions
    assert any(text.startswith("optimizer sgd->adam") for text in descriptions)
    assert "augment none->crop_flip" in descriptions and "label smoothing 0->0.1" in descriptions
    for _, recipe in found:
        changed = [name for name in ("epochs", "optimizer", "augment", "label_smoothing") if
                   getattr(recipe, name) != getattr(start, name)]
        assert len(changed) == 1, (recipe, changed)
    only_epochs = moves(start, SearchConfig(knobs=["epochs"], epoch_factors=[0.5]))
    assert [r.epochs for _, r in only_epochs] == [15]


def test_a_move_to_or_from_adamw_starts_from_that_familys_usual_weight_decay():
    """AdamW's decay is decoupled (lr x wd per step), so SGD/Adam's 5e-4 would be almost none:
    a move to AdamW starts from shadow.search.adamw_weight_decay, a move back from 5e-4."""
    search = SearchConfig(optimizers=["sgd", "adam", "adamw"], knobs=["optimizer"], adamw_weight_decay=0.02)
    to = dict(moves(TrainRecipe(), search))  # sgd lr 0.05 wd 5e-4
    assert to["optimizer sgd->adam (lr 0.001)"].optimizer.weight_decay == 5e-4  # the same L2 meaning: kept
    adamw = to["optimizer sgd->adamw (lr 0.001, wd 0.02)"].optimizer
    assert (adamw.name, adamw.lr, adamw.weight_decay) == ("adamw", 1e-3, 0.02)
    back = dict(moves(with_changes(TrainRecipe(), {"optimizer": {"name": "adamw", "weight_decay": 0.05}}, "r"), search))
    assert back["optimizer adamw->adam (lr 0.001, wd 0.0005)"].optimizer.weight_decay == 5e-4
    assert back["optimizer adamw->sgd (lr 0.05, wd 0.0005)"].optimizer.momentum == 0.9
    no_decay = with_changes(TrainRecipe(), {"optimizer": {"name": "adamw", "weight_decay": 0.0}}, "r")
    assert dict(moves(no_decay, search))["optimizer adamw->sgd (lr 0.05)"].optimizer.weight_decay == 0.0
    from_none = moves(no_decay, SearchConfig(knobs=["weight_decay"], adamw_weight_decay=0.02))
    assert [r.optimizer.weight_decay for _, r in from_none] == [0.02]  # AdamW's usual, not SGD's 5e-4


def test_a_refinement_step_moves_only_the_numeric_knobs_by_smaller_factors():
    start = TrainRecipe()  # sgd lr 0.05 wd 5e-4, 30 epochs
    refined = moves(start, SearchConfig(), step=0.5)
    assert {r.epochs for _, r in refined} == {start.epochs, 21, 42}  # 30 / sqrt(2), 30 * sqrt(2)
    assert {round(r.optimizer.lr, 4) for _, r in refined} == {0.05, 0.0289, 0.0866}  # 3 ** +-0.5
    assert {r.optimizer.weight_decay for _, r in refined} == {5e-4, 0.000158, 0.00158}  # 10 ** +-0.5
    assert all(r.optimizer.name == "sgd" and r.augment == start.augment and r.label_smoothing == 0 for _, r in refined)
    assert len(refined) == 6


def test_explicit_candidates_change_the_given_recipe_and_are_checked():
    changed = with_changes(TrainRecipe(), {"epochs": 15, "optimizer": {"name": "adam", "lr": 1e-3}}, "c[0]")
    assert changed.epochs == 15 and changed.optimizer.name == "adam" and changed.optimizer.momentum == 0.9
    with pytest.raises(MiaError, match=r"c\[1\]: 'epoch' is not a recipe key"):
        with_changes(TrainRecipe(), {"epoch": 3}, "c[1]")
    with pytest.raises(MiaError, match=r"c\[2\].optimizer.name"):
        with_changes(TrainRecipe(), {"optimizer": {"name": "lbfgs"}}, "c[2]")


def synthetic(points: int, in_level: float, out_level: float, noise: float, seed: int, hardness: torch.Tensor,
              keep: torch.Tensor) -> torch.Tensor:
    """phi [N, 1] of a model whose trained points sit at in_level, the others at out_level,
    shifted per point by its hardness (the same for every model of the task)."""
    generator = torch.Generator().manual_seed(seed)
    level = torch.where(keep, torch.tensor(in_level), torch.tensor(out_level))
    return (level - hardness + noise * torch.randn(points, generator=generator)).unsqueeze(-1).double()


def test_criteria_prefer_pilots_that_behave_like_the_target():
    points = 2000
    generator = torch.Generator().manual_seed(0)
    hardness = 3 * torch.rand(points, generator=generator)
    member = torch.rand(points, generator=generator) < 0.5  # the target's membership (all of the pool is "pub")
    pilot_keep = torch.rand(2, points, generator=generator) < 0.5
    pilot_keep[1] = ~pilot_keep[0]
    target = synthetic(points, 8.0, 2.0, 0.5, 1, hardness, member)
    like = torch.stack([synthetic(points, 8.0, 2.0, 0.5, 2 + p, hardness, pilot_keep[p]) for p in range(2)])
    overfit = torch.stack([synthetic(points, 14.0, 1.0, 0.5, 4 + p, hardness, pilot_keep[p]) for p in range(2)])
    no_hardness = torch.stack([synthetic(points, 8.0, 2.0, 0.5, 6 + p, torch.zeros(points) + 1.5, pilot_keep[p])
                               for p in range(2)])
    pub = torch.arange(points)
    good, bad, flat = (criteria(target, pilots, pilot_keep, pub, member) for pilots in (like, overfit, no_hardness))
    for key in ("pointwise", "distribution"):
        assert good[key] < bad[key], key
    assert 0 <= good["attack"] <= 0.5 and 0 <= bad["attack"] <= 1  # 1 - AUC of the pair's LiRA on pub
    assert good["pointwise"] < flat["pointwise"]  # point-by-point difficulty counts, not just the marginals
    assert abs(good["distribution"] - flat["distribution"]) < 0.1  # ...which `distribution` cannot see
    one = criteria(target, like[:1], pilot_keep[:1], pub, member)
    assert "attack" not in one and one["pointwise"] < criteria(target, overfit[:1], pilot_keep[:1], pub, member)["pointwise"]


# A small digits task whose target trained with Adam; the given shadow recipe is SGD, and the
# three candidates differ clearly (SGD as given, Adam as the target, SGD for 2 epochs).
SEARCH_TASK = [
    "task=simulate_digits", "task.pool_size=320", "task.train.epochs=8", "task.train.batch_size=32",
    "task.train.optimizer.name=adam", "task.train.optimizer.lr=0.001",
    "shadow.epochs=8", "shadow.batch_size=32", "shadow.count=2", "shadow.recipe=auto",
    "shadow.search.candidates=[{optimizer:{name:adam,lr:0.001}},{epochs:2}]",
    "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1",
]


@pytest.fixture(scope="module")
def searched(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("search_store")
    run_pipeline(make_cfg(*SEARCH_TASK, "stage=calibrate", f"store.root={store}"), store / "run")
    return store


@pytest.mark.slow
def test_the_search_picks_the_targets_recipe_and_records_every_candidate(searched):
    (record_path,) = searched.glob("*/recipe_search_*.json")
    record = json.loads(record_path.read_text())
    assert [c["move"].split(":")[0] for c in record["candidates"]] == ["given", "candidate 0", "candidate 1"]
    chosen = record["chosen"]["recipe"]
    assert chosen["optimizer"]["name"] == "adam" and chosen["epochs"] == 8, record["chosen"]
    for candidate in record["candidates"]:  # all three are finalists: scored again on a complementary pair
        assert len(candidate["pilots"]) == 2, candidate["pilots"]
        assert set(candidate["scores"]) == {"pointwise", "distribution", "attack"}  # a pair gives `attack` too
    assert record["match"] == "distribution"  # the default criterion
    best = min(record["candidates"], key=lambda c: c["scores"][record["match"]])
    assert best["recipe"] == chosen
    for candidate in record["candidates"]:  # each pilot's own score: the candidate's is their mean
        per_pilot = [p["score"] for p in candidate["pilots"]]
        assert sum(per_pilot) / 2 == pytest.approx(candidate["scores"]["distribution"], rel=1e-9)
    assert isinstance(record["finalists_tied"], bool) and record["pilot_spread"] >= 0
    assert record["pilot_trainings"] == 6 and record["pilot_seconds"] > 0 and record["processes"] == 1
    assert 0 < record["finished"] - record["started"] <= record["seconds"] + 1
    # the chosen pilot is shadow 0 of an ordinary store entry, which also holds a copy of the record
    entry = Path(record["chosen"]["entry"])
    assert (entry / "shadow_000" / "done").is_file() and (entry / "recipe_search.json").is_file()


@pytest.mark.slow
def test_the_search_never_opens_the_hidden_truth(searched, tmp_path):
    """`mia stage=calibrate` under an audit hook: every file it opens is logged; truth.pt is not
    among them (a rerun reads the recorded search; a fresh one is checked by deleting it)."""
    for record in searched.glob("*/recipe_search_*.json"):
        record.unlink()  # search again: the pilots stay in the store, so this costs inference only
    log = tmp_path / "opened.txt"
    hook = (
        "import sys, runpy\n"
        f"log = open({str(log)!r}, 'w')\n"
        "def audit(event, args):\n"
        "    if event == 'open' and isinstance(args[0], (str, bytes)):\n"
        "        log.write(str(args[0]) + '\\n'); log.flush()\n"
        "sys.addaudithook(audit)\n"
        "sys.argv = ['mia', *sys.argv[1:]]\n"
        "runpy.run_module('mia_lightning.app', run_name='__main__')\n"
    )
    proc = subprocess.run([sys.executable, "-c", hook, *SEARCH_TASK, "stage=calibrate", f"store.root={searched}",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    opened = log.read_text().splitlines()
    assert any(path.endswith("pub.pt") for path in opened) and any("logits.pt" in path for path in opened)
    assert not [path for path in opened if path.endswith("truth.pt")]
    assert list(searched.glob("*/recipe_search_*.json"))


@pytest.mark.slow
def test_the_chosen_recipe_trains_the_shadows_and_the_report_says_so(searched, tmp_path):
    run_pipeline(make_cfg(*SEARCH_TASK, f"store.root={searched}", "attack.names=[loss,lira_online,rmia]",
                          "attack.rmia.num_z=100", "logger=none", "report.plots=false"), tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    recipe = json.loads((Path(metrics["store"]) / "recipe.json").read_text())
    assert recipe["optimizer"]["name"] == "adam" and metrics["recipe"]["mode"] == "auto"
    assert metrics["recipe"]["chosen"]["optimizer"]["name"] == "adam" and metrics["recipe"]["search"]
    search = json.loads(Path(metrics["recipe"]["search"]).read_text())
    assert metrics["recipe"].get("finalists_tied", False) == search["finalists_tied"]  # told where a user reads


@pytest.mark.slow
def test_mix_alternates_pairs_between_the_best_recipes_and_reuses_the_search(searched, tmp_path):
    records = sorted(searched.glob("*/recipe_search_*.json"))
    run_pipeline(make_cfg(*SEARCH_TASK, f"store.root={searched}", "shadow.count=4", "shadow.search.mix=2",
                          "shadow.search.mix_within=1000", "attack.names=[loss,lira_online]", "logger=none", "report.plots=false"), tmp_path / "run")
    assert sorted(searched.glob("*/recipe_search_*.json")) == records  # mix is applied after the search
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    record = json.loads(records[0].read_text())
    ranked = sorted(record["candidates"], key=lambda c: c["scores"][record["match"]])
    assert [m["recipe"] for m in metrics["recipe"]["mixed_with"]] == [ranked[1]["recipe"]]
    chosen, runner_up = Path(ranked[0]["entry"]), Path(ranked[1]["entry"])
    # pair 0 (shadows 0, 1) from the chosen recipe, pair 1 (shadows 2, 3) from the runner-up
    assert all((chosen / f"shadow_{i:03d}" / "done").is_file() for i in (0, 1))
    assert all((runner_up / f"shadow_{i:03d}" / "done").is_file() for i in (2, 3))
    assert not (chosen / "shadow_002").exists()  # (the runner-up's shadow_001 is its finalist pilot)
    assert metrics["shadows"] == 4 and metrics["stores"] == [str(chosen), str(runner_up)]
    # a farmed-out shadow (stage=shadows shadow.only=..., as a SLURM array task runs it) lands in its recipe's entry
    run_pipeline(make_cfg(*SEARCH_TASK, f"store.root={searched}", "shadow.count=8", "shadow.search.mix=2",
                          "shadow.search.mix_within=1000", "stage=shadows", "shadow.only=[6]"), tmp_path / "farmed")
    assert (runner_up / "shadow_006" / "done").is_file() and not (chosen / "shadow_006").exists()


def test_mix_takes_only_runners_up_that_score_close_to_the_chosen_recipe(caplog):
    from mia_lightning.stages.calibrate import runners_up

    def candidate(epochs: int, score: float) -> dict:
        recipe = {"epochs": epochs, "batch_size": 128, "optimizer": {"name": "sgd"}, "augment": {}}
        return {"recipe": recipe, "describe": f"{epochs} epochs", "scores": {"distribution": score}}

    chosen = candidate(30, 0.05)
    record = {"match": "distribution", "chosen": chosen,
              "candidates": [candidate(60, 0.9), chosen, candidate(15, 0.08), candidate(8, 0.3)]}
    assert [r.epochs for r in runners_up(record, 1)] == [15]
    with caplog.at_level("INFO", logger="mia"):
        assert [r.epochs for r in runners_up(record, 3, within=2.0)] == [15]  # 0.3 and 0.9 are > 2 x 0.05
    assert "8 epochs stays out" in caplog.text and "mix_within=2" in caplog.text
    assert [r.epochs for r in runners_up(record, 3, within=20.0)] == [15, 8, 60]
    assert runners_up(record, 0) == ()
    # finalists (scored again on more pilots) come before a one-pilot score, however low (short10's search:
    # 8 epochs at 0.274 on one pilot, 11 epochs at 0.286 on two)
    finalist, lucky = candidate(11, 0.286), candidate(8, 0.274)
    chosen["pilots"], finalist["pilots"], lucky["pilots"] = [{}, {}], [{}, {}], [{}]
    record = {"match": "distribution", "chosen": chosen, "candidates": [lucky, chosen, finalist]}
    assert [r.epochs for r in runners_up(record, 1, within=10.0)] == [11]
    assert [r.epochs for r in runners_up(record, 2, within=10.0)] == [11, 8]
    with pytest.raises(MiaError, match="shadow.search.mix_within"):
        SearchConfig(mix_within=0.5).validate()


def test_records_of_two_processes_on_one_search_merge_their_pilots_and_wall_time(searched, tmp_path):
    """Two processes ran the same search (each trained some pilots, through the store's locks):
    the record the second one writes counts every pilot either trained, the wall time from the
    first start to the last end, and both processes; a stale record of another search is
    replaced, not merged. Real records of the `searched` store, real files."""
    (record_path,) = searched.glob("*/recipe_search_*.json")
    record = json.loads(record_path.read_text())

    def as_process(first_half: bool, started: float, finished: float) -> dict:
        mine = json.loads(json.dumps(record))
        for at, candidate in enumerate(mine["candidates"]):
            for pilot in candidate["pilots"]:
                pilot["trained_here"] = (at < 2) == first_half
        trainings, pilot_seconds = pilot_cost(mine["candidates"])
        return {**mine, "started": started, "finished": finished, "seconds": finished - started,
                "processes": 1, "pilot_trainings": trainings, "pilot_seconds": pilot_seconds}

    one, two = as_process(True, 100.0, 400.0), as_process(False, 150.0, 500.0)
    assert one["pilot_trainings"] == 4 and two["pilot_trainings"] == 2  # 3 candidates x 2 pilots
    path, copy = tmp_path / "recipe_search_x.json", tmp_path / "entry_recipe_search.json"
    write_record(path, one)
    merged = write_record(path, two, copies=(copy,))
    assert json.loads(path.read_text()) == json.loads(copy.read_text()) == merged
    assert merged["pilot_trainings"] == 6 and merged["processes"] == 2
    assert merged["pilot_seconds"] == pytest.approx(one["pilot_seconds"] + two["pilot_seconds"], abs=0.02)
    assert (merged["started"], merged["finished"], merged["seconds"]) == (100.0, 500.0, 400.0)
    assert merged["chosen"] == record["chosen"]
    stale = {**as_process(True, 600.0, 700.0), "key": {"another": "search"}}
    assert write_record(path, stale) == stale  # another search's record: replaced as it is


def test_finalists_whose_means_differ_by_less_than_their_standard_error_are_a_tie():
    """The smooth search's finalists: per-pilot scores spread ~0.018 while the means lay 0.007
    apart, so pub cannot tell them apart. Clearly separated finalists are no tie."""
    def tie(per_pilot: list[list[float]]) -> tuple:
        return seed_tie(per_pilot, [sum(scores) / len(scores) for scores in per_pilot], len(per_pilot[0]))

    spread, tied = tie([[0.050, 0.074], [0.054, 0.084], [0.059, 0.079]])
    assert tied and spread == pytest.approx(0.0177, abs=2e-4)
    assert tie([[0.050, 0.052], [0.150, 0.155], [0.3, 0.31]])[1] is False
    assert tie([[0.05], [0.06]]) == (None, False)  # one pilot each: no spread to judge by


class KnownObjective(RecipeSearch):
    """The search's control flow on a known objective: a recipe's "match" is its distance to a
    hidden recipe in the search's own units, plus a fixed pull toward heavy weight decay that
    makes the first round's best move a dead end (as heavier weight decay and Adam stand in for
    each other on real targets). No pilots are trained; only the choice of moves is tested."""

    def __init__(self, settings: SearchConfig, hidden: TrainRecipe, pool=None, decoy: float = 2.5) -> None:
        self.settings, self.hidden, self.evaluated, self.decoy = settings, hidden, {}, decoy
        self.pool, self.pretrained = pool, {}
        self.job_for = lambda recipe: SimpleNamespace(store=SimpleNamespace(is_done=lambda index: True))

    def evaluate(self, recipe, move, round_, step=1.0):
        key = self._key(recipe)
        if key not in self.evaluated:
            h = self.hidden
            distance = (abs(math.log(recipe.epochs / h.epochs, 2)) + (recipe.optimizer.name != h.optimizer.name)
                        + abs(math.log10(recipe.optimizer.weight_decay / h.optimizer.weight_decay))
                        + abs(math.log(recipe.optimizer.lr / h.optimizer.lr, 3)) * (recipe.optimizer.name == h.optimizer.name))
            trap = recipe.optimizer.name == "sgd" and recipe.epochs == 30 and 4e-3 < recipe.optimizer.weight_decay < 6e-3
            decoy = self.decoy if trap else 0.0  # a local minimum (0.5) one move from the start, better than adam's 1
            self.evaluated[key] = Candidate(move, round_, step, recipe, "", {"distribution": distance - decoy}, [], 0.0)
        return self.evaluated[key]

    def confirm(self, best):  # a noiseless objective: more pilots would score the same
        return best


ADAM15 = with_changes(TrainRecipe(), {"epochs": 15, "optimizer": {"name": "adam", "lr": 1e-3}}, "hidden")


def test_the_beam_reaches_a_recipe_that_plain_descent_misses():
    knobs = ["optimizer", "epochs", "weight_decay"]
    descent = KnownObjective(SearchConfig(beam=1, knobs=knobs), ADAM15).run(TrainRecipe())
    beam = KnownObjective(SearchConfig(beam=2, knobs=knobs), ADAM15).run(TrainRecipe())
    assert descent.chosen.recipe.optimizer.name == "sgd"  # followed the decoy: heavy weight decay
    assert beam.chosen.recipe == ADAM15, describe(beam.chosen.recipe)
    assert len(beam.candidates) <= SearchConfig().max_candidates + SearchConfig().beam * SearchConfig().refine


def test_a_round_without_progress_shrinks_the_step_and_lands_between_grid_points():
    hidden = with_changes(TrainRecipe(), {"epochs": 10}, "hidden")  # 30 -> 15 -> 8 on the coarse grid
    found = KnownObjective(SearchConfig(knobs=["epochs"], rounds=8), hidden).run(TrainRecipe())
    assert found.chosen.recipe.epochs == 10, [(c.recipe.epochs, c.step) for c in found.candidates]
    assert min(c.step for c in found.candidates) < 1


def test_a_search_whose_budget_ends_on_the_coarse_grid_still_refines_the_best_between_its_points():
    hidden = with_changes(TrainRecipe(), {"epochs": 10}, "hidden")  # 30 -> 15 on the grid; 11 at step 0.5
    knobs = ["lr", "epochs"]
    coarse = KnownObjective(SearchConfig(knobs=knobs, max_candidates=7, refine=0), hidden).run(TrainRecipe())
    assert coarse.chosen.recipe.epochs == 15 and max(c.round for c in coarse.candidates) == 2
    refined = KnownObjective(SearchConfig(knobs=knobs, max_candidates=7), hidden).run(TrainRecipe())
    assert refined.chosen.recipe.epochs == 11, [(c.recipe.epochs, c.step) for c in refined.candidates]
    last = [c for c in refined.candidates if c.round == 3]
    assert len(last) == 4 and {c.step for c in last} == {0.5}  # lr x3**+-0.5, epochs x2**+-0.5 of 15 epochs
    assert {c.recipe.epochs for c in last} == {15, 11, 21}
    # a search that already reached the finest step adds nothing
    fine = KnownObjective(SearchConfig(knobs=["epochs"], rounds=8), hidden).run(TrainRecipe())
    assert min(c.step for c in fine.candidates) == SearchConfig().min_step
    assert len(fine.candidates) == len(KnownObjective(SearchConfig(knobs=["epochs"], rounds=8, refine=0),
                                                      hidden).run(TrainRecipe()).candidates)


def test_the_last_round_also_refines_a_runner_up_about_as_close_on_another_branch():
    """adamw20 at seed=1: the budget ended with SGD + weight decay 5e-3 first and Adam second,
    a pilot's noise apart, and only the first was refined. Here the decoy (SGD, wd 5e-3, 30
    epochs: 0.4) leads after round 2, Adam at 15 epochs (0.485) is next, and the hidden
    recipe (Adam, 21 epochs) lies between the grid's points on the runner-up's branch."""
    knobs = ["optimizer", "epochs", "weight_decay"]
    hidden = with_changes(TrainRecipe(), {"epochs": 21, "optimizer": {"name": "adam", "lr": 1e-3}}, "hidden")
    budget = SearchConfig(knobs=knobs, max_candidates=13)  # rounds 1 and 2 (6 + 7 candidates), then the last
    alone = KnownObjective(replace(budget, refine_within=1.0), hidden, decoy=2.115).run(TrainRecipe())
    assert alone.chosen.recipe.optimizer.name == "sgd" and alone.chosen.recipe.optimizer.weight_decay == 5e-3
    both = KnownObjective(budget, hidden, decoy=2.115).run(TrainRecipe())
    assert both.chosen.recipe == hidden, describe(both.chosen.recipe)
    last = [c for c in both.candidates if c.round == 3]
    assert {c.recipe.optimizer.name for c in last} == {"sgd", "adam"} and len(last) == 8  # 4 numeric moves each
    assert len([c for c in alone.candidates if c.round == 3]) == 4
    # a runner-up beyond refine_within of the best is not refined: the first test's decoy (0.015 against 0.485)
    far = KnownObjective(budget, hidden).run(TrainRecipe())
    assert {c.recipe.optimizer.name for c in far.candidates if c.round == 3} == {"sgd"}
    with pytest.raises(MiaError, match="shadow.search.refine_within"):
        SearchConfig(refine_within=0.5).validate()


class BatchRecorder:
    """Stands in for PilotPool in the control-flow test below: records each batch of
    candidates it is asked to train (the real pool is tested on a real task further down)."""

    workers = 2

    def __init__(self, search: KnownObjective) -> None:
        self.search, self.batches = search, []

    def train(self, jobs, indices):
        self.batches.append((set(jobs), len(self.search.evaluated)))
        return {key: ([0], 1.0) for key in jobs}


def test_with_workers_each_round_is_listed_before_it_is_scored_and_the_search_is_unchanged():
    """workers > 1 trains a round's pilots together, then scores them in the same order: the
    candidates and the choice must be those of the one-process search, and no candidate may be
    scored before its round's batch went to the workers."""
    knobs = ["optimizer", "epochs", "weight_decay"]
    alone = KnownObjective(SearchConfig(knobs=knobs), ADAM15).run(TrainRecipe())
    search = KnownObjective(SearchConfig(knobs=knobs), ADAM15)
    search.job_for = lambda recipe: SimpleNamespace(store=SimpleNamespace(is_done=lambda index: False))
    search.pool = recorder = BatchRecorder(search)
    together = search.run(TrainRecipe())
    assert [c.recipe for c in together.candidates] == [c.recipe for c in alone.candidates]
    assert together.chosen.recipe == alone.chosen.recipe == ADAM15
    batched = [key for keys, _ in recorder.batches for key in keys]
    assert sorted(batched) == sorted(search.evaluated) and len(batched) == len(set(batched))  # each once
    assert recorder.batches[0][1] == 0 and len(recorder.batches[0][0]) > 1  # the start trains with round 1
    order = list(search.evaluated)
    for keys, scored_before in recorder.batches:  # a batch holds no candidate scored before it was sent
        assert all(order.index(key) >= scored_before for key in keys)
    with pytest.raises(MiaError, match="shadow.search.workers"):
        SearchConfig(workers=0).validate()


def test_without_workers_a_candidate_whose_pilot_another_process_trains_is_scored_after_the_free_ones(
        tmp_path, caplog):
    """Two searches on one store (a study run and a second process beside it) walk the same
    list: one must not wait on the pilot the other is training while a later one is free.
    The held candidate is scored last in its round; the record (candidates in order, hence the
    next round's parents) and the choice stay the plain order's. The lock is a real one, on
    a real store entry's lock file."""
    knobs = ["optimizer", "epochs", "weight_decay"]
    alone = KnownObjective(SearchConfig(knobs=knobs), ADAM15).run(TrainRecipe())
    search = KnownObjective(SearchConfig(knobs=knobs), ADAM15)
    first_of_round_1 = next(c.recipe for c in alone.candidates if c.round == 1)
    held = ShadowStore(tmp_path, "task", recipe_values(first_of_round_1))  # the others' pilots are done
    done = search.job_for
    search.job_for = lambda recipe: SimpleNamespace(store=held, stack=1) if recipe == first_of_round_1 else done(recipe)
    other_process = FileLock(held.lock_path(0))
    assert other_process.try_acquire()
    try:
        with caplog.at_level("INFO", logger="mia"):
            beside = search.run(TrainRecipe())
    finally:
        other_process.release()
    assert [c.recipe for c in beside.candidates] == [c.recipe for c in alone.candidates]  # recorded in listed order
    assert beside.chosen.recipe == alone.chosen.recipe == ADAM15
    held_move = next(c.move for c in alone.candidates if c.round == 1)
    scored_in_round_1 = [r.getMessage().split("round 1, ")[1].split(":")[0] for r in caplog.records
                         if "] round 1, " in r.getMessage()]
    assert scored_in_round_1[-1] == held_move and scored_in_round_1[0] != held_move, scored_in_round_1
    assert caplog.text.count(f"another process is training the pilots of {describe(first_of_round_1)}") == 1
    assert not held.is_done(0) and "training" not in caplog.text.replace("is training", "")  # it only tried the lock


def test_each_worker_of_a_multi_gpu_run_sees_one_gpu(monkeypatch):
    """Worker i of a GPU run with several GPUs sees GPU i mod their count (set in the worker
    before it touches CUDA), as CUDA_VISIBLE_DEVICES named them in the parent."""
    import multiprocessing

    from mia_lightning.recipes.parallel import PilotPool, _start_worker

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    threads = torch.get_num_threads()
    started = multiprocessing.get_context("spawn").Value("i", 0)
    seen = []
    try:
        for _ in range(3):
            _start_worker(1, ["3", "5"], started)
            seen.append(os.environ["CUDA_VISIBLE_DEVICES"])
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
        _start_worker(1, ["3"], started)  # one GPU: the workers share it, nothing to hide
        assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    finally:
        torch.set_num_threads(threads)
    assert seen == ["3", "5", "3"]
    assert PilotPool.visible_gpus(wants_gpu=False) == []  # a CPU run asks for no GPU at all


@pytest.mark.slow
def test_pilots_trained_by_worker_processes_give_the_same_search(searched, tmp_path, caplog):
    """shadow.search.workers=2 on a fresh store: the pilots train in two spawned processes and
    the search records the same candidates, in the same order, and the same choice as the
    one-process search of the `searched` store (scores agree closely, not to the digit: a
    worker trains with half the threads, which reorders float sums)."""
    store = tmp_path / "store"
    with caplog.at_level("INFO", logger="mia"):
        run_pipeline(make_cfg(*SEARCH_TASK, "stage=calibrate", f"store.root={store}", "shadow.search.workers=2"),
                     tmp_path / "run")
    assert "pilots of 3 candidates, 2 at a time" in caplog.text  # once for the round, once for the finalists
    assert "training 1 of 1 shadows" not in caplog.text  # nothing was trained in this process
    (alone_path,) = searched.glob("*/recipe_search_*.json")
    (together_path,) = store.glob("*/recipe_search_*.json")
    assert together_path.name == alone_path.name  # workers is not part of the search's key
    alone, together = (json.loads(path.read_text()) for path in (alone_path, together_path))
    assert [c["recipe"] for c in together["candidates"]] == [c["recipe"] for c in alone["candidates"]]
    assert together["chosen"]["recipe"] == alone["chosen"]["recipe"]
    assert together["pilot_trainings"] == 6 and all(c["seconds"] > 0 for c in together["candidates"])
    for mine, theirs in zip(together["candidates"], alone["candidates"]):
        assert mine["scores"]["distribution"] == pytest.approx(theirs["scores"]["distribution"], rel=0.5, abs=0.05)
