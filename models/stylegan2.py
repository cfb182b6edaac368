"""StyleGAN2-style generator and discriminator, in the form the CUT code trains SinCUT with (``--netG/--netD
stylegan2``).

Karras et al., "Analyzing and Improving the Image Quality of StyleGAN" (CVPR 2020). The CUT repository builds its
single-image networks from StyleGAN2's parts (equalized learning rate, blurred resampling, residual blocks,
demodulated convolutions with noise) and uses no style vector: SinCUT's generator is an image-to-image
encoder-decoder, its discriminator a whole-image critic. This file rebuilds those networks in plain PyTorch:

* the module names, the parameter and buffer shapes and the ``state_dict`` keys are the CUT code's
  (``encoder.convs.2.conv2.1.weight``, ``decoder.convs.3.conv.blur.kernel``, ``final_linear.0.weight``, ...), so
  a SinCUT generator trained there loads here and the reverse;
* no custom CUDA kernels: the blur is a depthwise convolution, the biased leaky ReLU two element-wise ops, the
  style-free modulated convolution one ordinary (transposed) convolution with the demodulated weight, so the
  networks run on the CPU, under ``--amp`` and under ``torch.compile``;
* the channel counts follow the CUT code's tables (a width per resolution, scaled by ``ngf`` / ``ndf``), extended
  beyond them by the same rule and kept at least 1;
* our additions: the generator pads any input to a multiple of ``2 ** num_downsampling`` and crops the output
  back (as our ResNets do), takes ``input_nc``/``output_nc`` channels (the CUT code fixes 3), and the
  discriminator average-pools its last feature map to 4x4 when an input is not the size it was built for (the
  CUT code accepts only that size; at that size the pooling is not applied and the numbers are the CUT code's).

Both networks initialise themselves (unit-normal weights scaled at run time, zero biases), as in the CUT code,
which skips ``--init_type`` for them: ``initializes_itself`` tells ``networks.init_net``.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .antialias import binomial_kernel

BLUR_TAPS = 4  # per side: the 4-tap binomial filter (1, 3, 3, 1) of every blurred resampling
# Generator variants of the CUT code: residual blocks (split evenly between encoder and decoder) and whether the
# upsampling convolutions add noise.
GENERATOR_VARIANTS = {"stylegan2": {"n_blocks": 6, "inject_noise": True},
                      "smallstylegan2": {"n_blocks": 2, "inject_noise": False}}


def resolution_for(load_size: int, crop_size: int) -> int:
    """The resolution whose channel table the networks use: the power of two nearest to the smaller of
    ``--load_size`` and ``--crop_size`` (in the log domain), as the CUT code derives it."""
    return 2 ** int(round(math.log2(max(1, min(int(load_size), int(crop_size))))))


def generator_width(resolution: int, ngf: int) -> int:
    """Channels of the generator's features at ``resolution``: 16384 * (ngf / 32) / resolution, rounded, at most
    512 up to 32x32 (the CUT code's table for 4 .. 1024, by the same rule beyond it); at least 1."""
    width = round(16384 * (ngf / 32) / resolution)
    return max(1, min(512, width) if resolution <= 32 else width)


def discriminator_width(resolution: int, ndf: int) -> int:
    """Channels of the discriminator's features at ``resolution``: 16384 * (ndf / 64) / resolution, truncated, at
    most 384 up to 32x32 (the CUT code's table, by the same rule beyond it); at least 1."""
    width = int(16384 * (ndf / 64) / resolution)
    return max(1, min(384, width) if resolution <= 32 else width)


def check_power_of_two(size: int, what: str) -> int:
    """``size`` when it is a power of two of at least 4, else a ValueError naming ``what``."""
    size = int(size)
    if size < 4 or size & (size - 1):
        raise ValueError(f"{what}: the StyleGAN2 networks are built for a power-of-two resolution of at least 4, "
                         f"got {size}")
    return size


# ---------------------------------------------------------------------------------------------------- layers
class BiasedLeakyReLU(nn.Module):
    """``leaky_relu(x + bias, 0.2) * sqrt(2)`` with a learned per-channel bias (StyleGAN2's fused activation)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Add the bias, apply the leaky ReLU, restore the signal's magnitude."""
        return F.leaky_relu(x + self.bias, 0.2) * math.sqrt(2.0)


class ScaledLeakyReLU(nn.Module):
    """``leaky_relu(x, 0.2) * sqrt(2)`` (the activation of a bias-free layer)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Leaky ReLU with its gain."""
        return F.leaky_relu(x, 0.2) * math.sqrt(2.0)


class Blur(nn.Module):
    """Zero-pad by ``pad`` = (before, after) on both axes, then filter every channel with the normalised 4x4
    binomial kernel (times ``gain``: 4 after a 2x upsampling, which leaves three of four pixels empty)."""

    def __init__(self, pad: Tuple[int, int], gain: float = 1.0) -> None:
        super().__init__()
        self.register_buffer("kernel", binomial_kernel(BLUR_TAPS) * gain)
        self.pad = (int(pad[0]), int(pad[1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The blurred map (a depthwise convolution; the kernel is symmetric, so correlation = convolution)."""
        channels = x.shape[1]
        p0, p1 = self.pad
        weight = self.kernel.to(x.dtype)[None, None].expand(channels, 1, -1, -1)
        return F.conv2d(F.pad(x, [p0, p1, p0, p1]), weight, groups=channels)


class EqualConv2d(nn.Module):
    """A convolution with equalized learning rate: unit-normal weights multiplied by 1/sqrt(fan_in) at run
    time."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.stride, self.padding = stride, padding
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve with the scaled weight."""
        return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)

    def extra_repr(self) -> str:
        """in, out, kernel, stride, padding."""
        out_c, in_c, k, _ = self.weight.shape
        return f"{in_c}, {out_c}, {k}, stride={self.stride}, padding={self.padding}"


class EqualLinear(nn.Module):
    """A linear layer with equalized learning rate, optionally followed by the biased leaky ReLU."""

    def __init__(self, in_dim: int, out_dim: int, activate: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim))
        self.bias = nn.Parameter(torch.zeros(out_dim))
        self.scale = 1.0 / math.sqrt(in_dim)
        self.activate = activate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x W^T * scale + b``, then the activation if any."""
        if self.activate:
            return F.leaky_relu(F.linear(x, self.weight * self.scale) + self.bias, 0.2) * math.sqrt(2.0)
        return F.linear(x, self.weight * self.scale, self.bias)

    def extra_repr(self) -> str:
        """in, out, activation."""
        return f"{self.weight.shape[1]}, {self.weight.shape[0]}, activate={self.activate}"


class ConvLayer(nn.Sequential):
    """[Blur,] EqualConv2d[, activation]: a stride-2 convolution after the blur when ``downsample`` (pads chosen so
    an even side halves exactly), else a same-size one. With ``activate``, the bias sits in the activation (or, for
    ``bias=False``, there is none)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, downsample: bool = False,
                 bias: bool = True, activate: bool = True) -> None:
        layers: List[nn.Module] = []
        if downsample:
            extra = (BLUR_TAPS - 2) + (kernel_size - 1)
            layers.append(Blur(((extra + 1) // 2, extra // 2)))
            stride, padding = 2, 0
        else:
            stride, padding = 1, kernel_size // 2
        layers.append(EqualConv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                                  bias=bias and not activate))
        if activate:
            layers.append(BiasedLeakyReLU(out_channels) if bias else ScaledLeakyReLU())
        super().__init__(*layers)


class ResBlock(nn.Module):
    """Two 3x3 ConvLayers (the second downsampling if asked) plus a skip path (a 1x1 ConvLayer when the shape
    changes), summed and divided by sqrt(2)."""

    def __init__(self, in_channels: int, out_channels: int, downsample: bool = True) -> None:
        super().__init__()
        self.conv1 = ConvLayer(in_channels, in_channels, 3)
        self.conv2 = ConvLayer(in_channels, out_channels, 3, downsample=downsample)
        if in_channels != out_channels or downsample:
            self.skip: nn.Module = ConvLayer(in_channels, out_channels, 1, downsample=downsample, bias=False,
                                             activate=False)
        else:
            self.skip = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(residual path + skip path) / sqrt(2)."""
        return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)


class NoiseInjection(nn.Module):
    """Adds ``weight`` times fresh unit-normal noise (one map per sample, shared by the channels); ``weight``
    starts at 0. The noise comes from torch's generator at every call, in training and at test time alike.
    ``trainable=False`` (noise off: the weight is never used) keeps ``weight`` as a buffer: the same key, but no
    parameter without a gradient (an optimizer state that never fills, DDP's unused-parameter error)."""

    def __init__(self, trainable: bool = True) -> None:
        super().__init__()
        if trainable:
            self.weight = nn.Parameter(torch.zeros(1))
        else:
            self.register_buffer("weight", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x + weight * noise``."""
        noise = torch.randn((x.shape[0], 1, x.shape[2], x.shape[3]), device=x.device, dtype=x.dtype)
        return x + self.weight * noise


class ModulatedConv2d(nn.Module):
    """StyleGAN2's demodulated convolution without a style input (as SinCUT uses it): the weight is scaled by
    1/sqrt(fan_in), each output filter normalised to unit length, and the result applied as one ordinary
    convolution; with ``upsample`` a stride-2 transposed convolution followed by a blur (gain 4), which doubles
    each side exactly. The weight keeps StyleGAN2's leading batch axis of 1 (the checkpoints' shape)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, upsample: bool = False,
                 demodulate: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channels, in_channels, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channels * kernel_size ** 2)
        self.padding = kernel_size // 2
        self.upsample, self.demodulate = upsample, demodulate
        if upsample:
            extra = (BLUR_TAPS - 2) - (kernel_size - 1)
            self.blur = Blur(((extra + 1) // 2 + 1, extra // 2 + 1), gain=4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The (upsampling) convolution with the demodulated weight."""
        weight = self.weight[0] * self.scale
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        if self.upsample:
            return self.blur(F.conv_transpose2d(x, weight.transpose(0, 1), stride=2))
        return F.conv2d(x, weight, padding=self.padding)

    def extra_repr(self) -> str:
        """in, out, kernel, upsample."""
        _, out_c, in_c, k, _ = self.weight.shape
        return f"{in_c}, {out_c}, {k}, upsample={self.upsample}"


class StyledConv(nn.Module):
    """ModulatedConv2d, optional noise, biased leaky ReLU (the ``noise`` weight exists either way, as in the CUT
    code's checkpoints)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, upsample: bool = False,
                 inject_noise: bool = True) -> None:
        super().__init__()
        self.inject_noise = inject_noise
        self.conv = ModulatedConv2d(in_channels, out_channels, kernel_size, upsample=upsample)
        self.noise = NoiseInjection(trainable=inject_noise)
        self.activate = BiasedLeakyReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolve, add noise (if on), activate."""
        x = self.conv(x)
        if self.inject_noise:
            x = self.noise(x)
        return self.activate(x)


# ---------------------------------------------------------------------------------------------------- generator
class StyleGAN2Encoder(nn.Module):
    """``convs``: the input itself (index 0, so PatchNCE can compare pixels), a 1x1 ConvLayer, ``num_downsampling``
    downsampling ResBlocks, ``n_blocks // 2`` ResBlocks."""

    def __init__(self, input_nc: int, ngf: int, size: int, num_downsampling: int, n_blocks: int) -> None:
        super().__init__()
        res = size
        layers: List[nn.Module] = [nn.Identity(), ConvLayer(input_nc, generator_width(res, ngf), 1)]
        for _ in range(num_downsampling):
            layers.append(ResBlock(generator_width(res, ngf), generator_width(res // 2, ngf), downsample=True))
            res //= 2
        layers += [ResBlock(generator_width(res, ngf), generator_width(res, ngf), downsample=False)
                   for _ in range(n_blocks // 2)]
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The encoded feature map."""
        return self.convs(x)


class StyleGAN2Decoder(nn.Module):
    """``convs``: ``n_blocks // 2`` ResBlocks, ``num_downsampling`` upsampling StyledConvs, a 1x1 ConvLayer to the
    output channels (its activation included: the output is not squashed into [-1, 1], as in the CUT code)."""

    def __init__(self, output_nc: int, ngf: int, size: int, num_downsampling: int, n_blocks: int,
                 inject_noise: bool) -> None:
        super().__init__()
        res = size // 2 ** num_downsampling
        layers: List[nn.Module] = [ResBlock(generator_width(res, ngf), generator_width(res, ngf), downsample=False)
                                   for _ in range(n_blocks // 2)]
        for _ in range(num_downsampling):
            layers.append(StyledConv(generator_width(res, ngf), generator_width(res * 2, ngf), 3, upsample=True,
                                     inject_noise=inject_noise))
            res *= 2
        layers.append(ConvLayer(generator_width(res, ngf), output_nc, 1))
        self.convs = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The image decoded from the feature map."""
        return self.convs(x)


class StyleGAN2Generator(nn.Module):
    """SinCUT's generator: ``encoder`` then ``decoder`` (the CUT code's ``StyleGAN2Generator``).

    ``size`` is the resolution of the channel table (``resolution_for(load_size, crop_size)`` in training, 64 for
    SinCUT's defaults); the network itself is fully convolutional and takes any input size (padded to a multiple
    of ``2 ** num_downsampling``, the output cropped back). ``net(x, layers, encode_only=True)`` returns the
    encoder's outputs at the indices ``layers`` (into ``encoder.convs``), as the ResNet generators do for PatchNCE.
    """

    initializes_itself = True  # StyleGAN2's own initialisation; --init_type does not apply
    takes_norm = False  # no normalization layers: --norm does not apply

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64, size: int = 64, num_downsampling: int = 1,
                 n_blocks: int = 6, inject_noise: bool = True) -> None:
        size = check_power_of_two(size, "the generator's resolution")
        if num_downsampling < 0 or size >> num_downsampling < 1:
            raise ValueError(f"--stylegan2_G_num_downsampling {num_downsampling}: the generator's resolution {size} "
                             f"(from --load_size/--crop_size) halves to less than 1; use at most "
                             f"{int(math.log2(size))}")
        super().__init__()
        self.size_multiple = 2 ** num_downsampling
        self.min_side = 1  # any input is padded to a multiple of 2 ** num_downsampling first
        self.encoder = StyleGAN2Encoder(input_nc, ngf, size, num_downsampling, n_blocks)
        self.decoder = StyleGAN2Decoder(output_nc, ngf, size, num_downsampling, n_blocks, inject_noise)

    @property
    def model(self) -> nn.Sequential:
        """Encoder then decoder as one module (not a registered child, so the keys stay the CUT code's): the
        network without the padding, for export.py."""
        return nn.Sequential(self.encoder, self.decoder)

    def forward(self, x: torch.Tensor, layers: Sequence[int] = (), encode_only: bool = False) -> Any:
        """Translate ``x`` (any H, W), or also return encoder features: with ``layers`` the outputs of those
        encoder layers; with ``encode_only`` only them (the decoder is not run), otherwise ``(output, list)``."""
        from .networks import pad_to_multiple  # networks imports this module

        x, h, w = pad_to_multiple(x, self.size_multiple)
        feats: List[torch.Tensor] = []
        if layers:
            wanted, last = {int(i) for i in layers}, max(int(i) for i in layers)
            for index, layer in enumerate(self.encoder.convs):
                x = layer(x)
                if index in wanted:
                    feats.append(x)
                if encode_only and index == last:
                    return feats
            if encode_only:
                return feats
        else:
            x = self.encoder(x)
        y = self.decoder(x)
        y = y[..., :h, :w] if y.shape[-2:] != (h, w) else y
        return (y, feats) if layers else y


def draws_noise(net: nn.Module) -> bool:
    """Whether ``net`` adds random noise in its forward pass (a StyledConv with noise on and a non-zero noise
    weight): its output then depends on torch's generator."""
    return any(isinstance(m, StyledConv) and m.inject_noise and bool(m.noise.weight.detach().ne(0).any())
               for m in net.modules())


def infer_extras(state_dict: Mapping[str, torch.Tensor], ngf: int) -> Dict[str, int]:
    """``stylegan2_size`` and ``stylegan2_G_num_downsampling`` of a StyleGAN2 generator's weights (a CUT-code
    checkpoint has no config.json): the downsamplings are the encoder's blurred skip paths, the size the
    resolution whose channel table gives the encoder's first and deepest widths for ``ngf``. Empty when the
    weights are not such a generator's."""
    state_dict = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    first = state_dict.get("encoder.convs.1.0.weight")
    if first is None:
        return {}
    n = sum(1 for k in state_dict if k.startswith("encoder.convs.") and k.endswith(".skip.0.kernel"))
    deepest = state_dict.get(f"encoder.convs.{1 + n}.conv2.1.weight" if n else "encoder.convs.1.0.weight")
    for k in range(2, 17):
        size = 2 ** k
        if size >> n >= 1 and generator_width(size, ngf) == first.shape[0] and \
                (deepest is None or generator_width(size >> n, ngf) == deepest.shape[0]):
            return {"stylegan2_size": size, "stylegan2_G_num_downsampling": n}
    return {"stylegan2_G_num_downsampling": n}


def encoder_layer_count(num_downsampling: int, n_blocks: int) -> int:
    """Layers of the generator's ``encoder.convs`` (valid feature indices are 0 .. count - 1)."""
    return 2 + num_downsampling + n_blocks // 2


# ---------------------------------------------------------------------------------------------------- discriminator
class StyleGAN2Discriminator(nn.Module):
    """SinCUT's discriminator: a 1x1 ConvLayer, downsampling ResBlocks from ``size`` to 4x4, a 3x3 ConvLayer and two
    EqualLinear layers on the flattened 4x4 map; one logit per image (output N x 1)."""

    initializes_itself = True
    takes_norm = False
    judges_whole_image = True  # not a PatchGAN: networks.discriminator_geometry

    def __init__(self, input_nc: int, ndf: int = 64, size: int = 64) -> None:
        size = check_power_of_two(size, "the discriminator's resolution")
        super().__init__()
        res = size
        layers: List[nn.Module] = [ConvLayer(input_nc, discriminator_width(res, ndf), 1)]
        while res > 4:
            layers.append(ResBlock(discriminator_width(res, ndf), discriminator_width(res // 2, ndf)))
            res //= 2
        self.convs = nn.Sequential(*layers)
        top = discriminator_width(4, ndf)
        self.final_conv = ConvLayer(top, top, 3)
        self.final_linear = nn.Sequential(EqualLinear(top * 4 * 4, top, activate=True), EqualLinear(top, 1))
        # each downsampling ResBlock needs a side of at least 2; after them the map is pooled to 4x4 if need be
        self.min_side = size // 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The logit of each image (N x 1)."""
        x = self.convs(x)
        if x.shape[-2:] != (4, 4):  # an input of another size than the one built for (our extension)
            x = F.adaptive_avg_pool2d(x, 4)
        x = self.final_conv(x)
        return self.final_linear(x.flatten(1))
