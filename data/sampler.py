"""The data order of the loaders: reproducible per epoch, split over processes, startable part-way.

``ResumableSampler`` draws each epoch's order from ``seed + epoch`` (the ``DistributedSampler`` rule) with its
own generator, never from the global RNGs, and can start an epoch part-way, so a run resumed from an iteration
checkpoint sees exactly the batches the uninterrupted run would have seen.

Each index it yields is a ``SampleKey``: the index (an ``int``) carrying the seed of that sample's randomness,
derived from (data seed, epoch, index). ``ReadableSamples`` (data/guard.py) loads the sample inside
``sample_randomness(key.seed)``, which seeds python's ``random``, numpy's global RNG and torch's CPU RNG for that one
sample and puts the previous states back afterwards. Random crops, flips, the unaligned dataset's random B and
whatever else a dataset draws are therefore the same with 0 or N loader workers, in any worker, and after a
resume, and loading never consumes the main process's RNG streams.
"""
from __future__ import annotations

import math
import random
import secrets
import signal
from contextlib import contextmanager
from typing import Any, Iterator, Sized

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

UNSEEDED = -1


def sample_seed(data_seed: int, epoch: int, index: int) -> int:
    """The 63-bit seed of one sample's randomness, a hash of (data seed, epoch, index) (numpy ``SeedSequence``)."""
    words = np.random.SeedSequence([int(data_seed) % 2**63, int(epoch) % 2**63, int(index) % 2**63]).generate_state(
        2, dtype=np.uint32)
    return (int(words[0]) << 31 | int(words[1]) >> 1) & (2**63 - 1)


class SampleKey(int):
    """A dataset index (it is the ``int``) that carries ``seed``, the seed of this sample's randomness."""

    seed: int

    def __new__(cls, index: int, seed: int) -> "SampleKey":
        """The index ``index`` with the sample seed ``seed``."""
        key = int.__new__(cls, index)
        key.seed = int(seed)
        return key

    def __reduce__(self) -> Any:
        """Pickle as (index, seed): keys travel to the loader's worker processes."""
        return (SampleKey, (int(self), self.seed))

    def __repr__(self) -> str:
        """``SampleKey(index, seed=...)``."""
        return f"SampleKey({int(self)}, seed={self.seed})"


@contextmanager
def sample_randomness(seed: int) -> Iterator[None]:
    """Seed python's ``random``, numpy's global RNG and torch's CPU RNG from ``seed`` for the block, then put their
    previous states back (the caller's streams are neither consumed nor changed)."""
    py_state = random.getstate()
    np_state = np.random.get_state()
    torch_state = torch.get_rng_state()
    try:
        random.seed(seed)
        np.random.seed([seed & 0xFFFFFFFF, seed >> 32])
        torch.default_generator.manual_seed(seed)  # the CPU generator only: CUDA's streams are not the data's
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
        torch.set_rng_state(torch_state)

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
    that shrinks after the pre-flight scan (``--bad_data skip``) is handled. The indices are ``SampleKey`` s whose
    seed is ``sample_seed(seed, epoch, index)``. ``loader_generator`` seeds the workers' base seed per epoch, so
    the loader never draws from the global torch RNG.
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
        """This rank's indices of the epoch, from ``start`` on, as ``SampleKey`` s."""
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
        return (SampleKey(i, sample_seed(self.seed, self.epoch, i)) for i in mine[self.start:])  # seeds as drawn

    def __len__(self) -> int:
        """Number of indices the next iteration yields."""
        return max(0, self._share() - self.start)


def make_sampler(dataset: Sized, opt: Any, rank: int = 0, world_size: int = 1) -> ResumableSampler:
    """The sampler of the training/test loader: shuffled unless ``--serial_batches``, seeded by ``choose_data_seed``."""
    return ResumableSampler(dataset, shuffle=not opt.serial_batches, seed=choose_data_seed(opt),
                            num_replicas=world_size, rank=rank)


def quiet_worker(worker_id: int) -> None:
    """``worker_init_fn`` of the data loader: workers ignore Ctrl-C, SIGTERM and SIGHUP (a closed terminal or SSH
    session), on which the main process saves and stops cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for name in ("SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
