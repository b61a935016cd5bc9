"""A newcomer's first hour (issue 14): every stumble ends in words a user can act on.

One-line errors are checked as a user sees them: the real `mia` command, its stderr as
lines, exit status 2, no traceback anywhere. The successful runs are real too: a TML25-kind
task in the assignment's file format (the tiny simulated task's pub/priv files) with a
target of more classes than the labels use, run twice on one store.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from conftest import TINY, run_mia
from mia_lightning.models.resnet import build_resnet18


def error_line(proc) -> str:
    """The one stderr line of a failed `mia`, checked to be the whole story."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(lines) == 1 and lines[0].startswith("mia: error: "), lines
    return lines[0]


# --- 1: an accelerator that is not there -------------------------------------------------


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_the_readmes_gpu_command_on_a_cpu_machine_is_one_line_before_any_work(tmp_path):
    proc = run_mia("experiment=tml25", "task.pub=pub.pt", "task.priv=priv_out.pt", "task.target=01_MIA.pt",
                   "trainer=gpu", f"store.root={tmp_path / 'store'}", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    line = error_line(proc)
    # what was asked, what is there, what to pass instead; checked before the (missing) task files are read
    assert line == ("mia: error: trainer.accelerator=gpu asks for a CUDA GPU, but this machine has no GPU "
                    f"(CPU only, {__import__('os').cpu_count()} cores): pass trainer=cpu "
                    "(or run on a machine that has one)")
    assert not (tmp_path / "store").exists()


# --- 7: error lines that said the wrong thing --------------------------------------------


@pytest.mark.parametrize("override, expected", [
    ("shadow.cont=3", "mia: error: unknown key shadow.cont; did you mean shadow.count?"),
    ("trainer=tpu", "mia: error: trainer=tpu is not an option of the trainer group; did you mean trainer=gpu? "
                    "(available: cpu, ddp, gpu; `mia --help` lists every group)"),
])
def test_composition_mistakes_say_the_fix_at_once(override, expected, tmp_path):
    proc = run_mia(override, f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert error_line(proc) == expected


@pytest.fixture(scope="module")
def tml25_files(tiny_task_dir, tmp_path_factory) -> dict[str, Path]:
    """The tiny task's pub/priv (10 classes, the assignment's pickled format), a 44-class target's
    state_dict, and the same network pickled whole."""
    root = tmp_path_factory.mktemp("tml25_files")
    for name in ("pub.pt", "priv_out.pt"):
        shutil.copy(tiny_task_dir / name, root / name)
    net = build_resnet18(44)
    torch.save(net.state_dict(), root / "01_MIA.pt")
    torch.save(net, root / "whole_model.pt")
    return {"pub": root / "pub.pt", "priv": root / "priv_out.pt", "target": root / "01_MIA.pt",
            "whole": root / "whole_model.pt"}


def test_task_files_that_are_not_what_their_key_says(tml25_files, tmp_path):
    files = tml25_files

    def mia(pub, priv, target):
        return run_mia("experiment=tml25", f"task.pub={pub}", f"task.priv={priv}", f"task.target={target}",
                       f"store.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", check=False)

    whole = error_line(mia(files["pub"], files["priv"], files["whole"]))
    assert whole.startswith(f"mia: error: task.target={files['whole']}: refused to load: it holds a whole pickled "
                            "model (torchvision.models.resnet.ResNet)")
    assert "model.state_dict()" in whole and "weights_only" not in whole  # never torch's advice to unpickle it

    swapped = error_line(mia(files["target"], files["priv"], files["pub"]))  # pub and target swapped
    assert swapped == (f"mia: error: task.pub={files['target']}: holds model weights (a state_dict of 122 tensors, "
                       "e.g. conv1.weight, bn1.weight), not a task dataset; is it task.target?")

    dataset = error_line(mia(files["pub"], files["priv"], files["priv"]))
    assert dataset == (f"mia: error: task.target={files['priv']}: refused to load: it holds a TML25 task dataset "
                       "(__main__.MembershipDataset), not model weights (a ResNet18 state_dict); "
                       "is it task.pub or task.priv?")


# --- 9: an experiment and a task chosen on the command line ------------------------------


def test_a_task_chosen_on_the_command_line_replaces_the_experiments(tmp_path):
    """`experiment=digits_smoke task=tml25` runs the TML25 task (here: asks for its files),
    not digits_smoke's simulation."""
    proc = run_mia("experiment=digits_smoke", "task=tml25", f"store.root={tmp_path}",
                   f"hydra.run.dir={tmp_path / 'run'}", check=False)
    assert error_line(proc) == "mia: error: task.pub is not set: pass task.pub=path/to/file"
    assert not (tmp_path / "tasks").exists()  # digits_smoke's simulation never started


def test_an_experiment_that_sets_task_keys_over_a_chosen_task_is_named(tmp_path):
    own = tmp_path / "conf" / "experiment"
    own.mkdir(parents=True)
    (own / "mine.yaml").write_text("# @package _global_\nexperiment_name: mine\n"
                                   "task:\n  source: fmnist\n  pub_fraction: 0.25\n  pool_size: 300\n")
    proc = run_mia(f"hydra.searchpath=[file://{tmp_path / 'conf'}]", "experiment=mine", "task=simulate_digits",
                   "task.pool_size=2", f"store.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", check=False)
    out = proc.stdout + proc.stderr
    # pool_size was set on the command line (the user's value wins there); the others are the experiment's doing
    assert ("experiment=mine sets task.pub_fraction, task.source over the task you chose (task=simulate_digits); "
            "its values win" in out), out[-2000:]
    assert "task.pool_size must be" in proc.stderr  # and the run stops on the bad value, before any work


# --- 3, 8, 10: what a successful run prints, and a rerun ---------------------------------


def test_a_run_says_where_its_results_are_warns_of_extra_classes_and_prints_a_line_per_model(tml25_files, tmp_path):
    files = tml25_files
    args = [arg for arg in TINY if not arg.startswith(("task", "trainer.enable_progress_bar"))]
    args += ["task=tml25", f"task.pub={files['pub']}", f"task.priv={files['priv']}", f"task.target={files['target']}",
             "task.mean=[0.3,0.3,0.3]", "task.std=[0.4,0.4,0.4]", f"store.root={tmp_path / 'store'}"]
    first = run_mia(*args, f"hydra.run.dir={tmp_path / 'run1'}")  # progress bars on, but not a terminal
    out = first.stdout + first.stderr
    last = first.stdout.strip().splitlines()[-1]
    assert last.startswith("mia: done in ") and "trained 2 shadows" in last
    assert last.endswith(f"results in {tmp_path / 'run1'}/ (submission: {tmp_path / 'run1' / 'submission.csv'})")

    metrics = json.loads((tmp_path / "run1" / "metrics.json").read_text())
    classes = [w for w in metrics["warnings"] if "has 44 output classes" in w]
    assert classes and "use only 10 (0..9)" in classes[0], metrics["warnings"]
    assert "WARNING" in out and "has 44 output classes" in out  # in the log, not only in metrics.json

    # off a terminal: no bars, no escape codes, one line per finished model, no library noise
    assert "\x1b[" not in out and "\r" not in out
    for noise in ("Training:", "Epoch 0", "v_num", "LeafSpec", "it/s]"):
        assert noise not in out, noise
    lines = out.splitlines()
    assert sum(line.startswith("shadow_000 (1/2): train acc") for line in lines) == 1
    assert sum(line.startswith("shadow_001 (2/2): train acc") for line in lines) == 1
    assert sum(line.startswith("master MLP (shadow): 3 epochs") for line in lines) == 1

    second = run_mia(*args, f"hydra.run.dir={tmp_path / 'run2'}")
    last = second.stdout.strip().splitlines()[-1]
    assert "reused 2 stored shadows (trained none)" in last and f"results in {tmp_path / 'run2'}/" in last
