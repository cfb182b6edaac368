"""Antialiased down- and up-sampling layers (blur-pool), as used by CUT and FastCUT's networks.

``Downsample(C)`` replaces the stride of a strided convolution: reflection pad 1, then a depthwise stride-2
convolution with the fixed binomial kernel outer([1, 2, 1], [1, 2, 1]) / 16. ``Upsample(C)`` replaces a
transposed convolution's x2: replication pad 1, a depthwise stride-2 transposed convolution (padding 2) with the
kernel outer([1, 3, 3, 1], [1, 3, 3, 1]) / 64 * 4, then the first and the last row and column are dropped, so the
output is exactly 2H x 2W. Both keep their kernel, one copy per channel, in the persistent buffer ``filt`` (it is
part of the checkpoints of the CUT code, so it is part of ours), and have no parameters.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def binomial_kernel(taps: int) -> torch.Tensor:
    """The normalised 2-D binomial kernel with ``taps`` taps per side (outer product of a Pascal row, sum 1)."""
    rows = {3: [1.0, 2.0, 1.0], 4: [1.0, 3.0, 3.0, 1.0]}
    if taps not in rows:
        raise ValueError(f"binomial kernels are defined here for 3 or 4 taps, got {taps}")
    row = torch.tensor(rows[taps])
    kernel = torch.outer(row, row)
    return kernel / kernel.sum()


class Downsample(nn.Module):
    """Blur then subsample by 2: reflection pad 1 + depthwise 3x3 stride-2 conv with a fixed binomial kernel."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = int(channels)
        self.pad = nn.ReflectionPad2d(1)
        self.register_buffer("filt", binomial_kernel(3)[None, None].repeat(self.channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
        return F.conv2d(self.pad(x), self.filt.to(x.dtype), stride=2, groups=self.channels)


class Upsample(nn.Module):
    """Upsample by 2 with a blur: replication pad 1 + depthwise 4x4 stride-2 transposed conv, border trimmed."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = int(channels)
        # x4 (the stride squared): each output pixel receives a quarter of the kernel's taps
        self.register_buffer("filt", (binomial_kernel(4) * 4)[None, None].repeat(self.channels, 1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) -> (N, C, 2H, 2W)."""
        y = F.conv_transpose2d(replicate_pad1(x), self.filt.to(x.dtype), stride=2, padding=2, groups=self.channels)
        return y[:, :, 1:-1, 1:-1]


def replicate_pad1(x: torch.Tensor) -> torch.Tensor:
    """Replication padding by one pixel on each side, written as concatenations.

    The same values as ``nn.ReplicationPad2d(1)`` (a copy of the border rows and columns); its backward under
    ``torch.compile`` fails in PyTorch 2.14 (a stride mismatch in ``replication_pad2d_backward``'s inductor
    lowering), these concatenations compile.
    """
    x = torch.cat((x[:, :, :1], x, x[:, :, -1:]), dim=2)
    return torch.cat((x[:, :, :, :1], x, x[:, :, :, -1:]), dim=3)
