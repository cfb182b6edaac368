"""The data order of the loaders: reproducible per epoch, split over processes, startable part-way.

``ResumableSampler`` draws each epoch's order from ``seed + epoch`` (the ``DistributedSampler`` rule) with its
own generator, never from the global RNGs, and can start an epoch part-way, so a run resumed from an iteration
checkpoint sees exactly the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

import math
import secrets
import signal
from typing import Any, Iterator, Sized

import torch
from torch.utils.data.distributed import DistributedSampler

UNSEEDED = -1

def choose_data_seed(opt: Any) -> int:
    """The seed of the data order: ``--seed`` when given; else random (0 under several processes, which must agree)."""
    seed = int(opt.seed)
    if seed >= 0:
        return seed
    if int(opt.world_size) > 1:
        return 0
    return secrets.randbelow(2**31)


class ResumableSampler(DistributedSampler):
    """Per-epoch order from ``seed + epoch`` (shuffled or serial), split over ranks, startable part-way.

    The ``DistributedSampler`` rules apply (pad to a multiple of the world size, rank r takes every r-th index),
    with one process as the special case ``num_replicas=1``. Lengths are computed when iterating, so a dataset
    that shrinks after the pre-flight scan (``--bad_data skip``) is handled. ``loader_generator`` seeds the
    workers' base seed per epoch, so it never draws from the global torch RNG.
    """

    def __init__(self, dataset: Sized, shuffle: bool = True, seed: int = 0, num_replicas: int = 1,
                 rank: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0  # samples of this rank's share of the current epoch to leave out (already trained on)
        self.loader_generator = torch.Generator()
        self.loader_generator.manual_seed(self.seed)

    def set_seed(self, seed: int) -> None:
        """Change the data seed (a resumed run takes the one stored in its training state)."""
        self.seed = int(seed)
        self.set_epoch(self.epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch's order; the part-way start of a resumed epoch is cleared."""
        self.epoch = int(epoch)
        self.start = 0
        self.loader_generator.manual_seed((self.seed * 1_000_003 + self.epoch) % 2**63)

    def resume_at(self, samples_done: int) -> None:
        """Leave out the first ``samples_done`` samples of this rank's share of the current epoch."""
        self.start = max(0, int(samples_done))

    def _share(self) -> int:
        """Samples per rank for the current dataset size."""
        return math.ceil(len(self.dataset) / self.num_replicas)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[int]:
        """This rank's indices of the epoch, from ``start`` on."""
        n = len(self.dataset)  # type: ignore[arg-type]
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.seed + self.epoch)
            indices = torch.randperm(n, generator=g).tolist()
        else:
            indices = list(range(n))
        total = self._share() * self.num_replicas
        if n and total > n:
            indices += (indices * math.ceil((total - n) / n))[: total - n]
        mine = indices[self.rank:total:self.num_replicas]
        return iter(mine[self.start:])

    def __len__(self) -> int:
        """Number of indices the next iteration yields."""
        return max(0, self._share() - self.start)


def make_sampler(dataset: Sized, opt: Any, rank: int = 0, world_size: int = 1) -> ResumableSampler:
    """The sampler of the training/test loader: shuffled unless ``--serial_batches``, seeded by ``choose_data_seed``."""
    return ResumableSampler(dataset, shuffle=not opt.serial_batches, seed=choose_data_seed(opt),
                            num_replicas=world_size, rank=rank)


def quiet_worker(worker_id: int) -> None:
    """``worker_init_fn`` of the data loader: workers ignore Ctrl-C/SIGTERM so the main process can stop cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
