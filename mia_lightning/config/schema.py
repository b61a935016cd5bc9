"""Structured configs: the typed shape of `conf/`, and its conversion into dataclasses.

Hydra merges the YAML groups onto `Config`, so a misspelt key or a value of the wrong type
fails at composition with the key's name. `typed_config` then converts the composed tree
once (`OmegaConf.to_object`) and every option dataclass checks its own ranges; the stages
receive these dataclasses, never a DictConfig. The defaults live here only: the YAML
files of each group override what differs from them.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from omegaconf import DictConfig, OmegaConf

from mia_lightning.config.attack import AttackConfig
from mia_lightning.config.checks import choice, did_you_mean
from mia_lightning.config.master import MasterConfig
from mia_lightning.config.model import ModelConfig
from mia_lightning.config.shadow import ShadowConfig
from mia_lightning.config.task import TaskConfig
from mia_lightning.config.trainer import LIGHTNING_DEFAULTS, MIA_KEYS, OTHER_FLAGS, TrainerSettings
from mia_lightning.errors import MiaError

STAGES = ("simulate", "calibrate", "shadows", "logits", "attacks", "all")
EVALS = ("auto", "truth", "pub")
LOGGERS = ("tensorboard", "none")


@dataclass
class ReportConfig:
    submit: str = "best"  # best (by tpr@0.05 on pub, never on a hidden truth: report/metrics.py) or an attack name
    eval: str = "auto"  # auto (truth when the task has it, else pub) | truth | pub
    plots: bool = True

    def validate(self, key: str = "report") -> None:
        choice(self.eval, EVALS, f"{key}.eval")


@dataclass
class LoggerConfig:
    name: str = "tensorboard"  # tensorboard | none
    enabled: bool = True


@dataclass
class StoreConfig:
    root: str = "outputs/store"  # conf/config.yaml: ${oc.env:MIA_STORE,outputs/store}
    entry: Optional[str] = None  # an imported shadow set (`mia-store import --name NAME`); null: the recipe's entry


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    master: MasterConfig = field(default_factory=MasterConfig)
    # every lightning.Trainer argument mia does not set itself (null: Lightning's default) and
    # mia's own keys (config/trainer.py); a mapping, so that Lightning, not mia, types them
    trainer: Dict[str, Any] = field(
        default_factory=lambda: {**LIGHTNING_DEFAULTS, **{key: None for key in OTHER_FLAGS}, **MIA_KEYS})
    report: ReportConfig = field(default_factory=ReportConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    stage: str = "all"  # simulate | calibrate | shadows | logits | attacks | all
    seed: int = 0
    optimized_metric: str = "attacks.best.tpr@0.05"
    experiment_name: str = "default"

    def validate(self) -> None:
        choice(self.stage, STAGES, "stage")
        for name in ("task", "model", "shadow", "attack", "master", "report"):
            getattr(self, name).validate(name)
        if self.report.submit != "best":
            choice(self.report.submit, self.attack.names, "report.submit (must be best or one of attack.names)")
        self.trainer_settings().validate("trainer")

    def trainer_settings(self) -> TrainerSettings:
        return TrainerSettings.from_mapping(self.trainer)


def known_keys(node: Any, schema: type, prefix: str = "") -> None:
    """Refuse keys the schema does not have. Hydra answers a misspelt `shadow.epoch=3` with
    "use +shadow.epoch=3 to append", and an appended key would otherwise be silently ignored."""
    hints = typing.get_type_hints(schema)
    for key in node.keys():
        if key not in hints:
            where = prefix.rstrip(".") or "the config"
            hint = did_you_mean(str(key), hints)
            if hint:  # "unknown key shadow.epoch; did you mean shadow.epochs?": the fix, at once
                raise MiaError(f"unknown key {prefix}{key}{hint.replace('did you mean ', 'did you mean ' + prefix)}")
            raise MiaError(f"unknown key {prefix}{key} (the keys of {where}: {', '.join(sorted(hints))})")
        child = node.get(key)
        if dataclasses.is_dataclass(hints[key]) and hasattr(child, "keys"):
            known_keys(child, hints[key], f"{prefix}{key}.")


def typed_config(cfg: DictConfig | Config) -> Config:
    """The composed config as dataclasses, every value checked; raises one-line MiaErrors."""
    if isinstance(cfg, Config):
        config = cfg
    else:
        known_keys(cfg, Config)
        try:
            config = OmegaConf.to_object(cfg)
        except Exception as error:  # interpolation or conversion errors name their key
            raise MiaError(" ".join(str(error).split())) from None
    config.validate()
    return config
