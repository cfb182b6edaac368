"""What a training run recorded in its ``config.json`` and test.py reuses: the model, ``--CUT_mode``, the direction
and the image sizes (docs/testing.md, "What the run recorded").

A flag given on the command line wins; the log says in one line what came from the file, and warns when a given
flag differs from what the run was trained with. Checkpoints without ``config.json`` (official downloads) or with an
older one that lacks these keys are tested exactly as before.
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Dict, Optional, Set

from models.arch_config import config_path, read_config
from util.errors import InvalidInputError
from util.logger import get_logger

log = get_logger(__name__)

SIZE_FLAGS = ("preprocess", "load_size", "crop_size")
# The training preprocessing and the one that tests at the same scale without the random crop.
TEST_PREPROCESS = {"resize_and_crop": "resize_and_crop", "crop": "none", "scale_width": "scale_width",
                   "scale_width_and_crop": "scale_width", "none": "none", "zoom_and_patch": "none"}


def recorded_options(checkpoints_dir: str, name: str) -> Dict[str, Any]:
    """The ``options`` of ``<checkpoints_dir>/<name>/config.json`` (checked: ``ConfigError`` naming the file and
    the key when it cannot be read); empty when there is none."""
    cfg = read_config(os.path.join(checkpoints_dir, name))
    return {} if cfg is None else dict(cfg["options"])


def test_sizes(recorded: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """``--preprocess/--load_size/--crop_size`` that test a run at the scale it was trained at, without its
    random crop (the official test default: load_size = crop_size); None when the record lacks them."""
    if not all(key in recorded for key in SIZE_FLAGS):
        return None
    trained, load, crop = recorded["preprocess"], recorded["load_size"], recorded["crop_size"]
    preprocess = TEST_PREPROCESS[trained]
    if preprocess == "resize_and_crop":  # resize to the crop the networks saw; no crop
        load = crop
    return {"preprocess": preprocess, "load_size": load, "crop_size": crop}


def used_sizes(preprocess: str) -> tuple:
    """The size flags that ``preprocess`` reads."""
    return ("preprocess",) + (("load_size",) if "resize" in preprocess or "scale_width" in preprocess else ()) + \
        (("crop_size",) if "crop" in preprocess or "patch" in preprocess else ())


def flags_text(values: Dict[str, Any]) -> str:
    """``--preprocess none --load_size 32``."""
    return " ".join(f"--{k} {values[k]}" for k in SIZE_FLAGS + ("direction",) if k in values)


def apply_direction(opt: argparse.Namespace, explicit: Set[str], recorded: Dict[str, Any], path: str) -> None:
    """``--direction`` from the record unless given; one given against the record is refused unless
    ``--force_direction`` (then said in one line)."""
    trained = recorded.get("direction")
    if trained is None or opt.direction == trained:
        return
    if "direction" not in explicit:
        opt.direction = trained
        log.info("--direction %s, as the checkpoint was trained (%s)", trained, path)
        return
    a, b = trained.split("to")
    if not opt.force_direction:
        raise InvalidInputError(
            f"--direction {opt.direction}: the checkpoint was trained with --direction {trained} ({path}), so it "
            f"translates {a} to {b}; drop --direction (the recorded one is used), or add --force_direction to "
            f"translate {b} to {a} with the {a}->{b} generator anyway")
    log.warning("--direction %s given (--force_direction); the checkpoint was trained %s: translating %s to %s with "
                "the %s->%s generator", opt.direction, trained, b, a, a, b)


def apply_sizes(opt: argparse.Namespace, explicit: Set[str], recorded: Dict[str, Any], path: str) -> None:
    """``--preprocess/--load_size/--crop_size`` from the record unless given (``test_sizes``); a warning names the
    given ones that differ from the scale the run was trained at."""
    sizes = test_sizes(recorded)
    if sizes is None:
        return
    taken = {k: sizes[k] for k in SIZE_FLAGS if k not in explicit}
    preprocess = taken.get("preprocess", opt.preprocess)
    if preprocess == "resize_and_crop":  # no crop at test time: the size not given follows the one given
        if "load_size" in explicit and "crop_size" not in explicit:
            taken["crop_size"] = opt.load_size
        elif "crop_size" in explicit and "load_size" not in explicit:
            taken["load_size"] = opt.crop_size
    changed = {k: v for k, v in taken.items() if getattr(opt, k) != v}
    for key, value in taken.items():
        setattr(opt, key, value)
    trained = {k: recorded[k] for k in SIZE_FLAGS}
    if changed:
        log.info("image sizes from %s: %s (trained with %s)", path,
                 flags_text({k: getattr(opt, k) for k in used_sizes(opt.preprocess)}), flags_text(trained))
    differ = {k: getattr(opt, k) for k in used_sizes(opt.preprocess)
              if k in explicit and getattr(opt, k) != sizes[k]}
    if differ:
        log.warning("%s given; the checkpoint was trained with %s (tested at that scale as %s): translating at %s",
                    flags_text(differ), flags_text(trained), flags_text(sizes),
                    flags_text({k: getattr(opt, k) for k in used_sizes(opt.preprocess)}))


def apply_recorded(opt: argparse.Namespace, explicit: Set[str], recorded: Dict[str, Any],
                   one_generator: bool) -> None:
    """Direction and sizes from the record for test.py. ``one_generator`` (``--model test``): the direction of the
    training run does not apply (one generator on one folder of images)."""
    if not recorded:
        return
    path = config_path(os.path.join(opt.checkpoints_dir, opt.name))
    if not one_generator:
        apply_direction(opt, explicit, recorded, path)
    apply_sizes(opt, explicit, recorded, path)
