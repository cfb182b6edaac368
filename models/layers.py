"""Layers that replace official ones in place, with the same parameters, buffers and state_dict keys.

``BaseModel.wrap_networks`` swaps them in (``__class__`` assignment) after the networks are built and loaded, so
checkpoints stay official:

* ``FastInstanceNorm2d``: the instance norm computed by other kernels (always on).
* ``FewOutputsConv2d``: a convolution to a few channels (a ResNet's last 7x7 to RGB) computed by other kernels at
  inference, and in ``--amp bf16`` training without AMX (always on; it changes nothing where it does not apply).
* ``ReflectionPad2dKeepDtype`` / ``ReplicationPad2dKeepDtype``: padding that keeps bf16/fp16 activations under
  ``--amp`` instead of upcasting them (and, for reflection on the CPU, a faster backward).
* ``CPUSyncBatchNorm``: ``--norm syncbatch`` for CPU processes under torchrun (gloo).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from util.amp import has_amx_bf16


# ---------------------------------------------------------------------------------------------------- instance norm
class FastInstanceNorm2d(nn.InstanceNorm2d):
    """InstanceNorm2d (no running statistics) computed as ``group_norm`` with one group per channel, or, for
    channels-last inputs, as ``batch_norm`` with batch statistics on each sample.

    The same function with other kernels: about twice as fast on the CPU (forward + backward), a fresh output
    instead of a view (so the in-place ReLU behind it needs no CopySlices in backward), better fp32 accuracy on
    nearly flat channels, channels-last activations kept (the CPU's channels-last ``group_norm`` backward is
    many times slower than ``batch_norm``'s, hence the second form), and free of a PyTorch bug (seen in 2.14 on
    the CPU) where ``instance_norm``'s backward returns wrong gradients for a batch of one with a channels-last
    incoming gradient. Parameters, buffers, state_dict keys and the printed name stay those of InstanceNorm2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalize each channel of each sample over H, W (the official InstanceNorm2d for N, C, H, W inputs)."""
        if x.dim() != 4 or self.track_running_stats:
            return super().forward(x)
        if _is_channels_last(x):
            # one sample's instance norm is batch norm with batch statistics (see the class docstring)
            return torch.cat([self._one_sample(s) for s in x.split(1)]) if x.shape[0] > 1 else self._one_sample(x)
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)

    def _one_sample(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, None, None, self.weight, self.bias, True, 0.0, self.eps)

    def _get_name(self) -> str:
        """Print as the official layer."""
        return "InstanceNorm2d"


def _is_channels_last(x: torch.Tensor) -> bool:
    """Whether ``x`` (N, C, H, W) is laid out channels-last and not also plain contiguous (C or H*W of 1)."""
    return x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


# ---------------------------------------------------------------------------------------------------- narrow convolutions
# out_channels * kernel height up to which the row form is used: beyond it the row convolution's own outputs
# fill the vector lanes and the shifted sums cost more than they save (bench/narrow_conv.py)
FEW_OUTPUTS_ROWS = 32
# under bf16 autocast, the smallest kernel with which it pays: the bf16 kernels run 3x3 and 4x4 convolutions to a
# few channels (PatchGAN's last 4x4 to 1) well enough that the row form is slower there, 5x5 and 7x7 ones not.
# On CPUs with AMX tiles it does not pay under bf16 at all: oneDNN's tile kernels run the official layer faster at
# inference, and in training at the demo's 64 px (bench/narrow_conv.py --dtype bf16 [--grad])
FEW_OUTPUTS_MIN_KERNEL_BF16 = 5


class FewOutputsConv2d(nn.Conv2d):
    """Conv2d to a few output channels, computed on the CPU as one convolution with a (1, kw) kernel and
    ``out_channels * kh`` outputs (one per output channel and kernel row), followed by the sum of its ``kh`` row
    results, each shifted down by its row: at inference in fp32, and under bf16 autocast (``--amp bf16``) in
    training and inference for kernels of 5 rows or more on CPUs without AMX tiles.

    The same function summed in another order (fp32 rounding; under bf16 autocast the row results are bf16, summed
    in fp32). The CPU's convolution kernels fill their vector lanes with output channels, so a convolution to 3
    channels runs as slowly as one to 16; the row form gives them ``3 * kh`` channels of a ``kh`` times smaller
    kernel. fp32 training keeps the official ``Conv2d`` (its numerics exactly), and so do other devices and dtypes.
    Parameters, state_dict keys and the printed name stay those of Conv2d.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The convolution; by kernel rows where that is faster (see the class docstring)."""
        if self._by_rows(x):
            return conv2d_by_rows(x, self.weight, self.bias, self.padding)
        return super().forward(x)

    def _by_rows(self, x: torch.Tensor) -> bool:
        if x.device.type != "cpu" or x.dim() != 4 or self.weight.dtype != torch.float32:
            return False
        if torch.is_autocast_enabled("cpu"):
            # without AMX, faster in forward and backward alike (bench/narrow_conv.py --dtype bf16 [--grad])
            return (torch.get_autocast_dtype("cpu") == torch.bfloat16
                    and self.kernel_size[0] >= FEW_OUTPUTS_MIN_KERNEL_BF16 and not has_amx_bf16())
        return not torch.is_grad_enabled() and x.dtype == torch.float32

    def _get_name(self) -> str:
        """Print as the official layer."""
        return "Conv2d"


def conv2d_by_rows(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                   padding: Tuple[int, int] = (0, 0)) -> torch.Tensor:
    """``F.conv2d(x, weight, bias, 1, padding)`` as one (1, kw) convolution with ``out * kh`` outputs and the sum of
    its kh row results, each shifted by its row (``FewOutputsConv2d``); the weights keep ``x``'s memory layout."""
    out_ch, in_ch, kh, kw = weight.shape
    # rows[ky * out + o, i, 0, kx] = weight[o, i, ky, kx]
    rows = weight.permute(2, 0, 1, 3).reshape(kh * out_ch, in_ch, 1, kw)
    layout = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
    z = F.conv2d(x, rows.contiguous(memory_format=layout), None, 1, padding)
    height = z.shape[2] - kh + 1
    # half-precision row results (bf16 autocast) are summed in fp32 and rounded once, as a convolution does
    acc = torch.float32 if z.dtype in (torch.bfloat16, torch.float16) else z.dtype
    out = z[:, :out_ch, :height].to(acc, copy=True)
    if bias is not None:
        out += bias.view(1, -1, 1, 1)
    for ky in range(1, kh):
        out += z[:, ky * out_ch:(ky + 1) * out_ch, ky:ky + height]
    return out.to(z.dtype)


def _few_outputs(conv: nn.Conv2d) -> bool:
    """Whether ``conv`` can run as ``FewOutputsConv2d`` and gains by it: a plain, dense, stride-1 convolution with
    zero (or no) padding, a kernel of several rows and few output channels."""
    kh = conv.kernel_size[0]
    return (conv.groups == 1 and conv.stride == (1, 1) and conv.dilation == (1, 1) and kh > 1
            and conv.padding_mode == "zeros" and not isinstance(conv.padding, str)
            and conv.out_channels * kh <= FEW_OUTPUTS_ROWS)


def use_fast_kernels(net: nn.Module) -> nn.Module:
    """Switch every plain InstanceNorm2d of ``net`` to ``FastInstanceNorm2d`` and every plain Conv2d to few output
    channels to ``FewOutputsConv2d`` (in place; same weights and keys)."""
    for module in net.modules():
        if type(module) is nn.InstanceNorm2d and not module.track_running_stats:
            module.__class__ = FastInstanceNorm2d
        elif type(module) is nn.Conv2d and _few_outputs(module):
            module.__class__ = FewOutputsConv2d
    return net


# ---------------------------------------------------------------------------------------------------- padding under --amp
class _DtypeKeepingPad:
    """Mixin: run the padding with autocast off, so half-precision activations stay half (a pure copy)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - the padding layer's forward
        with torch.autocast(device_type=x.device.type, enabled=False):
            return super().forward(x)  # type: ignore[misc]


class _ReflectionPad2dFold(torch.autograd.Function):
    """Reflection padding whose backward folds the border gradients back with slices and flips (CPU's own backward
    of a bf16/fp16 pad zero-fills and scatters, several times slower). The same values, summed in another order at
    the borders; double backward works through the slicing ops."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, pad: Tuple[int, int, int, int]) -> torch.Tensor:
        ctx.pad, ctx.size = pad, x.shape[-2:]
        return F.pad(x, pad, mode="reflect")

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Tuple[torch.Tensor, None]:
        (left, right, top, bottom), (h, w) = ctx.pad, ctx.size
        cols = grad[..., :, left:left + w].clone()  # fold the left/right borders onto the columns they mirror
        if left:
            cols[..., :, 1:left + 1] += grad[..., :, :left].flip(-1)
        if right:
            cols[..., :, w - 1 - right:w - 1] += grad[..., :, left + w:].flip(-1)
        out = cols[..., top:top + h, :].clone()  # then the top/bottom rows (corners included)
        if top:
            out[..., 1:top + 1, :] += cols[..., :top, :].flip(-2)
        if bottom:
            out[..., h - 1 - bottom:h - 1, :] += cols[..., top + h:, :].flip(-2)
        return out, None


class ReflectionPad2dKeepDtype(_DtypeKeepingPad, nn.ReflectionPad2d):
    """ReflectionPad2d that does not upcast bf16/fp16 activations under autocast (CPU autocast runs pads in fp32);
    on the CPU, half-precision pads that need a gradient use a faster backward (``_ReflectionPad2dFold``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102 - the padding layer's forward
        if x.dtype in (torch.bfloat16, torch.float16) and x.device.type == "cpu" and x.requires_grad \
                and x.dim() == 4 and max(self.padding) < min(x.shape[-2:]):
            with torch.autocast(device_type="cpu", enabled=False):  # a copy: keep the dtype (F.pad would upcast)
                return _ReflectionPad2dFold.apply(x, tuple(self.padding))
        return super().forward(x)

    def _get_name(self) -> str:
        """Print as the official layer."""
        return "ReflectionPad2d"


class ReplicationPad2dKeepDtype(_DtypeKeepingPad, nn.ReplicationPad2d):
    """ReplicationPad2d that does not upcast bf16/fp16 activations under autocast."""

    def _get_name(self) -> str:
        """Print as the official layer."""
        return "ReplicationPad2d"


_KEEP_DTYPE = {nn.ReflectionPad2d: ReflectionPad2dKeepDtype, nn.ReplicationPad2d: ReplicationPad2dKeepDtype}


def keep_dtype_in_padding(net: nn.Module) -> nn.Module:
    """Switch the padding layers of ``net`` to their dtype-keeping versions (in place; no parameters change).

    CPU autocast lists the padding ops as fp32 ops, so every padded convolution of the ResNet generator would
    cast its bf16 input to fp32 and back (twice more in backward). Padding only copies values, so running it in
    the input's dtype gives identical numbers without the casts.
    """
    for module in net.modules():
        cls = _KEEP_DTYPE.get(type(module))
        if cls is not None:
            module.__class__ = cls
    return net


# ---------------------------------------------------------------------------------------------------- sync batch norm on the CPU
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
