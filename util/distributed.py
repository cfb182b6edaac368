"""Several processes with ``torchrun``: the process group, rank helpers, rank-aware console, DDP wrapping.

``torchrun --nproc_per_node=N train.py ...`` (one node) or with ``--nnodes/--rdzv_*`` (several nodes) starts N
processes with the environment variables RANK, LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT; nothing else
is needed in the code. ``init_distributed(opt)`` joins the process group (NCCL on GPUs, gloo on the CPU) when
WORLD_SIZE > 1, and ``wrap_ddp`` puts each trainable network in ``DistributedDataParallel``. See
docs/distributed.md for the recipes and what is per process.
"""
from __future__ import annotations

import argparse
import inspect
import logging
import os
from typing import Any, Dict, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn

from util.logger import ROOT_NAME, get_logger

log = get_logger(__name__)

_DDP_ARGS = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters


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
    device = torch.device(getattr(opt, "device", None) or "cpu")
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


def cleanup_distributed() -> None:
    """Leave the process group (a no-op when there is none)."""
    if dist.is_available() and dist.is_initialized():
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


# ---------------------------------------------------------------------------------------------------- DDP
class AllReduceSum(torch.autograd.Function):
    """Sum a tensor over the processes; the gradient is summed over the processes too (autograd-aware)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, group: Any) -> torch.Tensor:
        """All-reduce (sum) a copy of ``tensor``."""
        ctx.group = group
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=group)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[torch.Tensor, None]:
        """Every process's output depends on every input: sum the incoming gradients."""
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM, group=ctx.group)
        return grad, None


class CPUSyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Synchronised batch norm for CPU processes (gloo); PyTorch's SyncBatchNorm only supports GPUs.

    ``enable_cpu_syncbatch`` turns ``nn.SyncBatchNorm`` layers into this class in place (same parameters, buffers
    and state_dict keys; DDP refuses SyncBatchNorm on the CPU, hence not a subclass of it). In training under a
    process group, the batch mean and variance are taken over the samples of every process (autograd-aware
    all-reduces of the sums, then of the squared deviations), so the result and the gradients equal BatchNorm on
    the concatenated global batch. In eval mode, or without a process group, it is plain batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        """Any input with a channel axis (N, C, ...), as nn.SyncBatchNorm."""
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        """Batch norm with global statistics in distributed training; plain batch norm otherwise."""
        group = getattr(self, "process_group", None)
        if group is None and dist.is_available() and dist.is_initialized():
            group = dist.group.WORLD
        if not self.training or group is None or dist.get_world_size(group) < 2:
            return super().forward(input)
        self._check_input_dim(input)
        dtype = input.dtype
        x = input.float() if dtype in (torch.float16, torch.bfloat16) else input  # statistics in fp32 at least
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked)
        channels = x.shape[1]
        dims = [0] + list(range(2, x.dim()))
        shape = [1, channels] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() // max(channels, 1)], dtype=x.dtype)
        sums = AllReduceSum.apply(torch.cat([x.sum(dims), count]), group)
        n = sums[channels]
        mean = sums[:channels] / n
        centred = x - mean.view(shape)
        var = AllReduceSum.apply((centred * centred).sum(dims), group) / n
        out = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.weight is not None:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                unbiased = var.detach() * (n / torch.clamp(n - 1, min=1))
                self.running_mean.mul_(1 - factor).add_(mean.detach(), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased, alpha=factor)
        return out.to(dtype)


def enable_cpu_syncbatch(net: nn.Module) -> int:
    """Turn every ``nn.SyncBatchNorm`` in ``net`` into ``CPUSyncBatchNorm`` in place; return how many."""
    n = 0
    for module in net.modules():
        if isinstance(module, nn.SyncBatchNorm):
            module.__class__ = CPUSyncBatchNorm
            n += 1
    return n


def needs_buffer_broadcast(net: nn.Module) -> bool:
    """Plain BatchNorm keeps per-process running statistics: DDP must copy rank 0's before each forward.

    SyncBatchNorm's statistics are already global (identical everywhere) and instance norm has none, so they
    skip the broadcast (which also breaks networks called twice before one backward).
    """
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm)
               and not isinstance(m, (nn.SyncBatchNorm, CPUSyncBatchNorm)) and m.track_running_stats
               for m in net.modules())


def wrap_ddp(net: nn.Module, device: torch.device | str) -> nn.Module:
    """``DistributedDataParallel(net)`` under a multi-process group; ``net`` unchanged otherwise.

    Networks without trainable parameters stay unwrapped. The construction broadcasts rank 0's parameters and
    buffers, so every process starts from the same weights whatever its seed. Gradients are averaged over the
    processes (a mean, like one process with the global batch).
    """
    if not is_distributed() or not any(p.requires_grad for p in net.parameters()):
        return net
    device = torch.device(device)
    if device.type == "cpu":
        enable_cpu_syncbatch(net)
    kwargs: Dict[str, Any] = {"gradient_as_bucket_view": True}
    # Whether to copy rank 0's buffers before every forward (parameters are always copied at construction).
    sync_key = "forward_sync_buffers" if "forward_sync_buffers" in _DDP_ARGS else "broadcast_buffers"
    kwargs[sync_key] = needs_buffer_broadcast(net)
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        kwargs.update(device_ids=[index], output_device=index)
    return nn.parallel.DistributedDataParallel(net, **kwargs)
