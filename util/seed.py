"""Reproducible randomness: seeding, deterministic kernels, RNG states as plain data, a resumable data order.

* ``seed_everything(seed, rank)`` seeds python, numpy and torch (CPU and CUDA) with ``seed + rank``.
* ``capture_rng_state()`` / ``restore_rng_state()`` turn every global RNG state into tensors and plain numbers, so
  the training-state file stays loadable with ``torch.load(weights_only=True)``.
* ``ResumableSampler`` draws each epoch's order from ``seed + epoch`` (the ``DistributedSampler`` rule) with its
  own generator, never from the global RNGs, and can start an epoch part-way, so a run resumed from an iteration
  checkpoint sees exactly the batches the uninterrupted run would have seen.
"""
from __future__ import annotations

import math
import os
import random
import secrets
import signal
from typing import Any, Dict, Iterator, Sized

import numpy as np
import torch
from torch.utils.data.distributed import DistributedSampler

from util.logger import get_logger

log = get_logger(__name__)

UNSEEDED = -1


def seed_everything(seed: int, rank: int = 0, deterministic: bool = False) -> int:
    """Seed python, numpy and torch (+CUDA) with ``seed + rank``; optionally switch to deterministic kernels.

    Returns the seed actually used. ``deterministic`` also sets the cuBLAS workspace variable, which must happen
    before the first CUDA matrix product, so call this before building the model.
    """
    if seed < 0:
        raise ValueError(f"--seed must be >= 0 to seed the run (got {seed}; -1 means not seeded)")
    used = int(seed) + int(rank)
    random.seed(used)
    np.random.seed(used % 2**32)
    torch.manual_seed(used)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(used)
    if deterministic:
        set_deterministic(True)
    return used


def set_deterministic(enabled: bool = True) -> None:
    """Deterministic kernels where PyTorch has them (warn-only where it has none); no cuDNN autotuning."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.deterministic = enabled
    if enabled:
        torch.backends.cudnn.benchmark = False


# ---------------------------------------------------------------------------------------------------- RNG state
def capture_rng_state() -> Dict[str, Any]:
    """Every global RNG state (python, numpy, torch CPU, each CUDA device) as tensors and plain numbers."""
    version, mt, gauss = random.getstate()
    np_kind, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state(legacy=True)
    state: Dict[str, Any] = {
        "python": {"version": int(version), "state": torch.tensor(mt, dtype=torch.int64), "gauss": gauss},
        "numpy": {"kind": str(np_kind), "keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_has_gauss), "gauss": float(np_gauss)},
        "torch": torch.get_rng_state(),
        "cuda": [s.cpu() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    return state


def restore_rng_state(state: Dict[str, Any]) -> None:
    """Put back the RNG states saved by ``capture_rng_state`` (CUDA states only for devices present)."""
    py = state["python"]
    random.setstate((int(py["version"]), tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), int(npst["pos"]),
                         int(npst["has_gauss"]), float(npst["gauss"])))
    torch.set_rng_state(state["torch"].cpu().to(torch.uint8))
    cuda = list(state.get("cuda") or [])
    if cuda and torch.cuda.is_available():
        n = min(len(cuda), torch.cuda.device_count())
        for device in range(n):
            torch.cuda.set_rng_state(cuda[device].cpu().to(torch.uint8), device)


# ---------------------------------------------------------------------------------------------------- data order
def choose_data_seed(opt: Any) -> int:
    """The seed of the data order: ``--seed`` when given; else random (0 under several processes, which must agree)."""
    seed = int(getattr(opt, "seed", UNSEEDED))
    if seed >= 0:
        return seed
    if int(getattr(opt, "world_size", 1)) > 1:
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
    return ResumableSampler(dataset, shuffle=not getattr(opt, "serial_batches", False), seed=choose_data_seed(opt),
                            num_replicas=world_size, rank=rank)


def quiet_worker(worker_id: int) -> None:
    """``worker_init_fn`` of the data loader: workers ignore Ctrl-C/SIGTERM so the main process can stop cleanly."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
