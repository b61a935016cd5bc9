"""Structured configs: the typed shape of `conf/`.

Hydra merges the YAML groups onto these dataclasses, so a misspelt key or a value of the
wrong type fails at composition time with the key's name, before any training starts.
Range checks that types cannot express live in `config.validate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class OptimizerConfig:
    """Optimizer and learning-rate schedule of one training recipe."""

    name: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    scheduler: str = "cosine"  # cosine | none


@dataclass
class AugmentConfig:
    """Training-time augmentation, applied per batch on the training device."""

    crop_padding: int = 0  # random crop after zero padding by this many pixels; 0 = off
    flip: bool = False  # random horizontal flip


@dataclass
class TrainRecipe:
    """Everything that decides a trained model's weights, besides data and seed."""

    epochs: int = 30
    batch_size: int = 128
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class ModelConfig:
    """The classifier architecture shared by target and shadows."""

    arch: str = "resnet18"
    stem: str = "imagenet"  # imagenet: torchvision's 7x7/2 + maxpool (TML25); cifar: 3x3/1, no maxpool
    channels_last: bool = True


@dataclass
class TaskConfig:
    """Where the task comes from: TML25 files on disk, or a simulation from a real dataset."""

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
    train: TrainRecipe = field(default_factory=TrainRecipe)


@dataclass
class ShadowConfig(TrainRecipe):
    """The shadow (reference) models: how many, on which split, and the training recipe."""

    count: int = 8
    only: Any = None  # None = all of range(count); an int or a list of indices for cluster jobs
    split: str = "halves"  # halves (LiRA keep mask) | disjoint (the seed's partitions)
    in_fraction: float = 0.5  # disjoint split: fraction of each partition a shadow trains on
    stack: int = 1  # train this many shadows in one grouped network (shadows/stacked_training.py; slower on CPU, see README)
    fast: bool = True  # in-memory batches, device-side augmentation
    wait_timeout_s: float = 86400.0  # how long to wait for a shadow another process is training


@dataclass
class ThresholdConfig:
    tau: float = 0.95


@dataclass
class LiraConfig:
    variance: str = "auto"  # auto (global below global_below shadows) | global | per_example
    global_below: int = 64
    min_std: float = 1e-3
    center: str = "median"  # per-point centre of each side: median (the paper's code; robust) | mean


@dataclass
class RmiaConfig:
    online: bool = True  # Pr(x) from all shadows; offline: from OUT shadows with the `a` correction
    gamma: float = 1.0
    a: float = 0.3
    tune_a: bool = False  # choose `a` on the shadows themselves (one shadow as the pseudo-target)
    num_z: int = 2500
    temperature: float = 1.0
    tie_break: bool = True  # order points the step-valued RMIA score leaves tied (by their own ratio)


@dataclass
class AttackConfig:
    names: list[str] = field(
        default_factory=lambda: ["threshold", "loss", "lira_online", "lira_offline", "rmia", "master"]
    )
    # auto | identity | mirror | shift_DX_DY | mirror_shift_DX_DY  (DX, DY signed pixel offsets);
    # auto = identity, + mirror when shadow.augment.flip (query only views the models trained on)
    queries: list[str] = field(default_factory=lambda: ["auto"])
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    lira: LiraConfig = field(default_factory=LiraConfig)
    rmia: RmiaConfig = field(default_factory=RmiaConfig)


@dataclass
class MasterConfig:
    """The meta-classifier (the seed's approach 3): a deep MLP on confidence features."""

    name: str = "default"
    depth: int = 4  # hidden layers
    widths: Optional[list[int]] = None  # explicit hidden widths; overrides depth/width
    width: int = 128
    epochs: int = 30
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 1e-4
    # softmax | sorted | max | entropy | loss | phi  (per query, concatenated)
    features: list[str] = field(default_factory=lambda: ["sorted", "max", "entropy", "loss", "phi"])
    labels: str = "shadow"  # shadow: shadows' own keep mask | target_pub: target on pub, pub's membership
    folds: int = 5  # held-out folds whenever it trains on pub's membership
    max_samples: int = 200000  # cap on shadow (model, point) pairs used for training


@dataclass
class TrainerConfig:
    """Arguments passed to every lightning.Trainer (target, shadows, master)."""

    accelerator: str = "cpu"
    devices: Any = 1
    strategy: str = "auto"
    precision: str = "32-true"
    enable_progress_bar: bool = True
    log_every_n_steps: int = 10
    inference_batch_size: int = 1024
    max_memory_gb: float = 0.0  # 0 = read from the machine; refuse tensors that would not fit


@dataclass
class ReportConfig:
    submit: str = "best"  # best (by tpr@0.05 on the evaluation set) or an attack name
    eval: str = "auto"  # auto (truth when the task has it, else pub) | truth | pub
    plots: bool = True


@dataclass
class LoggerConfig:
    name: str = "tensorboard"  # tensorboard | none
    enabled: bool = True


@dataclass
class StoreConfig:
    root: str = "outputs/store"


@dataclass
class Config:
    task: TaskConfig = field(default_factory=TaskConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    master: MasterConfig = field(default_factory=MasterConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    stage: str = "all"  # simulate | shadows | logits | attacks | all
    seed: int = 0
    optimized_metric: str = "attacks.best.tpr@0.05"
    experiment_name: str = "default"
