"""The recipe search (`shadow.recipe=auto`): a beam search over recipe knobs, judged on pub.

Start from the given recipe; each round trains the pilot shadows of every one-knob move
away from each of the `beam` best recipes so far (recipes/moves.py) and scores how much
they behave like the target on pub (recipes/match.py). Why a beam and not plain descent:
knobs stand in for each other (heavier weight decay and Adam both soften an SGD model's
confidence), so the first round's best move can lead away from the target's recipe while
the runner-up leads to it; expanding both costs one more round's moves, not a restart.
A round in which nothing beats the best shrinks the numeric steps (`shrink`: lr, epochs
and weight decay move by their factors to the power `step`), so the search can settle
between grid points; the round limit, the candidate budget or a step below `min_step`
ends it; then `refine` more candidates, the best's numeric moves at the next smaller step
(and as many for each other beam member within `refine_within` of it), are the last round,
and the `finalists` best are scored again on more pilots before the choice. A round's
candidates are all listed before any is scored, so with `shadow.search.workers` > 1 their
pilots train side by side (recipes/parallel.py) and are then scored in the same order as
without. Without workers, a candidate whose pilots another process is training (a second
search on the same store) is scored after the round's free ones, and recorded in listed
order all the same. A candidate's pilots are shadows 0 (and 1) of its recipe's ordinary
store entry, so the chosen recipe's full shadow set keeps them, and a rerun or another job
retrains nothing.
priv's membership is never read: only pub's, through `pub_member`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.signals import true_class_margin
from mia_lightning.config.recipe import TrainRecipe, recipe_values, with_changes
from mia_lightning.config.search import SearchConfig
from mia_lightning.logits.queries import parse_queries
from mia_lightning.recipes.match import criteria, seed_tie
from mia_lightning.recipes.moves import describe, moves
from mia_lightning.recipes.parallel import PilotPool
from mia_lightning.recipes.record import Candidate, SearchResult, now
from mia_lightning.shadows.fingerprint import config_hash
from mia_lightning.shadows.job import ShadowJob, shadow_logits
from mia_lightning.shadows.runner import ensure_shadows

log = logging.getLogger("mia")


class RecipeSearch:
    """The search over one task's target: `job_for(recipe)` gives a recipe's store entry."""

    spread: tuple[float | None, bool] = (None, False)  # set by confirm(): (pilot_spread, tie)

    def __init__(self, settings: SearchConfig, job_for: Callable[[TrainRecipe], ShadowJob], target_logits: Tensor,
                 labels: Tensor, pub_index: Tensor, pub_member: Tensor, pool: PilotPool | None = None) -> None:
        self.settings = settings
        self.pool = pool  # trains a round's pilots side by side (None: one after another, here)
        self.pretrained: dict[str, tuple[list[int], float]] = {}  # key -> (pilots a worker trained, seconds)
        self.job_for = job_for
        self.queries = parse_queries(list(settings.queries))
        self.target_phi = true_class_margin(target_logits, labels)  # [N, Q]
        self.labels, self.pub_index, self.pub_member = labels, pub_index, pub_member
        self.evaluated: dict[str, Candidate] = {}

    def evaluate(self, recipe: TrainRecipe, move: str, round_: int, step: float = 1.0) -> Candidate:
        key = self._key(recipe)
        if key in self.evaluated:
            return self.evaluated[key]
        start = time.monotonic()
        job = self.job_for(recipe)
        scores, summaries, worker_seconds = self._score_pilots(key, job, self.settings.pilots)
        candidate = Candidate(move, round_, step, recipe, str(job.store.dir), scores, summaries,
                              time.monotonic() - start + worker_seconds)
        self.evaluated[key] = candidate
        return candidate

    def _score_pilots(self, key: str, job: ShadowJob, count: int) -> tuple[dict[str, float], list[dict], float]:
        """The criteria over pilots 0..count-1 of a recipe's entry (trained here unless a worker or
        the store has them), the pilots' summaries, and the seconds a worker spent on them."""
        pilots = list(range(count))
        trained = ensure_shadows(job, pilots)  # nothing left to train when a worker did it
        by_worker, worker_seconds = self.pretrained.get(key, ([], 0.0))
        phi = [true_class_margin(shadow_logits(job, i, self.queries), self.labels) for i in pilots]
        scores = criteria(self.target_phi, torch.stack(phi), job.keep[:count], self.pub_index, self.pub_member)
        summaries = [{**(job.store.summary(i) or {}), "trained_here": i in trained or i in by_worker}
                     for i in pilots]
        if self.settings.match != "attack" and count > 1:  # each pilot's own score: its seed's share
            for i, summary in zip(pilots, summaries):
                summary["score"] = criteria(self.target_phi, phi[i].unsqueeze(0), job.keep[i:i + 1], self.pub_index,
                                            self.pub_member)[self.settings.match]
        return scores, summaries, worker_seconds

    def confirm(self, best: Candidate) -> Candidate:
        """The `finalists` best candidates scored again on `finalist_pilots` pilots each (their
        mean), and the best of them: one pilot's score is mostly its training seed (on `short10`
        the 8 shadows of one recipe scored 0.19-0.34), so a lucky pilot must not decide."""
        count = self.settings.finalist_pilots
        if self.settings.finalists < 2 or count <= self.settings.pilots:
            return best
        finalists = sorted(self.evaluated.values(), key=self.score)[: self.settings.finalists]
        self._pretrain([c.recipe for c in finalists], count, again=True)
        by_key = {self._key(c.recipe): c for c in finalists}
        order = self._free_first([(c.move, c.recipe) for c in finalists], count)
        for candidate in (by_key[self._key(recipe)] for _, recipe in order):
            start, before, earlier = time.monotonic(), self.score(candidate), candidate.pilots
            key = self._key(candidate.recipe)
            candidate.scores, candidate.pilots, worker_seconds = self._score_pilots(
                key, self.job_for(candidate.recipe), count)
            for old, new in zip(earlier, candidate.pilots):  # trained by this search in its rounds
                new["trained_here"] = new["trained_here"] or old.get("trained_here", False)
            candidate.seconds += time.monotonic() - start + worker_seconds
            log.info("recipe search: finalist %s: %s %.4f on %d pilots (%.4f on %d)", describe(candidate.recipe),
                     self.settings.match, self.score(candidate), count, before, self.settings.pilots)
        ranked = sorted(finalists, key=self.score)  # stable: ties keep the listed order, as min() does
        self.spread = seed_tie([[p["score"] for p in c.pilots if "score" in p] for c in ranked],
                               [self.score(c) for c in ranked], count)
        if self.spread[1]:
            log.info("recipe search: %s and %s are a tie on pub: their %s means differ by %.4f, less than the "
                     "standard error of that gap (one pilot's seed spread %.4f x sqrt(2/%d))",
                     describe(ranked[0].recipe), describe(ranked[1].recipe), self.settings.match,
                     self.score(ranked[1]) - self.score(ranked[0]), self.spread[0], count)
        return ranked[0]

    def score(self, candidate: Candidate) -> float:
        return candidate.scores[self.settings.match]

    def _report(self, candidate: Candidate, best: Candidate) -> None:
        pilot = candidate.pilots[0] if candidate.pilots else {}
        log.info("recipe search [%d/%d] round %d, %s: %s %.4f (best %.4f) | pilot train acc %.3f test acc %.3f | %.0f s",
                 len(self.evaluated), self.settings.max_candidates + self.settings.beam * self.settings.refine,
                 candidate.round, candidate.move + (f" (step {candidate.step:g})" if candidate.step < 1 else ""),
                 self.settings.match, self.score(candidate), self.score(best), pilot.get("train_acc", float("nan")),
                 pilot.get("test_acc", float("nan")), candidate.seconds)

    def run(self, start: TrainRecipe) -> SearchResult:
        began, self.started = time.monotonic(), now()
        if self.settings.candidates:  # an explicit list: one round, no descent
            listed = [(f"candidate {index}: {changes}",
                       with_changes(start, changes, f"shadow.search.candidates[{index}]"))
                      for index, changes in enumerate(self.settings.candidates)]
            self._pretrain([start, *(recipe for _, recipe in listed)])
            best = self.evaluate(start, "given", 0)
            self._report(best, best)
            return self._finish(self._score_listed(listed, 1, 1.0, best), began)
        # round 1's parent is the start whatever it scores, so its pilots train alongside round 1's
        self._pretrain([start, *(recipe for _, recipe in self._round_moves([start], 1.0, reserved=1))])
        best = self.evaluate(start, "given", 0)
        self._report(best, best)
        step, expanded, round_ = 1.0, set(), 0
        for round_ in range(1, self.settings.rounds + 1):
            ranked = sorted(self.evaluated.items(), key=lambda item: self.score(item[1]))
            parents = [(key, c) for key, c in ranked if (key, step) not in expanded][: self.settings.beam]
            expanded.update((key, step) for key, _ in parents)
            listed = self._round_moves([parent.recipe for _, parent in parents], step)
            self._pretrain([recipe for _, recipe in listed])
            before, best = best, self._score_listed(listed, round_, step, best)
            improved = best is not before
            if len(self.evaluated) >= self.settings.max_candidates:
                break
            if not improved:
                step *= self.settings.shrink
                if step < self.settings.min_step - 1e-9:
                    return self._finish(best, began)  # the finest step was tried already
        return self._finish(self._refine(best, step * self.settings.shrink, round_ + 1), began)

    def _refine(self, best: Candidate, step: float, round_: int) -> Candidate:
        """The last round, beyond `max_candidates`: at most `refine` numeric moves of the best
        recipe at the next smaller step, which a budget spent on the coarse grid never reaches
        (a real target's recipe lies between its points: 10 epochs between 8 and 15), and as
        many of each other beam member about as close (`_refine_parents`)."""
        if step < self.settings.min_step - 1e-9:
            return best
        listed: list[tuple[str, TrainRecipe]] = []
        for parent in self._refine_parents(best):
            taken = set(self.evaluated) | {self._key(recipe) for _, recipe in listed}
            listed += [(move, recipe) for move, recipe in moves(parent.recipe, self.settings, step)
                       if self._key(recipe) not in taken][: self.settings.refine]
        self._pretrain([recipe for _, recipe in listed])
        return self._score_listed(listed, round_, step, best)

    def _refine_parents(self, best: Candidate) -> list[Candidate]:
        """The best, then the next of the `beam` best whose score is within `refine_within` times
        the best's. Why: the budget can end a round after a runner-up on another branch came
        within a pilot's noise of the best (adamw20 at seed=1: SGD with weight decay 5e-3 and
        flips 0.091, Adam with flips 0.122, one pilot each, spread 0.024), and refining the best
        alone then settles the choice by one pilot's seed (docs/recipe_mismatch_log.md)."""
        limit = self.score(best) + (self.settings.refine_within - 1) * abs(self.score(best))
        ranked = sorted(self.evaluated.values(), key=self.score)  # stable: ties keep the listed order
        close = [c for c in ranked if c is not best and self.score(c) <= limit + 1e-12]
        return [best, *close[: self.settings.beam - 1]]

    def _score_listed(self, listed: list[tuple[str, TrainRecipe]], round_: int, step: float,
                      best: Candidate) -> Candidate:
        """Score a round's listed candidates, one log line each; the best so far after them.
        Whatever order they were scored in, they are recorded and compared in listed order,
        so the next round's parents (ties included) and the choice do not depend on it."""
        shown, new = best, list(dict.fromkeys(key for key in map(self._key, (r for _, r in listed))
                                              if key not in self.evaluated))
        for move, recipe in self._free_first(listed, self.settings.pilots):
            candidate = self.evaluate(recipe, move, round_, step)
            self._report(candidate, shown)
            shown = min(shown, candidate, key=self.score)
        for key in new:
            self.evaluated[key] = self.evaluated.pop(key)
        for move, recipe in listed:
            candidate = self.evaluated[self._key(recipe)]
            if self.score(candidate) < self.score(best) - 1e-12:
                best = candidate
        return best

    def _free_first(self, listed: list[tuple[str, TrainRecipe]], count: int) -> Iterator[tuple[str, TrainRecipe]]:
        """The listed candidates, each time the first whose `count` pilots are all done once
        this process has trained those no other process is training (the first left, whose
        pilots it then waits for, when there is none). Why: two searches on one store (a second
        process beside a study run) walk the same list, and waiting on the other's pilot left
        a core idle while the next pilot was free. Workers (`_pretrain`) have already trained
        every pilot, so with them this is the listed order."""
        left, told, pilots = list(listed), set(), list(range(count))
        jobs = {} if self.pool is not None else {self._key(recipe): self.job_for(recipe) for _, recipe in left}
        self.pretrained.update({key: ([], 0.0) for key in jobs})  # what this pass trains ahead of scoring
        while left:
            at = next((at for at, (_, recipe) in enumerate(left) if self._train_unclaimed(jobs, recipe, pilots)), 0)
            if at and self._key(left[0][1]) not in told:
                told.add(self._key(left[0][1]))
                log.info("recipe search: another process is training the pilots of %s; scoring the next ones first",
                         describe(left[0][1]))
            yield left.pop(at)

    def _train_unclaimed(self, jobs: dict[str, ShadowJob], recipe: TrainRecipe, pilots: list[int]) -> bool:
        """Whether the recipe's pilots are all done after training those no other process is
        training (never waiting); what it trains counts as pre-trained for `_score_pilots`."""
        key = self._key(recipe)
        if key not in jobs:  # workers: all trained already
            return True
        job = jobs[key]
        if not all(job.store.is_done(i) for i in pilots):
            start, (before, seconds) = time.monotonic(), self.pretrained[key]
            trained = ensure_shadows(job, pilots, wait=False)
            self.pretrained[key] = (sorted([*before, *trained]), seconds + time.monotonic() - start)
        return all(job.store.is_done(i) for i in pilots)

    def _round_moves(self, parents: list[TrainRecipe], step: float,
                     reserved: int = 0) -> list[tuple[str, TrainRecipe]]:
        """A round's candidates before any is scored: every new one-knob move away from each
        parent, in order, within the budget (`reserved`: slots already promised elsewhere)."""
        listed: list[tuple[str, TrainRecipe]] = []
        seen: set[str] = set()
        for parent in parents:
            for move, recipe in moves(parent, self.settings, step):
                if len(self.evaluated) + reserved + len(listed) >= self.settings.max_candidates:
                    return listed
                key = self._key(recipe)
                if key not in self.evaluated and key not in seen:
                    seen.add(key)
                    listed.append((move, recipe))
        return listed

    def _pretrain(self, recipes: list[TrainRecipe], count: int = 0, again: bool = False) -> None:
        """With workers (`shadow.search.workers` > 1), train these candidates' pilots (`count`,
        default `pilots`) at once, before they are scored one by one as without workers
        (`again`: candidates already scored, now on more pilots)."""
        if self.pool is None:
            return
        pilots = list(range(count or self.settings.pilots))
        jobs: dict[str, ShadowJob] = {}
        for recipe in recipes:
            key = self._key(recipe)
            if again or (key not in self.evaluated and key not in self.pretrained and key not in jobs):
                jobs[key] = self.job_for(recipe)
        unfinished = sum(not all(job.store.is_done(i) for i in pilots) for job in jobs.values())
        if unfinished:  # (pilots already in the store are only scored)
            log.info("recipe search: training the pilots of %d candidates, %d at a time (shadow.search.workers)",
                     unfinished, self.pool.workers)
        trained = self.pool.train(jobs, pilots)
        self.pretrained.update({key: trained.get(key, ([], 0.0)) for key in jobs})

    @staticmethod
    def _key(recipe: TrainRecipe) -> str:
        return config_hash(recipe_values(recipe))

    def _finish(self, best: Candidate, began: float) -> SearchResult:
        best = self.confirm(best)
        log.info("recipe search chose %s (%s %.4f) after %d candidates, %.0f s",
                 describe(best.recipe), self.settings.match, self.score(best), len(self.evaluated),
                 time.monotonic() - began)
        return SearchResult(best, list(self.evaluated.values()), self.settings.match, time.monotonic() - began,
                            self.started, now(), *self.spread)
