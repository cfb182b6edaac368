"""CUT's option plumbing: what --CUT_mode sets, the parsing of --CUT_mode and --nce_layers, and the flag
combinations CUT cannot train or test with (models/cut_model.py declares the flags)."""
from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional, Sequence

from . import networks, stylegan2

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


def feature_layer_count(opt: argparse.Namespace) -> Optional[int]:
    """How many layers --netG has that PatchNCE can take features from (valid --nce_layers are 0 .. count - 1):
    the ResNets' ``model``, the StyleGAN2 generators' ``encoder.convs``; None for other generators."""
    if opt.netG in RESNETS:
        n_blocks = 9 if opt.netG == "resnet_9blocks" else 6
        return networks.resnet_layer_count(n_blocks, opt.no_antialias, opt.no_antialias_up)
    if opt.netG in networks.STYLEGAN2_GENERATORS:
        return stylegan2.encoder_layer_count(opt.stylegan2_G_num_downsampling,
                                             stylegan2.GENERATOR_VARIANTS[opt.netG]["n_blocks"])
    return None


def validate_options(opt: argparse.Namespace, generators: Sequence[str] = RESNETS,
                     layers_at_test: bool = True) -> None:
    """One-line errors for option values CUT (or a model built on it, taking its features from one of
    ``generators``) cannot train or test with; ``layers_at_test=False``: --nce_layers (unused at test time) is
    checked in training only."""
    model = opt.model
    if opt.netG not in generators:
        kinds = "a ResNet generator" if tuple(generators) == RESNETS else "a ResNet or StyleGAN2 generator"
        raise ValueError(f"--netG {opt.netG}: --model {model} takes its PatchNCE features from {kinds}; use --netG "
                         f"{' or '.join(generators)}")
    if opt.netG in RESNETS and not opt.no_antialias_up and opt.upsample != "deconv":
        raise ValueError(f"--upsample {opt.upsample} replaces the transposed convolutions, which --model {model} "
                         f"already replaces by antialiased upsampling; add --no_antialias_up or drop --upsample")
    count = feature_layer_count(opt) if opt.isTrain or layers_at_test else None
    layers = parse_layers(opt.nce_layers)
    if count is not None and (any(b <= a for a, b in zip(layers, layers[1:])) or layers[0] < 0
                              or layers[-1] >= count):
        example = "0,4,8,12,16" if opt.netG in RESNETS else ",".join(str(i) for i in range(0, count, 2))
        raise ValueError(f"--nce_layers {opt.nce_layers}: give ascending indices between 0 and {count - 1} "
                         f"(the layers of this --netG), e.g. {example}")
    if not opt.isTrain:
        return
    if opt.dataset_mode == "single":
        raise ValueError(f"--dataset_mode single gives only domain A; --model {model} trains on A and B (use "
                         f"--dataset_mode unaligned); single works at test time")
    if opt.input_nc != opt.output_nc and (opt.lambda_NCE > 0 or opt.nce_idt):
        why = "--nce_idt feeds real B through G" if opt.nce_idt else "PatchNCE feeds G's output back into G"
        raise ValueError(f"--input_nc {opt.input_nc} and --output_nc {opt.output_nc} differ, but {why}, which "
                         f"needs equal channel counts (grayscale: --input_nc 1 --output_nc 1)")
