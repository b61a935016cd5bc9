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
from torch.utils.data import DataLoader, Dataset, Sampler, TensorDataset

from mia_lightning.data.augment import augment_generator, crop_flip_one, draw_crop_flip
from mia_lightning.utils.seeding import derive_seed


def rank_and_world(trainer: L.Trainer | None) -> tuple[int, int]:
    """(global rank, world size) of the trainer a DataModule is attached to; (0, 1) alone."""
    return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)


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
        rank, world = rank_and_world(self.trainer)
        sampler = EpochBatchSampler(len(self.labels), self.batch_size, self.seed, rank, world)
        return DataLoader(TensorBatches(self.images, self.labels), batch_size=None, sampler=sampler, num_workers=0)


# --- the plain path (shadow.fast=false) -------------------------------------------------
# A conventional input pipeline, kept as the reference the fast path is measured against:
# a DataLoader over a TensorDataset on the CPU, per-sample augmentation, default collation,
# and a host->device copy per batch (done by Lightning). It draws the same batches (the
# same EpochBatchSampler) and the same augmentation numbers as the fast path, so both
# paths train exactly the same recipe; only where and how the work is done differs.


class KeyedBatchSampler(Sampler[list]):
    """EpochBatchSampler's batches, each index tagged with what its augmentation needs.

    Yields lists of `(position, step, slot, batch_len)`: the sample, the optimizer step
    the batch is for (epoch * batches_per_epoch + batch, i.e. the module's `global_step`),
    its slot in the batch, and the batch's length.
    """

    def __init__(self, batches: EpochBatchSampler) -> None:
        # named `sampler` because Lightning calls `dataloader.batch_sampler.sampler.set_epoch(epoch)`
        self.sampler = batches

    def __iter__(self):
        per_epoch = len(self.sampler)
        for number, batch in enumerate(self.sampler):
            step = self.sampler.epoch * per_epoch + number
            yield [(int(index), step, slot, len(batch)) for slot, index in enumerate(batch.tolist())]

    def __len__(self) -> int:
        return len(self.sampler)


class AugmentedTensorDataset(TensorDataset):
    """(image, label) pairs, each image cropped/flipped on its own on the CPU.

    The numbers are those the fast path draws for the whole batch (`draw_crop_flip` from
    the generator seeded by (seed, "augment", step)); they are drawn once per batch and
    cached, and each sample takes its own slot.
    """

    def __init__(self, images: Tensor, labels: Tensor, seed: int, crop_padding: int, flip: bool) -> None:
        super().__init__(images, labels)
        self.seed = seed
        self.crop_padding = crop_padding
        self.flip = flip
        self._draws: tuple[int, tuple[Tensor, Tensor, Tensor]] | None = None

    def _params(self, step: int, batch_len: int) -> tuple[Tensor, Tensor, Tensor]:
        if self._draws is None or self._draws[0] != step:
            draws = draw_crop_flip(batch_len, self.crop_padding, self.flip, augment_generator(self.seed, step))
            self._draws = (step, draws)
        return self._draws[1]

    def __getitem__(self, key):  # type: ignore[override]
        position, step, slot, batch_len = key
        image, label = self.tensors[0][position], self.tensors[1][position]
        if self.crop_padding or self.flip:
            oy, ox, flips = self._params(step, batch_len)
            image = crop_flip_one(image, self.crop_padding, int(oy[slot]), int(ox[slot]), bool(flips[slot]))
        return image, label


class PlainDataModule(L.LightningDataModule):
    """The plain input pipeline over the points `train_index` (see the note above)."""

    def __init__(self, images: Tensor, labels: Tensor, train_index: Tensor, batch_size: int, seed: int,
                 augment: dict | None = None, num_workers: int = 0) -> None:
        super().__init__()
        augment = augment or {}
        self.dataset = AugmentedTensorDataset(images[train_index].cpu(), labels[train_index].cpu(), seed,
                                              int(augment.get("crop_padding", 0)), bool(augment.get("flip", False)))
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers

    def train_dataloader(self) -> DataLoader:
        rank, world, pin = 0, 1, False
        if self.trainer is not None:
            rank, world = self.trainer.global_rank, self.trainer.world_size
            pin = self.trainer.strategy.root_device.type == "cuda"
        batches = EpochBatchSampler(len(self.dataset), self.batch_size, self.seed, rank, world)
        return DataLoader(self.dataset, batch_sampler=KeyedBatchSampler(batches), num_workers=self.num_workers,
                          pin_memory=pin, persistent_workers=self.num_workers > 0)
