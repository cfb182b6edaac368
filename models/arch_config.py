"""Checkpoints carry their architecture: ``config.json`` beside the ``*_net_*.pth`` files.

The official code stores bare state_dicts, so a test run must repeat ``--netG/--norm/--no_dropout/...`` exactly
(the top cause of "Error(s) in loading state_dict"). We write, next to the weights, a small JSON file describing
every saved network; ``test.py`` reads it and fills in the architecture flags the user did not give explicitly.
Plain official checkpoints have no such file and load with the flags, exactly as in the official code.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, Optional, Set

from util.logger import get_logger

log = get_logger(__name__)

CONFIG_NAME = "config.json"
FORMAT_VERSION = 1
# Options that describe the model as a whole (copied as they were at training time).
MODEL_OPTIONS = ("model", "netG", "netD", "n_layers_D", "norm", "no_dropout", "ngf", "ndf", "input_nc",
                 "output_nc", "upsample", "init_type", "init_gain", "direction", "dataset_mode",
                 "normG", "normD", "no_antialias", "no_antialias_up")
# Flags test.py may take from the config (decisions.md); normG .. no_antialias_up exist for --model cut only.
INFERABLE = ("netG", "norm", "no_dropout", "ngf", "ndf", "input_nc", "output_nc", "upsample", "netD",
             "n_layers_D", "normG", "normD", "no_antialias", "no_antialias_up")


def config_path(save_dir: str) -> str:
    """Location of the architecture config inside a checkpoint folder."""
    return os.path.join(save_dir, CONFIG_NAME)


def build_config(opt: argparse.Namespace, networks: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    """The JSON document: format version, the model options, and each network's constructor arguments."""
    return {"format": FORMAT_VERSION,
            "options": {k: getattr(opt, k) for k in MODEL_OPTIONS if hasattr(opt, k)},
            "networks": networks}


def write_config(save_dir: str, config: Dict[str, Any]) -> None:
    """Write ``config.json`` atomically."""
    from util.util import atomic_write_text

    atomic_write_text(config_path(save_dir), json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_config(save_dir: str) -> Optional[Dict[str, Any]]:
    """Read ``config.json`` from a checkpoint folder; None when absent (plain official checkpoints)."""
    path = config_path(save_dir)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read the checkpoint config {path}: {exc}; delete it to fall back to the flags") \
            from None
    if not isinstance(cfg, dict) or cfg.get("format") != FORMAT_VERSION:
        raise ValueError(f"{path} has an unknown format (expected format {FORMAT_VERSION})")
    return cfg


def _network_entry(cfg: Dict[str, Any], opt: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """The saved generator that the current test run will load (``--model test`` picks G<model_suffix>)."""
    nets = cfg.get("networks", {})
    if opt.model == "test":
        return nets.get("G" + getattr(opt, "model_suffix", ""))
    return None


def apply_config(opt: argparse.Namespace, explicit: Set[str]) -> Dict[str, Any]:
    """Fill the architecture flags of ``opt`` from the checkpoint config unless given on the command line."""
    save_dir = os.path.join(opt.checkpoints_dir, opt.name)
    cfg = read_config(save_dir)
    if cfg is None:
        return {}
    changed: Dict[str, Any] = {}
    entry = _network_entry(cfg, opt)
    if entry is not None:
        values = {"netG": entry["netG"], "norm": entry["norm"], "no_dropout": not entry["use_dropout"],
                  "ngf": entry["ngf"], "input_nc": entry["input_nc"], "output_nc": entry["output_nc"],
                  "upsample": entry.get("upsample", "deconv")}
    elif opt.model != "test":
        values = {k: v for k, v in cfg["options"].items() if k in INFERABLE}
    else:
        values = {}
    for key, value in values.items():
        if key in explicit or not hasattr(opt, key) or getattr(opt, key) == value:
            continue
        setattr(opt, key, value)
        changed[key] = value
    if changed:
        log.info("using the architecture stored in %s: %s", config_path(save_dir),
                 ", ".join(f"--{k} {v}" for k, v in sorted(changed.items())))
    return changed
