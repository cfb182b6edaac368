"""Checkpoints carry their architecture: ``config.json`` beside the ``*_net_*.pth`` files.

The official code stores bare state_dicts, so a test run must repeat ``--netG/--norm/--no_dropout/...`` exactly
(the top cause of "Error(s) in loading state_dict"). We write, next to the weights, a small JSON file describing
every saved network; ``test.py`` reads it and fills in the architecture flags the user did not give explicitly.
Plain official checkpoints have no such file and load with the flags, exactly as in the official code.

``read_config`` checks the file against its schema (``OPTION_TYPES``, ``NETWORK_KEYS``; names from the network
registries, numbers within ``networks.ARCH_RANGES``) before anything uses it: a hand-edited or damaged file gives
one ``ConfigError`` naming config.json and the key, never a TypeError later or an error blamed on a flag the user
did not pass.
"""
from __future__ import annotations

import argparse
import json
import os
from typing import Any, Dict, Optional, Set

from util.errors import UserError
from util.logger import get_logger
from util.ranges import Choice, Range
from util.util import DIRECTIONS, atomic_write_text

from . import networks
from .cut_options import MODES as CUT_MODES

log = get_logger(__name__)

CONFIG_NAME = "config.json"
FORMAT_VERSION = 1
# Flags test.py may take from the config (docs/testing.md); explicit flags win. normG .. no_antialias_up exist
# for --model cut only.
INFERABLE = ("netG", "norm", "no_dropout", "ngf", "ndf", "input_nc", "output_nc", "upsample", "netD",
             "n_layers_D", "normG", "normD", "no_antialias", "no_antialias_up", "stylegan2_G_num_downsampling")
# The schema: the type of each option (all optional) and the keys of each network entry ("upsample" optional).
# model, CUT_mode, direction and the sizes tell test.py and export.py how the run was trained (options/recorded.py).
OPTION_TYPES: Dict[str, type] = {"model": str, "netG": str, "netD": str, "n_layers_D": int, "norm": str,
                                 "no_dropout": bool, "ngf": int, "ndf": int, "input_nc": int, "output_nc": int,
                                 "upsample": str, "init_type": str, "init_gain": float, "direction": str,
                                 "dataset_mode": str, "normG": str, "normD": str, "no_antialias": bool,
                                 "no_antialias_up": bool, "CUT_mode": str, "load_size": int, "crop_size": int,
                                 "preprocess": str, "stylegan2_G_num_downsampling": int}
# data.base_dataset.PREPROCESS_MODES (models may not import data: tests/test_layering.py; a test keeps them equal)
PREPROCESS_NAMES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none", "zoom_and_patch")
SIZE_RANGE = Range(int, 1, 65536)  # --load_size and --crop_size (options/ranges.py)
# Options that describe the model as a whole (copied as they were at training time): those of the schema.
MODEL_OPTIONS = tuple(OPTION_TYPES)
NETWORK_KEYS: Dict[str, Dict[str, type]] = {
    "G": {"netG": str, "input_nc": int, "output_nc": int, "ngf": int, "norm": str, "use_dropout": bool},
    "D": {"netD": str, "input_nc": int, "ndf": int, "n_layers_D": int, "norm": str},
}
# (the StyleGAN2 networks' numbers: models/networks.py network_extras)
OPTIONAL_NETWORK_KEYS: Dict[str, Dict[str, type]] = {"G": {"upsample": str, "no_antialias": bool,
                                                            "no_antialias_up": bool, "stylegan2_size": int,
                                                            "stylegan2_G_num_downsampling": int},
                                                      "D": {"no_antialias": bool, "stylegan2_size": int}}


class ConfigError(UserError, ValueError):
    """A checkpoint's config.json cannot be read or does not match its schema (the message names the file and
    the key)."""


# The keys that name a registry entry, and the registry's names (as the flags of the same name take them).
CHOICES: Dict[str, Choice] = {"netG": Choice(networks.GENERATORS), "netD": Choice(networks.DISCRIMINATORS),
                              "norm": Choice(networks.NORM_LAYERS), "normG": Choice(networks.NORM_LAYERS),
                              "normD": Choice(networks.NORM_LAYERS), "upsample": Choice(networks.UPSAMPLE_MODES),
                              "init_type": Choice(networks.INIT_TYPES), "direction": Choice(DIRECTIONS),
                              "preprocess": Choice(PREPROCESS_NAMES), "CUT_mode": Choice(tuple(CUT_MODES.values()))}


def model_names() -> tuple:
    """The names ``--model`` takes (the model registry; imported here, as models/__init__ imports this module)."""
    from models import list_models

    return tuple(list_models())


def value_problem(key: str, value: Any, kind: type) -> Optional[str]:
    """What is wrong with one value of the file (None when it is valid)."""
    if kind is bool:
        return None if isinstance(value, bool) else f"must be true or false, got {value!r}"
    if kind is str:
        if not isinstance(value, str):
            return f"must be a string, got {value!r}"
        valid = Choice(model_names()) if key == "model" else CHOICES.get(key)
        return None if valid is None or valid.contains(value) else f"'{value}' {valid.requirement(value)}"
    ranges = {**networks.ARCH_RANGES, **networks.EXTRA_RANGES}
    valid_range = SIZE_RANGE if key in ("load_size", "crop_size") else ranges.get(key, Range(kind))
    return None if valid_range.contains(value) else f"{valid_range.requirement(value)}, got {value!r}"


def check_config(cfg: Any, path: str) -> Dict[str, Any]:
    """Return ``cfg`` when it matches the schema; else raise ``ConfigError`` naming ``path`` and the key."""
    def fail(key: str, problem: str) -> ConfigError:
        return ConfigError(f"{path}: {key} {problem}; fix it, or delete {CONFIG_NAME} and give the architecture "
                           f"with the flags (--netG, --norm, --ngf, ...)")

    if not isinstance(cfg, dict):
        raise fail("the file", f"must hold a JSON object, got {type(cfg).__name__}")
    if cfg.get("format") != FORMAT_VERSION:
        raise fail("format", f"must be {FORMAT_VERSION} (a file of another version of this program?), got "
                             f"{cfg.get('format')!r}")
    for section in ("options", "networks"):
        if section not in cfg:
            raise fail(section, "is missing")
        if not isinstance(cfg[section], dict):
            raise fail(section, f"must be a JSON object, got {cfg[section]!r}")
    for key, value in cfg["options"].items():
        problem = value_problem(key, value, OPTION_TYPES[key]) if key in OPTION_TYPES else None
        if problem:
            raise fail(f"options.{key}", problem)
    for name, entry in cfg["networks"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
            raise fail(f"networks.{name}", f"must be a JSON object with a \"kind\", got {entry!r}")
        required = NETWORK_KEYS.get(entry["kind"], {})
        for key, kind in {**required, **OPTIONAL_NETWORK_KEYS.get(entry["kind"], {})}.items():
            if key not in entry:
                if key in required:
                    raise fail(f"networks.{name}.{key}", "is missing")
                continue
            problem = value_problem(key, entry[key], kind)
            if problem:
                raise fail(f"networks.{name}.{key}", problem)
    return cfg


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
    atomic_write_text(config_path(save_dir), json.dumps(config, indent=2, sort_keys=True) + "\n")


def read_config(save_dir: str) -> Optional[Dict[str, Any]]:
    """Read and check ``config.json`` of a checkpoint folder (``check_config``); None when absent (plain official
    checkpoints)."""
    path = config_path(save_dir)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read the checkpoint config {path}: {exc}; delete it to fall back to the flags") \
            from None
    return check_config(cfg, path)


def apply_config(opt: argparse.Namespace, explicit: Set[str],
                 single_generator: Optional[str] = None) -> Dict[str, Any]:
    """Fill the architecture flags of ``opt`` from the checkpoint config unless given on the command line.

    ``single_generator``: the network the model loads alone (``BaseModel.single_generator``: ``--model test``
    loads G<model_suffix>), whose entry gives the architecture; None: the checkpoint's options do.
    """
    save_dir = os.path.join(opt.checkpoints_dir, opt.name)
    cfg = read_config(save_dir)
    if cfg is None:
        return {}
    changed: Dict[str, Any] = {}
    if single_generator is None:
        values = {k: v for k, v in cfg["options"].items() if k in INFERABLE}
    else:
        entry = cfg["networks"].get(single_generator)
        if entry is None:
            log.warning("%s describes no network %s (it has %s): its architecture comes from the flags and the "
                        "defaults", config_path(save_dir), single_generator,
                        ", ".join(sorted(cfg["networks"])) or "none")
        values = {} if entry is None else {
            "netG": entry["netG"], "norm": entry["norm"], "no_dropout": not entry["use_dropout"], "ngf": entry["ngf"],
            "input_nc": entry["input_nc"], "output_nc": entry["output_nc"], "upsample": entry.get("upsample", "deconv")}
    for key, value in values.items():
        if key in explicit or not hasattr(opt, key) or getattr(opt, key) == value:
            continue
        setattr(opt, key, value)
        changed[key] = value
    if changed:
        log.info("using the architecture stored in %s: %s", config_path(save_dir),
                 ", ".join(f"--{k} {v}" for k, v in sorted(changed.items())))
    return changed
