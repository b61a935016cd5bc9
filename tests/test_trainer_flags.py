"""The trainer group passes ordinary Lightning flags through; Lightning itself judges them."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import TINY, fresh_store, make_cfg, run_mia
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.errors import MiaError
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.pipeline import run_pipeline, validate_config
from mia_lightning.training.fit import run_trainer


def test_any_trainer_argument_reaches_the_trainer(tmp_path):
    settings = validate_config(make_cfg("trainer.gradient_clip_val=0.5", "trainer.deterministic=true")).trainer_settings()
    trainer = run_trainer(tmp_path, settings, "shadow_000", max_epochs=1)
    assert trainer.gradient_clip_val == 0.5 and trainer.max_epochs == 1


def test_the_group_lists_every_trainer_argument_mia_does_not_set():
    from mia_lightning.config.trainer import LIGHTNING_DEFAULTS, OTHER_FLAGS, RESERVED, trainer_arguments

    assert sorted([*LIGHTNING_DEFAULTS, *OTHER_FLAGS, *RESERVED]) == sorted(trainer_arguments())
    composed = make_cfg().trainer
    assert composed.gradient_clip_val is None and composed.accelerator == "cpu"


@pytest.mark.parametrize("override, words", [
    ("+trainer.gradient_clip_vall=1", ["trainer.gradient_clip_vall is not a lightning.Trainer argument",
                                       "did you mean gradient_clip_val"]),
    ("+trainer.max_epochs=3", ["trainer.max_epochs is set by mia", "shadow.epochs"]),
])
def test_unknown_or_reserved_flags_are_one_line(override, words):
    with pytest.raises(MiaError) as error:
        validate_config(make_cfg(override))
    assert all(word in str(error.value) for word in words) and "\n" not in str(error.value)


def test_lightning_judges_the_values():
    with pytest.raises(MiaError, match="trainer: lightning.Trainer refused .*precision=banana.*Precision 'banana' is invalid"):
        TrainerSettings.cpu(precision="banana").probe()
    with pytest.raises(MiaError, match=r"trainer.accelerator=gpu asks for a CUDA GPU, but this machine has no GPU "
                                       r"\(CPU only, \d+ cores\): pass trainer=cpu"):
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        TrainerSettings.cpu(accelerator="gpu").probe()


def test_a_learning_flag_trains_other_shadows_in_their_own_store_entry(tiny_task_dir, tmp_path):
    """+trainer.gradient_clip_val changes what a shadow learns: its own entry, other weights."""
    fresh_store(tiny_task_dir, tmp_path)
    base = [*TINY, "stage=shadows", "shadow.only=0", f"store.root={tmp_path}"]
    run_pipeline(make_cfg(*base), tmp_path / "run_plain")
    run_pipeline(make_cfg(*base, "trainer.gradient_clip_val=0.01"), tmp_path / "run_clipped")
    entries = {json.dumps(json.loads(p.read_text()).get("trainer")): p.parent for p in tmp_path.glob("*/*/recipe.json")}
    assert set(entries) == {"null", '{"gradient_clip_val": 0.01}'}
    plain, clipped = (safe_torch_load(entries[k] / "shadow_000" / "weights.pt") for k in ("null", '{"gradient_clip_val": 0.01}'))
    assert not torch.equal(plain["fc.weight"], clipped["fc.weight"])


def test_an_unknown_flag_through_the_cli_is_one_line(tmp_path):
    proc = run_mia("+trainer.gradient_clip_vall=1", f"store.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}",
                   check=False)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and "trainer.gradient_clip_vall" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "tasks").exists()
