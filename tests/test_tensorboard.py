"""TensorBoard: each run is an HParams session that TensorBoard's own backend lists."""

from __future__ import annotations

from pathlib import Path

import torch
from tensorboard import context as tb_context
from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups
from tensorboard.plugins.hparams import metadata as plugin_metadata

from conftest import TINY, make_cfg
from mia_lightning.pipeline import open_run
from mia_lightning.report.tensorboard import flat_hparams, log_run


def hparams_view(logdir: Path) -> tuple[api_pb2.Experiment, dict[str, api_pb2.SessionGroup]]:
    """What TensorBoard's HParams tab shows for `tensorboard --logdir logdir`: the experiment
    (hparam and metric columns) and the session groups (rows), from its own backend."""
    mux = plugin_event_multiplexer.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    provider = data_provider.MultiplexerDataProvider(mux, str(logdir))
    context = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), data_provider=provider,
                                                            multiplexer=mux))
    request = tb_context.RequestContext()
    experiment = get_experiment.Handler(request, context, "", api_pb2.GetExperimentRequest()).run()
    groups = list_session_groups.Handler(request, context, "", api_pb2.ListSessionGroupsRequest(
        start_index=0, slice_size=1000,
        allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE,
                          api_pb2.STATUS_RUNNING])).run()
    return experiment, {group.name: group for group in groups.session_groups}


def metric_values(group: api_pb2.SessionGroup) -> dict[str, float]:
    return {metric.name.tag: metric.value for metric in group.metric_values}


def hparam_value(group: api_pb2.SessionGroup, name: str):
    value = group.hparams[name]
    return value.number_value if value.HasField("number_value") else value.string_value


def fake_metrics(shift: float) -> dict:
    attacks = {name: {"auc": 0.5 + shift + i / 100, "tpr@0.05": 0.05 + shift + i / 100, "tpr@0.01": 0.01 + shift,
                      "tpr@0.001": 0.0} for i, name in enumerate(("loss", "lira_online", "master"))}
    return {"task": "tiny", "eval": "truth", "attacks": attacks, "submit": "master", "shadows": 2}


def fake_curves() -> dict:
    fpr = torch.linspace(0, 1, 11, dtype=torch.float64)
    return {"loss": (fpr, fpr.sqrt()), "master": (fpr, fpr ** 0.3)}


def test_runs_are_hparams_sessions_with_swept_keys_first_and_metrics(tmp_path):
    for count, shift in ((2, 0.0), (4, 0.1)):
        cfg = make_cfg(*TINY, f"shadow.count={count}")
        log_run(open_run(cfg, tmp_path / f"run{count}"), fake_metrics(shift), fake_curves())
    experiment, groups = hparams_view(tmp_path)

    assert set(groups) == {"run2/tb", "run4/tb"}
    first = experiment.hparam_infos[0]
    assert first.name == "shadow.count" and first.differs  # the swept key leads the columns
    assert {info.name for info in experiment.hparam_infos} >= {"master.depth", "attack.names", "task.pool_size"}
    assert not any(info.differs for info in experiment.hparam_infos[1:])
    tags = {info.name.tag for info in experiment.metric_infos}
    for attack in ("loss", "lira_online", "master", "best"):
        assert {f"hparams/{attack}/tpr@0.05", f"hparams/{attack}/tpr@0.01", f"hparams/{attack}/auc"} <= tags
    for count, shift in ((2, 0.0), (4, 0.1)):
        group = groups[f"run{count}/tb"]
        assert hparam_value(group, "shadow.count") == count
        values = metric_values(group)
        assert abs(values["hparams/best/tpr@0.05"] - (0.07 + shift)) < 1e-6  # master is submitted
        assert abs(values["hparams/loss/auc"] - (0.5 + shift)) < 1e-6


def test_roc_figures_and_config_text_and_rerun_replaces_events(tmp_path):
    cfg = make_cfg(*TINY)
    log_dir = tmp_path / "run" / "tb"
    log_run(open_run(cfg, log_dir.parent), fake_metrics(0.0), fake_curves())
    log_run(open_run(cfg, log_dir.parent), fake_metrics(0.2), fake_curves())  # the same job, rerun (a relaunched sweep)
    events = list(log_dir.glob("events.out.tfevents.*"))
    assert len(events) == 1
    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert {"roc/linear", "roc/log"} <= set(tags["images"])
    start = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_metadata.parse_session_start_info_plugin_data(start)
    assert info.hparams["shadow.count"].number_value == 2
    assert "_hparams_/experiment" not in accumulator.PluginTagToContent("hparams")  # TensorBoard builds it from all runs
    assert [round(e.value, 6) for e in accumulator.Scalars("hparams/loss/auc")] == [0.7]  # the rerun's, only
    assert (log_dir / "hparams.yaml").is_file()


def test_flat_hparams_are_scalars():
    params = flat_hparams(make_cfg(*TINY))
    assert params["shadow.count"] == 2 and params["attack.names"].startswith("threshold,")
    assert params["master.widths"] == "none"
    assert all(isinstance(v, (bool, int, float, str)) for v in params.values())
