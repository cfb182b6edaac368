"""CUT's option plumbing: what --CUT_mode sets, the parsing of --CUT_mode and --nce_layers, and the flag
combinations CUT cannot train or test with (models/cut_model.py declares the flags)."""
from __future__ import annotations

import argparse
from typing import Any, Dict, List

from . import networks

MODES = {"cut": "CUT", "fastcut": "FastCUT"}
# What --CUT_mode sets (explicit flags win); n_epochs/n_epochs_decay only for training.
MODE_DEFAULTS: Dict[str, Dict[str, Any]] = {
    "CUT": {"lambda_NCE": 1.0, "nce_idt": True, "flip_equivariance": False, "n_epochs": 200, "n_epochs_decay": 200},
    "FastCUT": {"lambda_NCE": 10.0, "nce_idt": False, "flip_equivariance": True, "n_epochs": 150,
                "n_epochs_decay": 50},
}
TRAIN_ONLY = ("n_epochs", "n_epochs_decay")
RESNETS = ("resnet_9blocks", "resnet_6blocks")


def cut_mode(text: str) -> str:
    """``--CUT_mode`` in any case: CUT or FastCUT."""
    try:
        return MODES[str(text).lower()]
    except KeyError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a mode; choose CUT or FastCUT (any case)") from None


def parse_layers(text: str) -> List[int]:
    """``--nce_layers`` '0,4,8,12,16' as a list of ints (ValueError naming the flag otherwise)."""
    try:
        layers = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ValueError(f"--nce_layers '{text}' is not a comma-separated list of layer indices "
                         f"(e.g. 0,4,8,12,16)") from None
    if not layers:
        raise ValueError("--nce_layers is empty; give generator layer indices, e.g. 0,4,8,12,16")
    return layers


def validate_options(opt: argparse.Namespace) -> None:
    """One-line errors for option values CUT cannot train or test with."""
    if opt.netG not in RESNETS:
        raise ValueError(f"--netG {opt.netG}: --model cut takes its PatchNCE features from a ResNet generator; "
                         f"use --netG resnet_9blocks or resnet_6blocks")
    if not opt.no_antialias_up and opt.upsample != "deconv":
        raise ValueError(f"--upsample {opt.upsample} replaces the transposed convolutions, which --model cut "
                         f"already replaces by antialiased upsampling; add --no_antialias_up or drop --upsample")
    n_blocks = 9 if opt.netG == "resnet_9blocks" else 6
    count = networks.resnet_layer_count(n_blocks, opt.no_antialias, opt.no_antialias_up)
    layers = parse_layers(opt.nce_layers)
    if any(b <= a for a, b in zip(layers, layers[1:])) or layers[0] < 0 or layers[-1] >= count:
        raise ValueError(f"--nce_layers {opt.nce_layers}: give ascending indices between 0 and {count - 1} "
                         f"(the layers of this --netG), e.g. 0,4,8,12,16")
    if not opt.isTrain:
        return
    if opt.dataset_mode == "single":
        raise ValueError("--dataset_mode single gives only domain A; --model cut trains on A and B (use "
                         "--dataset_mode unaligned); single works at test time")
    if opt.input_nc != opt.output_nc and (opt.lambda_NCE > 0 or opt.nce_idt):
        why = "--nce_idt feeds real B through G" if opt.nce_idt else "PatchNCE feeds G's output back into G"
        raise ValueError(f"--input_nc {opt.input_nc} and --output_nc {opt.output_nc} differ, but {why}, which "
                         f"needs equal channel counts (grayscale: --input_nc 1 --output_nc 1)")
