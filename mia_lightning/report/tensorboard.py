"""TensorBoard for a run: its config as hparams with the headline metrics, ROC figures.

Each run dir gets `tb/` with
- an HParams session: the flattened config (`shadow.count`, `master.depth`, ...) and, as
  its metrics, `hparams/<attack>/{tpr@0.05,tpr@0.01,auc}` (and `hparams/best/...` for the
  submitted attack) plus `models/{target,shadow}_{train,test}_acc` (what the attacks feed on);
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

import json
import time
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig, OmegaConf

HPARAM_GROUPS = ("task", "model", "shadow", "attack", "master", "seed", "experiment_name", "stage")
HPARAM_METRICS = ("tpr@0.05", "tpr@0.01", "auc")


def flat_hparams(cfg: DictConfig) -> dict[str, Any]:
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


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def model_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Train/test accuracy of the target (simulated tasks) and the mean over the run's shadows."""
    out: dict[str, float] = {}
    task_dir = metrics.get("task_dir")
    info = _read_json(Path(task_dir) / "task.json") if task_dir else None
    target = (info or {}).get("target") or {}
    for key in ("train_acc", "test_acc"):
        if isinstance(target.get(key), (int, float)):
            out[f"models/target_{key}"] = float(target[key])
    store, count = metrics.get("store"), int(metrics.get("shadows") or 0)
    if store and count:
        summaries = [_read_json(Path(store) / f"shadow_{i:03d}" / "summary.json") for i in range(count)]
        for key in ("train_acc", "test_acc"):
            values = [float(s[key]) for s in summaries if s and isinstance(s.get(key), (int, float))]
            values = [v for v in values if v == v]  # drop NaN (a shadow without OUT points)
            if values:
                out[f"models/shadow_{key}"] = sum(values) / len(values)
    return out


def _clear_events(log_dir: Path) -> None:
    """A rerun of the same job (a relaunched sweep) replaces the run's events, not adds to them."""
    for old in log_dir.glob("events.out.tfevents.*"):
        old.unlink(missing_ok=True)


def log_run(log_dir: Path, cfg: DictConfig, metrics: dict[str, Any], curves: dict[str, Any]) -> None:
    from torch.utils.tensorboard.summary import hparams

    from mia_lightning.report.plots import roc_figure

    log_dir = Path(log_dir)
    _clear_events(log_dir)
    logger = TensorBoardLogger(save_dir=str(log_dir.parent), name=log_dir.name, version="", default_hp_metric=False)
    params = flat_hparams(cfg)
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
    text = OmegaConf.to_yaml(cfg, resolve=True)
    logger.experiment.add_text("config", "\n".join("    " + line for line in text.splitlines()), global_step=0)
    logger.finalize("success")
