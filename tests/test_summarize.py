"""mia-summarize on synthetic multirun dirs (no training), and the job dir names."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from mia_lightning.config.resolvers import format_value, safe_name
from mia_lightning.report.summarize import main, summarize

ATTACKS = ("loss", "lira_online", "master")


def write_job(root: Path, num: int, overrides: list[str], config: dict, score: float | None,
              name: str | None = None) -> Path:
    job = root / (name or str(num))
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (job / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"job": {"num": num}}}))
    if score is not None:
        attacks = {a: {"auc": 0.5 + score + i / 100, "tpr@0.05": score + i / 100, "tpr@0.01": 0.0, "tpr@0.001": 0.0}
                   for i, a in enumerate(ATTACKS)}
        (job / "metrics.json").write_text(json.dumps({"task": "t", "eval": "truth", "attacks": attacks,
                                                      "submit": "master", "shadows": 4, "optimized_metric": score}))
    return job


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_one_swept_param(tmp_path):
    for num, count in enumerate((1, 2, 4)):
        write_job(tmp_path, num, [f"shadow.count={count}", "task=simulate_digits", "master.epochs=3"],
                  {"shadow": {"count": count}}, score=count / 10, name=f"{num}_shadow.count={count}")
    written = summarize(tmp_path)
    assert written["swept"] == ["shadow.count"]  # fixed overrides are not columns
    rows = read_csv(tmp_path / "summary.csv")
    assert len(rows) == 3 * len(ATTACKS)
    assert list(rows[0])[:3] == ["job", "shadow.count", "attack"]
    assert [r["shadow.count"] for r in rows if r["attack"] == "master"] == ["1", "2", "4"]
    assert [r["submitted"] for r in rows if r["job"] == "0_shadow.count=1"] == ["False", "False", "True"]
    assert (tmp_path / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".tmp-*"))  # atomic writes leave nothing behind


def test_two_swept_params_jobs_without_metrics_and_options(tmp_path, capsys):
    num = 0
    for depth in (3, 5):
        for epochs in (50, 100):
            write_job(tmp_path, num, [f"master.depth={depth}", f"master.epochs={epochs}"],
                      {"master": {"depth": depth, "epochs": epochs}}, score=depth / 100 + epochs / 1000)
            num += 1
    write_job(tmp_path, num, ["master.depth=7", "master.epochs=50"], {}, score=None)  # unfinished job
    out = tmp_path / "out"
    written = summarize(tmp_path, out=out, x_key="master.epochs", attacks=["master"])
    assert written["swept"] == ["master.depth", "master.epochs"] and written["finished"] == 4
    rows = read_csv(out / "summary.csv")
    assert len(rows) == 4 and {r["attack"] for r in rows} == {"master"}
    assert (out / "summary.png").is_file()
    assert "no metrics.json" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path), "--x", "shadow.count"])
    assert exit_info.value.code == 2
    assert "not a swept parameter" in capsys.readouterr().err


def test_list_values_and_defaults_missing_from_some_jobs(tmp_path):
    write_job(tmp_path, 0, ["attack.queries=[identity]"], {"attack": {"queries": ["identity"]}}, 0.1)
    write_job(tmp_path, 1, [], {"attack": {"queries": ["identity", "mirror"]}}, 0.2)  # the default
    summarize(tmp_path, plot=True)
    rows = read_csv(tmp_path / "summary.csv")
    assert sorted({r["attack.queries"] for r in rows}) == ["identity", "identity+mirror"]


def test_a_dir_without_runs_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    for target in (tmp_path / "empty", tmp_path / "missing"):
        with pytest.raises(SystemExit) as exit_info:
            main([str(target)])
        assert exit_info.value.code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("mia-summarize: error: ") and "\n" not in err
    write_job(tmp_path / "shadows_only", 0, ["shadow.only=0"], {}, score=None)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "shadows_only")])
    assert "has a metrics.json" in capsys.readouterr().err


def test_job_names_are_filesystem_and_shell_safe():
    assert format_value(["identity", "mirror"]) == "identity+mirror"
    assert format_value(0.000123456) == "0.0001235" and format_value(True) == "true"
    assert safe_name("task.pub=/data/x y/pub.pt") == "task.pub=_data_x_y_pub.pt"
    assert safe_name("a=[1,2]") == "a=1,2"
    long = safe_name("k=" + "v" * 300)
    assert len(long) == 120 and long != safe_name("k=" + "v" * 301)
    assert safe_name("../..") == "_.."


def _dirname_in_job(tmp_path: Path, experiment: list[str], job_overrides: list[str], multirun: list[str] | None,
                    num: int) -> str:
    """job_dirname as Hydra resolves hydra.sweep.subdir inside a job of a sweep."""
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    from mia_lightning.app import CONFIG_DIR
    from mia_lightning.config.resolvers import job_dirname

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", [*experiment, *job_overrides], return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.sweep.dir = str(tmp_path)
        cfg.hydra.overrides.task = [*experiment, *job_overrides]
    tmp_path.mkdir(parents=True, exist_ok=True)
    if multirun is not None:
        OmegaConf.save({"hydra": {"overrides": {"task": multirun}}}, tmp_path / "multirun.yaml")
    previous = HydraConfig.instance().cfg
    try:
        HydraConfig.instance().set_config(cfg)
        return job_dirname(num)
    finally:
        HydraConfig.instance().cfg = previous


def test_job_dirs_name_only_the_swept_keys(tmp_path):
    # command-line sweep: `mia -m task=simulate_digits shadow.count=1,2 attack.queries=[identity],[identity,mirror]`
    multirun = ["task=simulate_digits", "shadow.count=1,2", "attack.queries=[identity],[identity,mirror]"]
    job = ["task=simulate_digits", "shadow.count=2", "attack.queries=[identity,mirror]"]
    assert _dirname_in_job(tmp_path / "a", [], job, multirun, 3) == "3_attack.queries=identity+mirror,shadow.count=2"
    # sweep from an experiment's hydra.sweeper.params (no sweep syntax on the command line)
    job = ["master.depth=5", "master.epochs=100"]
    assert _dirname_in_job(tmp_path / "b", ["experiment=study_master"], job, ["experiment=study_master"], 4) == \
        "4_master.depth=5,master.epochs=100"
    # nothing swept (e.g. `mia -m stage=attacks`): just the number
    assert _dirname_in_job(tmp_path / "c", [], ["stage=attacks"], ["stage=attacks"], 0) == "0"
