"""ResNet18 as the TML25 targets use it: plain torchvision weights, optional CIFAR stem.

The network itself stays a stock `torchvision.models.ResNet` so that its `state_dict`
is exactly the format of `01_MIA.pt`; input normalisation lives outside it (see
`Normalize`), because the task, not the weights file, knows the mean and std.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import ResNet, resnet18

from mia_lightning.config.model import STEMS


def build_resnet18(num_classes: int, stem: str = "imagenet") -> ResNet:
    """A torchvision ResNet18; `stem="cifar"` swaps in a 3x3/1 first conv and drops the maxpool."""
    if stem not in STEMS:
        raise ValueError(f"model.stem must be one of {STEMS}, got {stem!r}")
    net = resnet18(weights=None, num_classes=num_classes)
    if stem == "cifar":
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
    return net


class Normalize(nn.Module):
    """Per-channel (x - mean) / std with the task's statistics, kept out of the state_dict."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (images - self.mean) / self.std


@dataclass(frozen=True)
class ModelSpec:
    """The architecture every model of a task shares (read off the target's weights)."""

    num_classes: int
    stem: str
    channels_last: bool = True

    def build(self) -> ResNet:
        return build_resnet18(self.num_classes, self.stem)
