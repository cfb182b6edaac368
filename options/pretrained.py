"""Use a trained model from Python: ``load_generator`` (one generator, ``Translator.translate``) or ``load_model``
(the whole model test.py runs). docs/python_api.md.

    from options.pretrained import load_generator, load_model
    g = load_generator("maps_cyclegan", net="G_A")      # or a folder, or a <prefix>_net_<G>.pth file
    fake = g.translate(Image.open("photo.jpg"))          # a PIL image; a tensor -> a tensor; a folder -> paths
    model = load_model("maps_cyclegan")                  # test.py's model: set_input, test, get_current_visuals

The generator is built from the ``config.json`` beside the weights (our train.py writes it); without one the
architecture must be given (``architecture={...}``), never guessed. Weights holding NaN/Inf are refused
(models/checkpoint_io.py). Images are preprocessed as test.py does at test time for the sizes the run recorded
(options/recorded.py ``test_sizes``; data transforms, no flip) and converted back with util's ``tensor2im``; the
network runs in eval mode (test.py ``--eval``). export.py loads its generator with ``load_weights``; test.py loads
its model with ``load_model``.
This module sits in ``options`` because it needs both ``models`` and ``data`` (tests/test_layering.py).
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from PIL import Image

from data.base_dataset import get_transform
from models import arch_config, checkpoint_io, create_model, ema, layers, networks, stylegan2
from options.recorded import test_sizes
from options.test_options import TestOptions
from util import amp as amp_util
from util.errors import UserError
from util.image_io import DEFAULT_MAX_PIXELS, list_image_files, load_image
from util.logger import get_logger
from util.result_names import ResultNames
from util.util import save_image, tensor2im

log = get_logger(__name__)

ARCH_KEYS = ("netG", "norm", "ngf", "input_nc", "output_nc", "no_dropout", "upsample")
# Numbers some generators take beyond those (models/networks.py network_extras): config.json's entry gives them,
# else they are read from the weights (the StyleGAN2 generators: models/stylegan2.py infer_extras).
EXTRA_KEYS = ("stylegan2_size", "stylegan2_G_num_downsampling")
# test.py's size flags when a checkpoint records none (an official download): its --preprocess defaults
TEST_DEFAULT_SIZES = {"preprocess": "resize_and_crop", "load_size": 256, "crop_size": 256}


class PretrainedError(UserError, ValueError):
    """A checkpoint or an input that the Python API cannot use (the message says which and what to do)."""


# ---------------------------------------------------------------------------------------------------- finding files
def locate(name_or_path: Union[str, os.PathLike], checkpoints_dir: Union[str, os.PathLike] = "./checkpoints",
           epoch: Union[str, int] = "latest", net: Optional[str] = None) -> Tuple[str, str, Optional[str]]:
    """(checkpoint folder, file prefix, network or None) of an experiment name, a folder or a ``.pth`` file."""
    text = os.fspath(name_or_path)
    under = os.path.join(os.fspath(checkpoints_dir), text)
    if text and os.path.isdir(under):
        return under, str(epoch), net
    if os.path.isdir(text):
        return text, str(epoch), net
    if os.path.isfile(text) and text.endswith(checkpoint_io.NET_SUFFIX):
        base = os.path.basename(text)[: -len(checkpoint_io.NET_SUFFIX)]
        prefix, infix, stored = base.rpartition(checkpoint_io.NET_INFIX)
        if not infix or not prefix or not stored:
            raise PretrainedError(f"{text}: a weights file is named <epoch>_net_<network>.pth (e.g. "
                                  f"latest_net_G_A.pth), so that its config.json entry can be found; rename it")
        if net is not None and net != stored:
            raise PretrainedError(f"{text} holds network {stored}, not net={net!r}: drop net or pass its folder")
        return os.path.dirname(os.path.abspath(text)), prefix, stored
    raise PretrainedError(f"checkpoint not found: {text!r} is neither an experiment under {os.fspath(checkpoints_dir)} "
                          f"nor a folder nor a <epoch>_net_<G>.pth file; check the name, or pass checkpoints_dir=")


def generator_files(save_dir: str, prefix: str) -> List[str]:
    """The generator names (``G``, ``G_A``, ...) with a ``<prefix>_net_<name>.pth`` file in ``save_dir``."""
    head = f"{prefix}{checkpoint_io.NET_INFIX}"
    names = [f[len(head):-len(checkpoint_io.NET_SUFFIX)] for f in os.listdir(save_dir)
             if f.startswith(head) and f.endswith(checkpoint_io.NET_SUFFIX)] if os.path.isdir(save_dir) else []
    return sorted(n for n in names if n.startswith("G") and not n.endswith(ema.EMA_SUFFIX))


def choose_net(save_dir: str, prefix: str, config: Optional[Dict[str, Any]], net: Optional[str],
               flag: str = "net=", action: str = "translate") -> str:
    """``net``, else the config's/files' ``G`` (pix2pix, CUT) or ``G_A`` (CycleGAN); a discriminator or other
    non-generator is refused, listing the generators there are (``flag`` names the argument in the message)."""
    known = [n for n, spec in (config or {}).get("networks", {}).items() if spec.get("kind") == "G"]
    if net:
        spec = (config or {}).get("networks", {}).get(net)
        kind = spec.get("kind") if spec is not None else ("G" if net.startswith("G") else None)
        if kind != "G":
            what = {"D": "a discriminator", "F": "CUT's feature sampler"}.get(kind or net[:1], "not a generator")
            listed = sorted(set(known) | set(generator_files(save_dir, prefix)))
            raise PretrainedError(f"{flag}{net} is {what}: only generators {action}; "
                                  + (f"choose {flag}{' or '.join(listed)}" if listed else
                                     f"{save_dir} has no {prefix}_net_G*.pth generator file"))
        return net
    for candidate in ("G", "G_A"):
        if candidate in known or os.path.lexists(checkpoint_io.net_path(save_dir, prefix, candidate)):
            return candidate
    if known:
        return sorted(known)[0]
    raise PretrainedError(f"no generator checkpoint {prefix}_net_G.pth or {prefix}_net_G_A.pth in {save_dir}; "
                          f"check the name, the folder and the epoch, or name the network with {flag}")


def resolve_architecture(config: Optional[Dict[str, Any]], net: str, given: Optional[Mapping[str, Any]] = None,
                         defaults: Optional[Mapping[str, Any]] = None, where: str = "") -> Dict[str, Any]:
    """The generator's arguments: ``given`` values, else config.json's entry for ``net``, else ``defaults``; a
    ``PretrainedError`` when a value is known from none of them (the architecture is never guessed)."""
    given = {k: v for k, v in (given or {}).items() if v is not None}
    unknown = sorted(set(given) - set(ARCH_KEYS) - set(EXTRA_KEYS))
    if unknown:
        raise PretrainedError(f"architecture: unknown key(s) {', '.join(unknown)}; the keys are "
                              f"{', '.join(ARCH_KEYS + EXTRA_KEYS)}")
    stored: Dict[str, Any] = {}
    entry = (config or {}).get("networks", {}).get(net)
    if entry is not None:
        stored = {"netG": entry["netG"], "norm": entry["norm"], "ngf": entry["ngf"], "input_nc": entry["input_nc"],
                  "output_nc": entry["output_nc"], "no_dropout": not entry["use_dropout"],
                  "upsample": entry.get("upsample", "deconv")}
    elif config is not None:
        log.warning("config.json has no network %s: using the given architecture and the defaults for it", net)
    arch: Dict[str, Any] = {}
    for key in ARCH_KEYS:
        if key in given:
            arch[key] = given[key]
        elif key in stored:
            arch[key] = stored[key]
        elif defaults is not None and key in defaults:
            arch[key] = defaults[key]
    missing = [k for k in ARCH_KEYS if k not in arch and k != "upsample"]
    if missing:
        raise PretrainedError(f"{where or 'the checkpoint'} has no config.json describing {net}, so its architecture "
                              f"cannot be known: pass architecture={{...}} with {', '.join(missing)} (e.g. "
                              f"{{'netG': 'resnet_9blocks', 'norm': 'instance', 'ngf': 64, 'input_nc': 3, "
                              f"'output_nc': 3, 'no_dropout': True}} for the official CycleGAN models)")
    arch.setdefault("upsample", "deconv")
    arch.update({k: given[k] if k in given else entry[k] for k in EXTRA_KEYS if k in given or k in (entry or {})})
    from_config = sorted(k for k in stored if k not in given and stored[k] != (defaults or {}).get(k))
    if from_config:
        log.info("using the architecture stored in config.json: %s",
                 ", ".join(f"--{k} {arch[k]}" for k in from_config))
    return arch


def build_generator(arch: Mapping[str, Any]) -> nn.Module:
    """The generator on the CPU in eval mode; ``syncbatch`` is built as ``batch`` (same keys, same eval maths).

    ``no_antialias``/``no_antialias_up`` (CUT's antialiased layout) default to the official layout.
    """
    norm = "batch" if arch["norm"] == "syncbatch" else arch["norm"]
    net = networks.define_G(arch["input_nc"], arch["output_nc"], arch["ngf"], arch["netG"], norm,
                            not arch["no_dropout"], upsample=arch["upsample"],
                            no_antialias=arch.get("no_antialias", True),
                            no_antialias_up=arch.get("no_antialias_up", True),
                            **{k: arch[k] for k in EXTRA_KEYS if k in arch})
    return net.eval()


def trained_with(config: Optional[Dict[str, Any]]) -> Dict[str, Any]:
    """What config.json records of the training run: model, --CUT_mode, direction and sizes (those present)."""
    options = (config or {}).get("options", {})
    return {k: options[k] for k in ("model", "CUT_mode", "direction", "preprocess", "load_size", "crop_size")
            if k in options}


def load_weights(save_dir: str, prefix: str, net: Optional[str] = None, *,
                 architecture: Optional[Mapping[str, Any]] = None, defaults: Optional[Mapping[str, Any]] = None,
                 use_ema: bool = False, flag: str = "net=", action: str = "translate") -> Tuple[nn.Module, Dict[str, Any]]:
    """Build a checkpoint folder's generator and load ``<prefix>_net_<net>.pth`` (``use_ema``: its ``_ema``
    average) into it, on the CPU in eval mode; return it and a description (net, checkpoint, architecture, ...)."""
    if net is not None and net.endswith(ema.EMA_SUFFIX):  # "G_A_ema": the average of G_A, with G_A's architecture
        net, use_ema = net[: -len(ema.EMA_SUFFIX)], True
    config = arch_config.read_config(save_dir)
    net_name = choose_net(save_dir, prefix, config, net, flag=flag, action=action)
    arch = resolve_architecture(config, net_name, architecture, defaults, where=save_dir)
    file_name = net_name + (ema.EMA_SUFFIX if use_ema else "")
    if use_ema and not os.path.exists(checkpoint_io.net_path(save_dir, prefix, file_name)):
        raise PretrainedError(f"{checkpoint_io.net_path(save_dir, prefix, file_name)} not found: use_ema loads the "
                              f"generator's moving average, which training writes with --ema DECAY; drop use_ema")
    path = checkpoint_io.require_net_file(save_dir, prefix, file_name)  # missing, or a FIFO: said by name
    weights = checkpoint_io.read_weights(path)
    arch.update(checkpoint_io.antialias_layout(weights))  # CUT's antialiased layers
    if arch["netG"] in networks.STYLEGAN2_GENERATORS:  # a CUT-code SinCUT checkpoint has no config.json
        arch.update({k: v for k, v in stylegan2.infer_extras(weights, arch["ngf"]).items() if k not in arch})
    generator = build_generator(arch)
    log.info("loading the model from %s", path)
    checkpoint_io.load_network(generator, path, name=file_name)  # refuses NaN/Inf weights
    trained = trained_with(config)
    if trained:
        log.info("the checkpoint was trained with %s", " ".join(f"--{k} {v}" for k, v in trained.items()))
    info = {"net": file_name, "checkpoint": os.path.abspath(path), "prefix": prefix, "architecture": arch,
            "config_json": config is not None, "trained": trained}
    return generator.eval(), info


# ---------------------------------------------------------------------------------------------------- translating
ImageLike = Union[Image.Image, torch.Tensor, str, os.PathLike]


class Translator:
    """A loaded generator with test.py's preprocessing and output conversion; ``translate`` does the work."""

    def __init__(self, net: nn.Module, info: Dict[str, Any], sizes: Dict[str, Any], device: torch.device,
                 amp: str = "none", max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        """Wrap ``net`` (moved to ``device``, eval mode) with the ``--preprocess/--load_size/--crop_size`` ``sizes``."""
        self.net = net.to(device).eval()
        self.info = info
        self.sizes = dict(sizes)
        self.device = device
        self.amp = amp
        self.input_nc = int(info["architecture"]["input_nc"])
        opt = argparse.Namespace(**self.sizes, no_flip=True, max_pixels=max_pixels)
        self.transform = get_transform(opt, grayscale=self.input_nc == 1)
        self.max_pixels = max_pixels

    def __repr__(self) -> str:
        """``Translator(G_A of <checkpoint>, resnet_9blocks, cpu)``."""
        return f"Translator({self.info['net']} of {self.info['checkpoint']}, {self.info['architecture']['netG']}, " \
               f"{self.device}, amp={self.amp})"

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """An RGB PIL image as test.py's data loader gives it: 1 x C x H x W in [-1, 1] at the recorded sizes."""
        return self.transform(image.convert("RGB"))[None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the generator on a N x C x H x W tensor in [-1, 1] (any size; ``amp`` autocast); float32 on ``x``'s
        device."""
        if x.dim() == 3:
            return self.forward(x[None])[0]
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise PretrainedError(f"translate: a tensor must be C x H x W or N x C x H x W with C = {self.input_nc} "
                                  f"(the generator's input channels), in [-1, 1]; got shape {tuple(x.shape)}")
        with torch.inference_mode(), amp_util.autocast(self.amp, self.device):
            y = self.net(x.to(self.device, torch.float32))
        return amp_util.to_float(y).to(x.device)

    def to_image(self, y: torch.Tensor) -> Image.Image:
        """A 1 x C x H x W output in [-1, 1] as the 8-bit RGB PIL image test.py saves (util ``tensor2im``)."""
        return Image.fromarray(tensor2im(y))

    def translate(self, source: ImageLike, out_dir: Optional[Union[str, os.PathLike]] = None
                  ) -> Union[Image.Image, torch.Tensor, List[str]]:
        """Translate a PIL image (-> PIL image), a [-1, 1] tensor (-> tensor, no resizing) or an image file or folder
        (-> the paths written under ``out_dir``, ``<stem>.png`` per image, as test.py's ``fake`` images)."""
        if isinstance(source, torch.Tensor):
            return self.forward(source)
        if isinstance(source, Image.Image):
            return self.to_image(self.forward(self.preprocess(source)))
        if not isinstance(source, (str, os.PathLike)):
            raise PretrainedError(f"translate: expected a PIL image, a tensor, an image file or a folder, got "
                                  f"{type(source).__name__}")
        path = os.fspath(source)
        if os.path.isdir(path):
            files, _skipped = list_image_files(path)
            if not files:
                raise PretrainedError(f"translate: {path} holds no image files")
        elif os.path.isfile(path):
            files = [path]
        else:
            raise PretrainedError(f"translate: {path} is neither an image file nor a folder")
        if out_dir is None:
            raise PretrainedError("translate: a file or folder needs out_dir= (where the translated PNGs go)")
        out = os.fspath(out_dir)
        os.makedirs(out, exist_ok=True)
        names = ResultNames()
        written = []
        for file in files:
            y = self.forward(self.preprocess(load_image(file, self.max_pixels)))
            target = os.path.join(out, names.stem_for(file) + ".png")
            save_image(tensor2im(y), target)
            written.append(target)
        return written


def load_generator(name_or_path: Union[str, os.PathLike], *, checkpoints_dir: Union[str, os.PathLike] = "./checkpoints",
                   epoch: Union[str, int] = "latest", net: Optional[str] = None, device: Union[str, torch.device] = "cpu",
                   amp: str = "none", use_ema: bool = False, architecture: Optional[Mapping[str, Any]] = None,
                   sizes: Optional[Mapping[str, Any]] = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Translator:
    """Load a trained generator by experiment name, checkpoint folder or ``<epoch>_net_<G>.pth`` path.

    ``net``: G_A, G_B, G... (default G, else G_A); ``amp``: none, bf16 or fp16 (CUDA); ``architecture``: the
    generator's arguments when there is no config.json (official checkpoints); ``sizes``: ``preprocess``,
    ``load_size``, ``crop_size`` (default: what the run recorded, as test.py; else test.py's defaults).
    """
    save_dir, prefix, stored_net = locate(name_or_path, checkpoints_dir, epoch, net)
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise PretrainedError(f"device={device!r} is not a device (use 'cpu', 'cuda', 'cuda:1', 'mps'): {exc}") from None
    try:
        amp_util.check_amp(amp, dev)
    except ValueError as exc:
        raise PretrainedError(str(exc).replace("--amp ", "amp=")) from None
    generator, info = load_weights(save_dir, prefix, stored_net, architecture=architecture, use_ema=use_ema)
    if amp != "none":
        layers.keep_dtype_in_padding(generator)  # same numbers, no fp32 round trips (models/layers.py)
    chosen = dict(sizes) if sizes is not None else (test_sizes(info["trained"]) or dict(TEST_DEFAULT_SIZES))
    missing = [k for k in TEST_DEFAULT_SIZES if k not in chosen]
    if missing:
        raise PretrainedError(f"sizes= needs {', '.join(TEST_DEFAULT_SIZES)}; missing {', '.join(missing)}")
    return Translator(generator, info, chosen, dev, amp, max_pixels)


# ---------------------------------------------------------------------------------------------------- whole models
def model_options(name: str, *, checkpoints_dir: Union[str, os.PathLike] = "./checkpoints",
                  epoch: Union[str, int] = "latest", flags: Sequence[str] = ()) -> argparse.Namespace:
    """test.py's options for experiment ``name``: the model, direction, sizes and architecture its config.json
    recorded (test.py's rule), the given test.py ``flags`` (e.g. ``["--eval", "--gpu_ids", "-1"]``) winning."""
    argv = ["--dataroot", ".", "--name", str(name), "--checkpoints_dir", os.fspath(checkpoints_dir),
            "--epoch", str(epoch), *[str(f) for f in flags]]
    try:
        return TestOptions().parse(argv, save=False)
    except SystemExit:  # argparse has printed its one error line naming the flag
        raise PretrainedError(f"flags={list(flags)!r}: not test.py flags (the line above says which)") from None
    except ValueError as exc:
        raise PretrainedError(str(exc)) from None


def check_checkpoint(opt: argparse.Namespace, model: Any) -> None:
    """Before loading: every network file of the checkpoint is there and is a regular file (a FIFO or a link to
    /dev/zero is named as such, never opened); else one ``CheckpointError`` listing what exists."""
    prefix = checkpoint_io.load_prefix(opt.load_iter, opt.epoch)
    checkpoint_io.check_regular_files(model.save_dir, prefix)
    for name in model.model_names:
        checkpoint_io.require_net_file(model.save_dir, prefix, name)


def load_model(name_or_opt: Union[str, argparse.Namespace], *,
               checkpoints_dir: Union[str, os.PathLike] = "./checkpoints", epoch: Union[str, int] = "latest",
               flags: Sequence[str] = ()) -> Any:
    """The whole trained model as test.py runs it (e.g. CycleGAN's G_A and G_B: ``set_input``, ``test``,
    ``get_current_visuals``): built from ``model_options`` (or test.py's parsed options), every network file
    checked, loaded (NaN/Inf refused; ``--use_ema``: the averages), in eval mode with ``--eval``."""
    if isinstance(name_or_opt, argparse.Namespace):
        opt = name_or_opt
    else:
        opt = model_options(name_or_opt, checkpoints_dir=checkpoints_dir, epoch=epoch, flags=flags)
    model = create_model(opt)
    check_checkpoint(opt, model)
    model.setup(opt)
    if opt.eval:
        model.eval()
    return model
