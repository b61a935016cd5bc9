"""The ResNet18 classifier LightningModule, used for the simulated target and every shadow."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mia_lightning.models.resnet import Normalize, build_resnet18


class RecipeModule(L.LightningModule):
    """What the single and the stacked classifier share: the network with its input
    normalisation and memory format, the recipe's augmentation, optimizer and schedule, and
    the in-memory training set moved to the device."""

    def init_recipe(self, net: nn.Module, mean: list[float], std: list[float], optimizer: dict[str, Any],
                    augment: dict[str, Any], channels_last: bool, label_smoothing: float = 0.0) -> None:
        self.net = net.to(memory_format=torch.channels_last) if channels_last else net
        self.label_smoothing = float(label_smoothing)
        self.normalize = Normalize(mean, std)
        self.optimizer_cfg = dict(optimizer)
        self.crop_padding = int(augment["crop_padding"])
        self.flip = bool(augment["flip"])
        self.channels_last = channels_last

    def run_net(self, inputs: Tensor) -> Tensor:
        """The network on normalised inputs, in its memory format."""
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.net(inputs)

    def on_fit_start(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "to_device"):
            datamodule.to_device(self.device)

    def configure_optimizers(self) -> Any:
        return make_optimizers(self, self.optimizer_cfg)


class ClassifierModule(RecipeModule):
    """ResNet18 on [0, 1] images; normalisation and augmentation happen on the device.

    Augmentation randomness is derived from (seed, global_step), not a global RNG, so a
    run resumed from `last.ckpt` continues exactly as an uninterrupted run would.
    `device_augment=False` is the plain path: batches arrive already augmented (per sample,
    on the CPU, by `PlainDataModule`, from the same random numbers).
    """

    def __init__(
        self,
        num_classes: int,
        stem: str,
        mean: list[float],
        std: list[float],
        optimizer: dict[str, Any],
        augment: dict[str, Any],
        seed: int,
        channels_last: bool = True,
        device_augment: bool = True,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.init_recipe(build_resnet18(num_classes, stem), mean, std, optimizer, augment, channels_last,
                         label_smoothing)
        self.seed = seed
        self.device_augment = device_augment

    def forward(self, images: Tensor) -> Tensor:
        return self.run_net(self.normalize(images))

    def augment(self, images: Tensor, step: int) -> Tensor:
        """The training augmentation of optimizer step `step` (a pure function of seed and step)."""
        if not self.device_augment or (self.crop_padding == 0 and not self.flip):
            return images
        from mia_lightning.data.augment import augment_generator, random_crop_flip

        return random_crop_flip(images, self.crop_padding, self.flip, augment_generator(self.seed, step))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(self.augment(images, self.global_step))
        loss = F.cross_entropy(logits, labels, label_smoothing=self.label_smoothing)
        accuracy = (logits.argmax(1) == labels).float().mean()
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(labels))
        self.log("train/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(labels))
        return loss


def make_optimizers(module: L.LightningModule, cfg: dict[str, Any]) -> Any:
    """The recipe's optimizer (an `OptimizerConfig` as a dict) over `module.parameters()` and its
    per-step schedule (shared with stacks)."""
    name, params = cfg["name"], module.parameters()
    if name == "sgd":
        optimizer = torch.optim.SGD(params, lr=cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"],
                                    nesterov=cfg["momentum"] > 0)
    elif name == "adam":
        optimizer = torch.optim.Adam(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    elif name == "adamw":
        optimizer = torch.optim.AdamW(params, lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    else:
        raise ValueError(f"unknown optimizer {name!r}")
    if cfg["scheduler"] == "none":
        return optimizer
    total = max(1, int(module.trainer.estimated_stepping_batches))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
