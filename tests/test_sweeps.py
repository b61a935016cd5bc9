"""Sweeps as users run them: a real multirun over shadow.count on the tiny digits task
(each shadow trained once), resuming it, its summary, its TensorBoard HParams view, an
Optuna search over the stored logits, and parallel jobs through submitit's local executor."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.types import RunMode

from conftest import fit_starts, fresh_store, MIA, REPO, run_mia, TINY
from mia_lightning.app import CONFIG_DIR
from mia_lightning.report.summarize import summarize
from test_tensorboard import hparam_value, hparams_view, metric_values

BASE = [arg for arg in TINY if not arg.startswith("shadow.count=")] + ["shadow.epochs=1"]
COUNTS = (1, 2, 4)
JOBS = [f"{num}_shadow.count={count}" for num, count in enumerate(COUNTS)]


def shadow_dirs(store: Path) -> list[Path]:
    return sorted(store.glob("*/*/shadow_*"))


def sweep_args(store: Path, sweep_dir: Path) -> list[str]:
    return ["-m", *BASE, "shadow.count=" + ",".join(map(str, COUNTS)), f"store.root={store}",
            f"hydra.sweep.dir={sweep_dir}"]


@pytest.fixture(scope="module")
def sweep(tiny_task_dir, tmp_path_factory) -> tuple[Path, Path]:
    """`mia -m shadow.count=1,2,4` on a store holding only the tiny task."""
    store = tmp_path_factory.mktemp("sweep_store")
    fresh_store(tiny_task_dir, store)
    sweep_dir = store.parent / f"{store.name}_multirun"
    run_mia(*sweep_args(store, sweep_dir))
    return store, sweep_dir


def test_shadow_count_sweep_trains_each_shadow_once_summary_and_hparams(sweep):
    store, sweep_dir = sweep
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == JOBS  # dirs named by the swept value
    shadows = shadow_dirs(store)
    assert [p.name for p in shadows] == [f"shadow_{i:03d}" for i in range(max(COUNTS))]
    assert [len(fit_starts(p)) for p in shadows] == [1] * max(COUNTS)  # 4 trainings for 1 + 2 + 4 shadows
    metrics = {job: json.loads((sweep_dir / job / "metrics.json").read_text()) for job in JOBS}
    assert [metrics[job]["shadows"] for job in JOBS] == list(COUNTS)

    written = summarize(sweep_dir)  # what `mia-summarize <dir>` does
    assert written["swept"] == ["shadow.count"]
    with open(sweep_dir / "summary.csv") as handle:
        rows = list(csv.DictReader(handle))
    attacks = list(metrics[JOBS[0]]["attacks"])
    assert len(rows) == len(JOBS) * len(attacks)  # one row per job and attack
    assert sorted({(r["job"], r["shadow.count"]) for r in rows}) == [(j, str(c)) for j, c in zip(JOBS, COUNTS)]
    row = next(r for r in rows if r["job"] == JOBS[2] and r["attack"] == "lira_online")
    assert float(row["tpr@0.05"]) == metrics[JOBS[2]]["attacks"]["lira_online"]["tpr@0.05"]
    assert (sweep_dir / "summary.png").is_file()

    experiment, groups = hparams_view(sweep_dir)  # `tensorboard --logdir <sweep dir>`, HParams tab
    by_run = {group.sessions[0].name: group for group in groups.values()}  # a row's run is its job's tb/
    assert set(by_run) == {f"{job}/tb" for job in JOBS}
    assert experiment.hparam_infos[0].name == "shadow.count" and experiment.hparam_infos[0].differs
    for job, count in zip(JOBS, COUNTS):
        group = by_run[f"{job}/tb"]
        assert group.name.startswith(f"count={count} #{JOBS.index(job)} ")  # the row says what differs
        assert hparam_value(group, "shadow.count") == count
        submitted = metrics[job]["attacks"][metrics[job]["submit"]]
        values = metric_values(group)
        for key in ("tpr@0.05", "tpr@0.01", "auc"):
            assert values[f"hparams/best/{key}"] == pytest.approx(submitted[key], abs=1e-6)
        assert values["hparams/rmia/tpr@0.05"] == pytest.approx(metrics[job]["attacks"]["rmia"]["tpr@0.05"], abs=1e-6)
        assert list((sweep_dir / job / "master" / "shadow").glob("events.out.tfevents.*"))  # master curves


def test_relaunching_an_interrupted_sweep_trains_only_what_is_missing(sweep):
    store, sweep_dir = sweep
    before = json.loads((sweep_dir / JOBS[0] / "metrics.json").read_text())
    shadows = shadow_dirs(store)
    shutil.rmtree(shadows[3])  # as if the sweep died before its last job trained shadow 3
    shutil.rmtree(sweep_dir / JOBS[2])
    run_mia(*sweep_args(store, sweep_dir))
    assert [len(fit_starts(p)) for p in shadow_dirs(store)] == [1] * max(COUNTS)
    assert all((sweep_dir / job / "metrics.json").is_file() for job in JOBS)
    after = json.loads((sweep_dir / JOBS[0] / "metrics.json").read_text())
    assert after["attacks"] == before["attacks"]  # redone attacks are deterministic
    assert len(list((sweep_dir / JOBS[0] / "tb").glob("events.out.tfevents.*"))) == 1


def test_optuna_search_tunes_the_master_on_stored_logits_without_training(sweep, tmp_path):
    store, _ = sweep
    starts = [len(fit_starts(p)) for p in shadow_dirs(store)]
    search_dir = tmp_path / "search"
    fixed = [arg for arg in BASE if not arg.startswith("master.")]  # a fixed master.* would leave the search
    run_mia("hparams_search=master_optuna", *fixed, "stage=attacks", "shadow.count=2", f"store.root={store}",
            f"hydra.sweep.dir={search_dir}", "hydra.sweeper.n_trials=2", "master.epochs=choice(1,2)",
            "master.depth=choice(1,2)", "master.width=choice(8,16)")
    assert [len(fit_starts(p)) for p in shadow_dirs(store)] == starts  # no shadow trained
    jobs = sorted(p for p in search_dir.iterdir() if (p / "metrics.json").is_file())
    assert len(jobs) == 2 and all("depth=" in p.name and "width=" in p.name for p in jobs)
    for job in jobs:
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["master"]
        assert config["epochs"] in (1, 2) and config["depth"] in (1, 2) and config["width"] in (8, 16)
    objectives = [json.loads((p / "metrics.json").read_text())["optimized_metric"] for p in jobs]
    pub_values = [json.loads((p / "metrics.json").read_text())["attacks_pub"]["master"]["tpr@0.05"] for p in jobs]
    assert objectives == pub_values  # tuned on pub; the reported metrics stay on priv's hidden truth
    result = yaml.safe_load((search_dir / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(max(objectives))
    assert summarize(search_dir, plot=False)["finished"] == 2


def test_submitit_local_jobs_run_in_their_own_processes_and_share_shadows(tiny_task_dir, tmp_path):
    """Two parallel jobs (count 1 and 2) both need shadow 0: it is trained once."""
    fresh_store(tiny_task_dir, tmp_path)
    launcher = subprocess.Popen(
        [*MIA, "-m", *BASE, "stage=shadows", "shadow.count=1,2", "hydra/launcher=submitit_local",
         "hydra.launcher.timeout_min=10", f"store.root={tmp_path}", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output, _ = launcher.communicate(timeout=600)
    assert launcher.returncode == 0, output[-3000:]
    shadows = shadow_dirs(tmp_path)
    assert [p.name for p in shadows] == ["shadow_000", "shadow_001"]
    assert all((p / "done").is_file() for p in shadows)
    assert [len(fit_starts(p)) for p in shadows] == [1, 1]  # never twice, though both jobs needed shadow 0
    pids = {event["pid"] for p in shadows for event in fit_starts(p)}
    assert not {os.getpid(), launcher.pid} & pids  # trained in the job processes
    assert len(list((tmp_path / "sweep" / ".submitit").glob("*/*_0_log.out"))) == 2  # one process per job
    assert sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.name[0].isdigit()) == [
        "0_shadow.count=1", "1_shadow.count=2"]


def test_study_and_search_configs_compose_with_their_sweeps():
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        study = compose("config", ["experiment=study_shadow_count"], return_hydra_config=True)
        master = compose("config", ["experiment=study_master"], return_hydra_config=True)
        attacks = compose("config", ["experiment=study_attacks"], return_hydra_config=True)
        optuna = compose("config", ["hparams_search=master_optuna"], return_hydra_config=True)
        slurm = compose("config", ["hydra/launcher=slurm"], return_hydra_config=True)
    assert study.hydra.sweeper.params["shadow.count"] == "1,2,4,8,16" and study.hydra.mode == RunMode.MULTIRUN
    assert set(master.hydra.sweeper.params) == {"master.depth", "master.epochs"}
    assert "shift_-1_0" in attacks.hydra.sweeper.params["attack.queries"]
    assert optuna.hydra.sweeper._target_.endswith("OptunaSweeper") and optuna.hydra.sweeper.direction == "maximize"
    assert optuna.optimized_metric == "attacks_pub.master.tpr@0.05" and optuna.hydra.sweeper.storage is None
    launcher = slurm.hydra.launcher
    assert launcher.gpus_per_node == 1 and launcher.tasks_per_node == 1 and launcher.max_num_timeout > 0
    assert launcher.timeout_min > 0 and launcher.signal_delay_s > 0


@pytest.mark.parametrize("script", sorted((REPO / "scripts").glob("*.sh")), ids=lambda p: p.name)
def test_cluster_scripts_parse(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
