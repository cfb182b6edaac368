"""The opt-in wrappers around a built network, and the way back to the bare module.

``BaseModel.wrap_networks`` applies them in a fixed order: layer swaps and memory format, DDP, ``torch.compile``,
``--amp``.
Saving and loading always go through ``unwrap``, so files stay plain official state_dicts.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Optional

import torch
import torch.nn as nn

from util import amp
from util.distributed import is_distributed

from .layers import enable_cpu_syncbatch, needs_buffer_broadcast, use_fast_kernels

_DDP_ARGS = inspect.signature(nn.parallel.DistributedDataParallel.__init__).parameters


def unwrap(net: nn.Module) -> nn.Module:
    """The bare module inside DataParallel/DDP/MixedPrecision (``.module``) and torch.compile (``._orig_mod``)
    wrappers."""
    while True:
        if isinstance(net, (nn.DataParallel, nn.parallel.DistributedDataParallel, MixedPrecision)):
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
    # only the 4-D tensors: ``Module.to(memory_format=...)`` refuses the 5-D weights of the StyleGAN2 convolutions
    return use_fast_kernels(net)._apply(lambda t: t.contiguous(memory_format=torch.channels_last) if t.dim() == 4
                                        else t)


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


def tree_map(fn: Callable[[Any], Any], value: Any) -> Any:
    """``fn`` applied to every leaf of nested lists, tuples and dicts (a network's inputs or outputs)."""
    if isinstance(value, (list, tuple)):
        mapped = [tree_map(fn, v) for v in value]
        return type(value)(mapped) if type(value) in (list, tuple) else type(value)(*mapped)
    if isinstance(value, dict):
        return {k: tree_map(fn, v) for k, v in value.items()}
    return fn(value)


class MixedPrecision(nn.Module):
    """``--amp``: runs the wrapped network under ``torch.autocast`` and hands back float32 outputs, so the model's
    losses, image pools and pictures stay in float32 as in the default path.

    With an fp16 ``GradScaler`` it also multiplies the gradient entering the network (at its outputs) by the loss
    scale and divides the gradient leaving it (at its inputs): the half-precision backward inside the network
    works on scaled values, the parameter gradients come out scaled (the optimizer steps through the scaler), and
    the other networks and the losses see true gradients.
    """

    def __init__(self, module: nn.Module, mode: str, device: torch.device | str,
                 scaler: Optional[torch.amp.GradScaler] = None) -> None:
        super().__init__()
        self.module = module
        self.mode = mode
        self.device_type = torch.device(device).type
        self.scaler = scaler

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """The wrapped network's forward under autocast, outputs as float32."""
        scale = self._loss_scale(args)
        if scale is not None:
            args = tree_map(lambda t: _scale_gradient(t, 1.0 / scale), args)
        with amp.autocast(self.mode, self.device_type):
            out = self.module(*args, **kwargs)
        out = tree_map(amp.to_float, out)
        if scale is not None:
            out = tree_map(lambda t: _scale_gradient(t, scale), out)
        return out

    def _loss_scale(self, args: Any) -> Optional[torch.Tensor]:
        """The scaler's current loss scale as a tensor (None without a scaler or outside autograd)."""
        if self.scaler is None or not torch.is_grad_enabled():
            return None
        device = next((a.device for a in args if isinstance(a, torch.Tensor)), torch.device(self.device_type))
        return self.scaler.scale(torch.ones((), device=device))


def _scale_gradient(value: Any, factor: torch.Tensor) -> Any:
    """``value`` unchanged, but the gradient that flows back through it multiplied by ``factor``."""
    if not isinstance(value, torch.Tensor) or not value.requires_grad or not value.is_floating_point():
        return value
    value = value.view_as(value)  # a node of its own: the hook scales only this path's gradient
    value.register_hook(lambda grad: grad * factor)
    return value


def wrap_mixed_precision(net: nn.Module, mode: str, device: torch.device | str,
                         scaler: Optional[torch.amp.GradScaler] = None) -> nn.Module:
    """``MixedPrecision(net)`` for ``--amp bf16|fp16``; ``net`` unchanged for ``none``."""
    return net if mode == "none" else MixedPrecision(net, mode, device, scaler)
