"""Bad configs: every mistake is one line naming the key, before any work starts.

The bulk of the table is composed in-process (real Hydra composition onto the structured
config, then `validate_config`), with the error folded into the line `mia` would print;
a representative sample goes through the real CLI. Resource limits: a logits tensor or a
training set that cannot fit in `trainer.max_memory_gb` is refused before any training.
"""

from __future__ import annotations


import pytest
from hydra import compose, initialize_config_dir

from conftest import fresh_store, make_cfg, run_mia, TINY
from mia_lightning.app import CONFIG_DIR, _is_config_error, one_line
from mia_lightning.pipeline import validate_config
from mia_lightning.errors import MiaError

# (override, the key the one-line error must name)
BAD = [
    # wrong types and unknown keys: refused while composing onto the structured config
    ("shadow.count=abc", "shadow.count"),
    ("shadow.epochs=1.5", "shadow.epochs"),
    ("shadow.cont=3", "shadow.cont"),
    ("shadow.optimizer.lr=fast", "shadow.optimizer.lr"),
    ("shadow.augment.flip=sometimes", "shadow.augment.flip"),
    ("attack.rmia.online=maybe", "attack.rmia.online"),
    ("master.widths=[a,b]", "master.widths"),
    ("master.depth=[1]", "master.depth"),
    ("task.mean=0.5", "task.mean"),
    ("task.pool_size=1e3", "task.pool_size"),
    ("trainer.max_memory_gb=lots", "trainer.max_memory_gb"),
    ("seed=x", "seed"),
    ("+shadow.epoch=3", "shadow.epoch"),
    ("attack.threshold={tau:0.5,tou:1}", "tou"),
    # ranges and choices: refused by validate_config
    ("shadow.count=0", "shadow.count"),
    ("shadow.count=-2", "shadow.count"),
    ("shadow.count=3", "shadow.count"),
    ("shadow.split=thirds", "shadow.split"),
    ("shadow.in_fraction=0", "shadow.in_fraction"),
    ("shadow.in_fraction=1", "shadow.in_fraction"),
    ("shadow.in_fraction=1.5", "shadow.in_fraction"),
    ("shadow.in_fraction=nan", "shadow.in_fraction"),
    ("shadow.epochs=0", "shadow.epochs"),
    ("shadow.batch_size=1", "shadow.batch_size"),
    ("shadow.optimizer.name=rmsprop", "shadow.optimizer.name"),
    ("shadow.optimizer.scheduler=step", "shadow.optimizer.scheduler"),
    ("shadow.optimizer.lr=0", "shadow.optimizer.lr"),
    ("shadow.optimizer.lr=-0.1", "shadow.optimizer.lr"),
    ("shadow.optimizer.lr=nan", "shadow.optimizer.lr"),
    ("shadow.optimizer.momentum=-1", "momentum"),
    ("shadow.optimizer.weight_decay=nan", "weight_decay"),
    ("shadow.augment.crop_padding=-1", "shadow.augment.crop_padding"),
    ("shadow.stack=0", "shadow.stack"),
    ("shadow.only=[-1]", "shadow.only"),
    ("shadow.only=[a]", "shadow.only"),
    ("shadow.wait_timeout_s=-1", "shadow.wait_timeout_s"),
    ("stage=train", "stage"),
    ("task.kind=other", "task.kind"),
    ("task.pub_fraction=0", "task.pub_fraction"),
    ("task.member_fraction=1.0", "task.member_fraction"),
    ("task.pool_size=2", "task.pool_size"),
    ("task.image_size=4", "task.image_size"),
    ("task.std=[0.5,0,0.5]", "task.std"),
    ("task.mean=[0.5]", "task.mean"),
    ("task.train.epochs=0", "task.train.epochs"),
    ("task.train.optimizer.name=lbfgs", "task.train.optimizer.name"),
    ("model.stem=big", "model.stem"),
    ("model.arch=vgg11", "model.arch"),
    ("attack.names=[lira]", "attack.names"),
    ("attack.names=[]", "attack.names"),
    ("attack.queries=[shift_x]", "attack.queries"),
    ("attack.queries=[identity,identity]", "attack.queries"),
    ("attack.queries=[]", "attack.queries"),
    ("attack.lira.variance=whatever", "attack.lira.variance"),
    ("attack.lira.min_std=0", "attack.lira.min_std"),
    ("attack.lira.global_below=-1", "attack.lira.global_below"),
    ("attack.lira.transform=log", "attack.lira.transform"),
    ("attack.lira.transform_points=10", "attack.lira.transform_points"),
    ("attack.threshold.tau=1.5", "attack.threshold.tau"),
    ("attack.rmia.gamma=0", "attack.rmia.gamma"),
    ("attack.rmia.a=2", "attack.rmia.a"),
    ("attack.rmia.num_z=0", "attack.rmia.num_z"),
    ("attack.rmia.temperature=0", "attack.rmia.temperature"),
    ("master.depth=0", "master.depth"),
    ("master.epochs=0", "master.epochs"),
    ("master.width=0", "master.width"),
    ("master.widths=[0]", "master.widths"),
    ("master.folds=1", "master.folds"),
    ("master.batch_size=0", "master.batch_size"),
    ("master.max_samples=0", "master.max_samples"),
    ("master.lr=0", "master.lr"),
    ("master.weight_decay=-1", "master.weight_decay"),
    ("master.features=[foo]", "master.features"),
    ("master.features=[]", "master.features"),
    ("master.labels=both", "master.labels"),
    ("report.eval=both", "report.eval"),
    ("report.submit=lira", "report.submit"),
    ("trainer.inference_batch_size=0", "trainer.inference_batch_size"),
    ("trainer.log_every_n_steps=0", "trainer.log_every_n_steps"),
    ("trainer.max_memory_gb=-1", "trainer.max_memory_gb"),
    # unknown config group options
    ("task=imagenet", "task"),
    ("experiment=nope", "experiment"),
]


def user_facing_error(override: str) -> str | None:
    """The line `mia override` prints (without `mia: error: `), or None if the config is accepted."""
    try:
        cfg = compose(config_name="config", overrides=[override])
        validate_config(cfg)
    except MiaError as error:
        return one_line(error)
    except Exception as error:  # composition errors: `mia` prints these as one line too
        assert _is_config_error(error), f"{override}: {type(error).__name__} is not treated as a config error"
        return one_line(error)
    return None


@pytest.fixture(scope="module")
def error_lines() -> dict[str, str | None]:
    """The error line of every override in BAD and of every shipped config option (None: accepted),
    composed inside one Hydra context (opening one per case costs more than composing)."""
    from pathlib import Path

    conf = Path(CONFIG_DIR)
    shipped = [f"experiment={p.stem}" for p in sorted((conf / "experiment").glob("*.yaml"))]
    for group in ("task", "model", "shadow", "master", "trainer", "logger", "attack", "report", "hparams_search"):
        shipped += [f"{group}={p.stem}" for p in sorted((conf / group).glob("*.yaml"))]
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        return {override: user_facing_error(override) for override in [o for o, _ in BAD] + shipped}


@pytest.mark.parametrize("override, key", BAD, ids=[o for o, _ in BAD])
def test_bad_override_is_one_line_naming_the_key(override, key, error_lines):
    line = error_lines[override]
    assert line is not None, f"{override} was accepted"
    assert "\n" not in line and key in line, line


def test_every_shipped_experiment_and_group_option_validates(error_lines):
    """The table above is only meaningful if the shipped configs themselves pass."""
    shipped = {o: line for o, line in error_lines.items() if o not in dict(BAD)}
    assert len(shipped) >= 15
    assert {o: line for o, line in shipped.items() if line is not None} == {}


# one error from composition (no torch import needed), one from validate_config
CLI_SAMPLE = [("shadow.count=abc", "shadow.count"), ("attack.queries=[shift_x]", "attack.queries")]


@pytest.mark.parametrize("override, key", CLI_SAMPLE, ids=[o for o, _ in CLI_SAMPLE])
def test_bad_override_through_the_cli(override, key, tmp_path):
    proc = run_mia(override, f"store.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and lines[0].startswith("mia: error:") and key in lines[0], lines
    assert not (tmp_path / "tasks").exists()  # refused before any work


# --- resource limits ---------------------------------------------------------------------


def test_logits_tensor_too_big_is_refused_before_any_training(tiny_task_dir, tmp_path):
    """Through the CLI: a tiny memory limit stops a full run before its first shadow."""
    fresh_store(tiny_task_dir, tmp_path)
    proc = run_mia(*TINY, f"store.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
                   "trainer.max_memory_gb=0.00005", check=False)  # 53 KB: the logits take 77 KB
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(lines) == 1 and "the logits tensor needs" in lines[0] and "shadow.count or attack.queries" in lines[0], lines
    assert not list(tmp_path.glob("*/*/shadow_*/history.jsonl"))


def test_training_set_too_big_is_refused_before_training(tiny_task_dir, tmp_path):
    from mia_lightning.pipeline import run_pipeline

    fresh_store(tiny_task_dir, tmp_path)
    # the logits of the tiny task take ~50 KB, shadow training ~200 MB: a 0.01 GiB limit passes
    # the first check and stops the second
    cfg = make_cfg(*TINY, f"store.root={tmp_path}", "stage=shadows", "trainer.max_memory_gb=0.01")
    with pytest.raises(MiaError, match=r"shadow training .* needs .* GiB .* reduce shadow.batch_size or shadow.stack"):
        run_pipeline(cfg, tmp_path / "run")
    assert not list(tmp_path.glob("*/*/shadow_*/history.jsonl"))
    cfg = make_cfg(*TINY, f"store.root={tmp_path}", "stage=all", "trainer.max_memory_gb=0.01")
    with pytest.raises(MiaError, match="shadow training"):
        run_pipeline(cfg, tmp_path / "run")


def test_memory_estimate_scales_with_batch_pool_and_stack():
    from mia_lightning.utils.memory import training_bytes

    base = training_bytes(40000, 32, 128, "imagenet")
    assert 0.4 * 2**30 < base < 1.0 * 2**30  # the TML25 pool (0.5 GB) + one ResNet18 at batch 128
    assert training_bytes(40000, 32, 256, "imagenet") > base
    assert training_bytes(40000, 32, 128, "cifar") > base  # no downsampling stem: 12x the activations
    assert training_bytes(40000, 32, 128, "imagenet", models=8) > 2 * base


def test_training_memory_check_does_not_block_runs_that_train_nothing(reference_run, tmp_path):
    """Shadows already done (here: the reference run's store): the same tiny limit passes."""
    import json

    from mia_lightning.pipeline import run_pipeline
    from .runs import FAULT_ARGS

    cfg = make_cfg(*FAULT_ARGS, f"store.root={reference_run.root}", "trainer.max_memory_gb=0.01", "logger=none",
                   "report.plots=false", "attack.names=[threshold,loss,lira_online]")
    run_pipeline(cfg, tmp_path / "run")
    assert set(json.loads((tmp_path / "run" / "metrics.json").read_text())["attacks"]) == {
        "threshold", "loss", "lira_online"}
