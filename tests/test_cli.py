"""The `mia` command itself: help, config printing, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_cfg, run_mia
from omegaconf import OmegaConf

from mia_lightning.app import CONFIG_DIR
from mia_lightning.config.recipe import TrainRecipe, recipe_values
from mia_lightning.config.schema import typed_config


def test_help_says_what_mia_is_with_examples_and_lists_the_config_groups():
    out = run_mia("--help").stdout
    assert out.startswith("mia: membership inference attacks on image classifiers")
    assert "powered by Hydra" not in out.splitlines()[0]
    assert "Examples:" in out and "mia experiment=digits_smoke" in out and "mia --cfg job" in out
    for group in ("task:", "shadow:", "attack:", "master:", "trainer:", "experiment:"):
        assert group in out
    assert "tml25_quick" in out  # the experiments are listed


def test_cfg_job_prints_the_composed_config_resolved(tmp_path):
    out = run_mia("--cfg", "job", "experiment=digits_smoke", "shadow.count=4", env={"MIA_STORE": str(tmp_path)}).stdout
    assert "count: 4" in out and "source: digits" in out
    assert f"root: {tmp_path}" in out and "${oc.env" not in out  # the store root as the path it is


def test_unknown_key_fails_with_one_line():
    proc = run_mia("shadow.cont=3", check=False)
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("mia: error:") and "shadow.cont" in lines[0]


def test_wrong_type_and_range_fail_with_one_line_naming_the_key():
    for override, key in (("shadow.count=abc", "shadow.count"), ("shadow.count=0", "shadow.count"),
                          ("shadow.in_fraction=1.5", "shadow.in_fraction"), ("attack.names=[lira]", "attack.names"),
                          ("shadow.count=3", "shadow.count")):
        proc = run_mia(override, "stage=simulate", check=False)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2, (override, proc.stderr)
        assert len(lines) == 1 and key in lines[0], (override, lines)


def test_missing_tml25_files_fail_with_one_line(tmp_path):
    proc = run_mia("experiment=tml25", f"store.root={tmp_path}", check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and lines == ["mia: error: task.pub is not set: pass task.pub=path/to/file"]


def test_run_dirs_follow_mia_outputs(tmp_path):
    """MIA_OUTPUTS moves a run's dir (the tests point it away from the repo's outputs/)."""
    proc = run_mia("shadow.count=0", "stage=simulate", env={"MIA_OUTPUTS": str(tmp_path)}, check=False)
    assert proc.returncode == 2
    (run_dir,) = [p.parent for p in tmp_path.glob("*/*/.hydra")]
    assert "shadow.count=0" in (run_dir / ".hydra" / "overrides.yaml").read_text()


@pytest.mark.parametrize("recipe", sorted(p.stem for p in (Path(CONFIG_DIR) / "task" / "train").glob("*.yaml")))
def test_every_shipped_target_recipe_composes_validates_and_is_in_the_study(recipe):
    """A shipped recipe with a typo (a scheduler "None", a misspelt knob) would fail only hours
    into a study: composed as `+task/train=<name>`, each must validate, differ from the
    default recipe (but sgd30, the default itself) and be one of the study's targets."""
    config = typed_config(make_cfg(f"+task/train={recipe}"))
    assert (recipe_values(config.task.train) == recipe_values(TrainRecipe())) == (recipe == "sgd30")
    study = OmegaConf.load(Path(CONFIG_DIR) / "experiment" / "study_recipe_mismatch.yaml")
    assert recipe in study.hydra.sweeper.params["+task/train"].split(",")
