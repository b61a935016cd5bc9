"""Stacked shadows (shadow.stack=G): one Lightning run, G ordinary ResNet18 shadows out of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lightning.pytorch.callbacks import Callback

from conftest import fit_starts, fresh_store, make_cfg, TINY
from mia_lightning.data.memory import InMemoryDataModule
from mia_lightning.data.stacked_memory import StackedBatchSampler, StackedMemoryDataModule, batch_plan
from mia_lightning.io.safe_load import safe_torch_load
from mia_lightning.logits.infer import compute_logits
from mia_lightning.logits.logits_file import read_logits
from mia_lightning.logits.queries import parse_queries
from mia_lightning.models.classifier import ClassifierModule
from mia_lightning.models.resnet import Normalize, build_resnet18
from mia_lightning.models.stacked_resnet import StackedResNet18, load_torchvision_state_dicts, stack_inputs
from mia_lightning.config.recipe import TrainRecipe
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.logits.infer import Inference
from mia_lightning.models.resnet import ModelSpec
from mia_lightning.pipeline import open_run, run_pipeline
from mia_lightning.shadows.job import ShadowJob
from mia_lightning.shadows.stacked_training import (
    export_members,
    fit_stack,
    initial_states,
    plan_groups,
    stack_dir,
    stack_spec,
)
from mia_lightning.shadows.store import ShadowStore
from mia_lightning.stages.shadows import shadow_set
from mia_lightning.stages.task import obtain_task
from mia_lightning.training.fit import FitSpec, fit_classifier

STACK = [*TINY, "shadow.stack=2", "shadow.epochs=3"]


def context(store: Path, *overrides: str):
    run = open_run(make_cfg(*STACK, f"store.root={store}", *overrides), store / "run")
    task = obtain_task(run)
    return shadow_set(run, task).job, task


@pytest.fixture(scope="module")
def stacked_store(tiny_task_dir, tmp_path_factory) -> Path:
    """The tiny task's two shadows, trained as one stack through the real pipeline."""
    store = tmp_path_factory.mktemp("stacked_store")
    fresh_store(tiny_task_dir, store)
    run_pipeline(make_cfg(*STACK, "stage=shadows", f"store.root={store}"), store / "run1")
    return store


def test_stacked_shadows_are_plain_resnet18s_with_their_stored_logits(stacked_store):
    ctx, task = context(stacked_store)
    normalize = Normalize(task.mean, task.std)
    nets = []
    for index in range(2):
        shadow = ctx.store.shadow_dir(index)
        assert ctx.store.is_done(index)
        net = build_resnet18(task.num_classes, task.stem)
        net.load_state_dict(safe_torch_load(shadow / "weights.pt"))  # strict: a plain torchvision state_dict
        nets.append(net.eval())
        stored = read_logits(shadow / "logits.pt", task.pool_size)
        fresh = compute_logits(net, normalize, ctx.images, parse_queries(["identity", "mirror"]))
        for a, name in enumerate(["identity", "mirror"]):
            assert torch.allclose(stored[name], fresh[:, a], rtol=1e-5, atol=1e-4), name
        # an ordinary single-model Lightning checkpoint with the same weights
        module = ClassifierModule.load_from_checkpoint(shadow / "checkpoints" / "last.ckpt", map_location="cpu")
        assert module.hparams.seed == ctx.shadow_seed(index)
        for key, value in net.state_dict().items():
            assert torch.equal(module.net.state_dict()[key], value), key
        (start,) = fit_starts(shadow)
        assert start["stack"] == "stack_000-001" and start["resume"] is False
        assert json.loads((shadow / "summary.json").read_text())["in_points"] == int(ctx.keep[index].sum())
    run = stack_dir(ctx, [0, 1])
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert not (run / "checkpoints" / "last.ckpt").exists()  # each member holds its own copy

    # the same weights as one grouped network give the same logits as the plain networks
    stacked = StackedResNet18(2, task.num_classes, task.stem)
    load_torchvision_state_dicts(stacked, [net.state_dict() for net in nets])
    with torch.inference_mode():
        inputs = normalize(ctx.images)
        grouped = stacked.eval()(stack_inputs(torch.stack([inputs, inputs])))
        for g, net in enumerate(nets):
            assert torch.allclose(grouped[g], net(inputs), rtol=1e-5, atol=1e-4)

    # a second run trains nothing
    run_pipeline(make_cfg(*STACK, "stage=shadows", f"store.root={stacked_store}"), stacked_store / "run2")
    assert [len(fit_starts(ctx.store.shadow_dir(i))) for i in range(2)] == [1, 1]


class Crash(Exception):
    pass


class CrashAtEpoch(Callback):
    """Dies at the start of `epoch`, after the previous epoch's checkpoint was written."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module) -> None:  # type: ignore[override]
        if trainer.current_epoch == self.epoch:
            raise Crash(f"simulated crash at epoch {self.epoch}")


def test_interrupted_stack_resumes_to_the_uninterrupted_weights(stacked_store, tiny_task_dir, tmp_path):
    fresh_store(tiny_task_dir, tmp_path)
    ctx, _ = context(tmp_path)
    ctx.store.prepare()
    members = [ctx.store.shadow_dir(i) for i in range(2)]
    with pytest.raises(Crash):
        fit_stack(stack_spec(ctx, [0, 1]), stack_dir(ctx, [0, 1]), ctx.trainer, "crashing stack",
                  history_dirs=members, callbacks=[CrashAtEpoch(2)])
    assert (stack_dir(ctx, [0, 1]) / "checkpoints" / "last.ckpt").is_file()
    assert not any(ctx.store.is_done(i) for i in range(2))

    run_pipeline(make_cfg(*STACK, "stage=shadows", f"store.root={tmp_path}"), tmp_path / "rerun")
    reference, _ = context(stacked_store)
    for index, shadow in enumerate(members):
        assert [s["resume"] for s in fit_starts(shadow)] == [False, True]
        ours = safe_torch_load(shadow / "weights.pt")
        theirs = safe_torch_load(reference.store.shadow_dir(index) / "weights.pt")
        assert ours.keys() == theirs.keys()
        for key in ours:
            assert torch.equal(ours[key], theirs[key]), key


def test_stack_trains_the_single_path_recipe(tiny_task_dir, tmp_path):
    """Same init, batch, augmentation and optimizer step: one step agrees to float rounding.

    Only one step: on this tiny task rounding differences grow fast (the single path with
    and without channels_last is ~6% apart after 2 steps); later batches and augmentation
    are compared exactly in test_stacked_batches_... and test_fast_path.
    """
    fresh_store(tiny_task_dir, tmp_path)
    ctx, _ = context(tmp_path, "shadow.augment.crop_padding=2", "shadow.augment.flip=true")
    steps = 1
    singles = []
    for index in range(2):
        spec = FitSpec(images=ctx.images, labels=ctx.labels, train_index=ctx.keep[index].nonzero().squeeze(1),
                       num_classes=ctx.model.num_classes, stem=ctx.model.stem, mean=ctx.inference.mean, std=ctx.inference.std,
                       recipe=ctx.recipe, seed=ctx.shadow_seed(index), channels_last=ctx.model.channels_last)
        singles.append(fit_classifier(spec, tmp_path / f"single_{index}", ctx.trainer, "single", logger=False,
                                      max_steps=steps).state_dict())
    spec = stack_spec(ctx, [0, 1])
    initial = initial_states(spec)
    module = fit_stack(spec, tmp_path / "stack", ctx.trainer, "stack", logger=False, max_steps=steps)
    for single, start, net in zip(singles, initial, export_members(module)):
        stacked = net.state_dict()
        assert int(stacked["bn1.num_batches_tracked"]) == steps
        for key, value in single.items():
            if value.is_floating_point():
                moved = float((value - start[key]).abs().max())  # training changed it this much...
                apart = float((stacked[key] - value).abs().max())  # ...and the two paths differ this little
                assert apart <= 1e-5 + 1e-3 * moved, (key, apart, moved)


def fake_context(tmp_path: Path, sizes: list[int], batch_size: int) -> ShadowJob:
    keep = torch.zeros(len(sizes), max(sizes) + 7, dtype=torch.bool)
    for row, size in enumerate(sizes):
        keep[row, torch.randperm(keep.shape[1], generator=torch.Generator().manual_seed(row))[:size]] = True
    store = ShadowStore(tmp_path, "fingerprint", {"seed": 0})
    return ShadowJob(store=store, images=torch.rand(keep.shape[1], 3, 4, 4), labels=torch.zeros(keep.shape[1]).long(),
                     keep=keep, model=ModelSpec(2, "imagenet"), recipe=TrainRecipe(batch_size=batch_size), seed=0,
                     trainer=TrainerSettings(), inference=Inference([0.5] * 3, [0.5] * 3, []), stack=4)


def test_unequal_in_sets_stack_only_with_equal_batch_plans(tmp_path):
    ctx = fake_context(tmp_path, [64, 64, 70, 96, 65, 60], batch_size=32)
    assert batch_plan(70, 32) == (32, 32) and batch_plan(96, 32) == (32, 32, 32) and batch_plan(20, 32) == (20,)
    (ctx.store.shadow_dir(5) / "checkpoints").mkdir(parents=True)
    (ctx.store.shadow_dir(5) / "checkpoints" / "last.ckpt").write_bytes(b"x")  # its own run is further along
    stacks, alone = plan_groups(ctx, list(range(6)))
    assert stacks == [[0, 1, 2, 4]] and alone == [3, 5]
    with pytest.raises(ValueError, match="same batches per epoch"):
        StackedBatchSampler([64, 96], 32, [1, 2])


def test_stacked_batches_are_each_members_single_path_batches():
    images, labels = torch.rand(50, 3, 4, 4), torch.arange(50)
    parts = [torch.arange(0, 40), torch.arange(10, 46), torch.arange(5, 50, 1)]  # sizes 40, 36, 45: plan (16, 16)
    seeds = [11, 22, 33]
    stacked = StackedMemoryDataModule(images, labels, parts, 16, seeds)
    singles = [InMemoryDataModule(images, labels, part, 16, seed) for part, seed in zip(parts, seeds)]
    loader = stacked.train_dataloader()
    for epoch in range(3):
        loader.sampler.set_epoch(epoch)
        single_loaders = [single.train_dataloader() for single in singles]
        for single_loader in single_loaders:
            single_loader.sampler.set_epoch(epoch)
        for (x, y), *rows in zip(loader, *single_loaders):
            assert x.shape == (3, 16, 3, 4, 4) and y.shape == (3, 16)
            for g, (xs, ys) in enumerate(rows):
                assert torch.equal(x[g], xs) and torch.equal(y[g], ys)
