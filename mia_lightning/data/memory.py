"""In-memory training data: the whole pool as one tensor, batches sliced by index.

No DataLoader worker processes and no per-sample collation: a batch is one indexing
operation on a tensor that can live on the training device. The shuffling order is a
pure function of (seed, epoch), so a run resumed from an epoch-end checkpoint sees
exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from mia_lightning.utils.seeding import derive_seed


class EpochBatchSampler(Sampler[Tensor]):
    """Shuffled index batches whose order depends only on (seed, epoch, rank)."""

    def __init__(self, num_items: int, batch_size: int, seed: int, rank: int = 0, world_size: int = 1) -> None:
        self.num_items = num_items
        self.batch_size = batch_size
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        # drop a ragged last batch (BatchNorm needs > 1 sample), unless it is the only one
        self.drop_last = self._per_rank() > batch_size

    def _per_rank(self) -> int:
        return self.num_items // self.world_size

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", self.epoch))
        order = torch.randperm(self.num_items, generator=generator)
        order = order[self.rank: self._per_rank() * self.world_size: self.world_size]
        for batch in range(len(self)):
            yield order[batch * self.batch_size: (batch + 1) * self.batch_size]

    def __len__(self) -> int:
        count = self._per_rank()
        return count // self.batch_size if self.drop_last else -(-count // self.batch_size)


class TensorBatches(Dataset):
    """`dataset[index_tensor]` returns the whole batch at once."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, index: Tensor) -> tuple[Tensor, Tensor]:
        index = index.to(self.images.device)
        return self.images[index], self.labels[index]


class InMemoryDataModule(L.LightningDataModule):
    """Training batches from the points `train_index` of an in-memory pool."""

    def __init__(self, images: Tensor, labels: Tensor, train_index: Tensor, batch_size: int, seed: int) -> None:
        super().__init__()
        self.images = images[train_index]
        self.labels = labels[train_index]
        self.batch_size = batch_size
        self.seed = seed

    def to_device(self, device: torch.device) -> None:
        """Keep the training set on the device, so batches never cross the bus."""
        self.images = self.images.to(device, non_blocking=True)
        self.labels = self.labels.to(device, non_blocking=True)

    def train_dataloader(self) -> DataLoader:
        rank, world = 0, 1
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
        sampler = EpochBatchSampler(len(self.labels), self.batch_size, self.seed, rank, world)
        return DataLoader(TensorBatches(self.images, self.labels), batch_size=None, sampler=sampler, num_workers=0)
