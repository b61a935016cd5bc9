"""In-memory batches for G stacked models: one batch per model per step, from its own IN set.

The pool is kept once on the device (not G copies); each model g has its own IN-set index
(`train_indices[g]`, pool positions) and its own `EpochBatchSampler` seeded with its own
seed, so model g sees exactly the batches the single-model path would give the shadow it
stands for. A step's batch is `images[pool_index]` with `pool_index` of shape [G, B]:
images [G, B, C, H, W] and labels [G, B].

All G samplers must cut their epoch into the same batch sizes (`batch_plan`): the stack
takes one optimizer step for all models together. `shadows.stacked_training` only stacks
shadows whose plans agree (it trains any other shadow on its own), so no model ever
drops, repeats or pads a batch relative to its single-model recipe.
"""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from mia_lightning.data.memory import EpochBatchSampler, rank_and_world


def batch_plan(num_items: int, batch_size: int, world_size: int = 1) -> tuple[int, ...]:
    """The batch sizes one epoch of `EpochBatchSampler(num_items, batch_size)` yields, in order."""
    sampler = EpochBatchSampler(num_items, batch_size, seed=0, rank=0, world_size=world_size)
    per_rank = num_items // world_size
    return tuple(min(batch_size, per_rank - i * batch_size) for i in range(len(sampler)))


class StackedBatchSampler(Sampler[Tensor]):
    """[G, B] positions (row g indexes model g's IN set); each row a pure function of (seed_g, epoch)."""

    def __init__(self, sizes: Sequence[int], batch_size: int, seeds: Sequence[int], rank: int = 0,
                 world_size: int = 1) -> None:
        if len(sizes) != len(seeds):
            raise ValueError(f"{len(sizes)} IN-set sizes but {len(seeds)} seeds")
        plans = {batch_plan(n, batch_size, world_size) for n in sizes}
        if len(plans) != 1:
            raise ValueError(f"stacked models need the same batches per epoch; IN-set sizes {list(sizes)} "
                             f"give different plans at batch size {batch_size}")
        self.samplers = [EpochBatchSampler(n, batch_size, s, rank, world_size) for n, s in zip(sizes, seeds)]

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at the start of every epoch."""
        for sampler in self.samplers:
            sampler.set_epoch(epoch)

    def __iter__(self):
        for rows in zip(*self.samplers):
            yield torch.stack(rows)

    def __len__(self) -> int:
        return len(self.samplers[0])


class StackedTensorBatches(Dataset):
    """`dataset[positions]` ([G, B]) -> (images [G, B, C, H, W], labels [G, B]) from the shared pool."""

    def __init__(self, images: Tensor, labels: Tensor, member_index: Tensor) -> None:
        self.images = images
        self.labels = labels
        self.member_index = member_index  # [G, max IN size] pool positions (rows padded with 0)

    def __len__(self) -> int:
        return int(self.member_index.shape[1])

    def __getitem__(self, positions: Tensor) -> tuple[Tensor, Tensor]:
        positions = positions.to(self.member_index.device)
        pool = self.member_index.gather(1, positions)
        return self.images[pool], self.labels[pool]


class StackedMemoryDataModule(L.LightningDataModule):
    """Training batches for G models from one in-memory pool (see the module docstring)."""

    def __init__(self, images: Tensor, labels: Tensor, train_indices: Sequence[Tensor], batch_size: int,
                 seeds: Sequence[int]) -> None:
        super().__init__()
        if len(train_indices) != len(seeds):
            raise ValueError(f"{len(train_indices)} IN sets but {len(seeds)} seeds")
        self.sizes = [int(len(index)) for index in train_indices]
        # only the points some model trains on; member_index maps into this subset
        used, inverse = torch.unique(torch.cat(list(train_indices)), return_inverse=True)
        self.images = images[used]
        self.labels = labels[used]
        member_index = torch.zeros(len(train_indices), max(self.sizes), dtype=torch.long)
        for g, part in enumerate(inverse.split(self.sizes)):
            member_index[g, : len(part)] = part
        self.member_index = member_index
        self.batch_size = batch_size
        self.seeds = [int(s) for s in seeds]

    def to_device(self, device: torch.device) -> None:
        """Keep the training points on the device, so batches never cross the bus."""
        self.images = self.images.to(device, non_blocking=True)
        self.labels = self.labels.to(device, non_blocking=True)
        self.member_index = self.member_index.to(device, non_blocking=True)

    def train_dataloader(self) -> DataLoader:
        rank, world = rank_and_world(self.trainer)
        sampler = StackedBatchSampler(self.sizes, self.batch_size, self.seeds, rank, world)
        return DataLoader(StackedTensorBatches(self.images, self.labels, self.member_index), batch_size=None,
                          sampler=sampler, num_workers=0)
