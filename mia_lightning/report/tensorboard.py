"""TensorBoard for a run: a small HParams row with the headline metrics, ROC figures, the config.

Each run dir gets `tb/` with
- an HParams session (report/hparams.py): the run's swept and command-line keys and a few
  key settings, with the values it used, named by what distinguishes it; as metrics the
  submitted attack's `hparams/best/{tpr@0.05,tpr@0.01,auc}` and every attack's
  `hparams/<attack>/tpr@0.05`;
- figures `roc/linear` and `roc/log`; as text the resolved `config` and a `metrics` table
  (every attack, every metric, the model report and its warnings).

Only the per-run `session_start_info` is written, no per-run `experiment` summary:
TensorBoard then builds the experiment from all sessions it finds, so one
`tensorboard --logdir outputs/` lists every run of every sweep with the union of their
hparams, puts the swept ones (those that differ) first, and offers every metric. (With a
per-run experiment summary, TensorBoard would pick one run's arbitrarily for all.)
HParams reads its metric columns from scalar events, so those few single values are also
the only one-point charts of the Scalars tab (section `hparams`); nothing else single-valued
is logged as a scalar.

Training curves (`train/loss`, `train/acc`, one line per model) live where each model
is trained: the simulated target in `<store>/tasks/<task>/target/tb`, each shadow in
`<store>/<task-fingerprint>/<recipe-hash>/shadow_NNN/tb`, the master MLP in
`<run dir>/master/<shadow|foldK|all>` (README, TensorBoard: a store outside the logdir).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import OmegaConf

from mia_lightning.report.hparams import Command, metrics_markdown, run_hparams, run_metrics, run_name
from mia_lightning.run import Run


def _clear_events(log_dir: Path) -> None:
    """A rerun of the same job (a relaunched sweep) replaces the run's events, not adds to them."""
    for old in log_dir.glob("events.out.tfevents.*"):
        old.unlink(missing_ok=True)


def session_summaries(params: dict[str, Any], values: dict[str, float], name: str) -> tuple[Any, Any]:
    """HParams' session start (the hparams, the run named `name`) and end summaries."""
    from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
    from torch.utils.tensorboard.summary import hparams

    _, start, end = hparams(params, values)
    data = HParamsPluginData.FromString(start.value[0].metadata.plugin_data.content)
    data.session_start_info.group_name = name  # the table's "Trial ID" (else the run's path, cut short)
    start.value[0].metadata.plugin_data.content = data.SerializeToString()
    return start, end


def log_run(run: Run, metrics: dict[str, Any], curves: dict[str, Any], *, positives: int | None = None,
            negatives: int | None = None, command: Command | None = None) -> None:
    from mia_lightning.report.plots import roc_figure

    command = Command.of_hydra() if command is None else command
    log_dir = run.run_dir / "tb"
    _clear_events(log_dir)
    logger = TensorBoardLogger(save_dir=str(log_dir.parent), name=log_dir.name, version="", default_hp_metric=False)
    params = run_hparams(run.config, metrics, command)
    values = run_metrics(metrics)
    logger.log_metrics(values, step=0)  # the scalars the HParams tab reads, by tag
    session_start, session_end = session_summaries(params, values, run_name(params, command, run.run_dir))
    writer = logger.experiment._get_file_writer()
    now = time.time()
    writer.add_summary(session_start, 0, walltime=now)
    writer.add_summary(session_end, 0, walltime=now)
    logger.hparams.update(params)  # hparams.yaml next to the events
    for log_scale in (False, True):
        figure = roc_figure(curves, title=metrics["task"], log_scale=log_scale, positives=positives,
                            negatives=negatives, submitted=metrics["submit"])
        logger.experiment.add_figure("roc/log" if log_scale else "roc/linear", figure, global_step=0, close=True)
    text = OmegaConf.to_yaml(run.composed if run.composed is not None else OmegaConf.structured(run.config),
                             resolve=True)
    logger.experiment.add_text("config", "\n".join("    " + line for line in text.splitlines()), global_step=0)
    logger.experiment.add_text("metrics", metrics_markdown(metrics), global_step=0)
    logger.finalize("success")
