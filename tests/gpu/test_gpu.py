"""What only a CUDA GPU can check: `trainer=gpu` (bf16 autocast), augmentation on the
device, stacked shadows on cuda, inference on cuda, a shadow's fit and resume there.

No GPU has run this code before these tests; they skip without one (one line). Run them,
with the GPU benchmark, through `make check-gpu` (scripts/check_gpu.py). On a GPU a resumed
shadow is not bit-identical to an uninterrupted one (cuDNN and bf16; README, Guarantees),
so resume is checked by its bookkeeping (the checkpoint's epoch and step, the history)
and by the model being as good, not by equal weights.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from conftest import fit_starts, kill_at_first_checkpoint, make_cfg, run_mia, TINY
from mia_lightning.config.attack import DEFAULT_ATTACKS
from mia_lightning.data.augment import augment_generator, random_crop_flip
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.logits.infer import compute_logits
from mia_lightning.logits.logits_file import read_logits
from mia_lightning.logits.queries import parse_queries
from mia_lightning.models.resnet import Normalize, build_resnet18
from mia_lightning.pipeline import open_run
from mia_lightning.stages.task import obtain_task
from mia_lightning.models.stacked_resnet import (
    StackedResNet18,
    load_torchvision_state_dicts,
    stack_inputs,
    to_torchvision_state_dicts,
)

if not torch.cuda.is_available():  # after the imports: without a GPU they are still checked
    pytest.skip("no CUDA device: the GPU checks (make check-gpu) need one", allow_module_level=True)
pytestmark = pytest.mark.gpu
CUDA = torch.device("cuda")
GPU = [arg for arg in TINY if not arg.startswith("trainer.")] + [
    "trainer=gpu", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1"]


@pytest.fixture
def no_tf32():
    """Exact fp32 convolutions for a comparison (PyTorch lets cuDNN use TF32 by default)."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32 = before


def test_augmentation_on_cuda_is_the_cpus_exactly():
    images = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for step in range(3):
        on_cpu = random_crop_flip(images, 4, True, augment_generator(7, step))
        on_gpu = random_crop_flip(images.to(CUDA), 4, True, augment_generator(7, step))
        assert on_gpu.device.type == CUDA.type and torch.equal(on_gpu.cpu(), on_cpu), step


def test_stacked_g2_on_cuda_trains_and_exports_like_two_plain_resnet18s(no_tf32):
    torch.manual_seed(0)
    plain = [build_resnet18(10, "imagenet").to(CUDA).double() for _ in range(2)]
    stacked = StackedResNet18(2, 10, "imagenet").to(CUDA).double()
    load_torchvision_state_dicts(stacked, [net.state_dict() for net in plain])
    opt_s = torch.optim.SGD(stacked.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    opts = [torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4) for net in plain]
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):  # float64: float32 rounding on tiny batches would hide real bugs (tests/test_stacked_resnet.py)
        x = torch.randn(2, 8, 3, 32, 32, generator=gen, dtype=torch.float64).to(CUDA)
        y = torch.randint(0, 10, (2, 8), generator=gen).to(CUDA)
        logits = stacked(stack_inputs(x))
        opt_s.zero_grad()
        sum(F.cross_entropy(logits[i], y[i]) for i in range(2)).backward()
        opt_s.step()
        for i, (net, opt) in enumerate(zip(plain, opts)):
            opt.zero_grad()
            F.cross_entropy(net(x[i]), y[i]).backward()
            opt.step()
    for exported, net in zip(to_torchvision_state_dicts(stacked), plain):
        for key, value in net.state_dict().items():
            torch.testing.assert_close(exported[key], value, rtol=1e-9, atol=1e-9, msg=lambda m, k=key: f"{k}: {m}")

    # float32 eval logits, and under bf16 autocast as training runs: the same as the plain nets
    for model in [stacked, *plain]:
        model.float().eval()
    x = torch.randn(2, 16, 3, 32, 32, generator=gen).to(CUDA)
    with torch.no_grad():
        torch.testing.assert_close(stacked(stack_inputs(x)), torch.stack([n(x[i]) for i, n in enumerate(plain)]),
                                   rtol=1e-4, atol=1e-4)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            grouped = stacked(stack_inputs(x)).float()
            separate = torch.stack([n(x[i]) for i, n in enumerate(plain)]).float()
    assert (grouped - separate).abs().max() <= 3e-2 * separate.abs().max()


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory) -> dict[str, Path]:
    """`mia ... trainer=gpu` end to end on the tiny digits task, the shadows stacked (G=2),
    augmented on the device (crop and flip) and trained long enough to learn (16 epochs)."""
    root = tmp_path_factory.mktemp("gpu_run")
    run_mia(*GPU, "shadow.stack=2", "shadow.epochs=16", "shadow.augment.crop_padding=2", "shadow.augment.flip=true",
            f"store.root={root / 'store'}", f"hydra.run.dir={root / 'run'}", timeout=600)
    return {"store": root / "store", "run": root / "run"}


def test_tiny_end_to_end_run_with_trainer_gpu(gpu_run):
    metrics = json.loads((gpu_run["run"] / "metrics.json").read_text())
    assert set(metrics["attacks"]) == set(DEFAULT_ATTACKS)
    for name, values in metrics["attacks"].items():
        assert all(math.isfinite(v) and 0 <= v <= 1 for v in values.values()), name
    rows = (gpu_run["run"] / "submission.csv").read_text().splitlines()
    assert rows[0] == "ids,score" and len(rows) == 1 + 160  # every private point scored
    shadows = sorted(gpu_run["store"].glob("*/*/shadow_*"))
    assert [p.name for p in shadows] == ["shadow_000", "shadow_001"] and all((p / "done").is_file() for p in shadows)
    assert all(start.get("stack") == "stack_000-001" for p in shadows for start in fit_starts(p))
    for shadow in shadows:  # trained in bf16 on cuda, still a model that learned (fp32 on CPU: 0.71, 0.81)
        summary = json.loads((shadow / "summary.json").read_text())
        assert summary["train_acc"] > 0.4, summary


def test_stacked_shadows_trained_on_cuda_are_plain_resnet18s_with_their_cuda_logits(gpu_run, no_tf32, tmp_path):
    task = obtain_task(open_run(make_cfg(*GPU, f"store.root={gpu_run['store']}"), tmp_path))
    normalize, queries = Normalize(task.mean, task.std), parse_queries(["identity", "mirror"])
    nets = []
    for shadow in sorted(gpu_run["store"].glob("*/*/shadow_*")):
        net = build_resnet18(task.num_classes, task.stem)
        net.load_state_dict(safe_torch_load(shadow / "weights.pt"))  # strict: a plain torchvision state_dict
        nets.append(net.eval())
        # the logits the run stored (inference on cuda, cuDNN free to use TF32) are the CPU's
        stored = read_logits(shadow / "logits.pt", task.pool_size)
        on_cpu = compute_logits(net, normalize, task.pool_images, queries)
        for a, query in enumerate(queries):
            error = (stored[query.name] - on_cpu[:, a]).abs().max()
            assert error <= 1e-2 * on_cpu[:, a].abs().max(), (shadow.name, query.name, float(error))
    stacked = StackedResNet18(2, task.num_classes, task.stem).to(CUDA).eval()
    load_torchvision_state_dicts(stacked, [net.state_dict() for net in nets])
    x = normalize(task.pool_images[:128]).to(CUDA)
    with torch.no_grad():  # the same weights as one grouped network on cuda: the same logits
        grouped = stacked(stack_inputs(torch.stack([x, x])))
        for g, net in enumerate(nets):
            torch.testing.assert_close(grouped[g], net.to(CUDA)(x), rtol=1e-4, atol=1e-4)


def test_a_shadow_killed_on_cuda_resumes_from_its_checkpoint(tmp_path):
    """SIGKILL after the first epoch's checkpoint, rerun: the run continues at the saved
    epoch and step, ends at the uninterrupted run's epoch and step, and learns as well."""
    args = [*GPU, "stage=shadows", "shadow.only=0", "shadow.epochs=40", "shadow.batch_size=8"]
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    run_mia(*args, f"store.root={reference}", timeout=600)
    shadow = kill_at_first_checkpoint(args, killed)
    at_kill = safe_torch_load(shadow / "checkpoints" / "last.ckpt")
    assert 1 <= at_kill["epoch"] + 1 < 40
    run_mia(*args, f"store.root={killed}", timeout=600)
    assert [start["resume"] for start in fit_starts(shadow)] == [False, True]
    (ref_shadow,) = reference.glob("*/*/shadow_000")
    ours, theirs = (safe_torch_load(p / "checkpoints" / "last.ckpt") for p in (shadow, ref_shadow))
    assert (ours["epoch"], ours["global_step"]) == (theirs["epoch"], theirs["global_step"])
    weights = safe_torch_load(shadow / "weights.pt")
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
    ours, theirs = (json.loads((p / "summary.json").read_text()) for p in (shadow, ref_shadow))
    assert abs(ours["train_acc"] - theirs["train_acc"]) < 0.15 and abs(ours["test_acc"] - theirs["test_acc"]) < 0.15


def test_a_recipe_search_with_two_workers_on_cuda_trains_every_pilot_and_finds_the_targets_recipe(tmp_path):
    """shadow.search.workers=2 with trainer=gpu: two spawned processes train the pilots on the
    GPU(s) (one each where there are several), and the search still picks the target's recipe."""
    from test_recipe_search import SEARCH_TASK

    args = [arg for arg in SEARCH_TASK if not arg.startswith("trainer.")] + GPU[-3:]
    proc = run_mia(*args, "stage=calibrate", "shadow.search.workers=2", f"store.root={tmp_path / 'store'}",
                   f"hydra.run.dir={tmp_path / 'run'}", timeout=600)
    assert "pilots of 3 candidates, 2 at a time" in proc.stdout + proc.stderr
    (record_path,) = (tmp_path / "store").glob("*/recipe_search_*.json")
    record = json.loads(record_path.read_text())
    assert record["pilot_trainings"] == 3 and record["chosen"]["recipe"]["optimizer"]["name"] == "adam", record["chosen"]
