"""Feature tables for the master MLP: confidence features of one model on many points.

A row is one (model, point) pair; its columns are the chosen features of every query,
concatenated query by query. Shadow rows are labelled by the keep mask (Shokri et al.),
target rows by the published membership (the seed's variant). The table is small enough
to live in memory, so batches are index slices with no worker processes.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from mia_lightning.attacks.signals import entropy, true_class_log_prob, true_class_margin
from mia_lightning.config.master import MASTER_FEATURES as FEATURES
from mia_lightning.data.memory import EpochBatchSampler, TensorBatches, rank_and_world
from mia_lightning.errors import MiaError
from mia_lightning.utils.seeding import derive_seed



def check_features(names: Sequence[str]) -> list[str]:
    """The feature list, or a MiaError naming master.features."""
    names = list(names)
    unknown = [name for name in names if name not in FEATURES]
    if not names or unknown:
        raise MiaError(f"master.features={names} has unknown or no entries {unknown}; choose from {list(FEATURES)}")
    return names


def feature_dim(names: Sequence[str], classes: int, queries: int) -> int:
    """Width of a feature row: C for softmax/sorted, 1 for the scalar features, per query."""
    return queries * sum(classes if name in ("softmax", "sorted") else 1 for name in check_features(names))


def build_features(logits: Tensor, labels: Tensor, names: Sequence[str]) -> Tensor:
    """float32 [P, A * d] from logits [P, A, C] and labels [P]."""
    names = check_features(names)
    probs = torch.softmax(logits.double(), dim=-1)
    columns = []
    for name in names:
        if name == "softmax":
            columns.append(probs)
        elif name == "sorted":
            columns.append(probs.sort(dim=-1, descending=True).values)
        elif name == "max":
            columns.append(probs.amax(-1, keepdim=True))
        elif name == "entropy":
            columns.append(entropy(logits).unsqueeze(-1))
        elif name == "loss":
            columns.append(-true_class_log_prob(logits, labels).unsqueeze(-1))
        else:  # phi
            columns.append(true_class_margin(logits, labels).unsqueeze(-1))
    table = torch.cat(columns, dim=-1)
    return table.reshape(table.shape[0], -1).float()


def shadow_table(shadow_logits: Tensor, keep: Tensor, labels: Tensor, names: Sequence[str], max_samples: int,
                 seed: int) -> tuple[Tensor, Tensor]:
    """Features and keep labels of (shadow, point) pairs, a seeded subsample of max_samples."""
    models, points = keep.shape
    pairs = models * points
    if 0 < max_samples < pairs:
        generator = torch.Generator().manual_seed(derive_seed(seed, "master", "pairs"))
        chosen = torch.randperm(pairs, generator=generator)[:max_samples].sort().values
    else:
        chosen = torch.arange(pairs)
    model, point = chosen // points, chosen % points
    return build_features(shadow_logits[model, point], labels[point], names), keep[model, point].long()


class FeatureDataModule(L.LightningDataModule):
    """Shuffled batches (order a function of seed and epoch) over an in-memory feature table."""

    def __init__(self, features: Tensor, targets: Tensor, batch_size: int, seed: int) -> None:
        super().__init__()
        if features.shape[0] != targets.shape[0] or features.shape[0] == 0:
            raise MiaError(f"feature table needs rows, and one target per row: {tuple(features.shape)} vs "
                           f"{tuple(targets.shape)}")
        self.features = features
        self.targets = targets.long()
        self.batch_size = int(batch_size)
        self.seed = int(seed)

    def train_dataloader(self) -> DataLoader:
        rank, world = rank_and_world(self.trainer)
        sampler = EpochBatchSampler(len(self.targets), self.batch_size, self.seed, rank, world)
        return DataLoader(TensorBatches(self.features, self.targets), batch_size=None, sampler=sampler,
                          num_workers=0)
