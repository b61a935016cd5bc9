"""The classifier architecture shared by target and shadows."""

from __future__ import annotations

from dataclasses import dataclass

from mia_lightning.config.checks import choice

ARCHS = ("resnet18",)
STEMS = ("imagenet", "cifar")  # torchvision's 7x7/2 + maxpool (TML25) | 3x3/1 without maxpool


@dataclass
class ModelConfig:
    """The classifier architecture shared by target and shadows."""

    arch: str = "resnet18"
    stem: str = "auto"  # auto: read off the target's weights | imagenet | cifar
    channels_last: bool = True

    def validate(self, key: str = "model") -> None:
        choice(self.arch, ARCHS, f"{key}.arch")
        choice(self.stem, ("auto", *STEMS), f"{key}.stem")
