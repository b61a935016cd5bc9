"""TensorBoard: each run is an HParams session that TensorBoard's own backend lists, with a
few meaningful columns (swept keys first, values as used) and a readable name."""

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
from mia_lightning.report.hparams import CORE, Command, run_hparams
from mia_lightning.report.tensorboard import log_run


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


def fake_metrics(shift: float, num_z: int = 600) -> dict:
    attacks = {name: {"auc": 0.5 + shift + i / 100, "tpr@0.05": 0.05 + shift + i / 100, "tpr@0.01": 0.01 + shift,
                      "tpr@0.001": 0.0} for i, name in enumerate(("loss", "lira_online", "master"))}
    return {"task": "tiny", "eval": "truth", "attacks": attacks, "submit": "master", "shadows": 2,
            "queries": ["identity", "mirror"], "notes": {"rmia": {"num_z": num_z}},
            "recipe": {"mode": "given", "describe": "sgd lr 0.05 wd 5e-04, 4 epochs, batch 32, augment none"}}


def fake_curves() -> dict:
    fpr = torch.linspace(0, 1, 11, dtype=torch.float64)
    return {"loss": (fpr, fpr.sqrt()), "master": (fpr, fpr ** 0.3)}


def sweep_job(count: int, job: int) -> Command:
    """What Hydra reports to the jobs of `mia -m shadow.count=2,4 attack.rmia.num_z=2500`."""
    return Command(overrides=(f"shadow.count={count}", "attack.rmia.num_z=2500"), swept=frozenset({"shadow.count"}),
                   job=str(job))


def test_runs_are_hparams_sessions_with_swept_keys_first_values_used_and_readable_names(tmp_path):
    for job, (count, shift) in enumerate(((2, 0.0), (4, 0.1))):
        cfg = make_cfg(*TINY, f"shadow.count={count}", "attack.rmia.num_z=2500")
        metrics = {**fake_metrics(shift), "shadows": count}
        log_run(open_run(cfg, tmp_path / "sweep" / f"{job}_shadow.count={count}"), metrics, fake_curves(),
                command=sweep_job(count, job))
    experiment, groups = hparams_view(tmp_path)

    assert set(groups) == {"count=2 #0 sweep", "count=4 #1 sweep"}  # what differs first, not a path cut short
    names = [info.name for info in experiment.hparam_infos]
    assert names[0] == "shadow.count" and experiment.hparam_infos[0].differs  # the swept key leads the columns
    assert set(names) == {"shadow.count", "attack.rmia.num_z", *CORE}  # a handful, not the whole config
    assert not any(info.differs for info in experiment.hparam_infos[1:])
    tags = {info.name.tag for info in experiment.metric_infos}
    assert tags == {"hparams/best/tpr@0.05", "hparams/best/tpr@0.01", "hparams/best/auc",
                    "hparams/loss/tpr@0.05", "hparams/lira_online/tpr@0.05", "hparams/master/tpr@0.05"}
    for job, (count, shift) in enumerate(((2, 0.0), (4, 0.1))):
        group = groups[f"count={count} #{job} sweep"]
        assert hparam_value(group, "shadow.count") == count
        assert hparam_value(group, "attack.rmia.num_z") == 600  # what RMIA used (capped), not the asked 2500
        assert hparam_value(group, "attack.queries") == "identity,mirror"
        assert hparam_value(group, "shadow.recipe").startswith("given: sgd lr 0.05")
        values = metric_values(group)
        assert abs(values["hparams/best/tpr@0.05"] - (0.07 + shift)) < 1e-6  # master is submitted
        assert abs(values["hparams/loss/tpr@0.05"] - (0.05 + shift)) < 1e-6


def test_roc_figures_and_config_text_and_rerun_replaces_events(tmp_path):
    cfg = make_cfg(*TINY)
    log_dir = tmp_path / "run" / "tb"
    log_run(open_run(cfg, log_dir.parent), fake_metrics(0.0), fake_curves(), command=Command())
    log_run(open_run(cfg, log_dir.parent), fake_metrics(0.2), fake_curves(),  # the same job, rerun (a relaunched sweep)
            positives=5, negatives=6, command=Command())
    events = list(log_dir.glob("events.out.tfevents.*"))
    assert len(events) == 1
    accumulator = EventAccumulator(str(log_dir), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    accumulator.Reload()
    tags = accumulator.Tags()
    assert {"roc/linear", "roc/log"} <= set(tags["images"])
    assert all(tag.startswith("hparams/") for tag in tags["scalars"])  # no epoch, no other one-point charts
    start = accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    info = plugin_metadata.parse_session_start_info_plugin_data(start)
    assert info.hparams["shadow.count"].number_value == 2
    assert info.group_name == "run default"  # no sweep: named by its run dir and experiment
    assert "_hparams_/experiment" not in accumulator.PluginTagToContent("hparams")  # TensorBoard builds it from all runs
    assert [round(e.value, 6) for e in accumulator.Scalars("hparams/loss/tpr@0.05")] == [0.25]  # the rerun's, only
    texts = accumulator.PluginTagToContent("text")
    assert {"config/text_summary", "metrics/text_summary"} <= set(texts)
    assert (log_dir / "hparams.yaml").is_file()


def test_run_hparams_are_scalars_and_command_line_keys_lead():
    command = Command(overrides=("master.depth=3", "trainer=gpu", "store.root=/tmp/x", "task.pub=pub.pt"),
                      choices=(("trainer", "gpu"),))
    params = run_hparams(make_cfg(*TINY, "master.depth=3"), fake_metrics(0.0), command)
    assert list(params)[:2] == ["master.depth", "trainer"]  # what was changed, then CORE; no paths
    assert params["master.depth"] == 3 and params["trainer"] == "gpu" and params["shadow.count"] == 2
    assert set(params) == {"master.depth", "trainer", *CORE}
    assert all(isinstance(v, (bool, int, float, str)) for v in params.values())
