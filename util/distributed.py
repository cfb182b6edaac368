"""Several processes with ``torchrun``: the process group, rank helpers, the rank-aware console.

``torchrun --nproc_per_node=N train.py ...`` (one node) or with ``--nnodes/--rdzv_*`` (several nodes) starts N
processes with the environment variables RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; nothing else
is needed in the code. ``init_distributed(opt)`` joins the process group (NCCL on GPUs, gloo on the CPU) when
WORLD_SIZE > 1 (``models.wrappers.wrap_ddp`` then puts each trainable network in ``DistributedDataParallel``). See
docs/distributed.md for the recipes and what is per process.
"""
from __future__ import annotations

import argparse
import inspect
import logging
import os
from typing import Optional

import torch
import torch.distributed as dist

from util.logger import ROOT_NAME, get_logger

log = get_logger(__name__)


# ---------------------------------------------------------------------------------------------------- environment
def env_int(name: str, default: int) -> int:
    """An integer environment variable set by torchrun (``default`` when absent); a clear error when malformed."""
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer (it is set by torchrun)") from None


def is_distributed() -> bool:
    """True when a process group with more than one process is initialised."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def get_rank() -> int:
    """This process's global rank (0 without a process group; RANK before ``init_distributed``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return env_int("RANK", 0)


def get_world_size() -> int:
    """Number of processes (1 without a process group; WORLD_SIZE before ``init_distributed``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return env_int("WORLD_SIZE", 1)


def is_main_process() -> bool:
    """True on rank 0, the only process that writes files, pages and logs."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every process (a no-op without a process group)."""
    if is_distributed():
        dist.barrier()


def all_reduce_max(value: float) -> float:
    """The largest ``value`` over all processes (one one-element all-reduce; ``value`` itself without a group)."""
    if not is_distributed():
        return value
    device = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else "cpu"
    tensor = torch.tensor([float(value)], device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return float(tensor.item())


def any_process(flag: bool) -> bool:
    """``flag`` in this or any other process.

    Decisions that end or change a step (a stop request, a non-finite loss) must be taken by every process alike,
    or the others wait forever in their next collective call.
    """
    return all_reduce_max(1.0 if flag else 0.0) > 0


# ---------------------------------------------------------------------------------------------------- set-up
def init_distributed(opt: argparse.Namespace) -> None:
    """Join the process group when torchrun started several processes; set opt.rank/world_size/local_rank/device.

    One process (no torchrun, or ``--nproc_per_node=1``) changes nothing but ``opt.local_rank`` (0). Otherwise
    the backend is NCCL when the process has a GPU (``opt.device`` is ``cuda:LOCAL_RANK``, chosen by the options)
    and gloo on the CPU (``--gpu_ids -1`` or no CUDA).
    """
    world_size = env_int("WORLD_SIZE", 1)
    opt.rank = env_int("RANK", 0)
    opt.world_size = world_size
    opt.local_rank = env_int("LOCAL_RANK", 0)
    if world_size <= 1:
        return
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this PyTorch build has no torch.distributed support")
    device = torch.device(opt.device)
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if opt.local_rank >= count:
            raise RuntimeError(f"LOCAL_RANK {opt.local_rank} has no GPU: only {count} visible (CUDA_VISIBLE_DEVICES); "
                               "lower torchrun's --nproc_per_node")
        device = torch.device("cuda", opt.local_rank)
        torch.cuda.set_device(device)
        opt.gpu_ids = [opt.local_rank]
    opt.device = device
    if not dist.is_initialized():
        if device.type == "cuda":
            # device_id (PyTorch >= 2.3) binds NCCL to this GPU at once (no "No device id is provided" warning)
            bind = {"device_id": device} if "device_id" in inspect.signature(dist.init_process_group).parameters else {}
            dist.init_process_group(backend="nccl", **bind)
        else:
            dist.init_process_group(backend="gloo")
    if dist.get_world_size() != world_size or dist.get_rank() != opt.rank:
        raise RuntimeError(f"process group (rank {dist.get_rank()} of {dist.get_world_size()}) does not match "
                           f"RANK={opt.rank} WORLD_SIZE={world_size}")
    log.info("distributed training: %d processes, backend %s, rank %d on %s", world_size, dist.get_backend(),
             opt.rank, device)


def cleanup_distributed(wait_for_peers: bool = False) -> None:
    """Leave the process group (a no-op when there is none).

    ``wait_for_peers`` (the normal end of a run) first waits at a barrier: a process that shuts its connections
    while a peer still has bytes in flight to it makes the peer's gloo thread abort the whole process. After an
    error the peers may be inside another collective, so no barrier is attempted then.
    """
    if dist.is_available() and dist.is_initialized():
        if wait_for_peers:
            dist.barrier()
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------------- console
class RankFilter(logging.Filter):
    """On ranks other than 0: drop messages below WARNING and prefix the others with ``[Rank r] ``."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = int(rank)

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep every record on rank 0; on other ranks only warnings and errors, marked with the rank."""
        if self.rank == 0:
            return True
        if record.levelno < logging.WARNING:
            return False
        if not getattr(record, "_rank_prefixed", False):
            record.msg = f"[Rank {self.rank}] {record.msg}"
            record._rank_prefixed = True  # type: ignore[attr-defined]
        return True


def setup_rank_logging(rank: Optional[int] = None) -> None:
    """Make the framework console rank-aware (call after ``setup_logging``; ``rank`` defaults to env RANK).

    Rank 0 prints everything (the official console lines, once); the other ranks print only warnings and errors,
    prefixed ``[Rank r]``. Safe to call more than once.
    """
    rank = env_int("RANK", 0) if rank is None else int(rank)
    for handler in logging.getLogger(ROOT_NAME).handlers:
        for old in [f for f in handler.filters if isinstance(f, RankFilter)]:
            handler.removeFilter(old)
        if rank != 0:
            handler.addFilter(RankFilter(rank))
