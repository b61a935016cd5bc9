"""Settings of each attack (`attack.<name>.*`) and which attacks run (`attack.names`).

Which names exist is the attack registry's business (`attacks/registry.py`): the attack
stage checks `attack.names` against it, so this module never lists them twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mia_lightning.config.checks import at_least, choice, fraction, non_empty, positive
from mia_lightning.config.newer_attacks import (AttackRConfig, BaseConfig, CalibratedEnsembleConfig,
                                                CalibratedLossConfig, EnsembleConfig, QmiaConfig)

LIRA_VARIANCES = ("auto", "global", "per_example")
LIRA_CENTERS = ("median", "mean")
LIRA_TRANSFORMS = ("auto", "asinh", "none")
DEFAULT_ATTACKS = ["threshold", "loss", "lira_online", "lira_offline", "rmia", "master",
                   "calibrated_loss", "attack_r", "base", "lira_calibrated", "ensemble", "stack"]


@dataclass
class ThresholdConfig:
    tau: float = 0.95  # decision point of the hard rule (the score stays continuous)

    def validate(self, key: str) -> None:
        fraction(self.tau, f"{key}.tau", low_open=False, high_open=False)


@dataclass
class LiraConfig:
    variance: str = "auto"  # auto (global below global_below shadows) | global | per_example
    global_below: int = 64
    min_std: float = 1e-3
    center: str = "median"  # per-point centre of each side: median (the paper's code; robust) | mean
    # phi's scale for the Gaussians: asinh (log-like tails) | none (the paper's phi) | auto: the one that
    # scores best with each of up to transform_pseudo_targets shadows as the target, on up to
    # transform_points points (README "LiRA's phi scale")
    transform: str = "auto"
    transform_pseudo_targets: int = 8
    transform_points: int = 2000

    def validate(self, key: str) -> None:
        choice(self.variance, LIRA_VARIANCES, f"{key}.variance")
        choice(self.center, LIRA_CENTERS, f"{key}.center")
        choice(self.transform, LIRA_TRANSFORMS, f"{key}.transform")
        at_least(self.transform_pseudo_targets, 1, f"{key}.transform_pseudo_targets")
        at_least(self.transform_points, 100, f"{key}.transform_points")
        positive(self.min_std, f"{key}.min_std")
        at_least(self.global_below, 0, f"{key}.global_below")


@dataclass
class RmiaConfig:
    online: bool = True  # Pr(x) from all shadows; offline: from OUT shadows with the `a` correction
    gamma: float = 1.0
    a: float = 0.3
    tune_a: bool = False  # choose `a` on the shadows themselves (one shadow as the pseudo-target)
    num_z: int = 2500
    temperature: float = 1.0
    tie_break: bool = True  # order points the step-valued RMIA score leaves tied (by their own ratio)

    def validate(self, key: str) -> None:
        positive(self.gamma, f"{key}.gamma")
        fraction(self.a, f"{key}.a", low_open=False, high_open=False)
        at_least(self.num_z, 1, f"{key}.num_z")
        positive(self.temperature, f"{key}.temperature")


STACK_MODELS = ("hgb", "logistic")


@dataclass
class StackConfig:
    """`stack`: a supervised combiner trained on pub's membership (attacks/stack.py)."""

    # logistic: a standardised LogisticRegression | hgb: scikit-learn's HistGradientBoostingClassifier.
    # logistic by default: on pub's held-out folds it beat hgb on every store compared (the
    # default task, adam15 and short10 with default and searched shadows; README "stack")
    model: str = "logistic"
    folds: int = 5  # held-out folds on pub
    max_iter: int = 200  # boosting rounds (hgb)
    learning_rate: float = 0.05  # hgb
    max_leaf_nodes: int = 15  # hgb
    l2: float = 1.0  # hgb: l2_regularization; logistic: 1 / C

    def validate(self, key: str) -> None:
        choice(self.model, STACK_MODELS, f"{key}.model")
        at_least(self.folds, 2, f"{key}.folds")
        at_least(self.max_iter, 1, f"{key}.max_iter")
        positive(self.learning_rate, f"{key}.learning_rate")
        at_least(self.max_leaf_nodes, 2, f"{key}.max_leaf_nodes")
        at_least(self.l2, 0, f"{key}.l2")


@dataclass
class CalibratedLiraConfig:
    """`lira_calibrated`: LiRA whose Gaussians are mapped onto the target's scale on pub."""

    folds: int = 5  # held-out folds on pub
    min_std: float = 1e-2

    def validate(self, key: str) -> None:
        at_least(self.folds, 2, f"{key}.folds")
        positive(self.min_std, f"{key}.min_std")


@dataclass
class CalibratedRmiaConfig(CalibratedLiraConfig):
    """`rmia_calibrated`: RMIA whose shadows are mapped onto the target's scale on pub (gamma, num_z: `attack.rmia`)."""


@dataclass
class AttackConfig:
    names: list[str] = field(default_factory=lambda: list(DEFAULT_ATTACKS))
    # auto | identity | mirror | shift_DX_DY | mirror_shift_DX_DY  (DX, DY signed pixel offsets);
    # auto = identity, + mirror when shadow.augment.flip (query only views the models trained on)
    queries: list[str] = field(default_factory=lambda: ["auto"])
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    lira: LiraConfig = field(default_factory=LiraConfig)
    rmia: RmiaConfig = field(default_factory=RmiaConfig)
    stack: StackConfig = field(default_factory=StackConfig)
    lira_calibrated: CalibratedLiraConfig = field(default_factory=CalibratedLiraConfig)
    rmia_calibrated: CalibratedRmiaConfig = field(default_factory=CalibratedRmiaConfig)
    # issue 13 (config/newer_attacks.py)
    calibrated_loss: CalibratedLossConfig = field(default_factory=CalibratedLossConfig)
    attack_r: AttackRConfig = field(default_factory=AttackRConfig)
    base: BaseConfig = field(default_factory=BaseConfig)
    qmia: QmiaConfig = field(default_factory=QmiaConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    ensemble_calibrated: CalibratedEnsembleConfig = field(default_factory=CalibratedEnsembleConfig)

    def validate(self, key: str = "attack") -> None:
        non_empty(self.names, f"{key}.names")
        for name in ("threshold", "lira", "rmia", "stack", "lira_calibrated", "rmia_calibrated", "calibrated_loss", "attack_r",
                     "base", "qmia"):
            getattr(self, name).validate(f"{key}.{name}")
        self.ensemble.validate(f"{key}.ensemble", list(self.names))
        self.ensemble_calibrated.validate(f"{key}.ensemble_calibrated", list(self.names), "ensemble_calibrated")
