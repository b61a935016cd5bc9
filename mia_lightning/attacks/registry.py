"""Run the attacks named in `attack.names` on one set of stored logits.

The expensive signal (phi of every shadow on every point and query) is computed once and
shared: LiRA online, LiRA offline and RMIA all read it from the same cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from mia_lightning.attacks.base import AttackInputs, AttackResult, check_finite
from mia_lightning.attacks.lira import SideFit, fit_sides, lira_from_phi
from mia_lightning.attacks.master import master_attack
from mia_lightning.attacks.rmia import log_prob_from_phi, population_index, rmia_from_log_probs
from mia_lightning.attacks.signals import true_class_margin
from mia_lightning.attacks.threshold import loss_scores, threshold_attack
from mia_lightning.config.schema import AttackConfig, MasterConfig, TrainerConfig
from mia_lightning.config.validate import ATTACK_NAMES
from mia_lightning.errors import MiaError
from mia_lightning.utils.seeding import derive_seed



class SignalCache:
    """phi of the target and of the shadows (and LiRA's fits), computed on first use and kept."""

    def __init__(self, inputs: AttackInputs) -> None:
        self.inputs = inputs
        self._phi: dict[tuple[str, float], Tensor] = {}
        self._fits: dict[str, tuple[SideFit, SideFit]] = {}

    def lira_fits(self, center: str) -> tuple[SideFit, SideFit]:
        if center not in self._fits:
            self._fits[center] = fit_sides(self.phi("shadow"), self.inputs.keep, center)
        return self._fits[center]

    def phi(self, which: str, temperature: float = 1.0) -> Tensor:
        key = (which, float(temperature))
        if key not in self._phi:
            logits = self.inputs.target_logits if which == "target" else self.inputs.shadow_logits
            self._phi[key] = true_class_margin(logits, self.inputs.labels, temperature)
        return self._phi[key]


# (inputs, cache, attack cfg, master cfg, trainer cfg, seed, log_dir) -> result
Runner = Callable[..., AttackResult]


def _threshold(inputs: AttackInputs, cache: SignalCache, attack: Any, *_: Any) -> AttackResult:
    scores, notes = threshold_attack(inputs.target_logits, tau=float(attack.threshold.tau))
    return AttackResult(scores, held_out=False, notes=notes)


def _loss(inputs: AttackInputs, cache: SignalCache, attack: Any, *_: Any) -> AttackResult:
    return AttackResult(loss_scores(inputs.target_logits, inputs.labels), held_out=False, notes={})


def _lira(online: bool) -> Runner:
    def run(inputs: AttackInputs, cache: SignalCache, attack: Any, *_: Any) -> AttackResult:
        cfg = attack.lira
        scores, notes = lira_from_phi(cache.phi("target"), cache.phi("shadow"), inputs.keep, online=online,
                                      variance=str(cfg.variance), global_below=int(cfg.global_below),
                                      min_std=float(cfg.min_std), center=str(cfg.center),
                                      fits=cache.lira_fits(str(cfg.center)) if inputs.num_shadows else None)
        return AttackResult(scores, held_out=False, notes=notes)
    return run


def _rmia(inputs: AttackInputs, cache: SignalCache, attack: Any, master: Any, trainer: Any, seed: int,
          log_dir: Path | None) -> AttackResult:
    cfg = attack.rmia
    temperature = float(getattr(cfg, "temperature", 1.0))
    population_seed = derive_seed(seed, "rmia", "population")
    population, notes = population_index(inputs.known_membership, inputs.num_points, int(cfg.num_z), population_seed)
    scores, more = rmia_from_log_probs(
        log_prob_from_phi(cache.phi("target", temperature)), log_prob_from_phi(cache.phi("shadow", temperature)),
        inputs.keep, population, online=bool(cfg.online), gamma=float(cfg.gamma), a=float(cfg.a),
        tie_break=bool(getattr(cfg, "tie_break", True)), tune=bool(cfg.tune_a), num_z=int(cfg.num_z),
        seed=derive_seed(seed, "rmia", "tune_a"))
    notes.update(more)
    return AttackResult(scores, held_out=False, notes=notes)


def _master(inputs: AttackInputs, cache: SignalCache, attack: Any, master: Any, trainer: Any, seed: int,
            log_dir: Path | None) -> AttackResult:
    scores, held_out, notes = master_attack(inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels,
                                            inputs.known_membership, master=master, trainer=trainer, seed=seed,
                                            log_dir=log_dir)
    return AttackResult(scores, held_out=held_out, notes=notes)


RUNNERS: dict[str, Runner] = {
    "threshold": _threshold,
    "loss": _loss,
    "lira_online": _lira(online=True),
    "lira_offline": _lira(online=False),
    "rmia": _rmia,
    "master": _master,
}


def _check_result(name: str, result: AttackResult, num_points: int) -> None:
    """An attack that returns non-finite or misshapen scores is a bug in mia, not user error."""
    scores = result.scores
    if scores.dtype != torch.float64 or tuple(scores.shape) != (num_points,) or not torch.isfinite(scores).all():
        raise RuntimeError(f"attack {name} returned invalid scores: {scores.dtype} {tuple(scores.shape)}, "
                           f"{int((~torch.isfinite(scores)).sum())} non-finite")


def run_attacks(inputs: AttackInputs, attack: AttackConfig, master: MasterConfig, trainer: TrainerConfig, seed: int,
                log_dir: Path | None = None) -> dict[str, AttackResult]:
    """Run attack.names in order; notes["seconds"] holds each attack's wall time.

    The configs may equally be the DictConfig nodes Hydra composed from these dataclasses.
    """
    names = list(attack.names)
    unknown = [name for name in names if name not in ATTACK_NAMES]
    if unknown:
        raise MiaError(f"attack.names={names} contains unknown attack(s) {unknown}; choose from {list(ATTACK_NAMES)}")
    check_finite(inputs)
    cache = SignalCache(inputs)
    results: dict[str, AttackResult] = {}
    for name in names:
        if name in results:
            continue
        start = time.perf_counter()
        result = RUNNERS[name](inputs, cache, attack, master, trainer, seed, log_dir)
        result.notes["seconds"] = round(time.perf_counter() - start, 4)
        _check_result(name, result, inputs.num_points)
        results[name] = result
    return results
