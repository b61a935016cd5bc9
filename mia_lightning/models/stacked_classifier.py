"""G ResNet18 classifiers trained side by side as one LightningModule (`shadow.stack=G`).

The recipe of each model is exactly `ClassifierModule`'s: the same normalisation, the same
augmentation numbers (model g draws from the generator seeded by (seed_g, "augment",
global_step), like a single run with seed seed_g), the mean cross-entropy of its own batch,
and the same optimizer and learning-rate schedule. The G losses are summed, so each model's
gradient is the one it would get alone; SGD/Adam update every parameter element on its own,
so one optimizer over the stacked parameters is G independent optimizers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from mia_lightning.data.augment import apply_crop_flip, augment_generator, draw_crop_flip
from mia_lightning.models.classifier import RecipeModule
from mia_lightning.models.stacked_resnet import StackedResNet18, load_torchvision_state_dicts, stack_inputs


class StackedClassifierModule(RecipeModule):
    """`StackedResNet18` on [G, B, C, H, W] batches in [0, 1]; logits [G, B, num_classes].

    `initial_states` (G torchvision state_dicts) sets each model's initial weights; pass
    those the single path would start from, so stacked and single train the same recipe.
    """

    def __init__(
        self,
        num_models: int,
        num_classes: int,
        stem: str,
        mean: list[float],
        std: list[float],
        optimizer: dict[str, Any],
        augment: dict[str, Any],
        seeds: list[int],
        channels_last: bool = True,
        initial_states: Sequence[dict[str, Tensor]] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if len(seeds) != num_models:
            raise ValueError(f"{num_models} models but {len(seeds)} seeds")
        self.save_hyperparameters(ignore=["initial_states"])
        self.num_models = num_models
        net = StackedResNet18(num_models, num_classes, stem)
        if initial_states is not None:
            load_torchvision_state_dicts(net, initial_states)
        self.init_recipe(net, mean, std, optimizer, augment, channels_last, label_smoothing)
        self.seeds = [int(s) for s in seeds]

    def forward(self, images: Tensor) -> Tensor:
        """[G, B, C, H, W] -> [G, B, num_classes]."""
        return self.run_net(stack_inputs(self.normalize(images)))

    def augment(self, images: Tensor, step: int) -> Tensor:
        """Model g's batch gets the crop/flip a single run with seed seeds[g] would give it at this step."""
        if self.crop_padding == 0 and not self.flip:
            return images
        g, b = images.shape[:2]
        draws = [draw_crop_flip(b, self.crop_padding, self.flip, augment_generator(seed, step)) for seed in self.seeds]
        oy, ox, flips = (torch.cat(parts) for parts in zip(*draws))
        return apply_crop_flip(images.flatten(0, 1), self.crop_padding, oy, ox, flips).view(images.shape)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch  # [G, B, C, H, W], [G, B]
        logits = self(self.augment(images, self.global_step))
        g, b = labels.shape
        losses = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none",
                                 label_smoothing=self.label_smoothing).view(g, b).mean(1)
        loss = losses.sum()  # model g's gradient is that of its own mean loss
        accuracy = (logits.argmax(-1) == labels).float().mean()
        self.log("train/loss", losses.detach().mean(), on_step=False, on_epoch=True, prog_bar=True, batch_size=b)
        self.log("train/acc", accuracy, on_step=False, on_epoch=True, prog_bar=True, batch_size=b)
        return loss
