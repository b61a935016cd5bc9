"""TensorBoard for a run: its config as hparams with the headline metrics, and ROC figures.

With hparams and `hparams/<attack>/tpr@0.05` metrics in every run, one
`tensorboard --logdir outputs/` compares all runs of a sweep in the HParams tab.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

HPARAM_GROUPS = ("task", "model", "shadow", "attack", "master", "seed", "experiment_name")
HPARAM_METRICS = ("tpr@0.05", "tpr@0.01", "auc")


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
    """Dotted keys -> scalars (lists become strings) for the HParams tab."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (list, tuple)):
            out[prefix] = ",".join(str(v) for v in value)
        elif value is None:
            out[prefix] = "none"
        else:
            out[prefix] = value

    container = OmegaConf.to_container(cfg, resolve=True)
    for group in HPARAM_GROUPS:
        if group in container:
            walk(group, container[group])
    return out


def hparam_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    values = {f"hparams/{name}/{key}": float(row[key])
              for name, row in metrics["attacks"].items() for key in HPARAM_METRICS}
    submitted = metrics["attacks"][metrics["submit"]]
    values.update({f"hparams/best/{key}": float(submitted[key]) for key in HPARAM_METRICS})
    return values


def log_run(log_dir: Path, cfg: DictConfig, metrics: dict[str, Any], curves: dict[str, Any]) -> None:
    logger = TensorBoardLogger(save_dir=str(log_dir.parent), name=log_dir.name, version="", default_hp_metric=False)
    logger.log_hyperparams(flat_hparams(cfg), metrics=hparam_metrics(metrics))
    from mia_lightning.report.plots import roc_figure

    for log_scale in (False, True):
        figure = roc_figure(curves, title=metrics["task"], log_scale=log_scale)
        logger.experiment.add_figure("roc/log" if log_scale else "roc/linear", figure, global_step=0, close=True)
    logger.finalize("success")
