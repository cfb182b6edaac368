"""Export a trained generator with torch.export (.pt2, the default), TorchScript and ONNX, and check the files against the eager model.

Example:
    python export.py --name maps_cyclegan --net G_A --format torchscript,onnx --out exported/
    python export.py --name horse2zebra_pretrained --net G --no_dropout --out exported/   # official checkpoint
The generator is built from ``config.json`` beside the checkpoint (written by our train.py); official checkpoints
have none and are described with the flags (``--netG --norm --no_dropout --ngf --input_nc --output_nc``), which
also override the config. TorchScript and ONNX take any batch size, height and width; the .pt2 program any batch
size and heights and widths that are multiples of 4 (ResNets) or 2^depth (U-Nets). See docs/export.md.
"""
from __future__ import annotations

import argparse
import importlib
import inspect
import json
import math
import os
import sys
import time
import warnings
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from models import checkpoint_io, networks, stylegan2
from options import pretrained
from options.cli import OptionParser
from options.paths import check_epoch, check_experiment_files, check_folder, check_name
from util.image_io import DEFAULT_MAX_PIXELS, MAX_PIXELS_LIMIT, ImageReadError, ImageSizeError, load_image
from util.errors import UserError, add_debug_flag, cli_main
from util.logger import get_logger, setup_logging
from util.ranges import Choice, Range

log = get_logger("export")

FORMATS = ("export", "torchscript", "onnx")
SUFFIXES = {"export": ".pt2", "torchscript": ".torchscript.pt", "onnx": ".onnx"}
INSTALL_EXPORT = "pip install -e .[export] (or pip install -r requirements-dev.txt)"
ONNX_EXPORTERS = ("dynamo", "legacy")
DEFAULT_CHECK_SIZE = 256
# Architecture flags and their defaults when neither the command line nor config.json gives them (official).
ARCH_DEFAULTS: Dict[str, Any] = {"netG": "resnet_9blocks", "norm": "instance", "ngf": 64, "input_nc": 3,
                                 "output_nc": 3, "no_dropout": False, "upsample": "deconv"}


# The valid range of each numeric flag (None: not given); the check image stays within the pixel budget.
FLAG_RANGES: Dict[str, Range] = {**{k: networks.ARCH_RANGES[k] for k in ("ngf", "input_nc", "output_nc")},
                                 "check_size": Range(int, 1, math.isqrt(DEFAULT_MAX_PIXELS)),
                                 "max_pixels": Range(int, 1, MAX_PIXELS_LIMIT),
                                 "tolerance": Range(float, 0), "load_iter": Range(int, 0), "opset": Range(int, 7, 100)}


class ExportError(UserError, RuntimeError):
    """The export or its check against the eager model failed."""


# ---------------------------------------------------------------------------------------------------- the module
def pad_indices(size: int, pad: int, device: torch.device) -> Tuple[torch.Tensor, torch.Tensor]:
    """Row (or column) indices that pad ``size`` by ``pad`` at the end: reflected and replicated."""
    i = torch.arange(size + pad, device=device)
    reflect = torch.where(i < size, i, 2 * (size - 1) - i)
    replicate = torch.clamp(i, max=size - 1)
    return reflect, replicate


class ExportableGenerator(nn.Module):
    """The generator with its any-size padding written as shape-generic tensor operations.

    Eager generators pad the input at the bottom/right to a multiple of ``size_multiple`` (reflect, or replicate
    when the pad is not smaller than the side) with Python branches on the shape, which tracing would freeze.
    Here the padding is a gather with indices computed from the runtime shape and the reflect/replicate choice
    is a tensor ``where``, so one graph serves every size; ``torch.jit.script`` and the ONNX exporters keep H
    and W symbolic. Numerically identical to the eager forward pass.
    """

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.body = net.model
        self.multiple = int(net.size_multiple)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pad to a multiple of ``multiple``, run the network, crop back to the input's height and width."""
        h, w = x.shape[-2], x.shape[-1]
        ph = (self.multiple - h % self.multiple) % self.multiple
        pw = (self.multiple - w % self.multiple) % self.multiple
        reflect_h, replicate_h = pad_indices(h, ph, x.device)
        reflect_w, replicate_w = pad_indices(w, pw, x.device)
        # Reflection is possible when the pad is smaller than the side, i.e. no reflected index is negative.
        use_reflect = (reflect_h.min() >= 0) & (reflect_w.min() >= 0)
        rows = torch.where(use_reflect, reflect_h, replicate_h)
        cols = torch.where(use_reflect, reflect_w, replicate_w)
        y = self.body(x.index_select(2, rows).index_select(3, cols))
        return y[:, :, :h, :w]


def exportable(net: nn.Module) -> nn.Module:
    """``ExportableGenerator(net)`` for our generators (``model`` + ``size_multiple``); other modules as they are."""
    if isinstance(getattr(net, "model", None), nn.Module) and hasattr(net, "size_multiple"):
        return ExportableGenerator(net).eval()
    return net.eval()


# ---------------------------------------------------------------------------------------------------- building
def checkpoint_prefix(epoch: str, load_iter: int) -> str:
    """``iter_<N>`` when ``--load_iter`` > 0, else ``--epoch`` (as test.py)."""
    return checkpoint_io.load_prefix(load_iter, epoch)


def load_generator(args: argparse.Namespace) -> Tuple[nn.Module, Dict[str, Any]]:
    """Build the generator named by the arguments and load its weights (options/pretrained.py, the Python API's
    loader); return it and a description. The flags override config.json; without one the official defaults."""
    save_dir = os.path.join(args.checkpoints_dir, args.name)
    if not os.path.isdir(save_dir):
        raise ExportError(f"checkpoint folder not found: {save_dir} (check --name and --checkpoints_dir)")
    given = {key: getattr(args, key) for key in ARCH_DEFAULTS}
    try:
        net, info = pretrained.load_weights(save_dir, checkpoint_prefix(args.epoch, args.load_iter), args.net,
                                            architecture=given, defaults=ARCH_DEFAULTS, flag="--net ",
                                            action="export")
    except pretrained.PretrainedError as err:
        raise ExportError(str(err)) from None
    return net, dict(info, name=args.name)


# ---------------------------------------------------------------------------------------------------- exporting
def torch_export_unsupported() -> Optional[str]:
    """Why the installed PyTorch cannot write ``--format export`` (.pt2), or None."""
    needed = ("export", "save", "load", "Dim")
    if not hasattr(torch, "export") or not all(hasattr(torch.export, n) for n in needed):
        return f"torch {torch.__version__} has no torch.export.export/save/load: use --format torchscript"
    return None


# torch.export is the default where the installed PyTorch has it (torch.jit.load is deprecated from 2.x on)
DEFAULT_FORMATS = "export" if torch_export_unsupported() is None else "torchscript"


def size_multiple(net: nn.Module) -> int:
    """What the generator's height and width must be a multiple of (4 for ResNets, 2^depth for U-Nets; else 1)."""
    return int(getattr(net, "size_multiple", 1))


def export_program(net: nn.Module, path: str, channels: int) -> str:
    """``torch.export.export`` of the generator's network without its padding, saved as ``.pt2``.

    Batch, height and width are dynamic; height and width are ``multiple * Dim`` (at least twice the multiple, the
    smallest size every generator's normalisation takes): the any-size padding of the eager model makes
    torch.export specialise on the example's padding, so the program takes padded sizes and the caller pads.
    """
    body = net.model if isinstance(getattr(net, "model", None), nn.Module) else net
    m = size_multiple(net)
    dim = torch.export.Dim
    top = max(2, 65536 // m)
    shapes = ({0: dim("batch", min=1, max=4096), 2: m * dim("h", min=2, max=top), 3: m * dim("w", min=2, max=top)},)
    example = torch.zeros(2, channels, 3 * m, 2 * m)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        program = torch.export.export(body.eval(), (example,), dynamic_shapes=shapes)
        torch.export.save(program, path)
    return path


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` replicate-padded at the bottom and right to a multiple of ``multiple`` (at least twice it)."""
    h, w = x.shape[-2:]
    th, tw = max(2 * multiple, -(-h // multiple) * multiple), max(2 * multiple, -(-w // multiple) * multiple)
    if (th, tw) == (h, w):
        return x
    return torch.nn.functional.pad(x, (0, tw - w, 0, th - h), mode="replicate")


def export_torchscript(module: nn.Module, path: str) -> str:
    """Compile ``module`` with ``torch.jit.script`` (keeps H/W dynamic) and save it; return the path."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # TorchScript is frozen, still loadable
        warnings.filterwarnings("ignore", category=FutureWarning)
        scripted = torch.jit.script(module)
        torch.jit.save(scripted, path)
    return path


def export_onnx(module: nn.Module, example: torch.Tensor, path: str, exporter: str = "dynamo",
                opset: Optional[int] = None) -> str:
    """Export ``module`` to ONNX with dynamic batch, height and width (input ``input``, output ``output``)."""
    kwargs: Dict[str, Any] = {"input_names": ["input"], "output_names": ["output"]}
    if opset is not None:
        kwargs["opset_version"] = opset
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        if exporter == "dynamo":
            dim = torch.export.Dim
            shapes = {_forward_args(module)[0]: {0: dim.DYNAMIC, 2: dim.DYNAMIC, 3: dim.DYNAMIC}}
            torch.onnx.export(module, (example,), path, dynamo=True, dynamic_shapes=shapes, external_data=False,
                              verbose=False, **kwargs)
        else:
            axes = {0: "batch", 2: "height", 3: "width"}
            torch.onnx.export(module, (example,), path, dynamo=False, dynamic_axes={"input": axes, "output": axes},
                              **kwargs)
    name_dynamic_dims(path)
    return path


def name_dynamic_dims(path: str) -> None:
    """Call the dynamic axes of the ONNX input and output ``batch``, ``height``, ``width`` (the output has the
    input's size); the exporter leaves generated symbols there."""
    import onnx

    model = onnx.load(path)
    for value in list(model.graph.input) + list(model.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4:
            for index, label in ((0, "batch"), (2, "height"), (3, "width")):
                dims[index].dim_param = label
    onnx.save(model, path)


def _forward_args(module: nn.Module) -> List[str]:
    """Names of ``module.forward``'s parameters (the dynamo exporter keys dynamic shapes by them)."""
    import inspect

    return [p for p in inspect.signature(module.forward).parameters if p != "self"]


# ---------------------------------------------------------------------------------------------------- checking
def load_check_image(path: Optional[str], channels: int, size: int,
                     max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """The check input (1, C, H, W) in [-1, 1]: an image file read as the datasets read it (8-bit RGB, or its
    grayscale for one channel; at most ``max_pixels`` pixels), or a fixed synthetic image."""
    if path:
        if not os.path.exists(path):
            raise ExportError(f"--check_image {path}: file not found")
        try:
            img = load_image(path, max_pixels)
        except (ImageReadError, ImageSizeError) as err:
            raise ExportError(f"--check_image: {err}") from None
        if channels == 1:
            img = img.convert("L")
        array = np.asarray(img, dtype=np.float32) / 127.5 - 1.0
        if array.ndim == 2:
            array = array[:, :, None]
        array = np.repeat(array, channels, axis=2) if array.shape[2] != channels else array
        return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))[None]
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    base = torch.stack([torch.sin(3 * xx + c) * torch.cos(2 * yy - c) for c in range(channels)])
    return (0.8 * base + 0.2 * torch.rand(channels, size, size, generator=g) - 0.1).clamp(-1, 1)[None]


def check_sizes(image: torch.Tensor) -> List[torch.Tensor]:
    """The check image as it is and a crop of about 3/4 of it with odd-ish sides (a second, padded shape)."""
    h, w = image.shape[-2:]
    h2, w2 = max(1, h - h // 4 + 1), max(1, w - w // 4 + 3)
    second = image[:, :, :min(h2, h), :min(w2, w)]
    return [image] if second.shape == image.shape else [image, second]


def run_onnx(path: str, x: torch.Tensor) -> torch.Tensor:
    """Run an ONNX file with onnxruntime on the CPU."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError(f"checking the ONNX file needs the package onnxruntime: {INSTALL_EXPORT}; or pass "
                          f"--no_check") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: x.numpy()})[0])


def check_file(fmt: str, path: str, eager: nn.Module, inputs: Sequence[torch.Tensor],
               tolerance: float) -> List[Dict[str, Any]]:
    """Max |exported - eager| for each input; ``ExportError`` when it exceeds ``tolerance``.

    A generator that draws noise (SinCUT's StyleGAN2 generator) runs both ways from the same seed, so the draws
    agree (torch.export, TorchScript); onnxruntime draws with its own generator, so for ONNX only the output shape
    is compared.
    """
    noisy = stylegan2.draws_noise(eager)
    if fmt == "onnx":
        import onnx

        onnx.checker.check_model(path)
        run = lambda x: run_onnx(path, x)  # noqa: E731
    elif fmt == "export":
        run = torch.export.load(path).module()
        inputs = [pad_to_multiple(x, size_multiple(eager)) for x in inputs]  # the program takes padded sizes
    else:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.load: deprecated, still works
            run = torch.jit.load(path, map_location="cpu")
    results = []
    for x in inputs:
        # TorchScript's optimising executor re-profiles for every new shape (seconds per call for deep U-Nets);
        # its passes keep the numerics, so the check runs the graph as written.
        with torch.no_grad(), torch.jit.optimized_execution(False), torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            ref = eager(x)
            torch.manual_seed(0)
            out = run(x)
        if tuple(out.shape) != tuple(ref.shape):
            raise ExportError(f"{path}: output shape {tuple(out.shape)} for input {tuple(x.shape)}, the eager "
                              f"model gives {tuple(ref.shape)}")
        if noisy and fmt == "onnx":
            results.append({"input_shape": list(x.shape), "max_abs_diff": None})
            log.info("check %-11s input %s: shape only (the generator adds random noise, which onnxruntime draws "
                     "with its own generator)", fmt, "x".join(str(s) for s in x.shape))
            continue
        diff = float((out - ref).abs().max())
        results.append({"input_shape": list(x.shape), "max_abs_diff": diff})
        log.info("check %-11s input %s: max |exported - eager| = %.3g (tolerance %.3g)", fmt,
                 "x".join(str(s) for s in x.shape), diff, tolerance)
        if not diff <= tolerance:
            raise ExportError(f"{path} differs from the eager model by {diff:.3g} (> --tolerance {tolerance:g}) "
                              f"for an input of shape {tuple(x.shape)}")
    return results


# ---------------------------------------------------------------------------------------------------- command
def make_parser() -> OptionParser:
    """The command-line flags of export.py (``@file`` arguments and "did you mean" from options/cli.py)."""
    p = OptionParser(description="Export a trained generator with torch.export, TorchScript and/or ONNX.",
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--name", required=True, help="experiment name (the folder under --checkpoints_dir)")
    p.add_argument("--checkpoints_dir", default="./checkpoints", help="models are saved here")
    p.add_argument("--epoch", default="latest", help="which checkpoint: latest, an epoch number, ...")
    p.add_argument("--load_iter", type=int, default=0, help="if > 0, load iter_<load_iter> instead of --epoch")
    p.add_argument("--net", default=None, help="network to export (G_A, G_B, G, ...; default G, else G_A)")
    p.add_argument("--format", default=DEFAULT_FORMATS,
                   help=f"comma-separated: export (torch.export .pt2, for torch.export.load; the default where PyTorch has "
                        f"it), torchscript, onnx (onnx needs the packages onnx, onnxscript, onnxruntime: "
                        f"{INSTALL_EXPORT})")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--check_image", default=None, help="image to compare exported and eager outputs on "
                                                        "(default: a fixed synthetic image of --check_size)")
    p.add_argument("--check_size", type=int, default=None,
                   help=f"side of the synthetic check image (default: the --crop_size config.json records, else "
                        f"{DEFAULT_CHECK_SIZE})")
    p.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,  # checked with FLAG_RANGES
                   help="pixel budget of --check_image (larger images are refused by name)")
    p.add_argument("--tolerance", type=float, default=1e-3, help="largest accepted |exported - eager| (outputs "
                                                                 "are in [-1, 1])")
    p.add_argument("--no_check", action="store_true", help="skip the comparison with the eager model")
    exporter = Choice(ONNX_EXPORTERS)
    p.add_argument("--onnx_exporter", type=exporter, default="dynamo",
                   help=f"{exporter.listing()}: dynamo is torch.export based; legacy is TorchScript based, faster, "
                        f"deprecated by PyTorch")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    add_debug_flag(p)
    arch = p.add_argument_group("architecture (default: config.json beside the checkpoint, else these)")
    netG, norm, upsample = Choice(networks.GENERATORS), Choice(networks.NORM_LAYERS), Choice(networks.UPSAMPLE_MODES)
    arch.add_argument("--netG", type=netG, default=None, help=f"generator {netG.listing()}")
    arch.add_argument("--norm", type=norm, default=None, help=f"normalization {norm.listing()}")
    arch.add_argument("--ngf", type=int, default=None, help="# of gen filters in the last conv layer")
    arch.add_argument("--input_nc", type=int, default=None, help="# of input image channels")
    arch.add_argument("--output_nc", type=int, default=None, help="# of output image channels")
    arch.add_argument("--no_dropout", action="store_const", const=True, default=None,
                      help="the generator has no dropout layers (official CycleGAN checkpoints)")
    arch.add_argument("--upsample", type=upsample, default=None, help=f"generator upsampling {upsample.listing()}")
    return p


def parse_formats(text: str) -> List[str]:
    """``--format`` as a list; unknown names raise an error naming the flag."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise ExportError(f"--format '{text}': choose one or more of {', '.join(FORMATS)} (comma-separated)")
    return list(dict.fromkeys(formats))


def importable(name: str) -> bool:
    """Whether the package ``name`` can be imported here."""
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


def require_packages(formats: Sequence[str], args: argparse.Namespace) -> None:
    """ExportError naming the packages that the ONNX export (and its check) needs and this install lacks."""
    if "onnx" not in formats:
        return
    needed = ["onnx"] + (["onnxscript"] if args.onnx_exporter == "dynamo" else [])
    missing = [name for name in needed if not importable(name)]
    if missing:
        raise ExportError(f"--format onnx needs the package(s) {', '.join(missing)}: {INSTALL_EXPORT}")
    if not args.no_check and not importable("onnxruntime"):
        raise ExportError(f"checking the ONNX file needs the package onnxruntime: {INSTALL_EXPORT}; or pass "
                          f"--no_check")
def onnx_unsupported(exporter: str) -> Optional[str]:
    """Why the installed PyTorch cannot export ONNX with ``exporter``, or None (the project's minimum, 2.4, is
    older than what the exporters need: the ``dynamo`` argument of ``torch.onnx.export`` and ``Dim.DYNAMIC``)."""
    upgrade = (f"torch {torch.__version__} is installed; ONNX export needs PyTorch 2.6 or later "
               "(pip install -e '.[export]')")
    if "dynamo" not in inspect.signature(torch.onnx.export).parameters:
        return upgrade
    if exporter == "dynamo" and not hasattr(torch.export.Dim, "DYNAMIC"):
        return f"--onnx_exporter dynamo: {upgrade}, or use --onnx_exporter legacy"
    return None


def validate(args: argparse.Namespace) -> None:
    """One-line errors for flags that cannot work."""
    check_name(args.name)  # the experiment stays inside --checkpoints_dir, the checkpoint is one of its own
    check_epoch(args.epoch)
    check_folder(args.checkpoints_dir, "--checkpoints_dir")
    check_folder(args.out, "--out")
    check_experiment_files(os.path.join(args.checkpoints_dir, args.name))  # config.json a FIFO: said, not read
    # the named flags as the parser declares them (type=Choice), for arguments that did not come through it
    for action in make_parser().recorded:
        value = getattr(args, action.dest) if isinstance(action.type, Choice) else None
        problem = None if value is None else action.type.problem(action.option_strings[-1], value)
        if problem:
            raise ExportError(problem)
    for flag, valid in FLAG_RANGES.items():
        value = getattr(args, flag)
        problem = None if value is None else valid.problem(f"--{flag}", value)
        if problem:
            raise ExportError(problem)
    if "export" in parse_formats(args.format) and torch_export_unsupported():
        raise ExportError(f"--format export: {torch_export_unsupported()}")
    if "onnx" in parse_formats(args.format) and args.onnx_exporter in ONNX_EXPORTERS:
        reason = onnx_unsupported(args.onnx_exporter)
        if reason:
            raise ExportError(reason)


def export(args: argparse.Namespace) -> Dict[str, Any]:
    """Load the generator, write the requested formats and check them; return the report (also saved as JSON)."""
    formats = parse_formats(args.format)
    validate(args)
    require_packages(formats, args)
    net, info = load_generator(args)
    module = exportable(net)
    os.makedirs(args.out, exist_ok=True)
    base = os.path.splitext(checkpoint_io.net_filename(info["prefix"], info["net"]))[0]
    stem = os.path.join(args.out, f"{args.name.replace(os.sep, '_')}_{base}")
    check_size = args.check_size or info["trained"].get("crop_size", DEFAULT_CHECK_SIZE)  # the trained size
    image = load_check_image(args.check_image, info["architecture"]["input_nc"], check_size, args.max_pixels)
    report: Dict[str, Any] = dict(info, files={}, checks={},
                                  io={"input": "input: float32 N x C x H x W in [-1, 1] (pixel / 127.5 - 1)",
                                      "output": "output: float32 N x C x H x W in [-1, 1] (tanh)" if any(
                                          isinstance(m, nn.Tanh) for m in net.modules()) else
                                      "output: float32 N x C x H x W, images in [-1, 1] (not squashed: clip it)",
                                      "dynamic": ["batch", "height", "width"],
                                      "pt2_size_multiple": size_multiple(net)})
    for fmt in formats:
        start = time.time()
        if fmt == "export":
            path = export_program(net, stem + SUFFIXES[fmt], info["architecture"]["input_nc"])
        elif fmt == "torchscript":
            path = export_torchscript(module, stem + ".torchscript.pt")
        else:
            path = export_onnx(module, image, stem + ".onnx", exporter=args.onnx_exporter, opset=args.opset)
        log.info("wrote %s (%.1f s)", path, time.time() - start)
        report["files"][fmt] = os.path.abspath(path)
        if not args.no_check:
            report["checks"][fmt] = check_file(fmt, path, net, check_sizes(image), args.tolerance)
    report_path = stem + ".json"
    with open(report_path, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2, sort_keys=True)
        f.write("\n")
    log.info("wrote %s", report_path)
    if "onnx" not in formats:
        log.info("for an ONNX file too, add --format %s,onnx (needs onnx, onnxscript, onnxruntime: %s)",
                 ",".join(formats), INSTALL_EXPORT)
    return report


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Parse the command line (or ``argv``) and export."""
    setup_logging()
    parser = make_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    formats = parse_formats(args.format)
    try:  # a missing optional package: argparse's one error line saying what to install (exit status 2)
        require_packages(formats, args)
    except ExportError as err:
        parser.error(str(err))
    return export(args)


if __name__ == "__main__":
    sys.exit(cli_main(main))  # a user error: one "export.py: error:" line, exit status 2
