"""TensorBoard for a run: its config as hparams with the headline metrics, ROC figures.

Each run dir gets `tb/` with
- an HParams session: the flattened config (`shadow.count`, `master.depth`, ...) and, as
  its metrics, `hparams/<attack>/{tpr@0.05,tpr@0.01,auc}` (and `hparams/best/...` for the
  submitted attack) plus `models/target_{member,non_member}_*` and `models/shadow_{in,out}_*` (the
  model report: accuracy and median phi, what the attacks feed on);
- figures `roc/linear` and `roc/log`; the resolved config as text `config`.

Only the per-run `session_start_info` is written, no per-run `experiment` summary:
TensorBoard then builds the experiment from all sessions it finds, so one
`tensorboard --logdir outputs/` lists every run of every sweep with the union of their
hparams, puts the swept ones (those that differ) first, and offers every metric. (With a
per-run experiment summary, TensorBoard would pick one run's arbitrarily for all.)

Training curves (`train/loss`, `train/acc`, one line per model) live where each model
is trained: the simulated target in `<store>/tasks/<task>/target/tb`, each shadow in
`<store>/<task-fingerprint>/<recipe-hash>/shadow_NNN/tb`, the master MLP in
`<run dir>/master/<shadow|foldK|all>`; run names in TensorBoard are these paths.
"""

from __future__ import annotations

import time
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf

from mia_lightning.run import Run

HPARAM_GROUPS = ("task", "model", "shadow", "attack", "master", "seed", "experiment_name", "stage")
HPARAM_METRICS = ("tpr@0.05", "tpr@0.01", "auc")


def flat_hparams(cfg: Any) -> dict[str, Any]:
    """Dotted keys -> scalars (lists become strings, None "none") for the HParams tab."""
    out: dict[str, Any] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), item)
        elif isinstance(value, (list, tuple)):
            out[prefix] = ",".join(str(v) for v in value)
        elif value is None:
            out[prefix] = "none"
        elif isinstance(value, (bool, int, float, str)):
            out[prefix] = value
        else:
            out[prefix] = str(value)

    container = asdict(cfg) if is_dataclass(cfg) else OmegaConf.to_container(cfg, resolve=True)
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


def model_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The model report's accuracies and median phi as scalars: the target on pub's members /
    non-members, the shadows' mean on their IN / OUT points."""
    models = metrics.get("models") or {}
    out: dict[str, float] = {}
    for side, row in (models.get("target") or {}).items():
        out.update({f"models/target_{side}_{key}": float(row[key]) for key in ("acc", "phi_median")})
    for side in ("in", "out"):
        row = (models.get("shadows") or {}).get(side)
        if row:
            out.update({f"models/shadow_{side}_{key}": float(row[key]) for key in ("acc", "phi_median")})
    return {key: value for key, value in out.items() if value == value}  # no NaN


def _clear_events(log_dir: Path) -> None:
    """A rerun of the same job (a relaunched sweep) replaces the run's events, not adds to them."""
    for old in log_dir.glob("events.out.tfevents.*"):
        old.unlink(missing_ok=True)


def log_run(run: Run, metrics: dict[str, Any], curves: dict[str, Any]) -> None:
    from torch.utils.tensorboard.summary import hparams

    from mia_lightning.report.plots import roc_figure

    log_dir = run.run_dir / "tb"
    _clear_events(log_dir)
    logger = TensorBoardLogger(save_dir=str(log_dir.parent), name=log_dir.name, version="", default_hp_metric=False)
    params = flat_hparams(run.config)
    values = {**hparam_metrics(metrics), **model_metrics(metrics)}
    logger.log_metrics(values, step=0)  # the scalars the HParams tab reads, by tag
    _, session_start, session_end = hparams(params, values)
    writer = logger.experiment._get_file_writer()
    now = time.time()
    writer.add_summary(session_start, 0, walltime=now)
    writer.add_summary(session_end, 0, walltime=now)
    logger.hparams.update(params)  # hparams.yaml next to the events
    for log_scale in (False, True):
        figure = roc_figure(curves, title=metrics["task"], log_scale=log_scale)
        logger.experiment.add_figure("roc/log" if log_scale else "roc/linear", figure, global_step=0, close=True)
    text = OmegaConf.to_yaml(run.composed if run.composed is not None else OmegaConf.structured(run.config),
                             resolve=True)
    logger.experiment.add_text("config", "\n".join("    " + line for line in text.splitlines()), global_step=0)
    logger.finalize("success")
