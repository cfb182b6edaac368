"""Generators, discriminators, GAN losses, weight init and LR schedules.

The module layout (``nn.Sequential`` nesting, indices and attribute names) follows the official
pytorch-CycleGAN-and-pix2pix code exactly, so ``state_dict`` keys match in both directions and official
checkpoints load with ``strict=True``. Additions of ours keep the official layout by default:

* ``upsample='deconv'`` (default, official) or ``'nearest'`` / ``'bilinear'`` (resize-convolution: upsample then
  a 3x3 convolution; the usual cure for checkerboard artifacts). The resize variant sits at the same index as the
  transposed convolution it replaces, so only the keys of those layers change.
* Generators accept any input size: the input is padded up to the multiple the architecture needs (4 for the
  ResNets, 2**num_downs for the U-Nets) and the output is cropped back, so the output has the input's size.
  Inputs that already have a valid size go through untouched (identical to the official forward pass).
* ``min_side_for(kind, name, ...)`` says the smallest image side a network takes (the ResNets 5, the basic
  PatchGAN 24, ...): the pre-flight scan refuses smaller images by name before they crash inside a layer.
* ``ARCH_RANGES``: the valid range of each architecture number, for the flags and for config.json alike.
* CUT/FastCUT's antialiased layouts (``no_antialias=False`` / ``no_antialias_up=False``, keyword arguments of
  ``define_G`` and ``define_D``; models/antialias.py) with the CUT code's indices and keys; omitted, the official
  layout. The ResNet generator also returns encoder features (``net(x, layers, encode_only=True)``), and
  ``define_F`` builds CUT's patch sampler ``PatchSampleF``.
* SinCUT's StyleGAN2-style networks (``--netG stylegan2`` / ``smallstylegan2``, ``--netD stylegan2``;
  models/stylegan2.py) with the CUT code's keys; the numbers they take beyond the flags come from
  ``network_extras`` and are recorded in config.json.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn import init
from torch.optim import lr_scheduler

from util import amp
from util.logger import get_logger
from util.ranges import Range

from .antialias import Downsample, Upsample

log = get_logger(__name__)

# Valid range of each architecture number (the --flags and the keys of a checkpoint's config.json). The upper
# bounds stop a typo from allocating hundreds of GB (ngf 100000 would ask for 720 GB).
ARCH_RANGES: Dict[str, Range] = {
    "input_nc": Range(int, 1, 64), "output_nc": Range(int, 1, 64),
    "ngf": Range(int, 1, 1024), "ndf": Range(int, 1, 1024),
    "n_layers_D": Range(int, 1, 8), "init_gain": Range(float, 0, 100, open_low=True),
    "stylegan2_G_num_downsampling": Range(int, 0, 8),
}
# Numbers of config.json's network entries that are not flags (network_extras): the resolution of the StyleGAN2
# networks' channel table.
EXTRA_RANGES: Dict[str, Range] = {"stylegan2_size": Range(int, 4, 65536)}


###############################################################################
# Helper functions
###############################################################################


class Identity(nn.Module):
    """A layer that returns its input (used for ``--norm none``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` unchanged."""
        return x


def _no_norm(num_features: int) -> nn.Module:
    """Factory for ``--norm none``: ignores the channel count and returns an Identity."""
    return Identity()


NORM_LAYERS: Dict[str, Callable[..., nn.Module]] = {
    "batch": functools.partial(nn.BatchNorm2d, affine=True, track_running_stats=True),
    "instance": functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False),
    "syncbatch": functools.partial(nn.SyncBatchNorm, affine=True, track_running_stats=True),
    "none": _no_norm,
}


def _unknown(kind: str, name: str, valid: Sequence[str], flag: str) -> ValueError:
    """Build the error raised for an unknown registry name."""
    return ValueError(f"unknown {kind} '{name}' ({flag}); valid: {', '.join(valid)}")


def list_norms() -> List[str]:
    """Names accepted by ``--norm``."""
    return list(NORM_LAYERS)


def get_norm_layer(norm_type: str = "instance") -> Callable[..., nn.Module]:
    """Return the normalization layer factory for ``--norm``."""
    try:
        return NORM_LAYERS[norm_type]
    except KeyError:
        raise _unknown("normalization layer", norm_type, list_norms(), "--norm") from None


def uses_bias(norm_layer: Callable[..., nn.Module]) -> bool:
    """The official rule: convolutions followed by a norm layer have a bias only for instance norm."""
    if isinstance(norm_layer, functools.partial):
        return norm_layer.func == nn.InstanceNorm2d
    return norm_layer == nn.InstanceNorm2d


INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")


def init_weights(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02) -> nn.Module:
    """Initialize conv/linear weights (``--init_type``, ``--init_gain``) and BatchNorm2d scales as officially."""
    if init_type not in INIT_TYPES:
        raise _unknown("initialization method", init_type, INIT_TYPES, "--init_type")

    def init_func(m: nn.Module) -> None:
        classname = m.__class__.__name__
        if hasattr(m, "weight") and m.weight is not None and ("Conv" in classname or "Linear" in classname):
            if init_type == "normal":
                init.normal_(m.weight.data, 0.0, init_gain)
            elif init_type == "xavier":
                init.xavier_normal_(m.weight.data, gain=init_gain)
            elif init_type == "kaiming":
                init.kaiming_normal_(m.weight.data, a=0, mode="fan_in")
            else:
                init.orthogonal_(m.weight.data, gain=init_gain)
            if getattr(m, "bias", None) is not None:
                init.constant_(m.bias.data, 0.0)
        elif "BatchNorm2d" in classname and getattr(m, "weight", None) is not None:
            init.normal_(m.weight.data, 1.0, init_gain)
            init.constant_(m.bias.data, 0.0)

    log.debug("initialize network with %s", init_type)
    net.apply(init_func)
    return net


def init_net(net: nn.Module, init_type: str = "normal", init_gain: float = 0.02,
             gpu_ids: Sequence[int] = ()) -> nn.Module:
    """Initialize the weights and move the network to the first GPU in ``gpu_ids`` (if any)."""
    if gpu_ids:
        net.to(torch.device(f"cuda:{gpu_ids[0]}"))
    if getattr(net, "initializes_itself", False):  # the StyleGAN2 networks (as the CUT code: no --init_type)
        return net
    return init_weights(net, init_type, init_gain)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> Tuple[torch.Tensor, int, int]:
    """Pad an NCHW tensor at the bottom/right up to a multiple of ``multiple``; return it and the original H, W."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, h, w
    # Reflection needs the pad to be smaller than the side; tiny inputs into deep U-Nets fall back to replicate.
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), h, w


UPSAMPLE_MODES = ("deconv", "nearest", "bilinear")


def _check_upsample(upsample: str) -> None:
    """Raise a flag-naming error for an unknown ``--upsample`` mode."""
    if upsample not in UPSAMPLE_MODES:
        raise _unknown("upsampling mode", upsample, UPSAMPLE_MODES, "--upsample")


def resize_conv(in_nc: int, out_nc: int, mode: str, bias: bool) -> nn.Sequential:
    """Resize-convolution: x2 upsampling followed by ReflectionPad(1) + 3x3 conv (replaces a transposed conv)."""
    align = False if mode == "bilinear" else None
    return nn.Sequential(nn.Upsample(scale_factor=2, mode=mode, align_corners=align),
                         nn.ReflectionPad2d(1),
                         nn.Conv2d(in_nc, out_nc, kernel_size=3, stride=1, padding=0, bias=bias))


###############################################################################
# Generators
###############################################################################


class ResnetBlock(nn.Module):
    """A residual block: ``x + conv_block(x)`` (official layout, reflect padding)."""

    def __init__(self, dim: int, padding_type: str, norm_layer: Callable[..., nn.Module], use_dropout: bool,
                 use_bias: bool) -> None:
        super().__init__()
        self.conv_block = self.build_conv_block(dim, padding_type, norm_layer, use_dropout, use_bias)

    @staticmethod
    def _padding(padding_type: str) -> Tuple[List[nn.Module], int]:
        """Return the explicit padding layers and the conv padding for ``padding_type``."""
        if padding_type == "reflect":
            return [nn.ReflectionPad2d(1)], 0
        if padding_type == "replicate":
            return [nn.ReplicationPad2d(1)], 0
        if padding_type == "zero":
            return [], 1
        raise _unknown("padding", padding_type, ("reflect", "replicate", "zero"), "padding_type")

    def build_conv_block(self, dim: int, padding_type: str, norm_layer: Callable[..., nn.Module],
                         use_dropout: bool, use_bias: bool) -> nn.Sequential:
        """Pad, conv, norm, ReLU, [Dropout(0.5)], pad, conv, norm — the official index order."""
        layers: List[nn.Module] = []
        pad, p = self._padding(padding_type)
        layers += pad + [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            layers += [nn.Dropout(0.5)]
        pad, p = self._padding(padding_type)
        layers += pad + [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), norm_layer(dim)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Residual connection (no activation after the sum)."""
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """ResNet generator: c7s1-ngf, two stride-2 downsamplings, n_blocks residual blocks, two upsamplings, c7s1.

    ``no_antialias=False`` makes each downsampling a stride-1 conv, norm, ReLU and ``Downsample``;
    ``no_antialias_up=False`` makes each upsampling ``Upsample``, a stride-1 3x3 conv (zero padding), norm, ReLU
    (CUT's layout). Both default to the official layout. Every layout has the same parameters.
    """

    size_multiple = 4
    # Smallest input side: up to 4 pixels are padded to 4 and downsampled to a 1x1 map, which the residual blocks'
    # reflection padding (and the instance norm) cannot take; 5 pixels pad to 8 and give 2x2.
    min_side = size_multiple + 1

    def __init__(self, input_nc: int, output_nc: int, ngf: int = 64,
                 norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, use_dropout: bool = False,
                 n_blocks: int = 6, padding_type: str = "reflect", upsample: str = "deconv",
                 no_antialias: bool = True, no_antialias_up: bool = True) -> None:
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        _check_upsample(upsample)
        if not no_antialias_up and upsample != "deconv":
            raise ValueError(f"--upsample {upsample} and antialiased upsampling both replace the transposed "
                             f"convolutions; pass --no_antialias_up or drop --upsample")
        super().__init__()
        use_bias = uses_bias(norm_layer)
        model: List[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0,
                                                                   bias=use_bias),
                                  norm_layer(ngf), nn.ReLU(True)]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2 ** i
            out_nc = ngf * mult * 2
            if no_antialias:
                model += [nn.Conv2d(ngf * mult, out_nc, kernel_size=3, stride=2, padding=1, bias=use_bias),
                          norm_layer(out_nc), nn.ReLU(True)]
            else:
                model += [nn.Conv2d(ngf * mult, out_nc, kernel_size=3, stride=1, padding=1, bias=use_bias),
                          norm_layer(out_nc), nn.ReLU(True), Downsample(out_nc)]
        mult = 2 ** n_downsampling
        for _ in range(n_blocks):
            model += [ResnetBlock(ngf * mult, padding_type=padding_type, norm_layer=norm_layer,
                                  use_dropout=use_dropout, use_bias=use_bias)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            in_nc, out_nc = ngf * mult, int(ngf * mult / 2)
            if not no_antialias_up:
                model += [Upsample(in_nc), nn.Conv2d(in_nc, out_nc, kernel_size=3, stride=1, padding=1,
                                                     bias=use_bias)]
            elif upsample == "deconv":
                model += [nn.ConvTranspose2d(in_nc, out_nc, kernel_size=3, stride=2, padding=1, output_padding=1,
                                             bias=use_bias)]
            else:
                model += [resize_conv(in_nc, out_nc, upsample, use_bias)]
            model += [norm_layer(out_nc), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor, layers: Sequence[int] = (), encode_only: bool = False) -> Any:
        """Translate ``x`` (any H, W; the output has the input's size), or also return encoder features.

        With ``layers`` (ascending indices into ``model``), the outputs of those layers are collected: with
        ``encode_only`` the list is returned as soon as the last one is computed, otherwise ``(output, list)``.
        """
        x, h, w = pad_to_multiple(x, self.size_multiple)
        if not layers:
            y = self.model(x)
            return y[..., :h, :w] if y.shape[-2:] != (h, w) else y
        wanted = set(int(i) for i in layers)
        last = max(wanted)
        feats: List[torch.Tensor] = []
        for index, layer in enumerate(self.model):
            x = layer(x)
            if index in wanted:
                feats.append(x)
            if encode_only and index == last:
                return feats
        return (x[..., :h, :w] if x.shape[-2:] != (h, w) else x), feats


def resnet_layer_count(n_blocks: int, no_antialias: bool = True, no_antialias_up: bool = True) -> int:
    """Number of layers of a ResNet generator's ``model`` (valid feature indices are 0 .. count - 1)."""
    return 4 + 2 * (3 if no_antialias else 4) + n_blocks + 2 * (3 if no_antialias_up else 4) + 3


class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down-conv, the inner submodule, up-conv, with a skip connection (except outermost)."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: Optional[int] = None,
                 submodule: Optional[nn.Module] = None, outermost: bool = False, innermost: bool = False,
                 norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, use_dropout: bool = False,
                 upsample: str = "deconv") -> None:
        super().__init__()
        _check_upsample(upsample)
        self.outermost = outermost
        use_bias = uses_bias(norm_layer)
        if input_nc is None:
            input_nc = outer_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        downnorm = norm_layer(inner_nc)
        uprelu = nn.ReLU(True)
        upnorm = norm_layer(outer_nc)

        def upconv(in_nc: int, bias: bool) -> nn.Module:
            if upsample == "deconv":
                return nn.ConvTranspose2d(in_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            return resize_conv(in_nc, outer_nc, upsample, bias)

        if outermost:
            model = [downconv, submodule, uprelu, upconv(inner_nc * 2, True), nn.Tanh()]
        elif innermost:
            model = [downrelu, downconv, uprelu, upconv(inner_nc, use_bias), upnorm]
        else:
            model = [downrelu, downconv, downnorm, submodule, uprelu, upconv(inner_nc * 2, use_bias), upnorm]
            if use_dropout:
                model += [nn.Dropout(0.5)]
        self.model = nn.Sequential(*model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Outermost: the translated image; other levels: ``cat([x, model(x)], 1)``."""
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


class UnetGenerator(nn.Module):
    """U-Net generator built recursively from the innermost block out (official nesting and key names)."""

    def __init__(self, input_nc: int, output_nc: int, num_downs: int, ngf: int = 64,
                 norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, use_dropout: bool = False,
                 upsample: str = "deconv") -> None:
        if num_downs < 5:
            raise ValueError(f"a U-Net needs num_downs >= 5, got {num_downs}")
        super().__init__()
        self.size_multiple = 2 ** num_downs
        self.min_side = 1  # any input is padded to a multiple of 2**num_downs first
        kw = dict(norm_layer=norm_layer, upsample=upsample)
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=None, innermost=True, **kw)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=use_dropout, **kw)
        block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block, **kw)
        block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block, **kw)
        block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block, **kw)
        self.model = UnetSkipConnectionBlock(output_nc, ngf, input_nc=input_nc, submodule=block, outermost=True,
                                             **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Translate ``x``; any H, W works (padded to a multiple of 2**num_downs, cropped back)."""
        x, h, w = pad_to_multiple(x, self.size_multiple)
        y = self.model(x)
        return y[..., :h, :w] if y.shape[-2:] != (h, w) else y


GeneratorBuilder = Callable[..., nn.Module]


def _unet(num_downs: int) -> GeneratorBuilder:
    """Builder of a U-Net generator; the antialiased layouts exist for the ResNet generators only."""
    def build(i: int, o: int, ngf: int, norm: Callable[..., nn.Module], drop: bool, up: str,
              no_antialias: bool = True, no_antialias_up: bool = True) -> nn.Module:
        if not (no_antialias and no_antialias_up):
            raise ValueError(f"--netG unet_{2 ** num_downs}: antialiased sampling exists for the ResNet generators "
                             f"only; use --netG resnet_9blocks or resnet_6blocks (or --no_antialias "
                             f"--no_antialias_up)")
        return UnetGenerator(i, o, num_downs, ngf, norm, drop, upsample=up)
    return build


def _resnet(n_blocks: int) -> GeneratorBuilder:
    """Builder of a ResNet generator with ``n_blocks`` residual blocks."""
    def build(i: int, o: int, ngf: int, norm: Callable[..., nn.Module], drop: bool, up: str,
              no_antialias: bool = True, no_antialias_up: bool = True) -> nn.Module:
        return ResnetGenerator(i, o, ngf, norm, drop, n_blocks, upsample=up, no_antialias=no_antialias,
                               no_antialias_up=no_antialias_up)
    return build


def _stylegan2(variant: str) -> GeneratorBuilder:
    """Builder of SinCUT's StyleGAN2-style generator (models/stylegan2.py); ``stylegan2_size`` and
    ``stylegan2_G_num_downsampling`` come from ``network_extras`` (without them: 256, the resolution of the flags'
    defaults, and 1). It has no normalization and no dropout (--norm and --no_dropout do not apply, as in the CUT
    code) and its own upsampling (--upsample is refused)."""
    def build(i: int, o: int, ngf: int, norm: Callable[..., nn.Module], drop: bool, up: str,
              no_antialias: bool = True, no_antialias_up: bool = True, stylegan2_size: int = 256,
              stylegan2_G_num_downsampling: int = 1) -> nn.Module:
        from . import stylegan2

        check_upsample(variant, up)
        return stylegan2.StyleGAN2Generator(i, o, ngf, stylegan2_size, stylegan2_G_num_downsampling,
                                            **stylegan2.GENERATOR_VARIANTS[variant])
    return build


GENERATORS: Dict[str, GeneratorBuilder] = {
    "resnet_9blocks": _resnet(9),
    "resnet_6blocks": _resnet(6),
    "unet_128": _unet(7),
    "unet_256": _unet(8),
    "stylegan2": _stylegan2("stylegan2"),
    "smallstylegan2": _stylegan2("smallstylegan2"),
}
STYLEGAN2_GENERATORS = ("stylegan2", "smallstylegan2")
STYLEGAN2_DISCRIMINATORS = ("stylegan2",)


def check_upsample(netG: str, upsample: str) -> None:
    """A one-line ``ValueError`` when ``--upsample`` asks ``--netG`` for an upsampling it does not have."""
    if netG in STYLEGAN2_GENERATORS and upsample != "deconv":
        raise ValueError(f"--upsample {upsample}: --netG {netG} upsamples with its own blurred transposed "
                         f"convolutions; drop --upsample")


def network_extras(kind: str, name: str, opt: Any) -> Dict[str, int]:
    """Architecture numbers a network takes beyond the official flags, from the run's options (recorded in
    config.json with the network): for the StyleGAN2 networks the resolution of their channel table
    (``stylegan2_size``, from ``--load_size``/``--crop_size`` as in the CUT code) and the generator's
    ``--stylegan2_G_num_downsampling``; nothing for the other networks."""
    from .stylegan2 import resolution_for

    if kind == "G" and name in STYLEGAN2_GENERATORS:
        return {"stylegan2_size": resolution_for(opt.load_size, opt.crop_size),
                "stylegan2_G_num_downsampling": int(opt.stylegan2_G_num_downsampling)}
    if kind == "D" and name in STYLEGAN2_DISCRIMINATORS:
        return {"stylegan2_size": resolution_for(opt.load_size, opt.crop_size)}
    return {}


def list_generators() -> List[str]:
    """Names accepted by ``--netG``."""
    return list(GENERATORS)


def define_G(input_nc: int, output_nc: int, ngf: int, netG: str, norm: str = "batch", use_dropout: bool = False,
             init_type: str = "normal", init_gain: float = 0.02, gpu_ids: Sequence[int] = (),
             upsample: str = "deconv", *, no_antialias: bool = True, no_antialias_up: bool = True,
             opt: Any = None, **extras: int) -> nn.Module:
    """Create and initialize a generator by name (official signature; the keyword arguments are extras).

    ``no_antialias`` / ``no_antialias_up`` False select CUT's antialiased down/up-sampling (ResNets only);
    omitted, the official layout. ``extras``: the numbers ``network_extras`` gives (the StyleGAN2 generators'
    ``stylegan2_size`` and ``stylegan2_G_num_downsampling``). ``opt`` is accepted for the CUT code's signature
    and not used.
    """
    if netG not in GENERATORS:
        raise _unknown("generator", netG, list_generators(), "--netG")
    net = GENERATORS[netG](input_nc, output_nc, ngf, get_norm_layer(norm), use_dropout, upsample,
                           no_antialias=no_antialias, no_antialias_up=no_antialias_up, **extras)
    return init_net(net, init_type, init_gain, gpu_ids)


###############################################################################
# Discriminators
###############################################################################


class NLayerDiscriminator(nn.Module):
    """PatchGAN discriminator with ``n_layers`` stride-2 convolutions (``basic`` = 3 layers, 70x70 patches).

    ``no_antialias=False`` (CUT's layout) makes each stride-2 conv stride 1, followed by [norm,] LeakyReLU and
    ``Downsample``; the last two convolutions are unchanged. The default is the official layout.
    """

    def __init__(self, input_nc: int, ndf: int = 64, n_layers: int = 3,
                 norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d, no_antialias: bool = True) -> None:
        if n_layers < 1:
            raise ValueError(f"--n_layers_D must be >= 1, got {n_layers}")
        super().__init__()
        use_bias = uses_bias(norm_layer)
        kw, padw = 4, 1
        stride = 2 if no_antialias else 1
        sequence: List[nn.Module] = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=stride, padding=padw),
                                     nn.LeakyReLU(0.2, True)]
        if not no_antialias:
            sequence += [Downsample(ndf)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=stride, padding=padw,
                                   bias=use_bias),
                         norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
            if not no_antialias:
                sequence += [Downsample(ndf * nf_mult)]
        nf_mult_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw,
                               bias=use_bias),
                     norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the patch logits map (no sigmoid)."""
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """1x1 PatchGAN: judges each pixel independently (attribute ``net`` as in the official code)."""

    def __init__(self, input_nc: int, ndf: int = 64, norm_layer: Callable[..., nn.Module] = nn.BatchNorm2d) -> None:
        super().__init__()
        use_bias = uses_bias(norm_layer)
        self.net = nn.Sequential(
            nn.Conv2d(input_nc, ndf, kernel_size=1, stride=1, padding=0),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, kernel_size=1, stride=1, padding=0, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, kernel_size=1, stride=1, padding=0, bias=use_bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the per-pixel logits map."""
        return self.net(x)


def _stylegan2_D(i: int, ndf: int, n: int, norm: Callable[..., nn.Module], aa: bool,
                 stylegan2_size: int = 256) -> nn.Module:
    """SinCUT's StyleGAN2-style discriminator (models/stylegan2.py) for ``stylegan2_size`` inputs; --n_layers_D,
    the norm and the antialiasing do not apply."""
    from .stylegan2 import StyleGAN2Discriminator

    return StyleGAN2Discriminator(i, ndf, stylegan2_size)


DISCRIMINATORS: Dict[str, Callable[..., nn.Module]] = {
    "basic": lambda i, ndf, n, norm, aa: NLayerDiscriminator(i, ndf, n_layers=3, norm_layer=norm, no_antialias=aa),
    "n_layers": lambda i, ndf, n, norm, aa: NLayerDiscriminator(i, ndf, n_layers=n, norm_layer=norm,
                                                                no_antialias=aa),
    "pixel": lambda i, ndf, n, norm, aa: PixelDiscriminator(i, ndf, norm_layer=norm),  # no striding to antialias
    "stylegan2": _stylegan2_D,
}


def list_discriminators() -> List[str]:
    """Names accepted by ``--netD``."""
    return list(DISCRIMINATORS)


def define_D(input_nc: int, ndf: int, netD: str, n_layers_D: int = 3, norm: str = "batch",
             init_type: str = "normal", init_gain: float = 0.02, gpu_ids: Sequence[int] = (), *,
             no_antialias: bool = True, opt: Any = None, **extras: int) -> nn.Module:
    """Create and initialize a discriminator by name (official signature; the keyword arguments are extras).

    ``no_antialias=False`` selects CUT's antialiased layout for ``basic``/``n_layers``; omitted, the official one.
    ``extras``: the numbers ``network_extras`` gives (the StyleGAN2 discriminator's ``stylegan2_size``).
    """
    if netD not in DISCRIMINATORS:
        raise _unknown("discriminator", netD, list_discriminators(), "--netD")
    net = DISCRIMINATORS[netD](input_nc, ndf, n_layers_D, get_norm_layer(norm), no_antialias, **extras)
    return init_net(net, init_type, init_gain, gpu_ids)


def discriminator_geometry(net: nn.Module, input_size: int = 256) -> Dict[str, int]:
    """Receptive field (pixels) and output-map side of a feed-forward conv discriminator for a square input (a
    discriminator that judges the whole image, ``judges_whole_image``: the input, and one output)."""
    if getattr(net, "judges_whole_image", False):
        return {"receptive_field": input_size, "output_size": 1}
    rf, jump, size = 1, 1, input_size
    for m in net.modules():
        conv = _conv_shape(m)
        if conv is not None:
            k, s, p, d = conv
            rf += d * (k - 1) * jump
            jump *= s
            size = (size + 2 * p - d * (k - 1) - 1) // s + 1
    return {"receptive_field": rf, "output_size": size}


def _conv_shape(m: nn.Module) -> Optional[Tuple[int, int, int, int]]:
    """(kernel, stride, padding, dilation) of a convolution, CUT's blur-downsampling included (a fixed 3x3
    stride-2 convolution after a reflection pad of 1); None for other modules."""
    if isinstance(m, Downsample):
        return 3, 2, 1, 1
    if isinstance(m, nn.Conv2d):
        return m.kernel_size[0], m.stride[0], m.padding[0], m.dilation[0]
    return None


NORMS = (nn.BatchNorm2d, nn.InstanceNorm2d, nn.SyncBatchNorm)


def _feed_forward_fits(net: nn.Module, side: int) -> bool:
    """Whether a side x side input passes every convolution of a feed-forward network (in module order) with an
    output of at least 1x1, and every normalisation layer sees at least 2 values per channel."""
    size = side
    for m in net.modules():
        conv = _conv_shape(m)
        if conv is not None:
            if isinstance(m, Downsample) and size < 2:  # reflection padding needs more pixels than it adds
                return False
            k, s, p, d = conv
            size = (size + 2 * p - d * (k - 1) - 1) // s + 1
            if size < 1:
                return False
        elif isinstance(m, NORMS) and size * size < 2:
            return False
    return True


def min_input_side(net: nn.Module, limit: int = 1 << 16) -> int:
    """Smallest side of a square input the network takes in training (``net.min_side`` when it says so; else
    worked out from its convolutions, for feed-forward networks such as the discriminators)."""
    declared = getattr(net, "min_side", None)
    if declared is not None:
        return int(declared)
    for side in range(1, limit + 1):
        if _feed_forward_fits(net, side):
            return side
    raise ValueError(f"{type(net).__name__} takes no input up to {limit}x{limit}")


def min_side_for(kind: str, name: str, norm: str = "instance", n_layers_D: int = 3, no_antialias: bool = True,
                 no_antialias_up: bool = True, **extras: int) -> int:
    """Smallest image side the generator (``kind`` "G") or discriminator ("D") ``name`` takes, in the official or
    CUT's antialiased layout (``extras``: ``network_extras``); the network is built with one channel per layer to
    ask it (the channel counts do not change the answer)."""
    norm_layer = get_norm_layer(norm)
    if kind == "G":
        if name not in GENERATORS:
            raise _unknown("generator", name, list_generators(), "--netG")
        return min_input_side(GENERATORS[name](1, 1, 1, norm_layer, False, "deconv", no_antialias=no_antialias,
                                               no_antialias_up=no_antialias_up, **extras))
    if name not in DISCRIMINATORS:
        raise _unknown("discriminator", name, list_discriminators(), "--netD")
    return min_input_side(DISCRIMINATORS[name](1, 1, n_layers_D, norm_layer, no_antialias, **extras))


###############################################################################
# CUT's feature network F (patch sampler)
###############################################################################


def l2_normalize(x: torch.Tensor, dim: int = 1, eps: float = 1e-7) -> torch.Tensor:
    """``x / (||x||_2 + eps)`` along ``dim`` (CUT's Normalize), computed in float32 under ``--amp``.

    ``vector_norm`` rather than ``sum(x**2) ** 0.5``: the same value, but an all-zero row (a head whose ReLU
    units are all off, or a feature position that a ReLU zeroed) gets gradient 0 instead of NaN.
    """
    x = amp.to_float(x)
    return x.div(torch.linalg.vector_norm(x, 2, dim=dim, keepdim=True) + eps)


class PatchSampleF(nn.Module):
    """Samples positions of encoder feature maps and projects them: CUT's ``mlp_sample`` (or ``sample``) F.

    ``F(feats, num_patches, patch_ids=None)``: for each map (B, C, H, W), viewed as B x (H*W) x C, take the
    positions ``patch_ids[i]`` or a random permutation of H*W cut to ``num_patches`` (one id set per map, shared
    by the batch; drawn with torch's CPU generator, so seeding and resume cover it); the sample is B*P x C,
    image-major. ``use_mlp`` passes it through ``mlp_<i>`` = Linear(C, nc), ReLU, Linear(nc, nc); rows are
    l2-normalised. ``num_patches`` 0 takes every position (ids ``0 .. H*W-1``). Returns (samples, id tensors).

    The heads are created at the first call from the channels it sees, then all of F is initialised with
    ``init_type``/``init_gain``; call it once (the model's ``data_dependent_initialize``) before building its
    optimizer or wrapping it.
    """

    def __init__(self, use_mlp: bool = False, init_type: str = "normal", init_gain: float = 0.02, nc: int = 256,
                 gpu_ids: Sequence[int] = ()) -> None:
        super().__init__()
        self.use_mlp = bool(use_mlp)
        self.nc = int(nc)
        self.init_type, self.init_gain = init_type, init_gain
        self.gpu_ids = list(gpu_ids)
        self.mlp_init = False

    def create_mlp(self, feats: Sequence[torch.Tensor]) -> None:
        """One head per feature map (its channel count in, ``nc`` out), on the maps' device; then initialise F."""
        for index, feat in enumerate(feats):
            mlp = nn.Sequential(nn.Linear(feat.shape[1], self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc))
            setattr(self, "mlp_%d" % index, mlp.to(feat.device))
        init_net(self, self.init_type, self.init_gain, self.gpu_ids)
        self.mlp_init = True

    @staticmethod
    def draw_ids(positions: int, num_patches: int, device: torch.device) -> torch.Tensor:
        """A random subset of ``min(num_patches, positions)`` position ids (torch CPU generator)."""
        return torch.randperm(positions)[: min(num_patches, positions)].to(device)

    def forward(self, feats: Sequence[torch.Tensor], num_patches: int = 64,
                patch_ids: Optional[Sequence[torch.Tensor]] = None) -> Tuple[List[torch.Tensor], List[Any]]:
        """Sampled, projected and normalised rows per feature map, and the position ids used."""
        if self.use_mlp and not self.mlp_init:
            self.create_mlp(feats)
        samples: List[torch.Tensor] = []
        ids: List[Any] = []
        for index, feat in enumerate(feats):
            h, w = feat.shape[-2:]
            rows = feat.permute(0, 2, 3, 1).flatten(1, 2)  # B x (H*W) x C, row-major positions
            if patch_ids is not None:
                patch_id = patch_ids[index]
            elif num_patches > 0:
                patch_id = self.draw_ids(h * w, num_patches, feat.device)
            else:  # 0: every position, in order (the same rows as num_patches >= H*W, unshuffled)
                patch_id = torch.arange(h * w, device=feat.device)
            x = rows[:, patch_id, :].flatten(0, 1)  # B*P x C, image 0's rows first
            if self.use_mlp:
                x = getattr(self, "mlp_%d" % index)(x)
            ids.append(patch_id)
            samples.append(l2_normalize(x))  # over channels
        return samples, ids


class ReshapeF(nn.Module):
    """CUT's ``reshape`` F: each map pooled to 4x4, its 16 positions as rows (B*16 x C), l2-normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.model = nn.Sequential(nn.AdaptiveAvgPool2d(4))

    def forward(self, feats: Sequence[torch.Tensor], num_patches: int = 64,
                patch_ids: Optional[Sequence[Any]] = None) -> Tuple[List[torch.Tensor], List[Any]]:
        """The pooled rows of every map (``num_patches`` and ``patch_ids`` are ignored: all 16 are used)."""
        out = [l2_normalize(self.model(feat).permute(0, 2, 3, 1).flatten(0, 2)) for feat in feats]
        return out, [None] * len(out)


FEATURE_NETWORKS = ("mlp_sample", "sample", "reshape")


def list_feature_networks() -> List[str]:
    """Names accepted by ``--netF``."""
    return list(FEATURE_NETWORKS)


def define_F(input_nc: int, netF: str, norm: str = "batch", use_dropout: bool = False, init_type: str = "normal",
             init_gain: float = 0.02, no_antialias: bool = False, gpu_ids: Sequence[int] = (),
             opt: Any = None) -> nn.Module:
    """CUT's feature network by name; the head width is ``opt.netF_nc`` (256 without ``opt``).

    ``input_nc``, ``norm``, ``use_dropout`` and ``no_antialias`` are part of the CUT code's signature and unused
    by these networks.
    """
    if netF not in FEATURE_NETWORKS:
        raise _unknown("feature network", netF, list_feature_networks(), "--netF")
    if netF == "reshape":
        return ReshapeF()
    nc = 256 if opt is None else int(opt.netF_nc)  # the CUT code's signature: opt may be left out
    return PatchSampleF(use_mlp=netF == "mlp_sample", init_type=init_type, init_gain=init_gain, nc=nc,
                        gpu_ids=gpu_ids)


###############################################################################
# Losses
###############################################################################


GAN_MODES = ("lsgan", "vanilla", "wgangp", "nonsaturating")


class GANLoss(nn.Module):
    """The GAN objective: ``lsgan`` (MSE), ``vanilla`` (BCE with logits), ``wgangp`` (-/+ mean) or
    ``nonsaturating`` (the CUT code's name for StyleGAN2's loss: the mean of softplus(-D) for real, of softplus(D)
    for fake; the same values as ``vanilla``)."""

    def __init__(self, gan_mode: str, target_real_label: float = 1.0, target_fake_label: float = 0.0) -> None:
        super().__init__()
        if gan_mode not in GAN_MODES:
            raise _unknown("GAN mode", gan_mode, GAN_MODES, "--gan_mode")
        self.register_buffer("real_label", torch.tensor(target_real_label))
        self.register_buffer("fake_label", torch.tensor(target_fake_label))
        self.gan_mode = gan_mode
        if gan_mode == "lsgan":
            self.loss: Optional[nn.Module] = nn.MSELoss()
        elif gan_mode == "vanilla":
            self.loss = nn.BCEWithLogitsLoss()
        else:
            self.loss = None

    def get_target_tensor(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        """The label broadcast to the prediction's shape (and dtype)."""
        target = self.real_label if target_is_real else self.fake_label
        return target.to(prediction.dtype).expand_as(prediction)

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        """Loss of the discriminator output ``prediction`` against real/fake."""
        if self.gan_mode == "wgangp":
            return -prediction.mean() if target_is_real else prediction.mean()
        if self.gan_mode == "nonsaturating":
            return F.softplus(-prediction if target_is_real else prediction).mean()
        return self.loss(prediction, self.get_target_tensor(prediction, target_is_real))


def cal_gradient_penalty(netD: nn.Module, real_data: torch.Tensor, fake_data: torch.Tensor,
                         device: torch.device | str, type: str = "mixed", constant: float = 1.0,
                         lambda_gp: float = 10.0) -> Tuple[torch.Tensor | float, Optional[torch.Tensor]]:
    """WGAN-GP penalty ``lambda_gp * mean((||grad D(x)||_2 - constant)^2)`` at real, fake or mixed points."""
    if lambda_gp <= 0.0:
        return 0.0, None
    if type == "real":
        interpolates = real_data
    elif type == "fake":
        interpolates = fake_data
    elif type == "mixed":
        alpha = torch.rand(real_data.shape[0], 1, device=device)
        alpha = alpha.expand(real_data.shape[0], real_data.nelement() // real_data.shape[0])
        alpha = alpha.contiguous().view(*real_data.shape)
        interpolates = alpha * real_data + (1 - alpha) * fake_data
    else:
        raise _unknown("gradient penalty type", type, ("real", "fake", "mixed"), "type")
    interpolates = interpolates.detach().requires_grad_(True)
    disc_interpolates = netD(interpolates)
    gradients = torch.autograd.grad(outputs=disc_interpolates, inputs=interpolates,
                                    grad_outputs=torch.ones_like(disc_interpolates),
                                    create_graph=True, retain_graph=True, only_inputs=True)[0]
    gradients = gradients.view(real_data.size(0), -1)
    penalty = (((gradients + 1e-16).norm(2, dim=1) - constant) ** 2).mean() * lambda_gp
    return penalty, gradients


###############################################################################
# Learning-rate schedules
###############################################################################


LR_POLICIES = ("linear", "step", "plateau", "cosine")


def linear_lr_factor(epoch_index: int, epoch_count: int, n_epochs: int, n_epochs_decay: int) -> float:
    """The official linear rule: constant for ``n_epochs``, then linear decay over ``n_epochs_decay`` (+1)."""
    return 1.0 - max(0, epoch_index + epoch_count - n_epochs) / float(n_epochs_decay + 1)


def get_scheduler(optimizer: torch.optim.Optimizer, opt) -> lr_scheduler.LRScheduler | lr_scheduler.ReduceLROnPlateau:
    """Return the LR scheduler for ``--lr_policy`` (stepped once at the end of every epoch)."""
    policy = opt.lr_policy
    if policy == "linear":
        rule = functools.partial(linear_lr_factor, epoch_count=opt.epoch_count, n_epochs=opt.n_epochs,
                                 n_epochs_decay=opt.n_epochs_decay)
        return lr_scheduler.LambdaLR(optimizer, lr_lambda=rule)
    if policy == "step":
        return lr_scheduler.StepLR(optimizer, step_size=opt.lr_decay_iters, gamma=0.1)
    if policy == "plateau":
        return lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.2, threshold=0.01, patience=5)
    if policy == "cosine":
        return lr_scheduler.CosineAnnealingLR(optimizer, T_max=opt.n_epochs, eta_min=0)
    # Official bug fixed: the official code *returns* the NotImplementedError instead of raising it.
    raise _unknown("learning rate policy", policy, LR_POLICIES, "--lr_policy")


###############################################################################
# Reporting
###############################################################################


def count_parameters(net: nn.Module) -> int:
    """Total number of parameters of a network."""
    return sum(p.numel() for p in net.parameters())
