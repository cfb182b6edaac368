"""The opt-in wrappers around a built network, and the way back to the bare module.

``BaseModel.wrap_networks`` applies them in a fixed order: layer swaps and memory format, DDP, ``torch.compile``.
Saving and loading always go through ``unwrap``, so files stay plain official state_dicts.
"""
from __future__ import annotations

import inspect
from typing import Any, Dict

import torch
import torch.nn as nn

from util.distributed import is_distributed

from .layers import enable_cpu_syncbatch, needs_buffer_broadcast, use_fast_kernels

_DDP_ARGS = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters


def unwrap(net: nn.Module) -> nn.Module:
    """The bare module inside DataParallel/DDP (``.module``) and torch.compile (``._orig_mod``) wrappers."""
    while True:
        if isinstance(net, (nn.DataParallel, nn.parallel.DistributedDataParallel)):
            net = net.module
        elif hasattr(net, "_orig_mod"):
            net = net._orig_mod
        else:
            return net


def to_channels_last(net: nn.Module) -> nn.Module:
    """Convert the 4-D parameters and buffers of ``net`` to channels-last memory format (in place).

    Its instance norms must be ``FastInstanceNorm2d`` (``use_fast_kernels``), which keeps activations
    channels-last and avoids the channels-last instance-norm bug described there.
    """
    return use_fast_kernels(net).to(memory_format=torch.channels_last)


def compile_network(net: nn.Module) -> nn.Module:
    """``torch.compile(net)``; the original module stays reachable as ``_orig_mod`` (see ``unwrap``)."""
    if not hasattr(torch, "compile"):
        raise RuntimeError("--compile needs PyTorch >= 2.0 (torch.compile is missing)")
    return torch.compile(net)


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
