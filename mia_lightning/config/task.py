"""Where the task comes from: TML25 files on disk, or a simulation from a real dataset."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from mia_lightning.config.checks import at_least, choice, fraction
from mia_lightning.config.recipe import TrainRecipe
from mia_lightning.errors import MiaError

TASK_KINDS = ("tml25", "simulate")
SOURCES = ("fmnist", "digits", "cifar10")
IMAGE_FORMATS = ("pil", "tensor")


@dataclass
class TaskConfig:
    name: str = "simulate_fmnist"
    kind: str = "simulate"  # tml25 | simulate
    # TML25 files (kind=tml25); relative paths are taken from the directory `mia` was started in.
    pub: Optional[str] = None
    priv: Optional[str] = None
    target: Optional[str] = None
    truth: Optional[str] = None  # optional hidden membership of priv, only the scorer reads it
    # Input normalisation the target was trained with (applied inside the model's forward).
    mean: list[float] = field(default_factory=lambda: [0.2980, 0.2962, 0.2987])
    std: list[float] = field(default_factory=lambda: [0.2886, 0.2875, 0.2889])
    image_size: int = 32
    resize: bool = False  # resize images of another size to image_size (as the assignment's template does)
    submission_id_column: str = "ids"  # the later TML25 release names it "id"
    # Simulation (kind=simulate).
    source: str = "fmnist"  # fmnist | digits | cifar10
    data_root: Optional[str] = None
    download: bool = True  # torchvision download when no local copy exists and the network is up
    pool_size: int = 4000
    pub_fraction: float = 0.5  # fraction of the pool published with membership labels
    member_fraction: float = 0.5  # fraction of the pool the target is trained on
    image_format: str = "pil"  # pil (the 44-class release) | tensor (CHW float, later releases)
    seed: int = 0
    train: TrainRecipe = field(default_factory=TrainRecipe)  # the simulated target's recipe

    def validate(self, key: str = "task") -> None:
        choice(self.kind, TASK_KINDS, f"{key}.kind")
        if self.kind == "simulate":
            choice(self.source, SOURCES, f"{key}.source")
            choice(self.image_format, IMAGE_FORMATS, f"{key}.image_format")
            self.train.validate(f"{key}.train")
            fraction(self.pub_fraction, f"{key}.pub_fraction")
            fraction(self.member_fraction, f"{key}.member_fraction")
            at_least(self.pool_size, 4, f"{key}.pool_size")
        at_least(self.image_size, 8, f"{key}.image_size")
        if len(self.mean) != 3 or len(self.std) != 3 or not all(0 < v < float("inf") for v in self.std):
            raise MiaError(f"{key}.mean and {key}.std need 3 values each, std > 0; "
                           f"got {list(self.mean)}, {list(self.std)}")
