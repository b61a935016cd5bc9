"""The fast path (pool on the device, batch augmentation there) trains what the plain path trains."""

from __future__ import annotations

import json

import pytest
import torch

from mia_lightning.config.recipe import recipe_from_values
from mia_lightning.config.trainer import TrainerSettings
from mia_lightning.data.augment import random_crop_flip_reference
from mia_lightning.data.memory import InMemoryDataModule, PlainDataModule
from mia_lightning.logits.infer import compute_logits
from mia_lightning.logits.queries import parse_queries
from mia_lightning.models.classifier import ClassifierModule
from mia_lightning.models.resnet import Normalize
from mia_lightning.models.stacked_classifier import StackedClassifierModule
from mia_lightning.task.sources import load_source
from mia_lightning.training.fit import FitSpec, fit_classifier
from mia_lightning.utils.seeding import derive_seed

MEAN, STD = [0.3, 0.3, 0.3], [0.4, 0.4, 0.4]
OPTIMIZER = {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4, "scheduler": "cosine"}
AUGMENT = {"crop_padding": 3, "flip": True}


def classifier(seed: int, augment: dict = AUGMENT) -> ClassifierModule:
    return ClassifierModule(num_classes=10, stem="cifar", mean=MEAN, std=STD, optimizer=OPTIMIZER, augment=augment,
                            seed=seed)


@pytest.mark.parametrize("step", [0, 1, 37])
def test_module_augmentation_is_the_cpu_reference_of_its_step(step):
    images = torch.rand(24, 3, 12, 12)
    module = classifier(seed=5)
    out = module.augment(images, step)
    generator = torch.Generator().manual_seed(derive_seed(5, "augment", step))
    assert torch.equal(out, random_crop_flip_reference(images, 3, True, generator))
    assert not torch.equal(out, images)
    assert torch.equal(classifier(5, {"crop_padding": 0, "flip": False}).augment(images, step), images)


@pytest.mark.parametrize("step", [0, 9])
def test_stacked_module_augments_each_model_like_its_single_module(step):
    seeds = [3, 14, 15]
    images = torch.rand(3, 8, 3, 10, 10)
    stacked = StackedClassifierModule(num_models=3, num_classes=10, stem="cifar", mean=MEAN, std=STD,
                                      optimizer=OPTIMIZER, augment=AUGMENT, seeds=seeds)
    out = stacked.augment(images, step)
    for g, seed in enumerate(seeds):
        assert torch.equal(out[g], classifier(seed).augment(images[g], step))


def test_plain_loader_batches_are_the_fast_batches_augmented_on_the_device():
    images, labels = torch.rand(90, 3, 8, 8), torch.arange(90)
    index = torch.arange(0, 90, 2)
    fast = InMemoryDataModule(images, labels, index, 16, seed=7).train_dataloader()
    plain = PlainDataModule(images, labels, index, 16, seed=7, augment=AUGMENT).train_dataloader()
    module = classifier(seed=7)
    per_epoch = len(fast.sampler)
    assert len(plain) == per_epoch == 2  # 45 points: two full batches, the ragged rest dropped
    for epoch in range(3):
        fast.sampler.set_epoch(epoch)
        plain.batch_sampler.sampler.set_epoch(epoch)  # where Lightning calls it
        for number, ((xf, yf), (xp, yp)) in enumerate(zip(fast, plain)):
            assert torch.equal(module.augment(xf, epoch * per_epoch + number), xp)
            assert torch.equal(yf, yp)


def test_fast_and_plain_paths_train_the_same_digits_classifier(tmp_path):
    images, labels = load_source("digits", None, download=False)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    pool = order[:620]
    images, labels = images[pool], labels[pool]
    train, held_out = torch.arange(0, 320), torch.arange(320, 620)
    recipe = {"epochs": 4, "batch_size": 32, "optimizer": OPTIMIZER, "augment": {"crop_padding": 2, "flip": False}}
    trainer_cfg = TrainerSettings.cpu(enable_progress_bar=False)
    accuracy, states = {}, {}
    for fast in (True, False):
        spec = FitSpec(images=images, labels=labels, train_index=train, num_classes=10, stem="imagenet", mean=MEAN,
                       std=STD, recipe=recipe_from_values(recipe), seed=11, fast=fast)
        net = fit_classifier(spec, tmp_path / f"fast_{fast}", trainer_cfg, "digits", logger=False)
        logits = compute_logits(net, Normalize(MEAN, STD), images[held_out], parse_queries(["identity"]))[:, 0]
        accuracy[fast] = float((logits.argmax(1) == labels[held_out]).float().mean())
        states[fast] = net.state_dict()
    assert accuracy[True] > 0.7 and accuracy[False] > 0.7, accuracy  # 0.86 with torch 2.14 on CPU
    assert abs(accuracy[True] - accuracy[False]) < 0.1, accuracy
    # the same recipe to the bit: same batches, same augmentation numbers, same arithmetic
    for key, value in states[True].items():
        assert torch.equal(value, states[False][key]), key


def test_bench_runs_every_variant_and_writes_json(tmp_path):
    from benchmarks.cli import run

    out = tmp_path / "bench.json"
    report = run(["--images", "128", "--batch-size", "16", "--steps", "4", "--warmup", "1", "--repeats", "1",
                  "--stack", "2", "--no-attack", "--no-progress-bar", "--inference-batch-size", "64", "--json", str(out)])
    assert json.loads(out.read_text())["training"].keys() == report["training"].keys() == {
        "hand", "lightning", "plain", "stack 2"}
    for name, row in report["training"].items():
        assert row["shadow_images_per_s"] > 0 and row["ratio_to_hand"] > 0, name
    assert report["training"]["stack 2"]["models_per_step"] == 2
    assert report["inference"]["images_per_s"] > 0 and report["attack"] is None
