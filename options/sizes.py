"""Image sizes the flags ask for: within the pixel budget, and large enough for the chosen networks.

``check_image_sizes(opt)`` runs in ``BaseOptions.validate``: ``--load_size`` and ``--crop_size`` must fit
``--max_pixels`` (``--load_size 100000`` would ask for 30 GB per image), and the final training size must not be
smaller than the networks take (``--crop_size 16`` with the basic PatchGAN crashes inside it). It records that
smallest side as ``opt.min_input_side`` (``opt.min_input_side_by`` names the flags that set it): the pre-flight
scan (data/validation.py) then names each image that would end up smaller, e.g. with ``--preprocess none``.
"""
from __future__ import annotations

import argparse
from typing import Tuple

from models import find_model_using_name, networks
from util.ranges import RangeError

# Attributes set here (not flags: not printed in the options table).
SIZE_KEYS = ("min_input_side", "min_input_side_by")


def input_floor(opt: argparse.Namespace) -> Tuple[int, str]:
    """The smallest image side the networks of ``--model`` take (training: G and D; test: G) and the flags
    that decide it."""
    model = find_model_using_name(opt.model)
    norms, layout = model.network_norms(opt), model.network_layout(opt)  # e.g. CUT's --normG, antialiasing
    floors = [(1, "the networks")]
    kinds = model.network_kinds(opt.isTrain)
    if "G" in kinds:
        floors.append((networks.min_side_for("G", opt.netG, norms["G"], no_antialias=layout["no_antialias"],
                                             no_antialias_up=layout["no_antialias_up"],
                                             **networks.network_extras("G", opt.netG, opt)), f"--netG {opt.netG}"))
    if "D" in kinds:
        by = f"--netD {opt.netD}" + (f" --n_layers_D {opt.n_layers_D}" if opt.netD == "n_layers" else "")
        floors.append((networks.min_side_for("D", opt.netD, norms["D"], opt.n_layers_D,
                                             no_antialias=layout["no_antialias"],
                                             **networks.network_extras("D", opt.netD, opt)), by))
    return max(floors, key=lambda f: f[0])


def check_image_sizes(opt: argparse.Namespace) -> None:
    """Raise ``RangeError`` when the resize/crop flags exceed ``--max_pixels`` or undercut the networks; set
    ``opt.min_input_side`` and ``opt.min_input_side_by``."""
    budget = opt.max_pixels
    used = {"load_size": "resize" in opt.preprocess or "scale_width" in opt.preprocess,
            "crop_size": "crop" in opt.preprocess or "patch" in opt.preprocess}
    sides = {"load_size": opt.load_size, "crop_size": opt.crop_size}
    for flag, side in sides.items():
        if used[flag] and side * side > budget:
            raise RangeError(f"--{flag} {side} asks for {side}x{side} = {side * side:,} pixels per image, over "
                             f"--max_pixels {budget:,}; use a smaller --{flag}")
    side, by = input_floor(opt)
    opt.min_input_side, opt.min_input_side_by = side, by
    final = {"crop": "crop_size", "patch": "crop_size", "scale_width": "load_size"}
    flag = next((f for key, f in final.items() if key in opt.preprocess), None)
    if flag is not None and sides[flag] < side:
        raise RangeError(f"--{flag} {sides[flag]} is smaller than {by} can take ({side}x{side} at least); "
                         f"use --{flag} {side} or more, or other networks")
