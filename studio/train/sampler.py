"""A resumable, shardable batch sampler: a seeded permutation per epoch plus a batch index.

Every process draws the same permutation (seed + epoch) and the same *global* batch (``world_size
× batch_size`` indices); process ``rank`` takes its slice. So the data position is one number pair
(epoch, batch index) shared by all ranks, a checkpoint can record it, and resuming continues with
exactly the batches an uninterrupted run would have seen. Incomplete last batches are dropped.
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch.utils.data import Sampler


class ResumableBatchSampler(Sampler[list[int]]):
    def __init__(self, dataset_size: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1,
                 shuffle: bool = True):
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        if dataset_size < batch_size * world_size:
            raise ValueError(f"batch_size: dataset has {dataset_size} items, fewer than one global batch "
                             f"({batch_size} × {world_size} processes)")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} outside world of {world_size}")
        self.dataset_size, self.batch_size = dataset_size, batch_size
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle
        self.epoch, self.start = 0, 0

    def __len__(self) -> int:
        """Batches per epoch for this process (the same on every rank)."""
        return self.dataset_size // (self.batch_size * self.world_size)

    def set_position(self, epoch: int, start: int = 0) -> None:
        """The next ``__iter__`` yields epoch ``epoch`` from its batch ``start`` on."""
        if not 0 <= start <= len(self):
            raise ValueError(f"start {start} outside the {len(self)} batches of an epoch")
        self.epoch, self.start = epoch, start

    def permutation(self, epoch: int) -> torch.Tensor:
        if not self.shuffle:
            return torch.arange(self.dataset_size)
        # its own generator: drawing the order never touches the global RNG the model uses
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.dataset_size, generator=g)  # (N,)

    def __iter__(self) -> Iterator[list[int]]:
        perm = self.permutation(self.epoch)
        global_batch = self.batch_size * self.world_size
        for b in range(self.start, len(self)):
            lo = b * global_batch + self.rank * self.batch_size
            yield perm[lo: lo + self.batch_size].tolist()
