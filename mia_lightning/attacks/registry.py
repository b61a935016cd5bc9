"""The attacks mia knows, by the name `attack.names` uses, and the loop that runs them.

Adding an attack: a module next to the others with a pure scoring function and a
`run_<name>(ctx) -> AttackResult` adapter, one entry in `ATTACKS`, and (when it has
settings) a dataclass in `config/attack.py`. Everything else (config validation,
metrics, plots, the submission, TensorBoard) reads the names from here.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import torch

from mia_lightning.attacks.base import AttackContext, AttackInputs, AttackResult, check_finite
from mia_lightning.attacks.bayes_base import run_base
from mia_lightning.attacks.cache import SignalCache
from mia_lightning.attacks.calibrated_loss import run_attack_r, run_calibrated_loss
from mia_lightning.attacks.ensemble import run_ensemble, run_ensemble_calibrated
from mia_lightning.attacks.lira_attack import run_lira_offline, run_lira_online
from mia_lightning.attacks.lira_calibrated import run_lira_calibrated
from mia_lightning.attacks.master import run_master
from mia_lightning.attacks.qmia import run_qmia
from mia_lightning.attacks.rmia import run_rmia
from mia_lightning.attacks.rmia_calibrated import run_rmia_calibrated
from mia_lightning.attacks.stack import run_stack
from mia_lightning.attacks.threshold import run_loss, run_threshold
from mia_lightning.config.attack import AttackConfig
from mia_lightning.config.checks import did_you_mean
from mia_lightning.config.master import MasterConfig
from mia_lightning.config.newer_attacks import COMBINERS
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.errors import MiaError

Runner = Callable[[AttackContext], AttackResult]

ATTACKS: dict[str, Runner] = {
    "threshold": run_threshold,
    "loss": run_loss,
    "lira_online": run_lira_online,
    "lira_offline": run_lira_offline,
    "rmia": run_rmia,
    "master": run_master,  # the seed's meta-classifier ("master" is the seed's word)
    # calibrated on the target itself: trained on pub's membership, scored there through held-out folds
    "lira_calibrated": run_lira_calibrated,
    "rmia_calibrated": run_rmia_calibrated,
    "stack": run_stack,
    # issue 13: difficulty calibration, Attack R, BASE, quantile regression, and a combiner
    "calibrated_loss": run_calibrated_loss,
    "attack_r": run_attack_r,
    "base": run_base,
    "qmia": run_qmia,  # trains on pub's non-members: pub through held-out folds
    "ensemble": run_ensemble,  # combines attacks already run: always run last
    "ensemble_calibrated": run_ensemble_calibrated,  # ensemble + stack: calibrated on pub through stack
}
ATTACK_NAMES = tuple(ATTACKS)
# COMBINERS (config/newer_attacks.py) read other attacks' results, so they run after every other name
NEEDS_IMAGES = ("qmia",)  # read the pool images (AttackInputs.images), which the attack stage then passes


def check_names(names: list[str], key: str = "attack.names") -> None:
    """Every name must be a registered attack; one line naming the first stranger."""
    for name in names:
        if name not in ATTACKS:
            raise MiaError(f"{key}={list(names)} contains unknown attack {name!r}{did_you_mean(name, ATTACKS)} "
                           f"(choose from {', '.join(ATTACKS)})")


def _check_result(name: str, result: AttackResult, num_points: int) -> None:
    """An attack that returns non-finite or misshapen scores is a bug in mia, not user error."""
    scores = result.scores
    if scores.dtype != torch.float64 or tuple(scores.shape) != (num_points,) or not torch.isfinite(scores).all():
        raise RuntimeError(f"attack {name} returned invalid scores: {scores.dtype} {tuple(scores.shape)}, "
                           f"{int((~torch.isfinite(scores)).sum())} non-finite")


def run_attacks(inputs: AttackInputs, attack: AttackConfig, master: MasterConfig, trainer: TrainerSettings, seed: int,
                log_dir: Path | None = None) -> dict[str, AttackResult]:
    """Run attack.names in order; notes["seconds"] holds each attack's wall time."""
    names = list(attack.names)
    check_names(names)
    names = [n for n in names if n not in COMBINERS] + [n for n in names if n in COMBINERS]
    check_finite(inputs)
    signals = SignalCache(inputs.target_logits, inputs.shadow_logits, inputs.keep, inputs.labels)
    ctx = AttackContext(inputs, signals, attack, master, trainer, seed, log_dir)
    for name in names:
        if name in ctx.results:
            continue
        start = time.perf_counter()
        result = ATTACKS[name](ctx)
        result.notes["seconds"] = round(time.perf_counter() - start, 4)
        _check_result(name, result, inputs.num_points)
        ctx.results[name] = result
    return dict(ctx.results)
