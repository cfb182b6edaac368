"""The valid range of every numeric flag, in one table, checked by ``BaseOptions.validate``.

``FLAG_RANGES`` covers the flags of train.py and test.py (the architecture numbers come from
``models.networks.ARCH_RANGES``, which also checks a checkpoint's config.json). A model or dataset that adds a
numeric flag in ``modify_commandline_options`` declares its range right there with ``type=Range(...)``
(``util.ranges``): argparse refuses a bad value at parse time, and the parser (``options.cli.OptionParser``)
records the flag so that ``validate`` checks the final value too. tests/test_ranges.py fails for a numeric option of any registered
model or dataset that has no range.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Mapping

from models.networks import ARCH_RANGES
from util.image_io import MAX_PIXELS_LIMIT
from util.ranges import Choice, Range

FLAG_RANGES: Dict[str, Range] = {
    **ARCH_RANGES,
    # shared (options/base_options.py)
    "num_threads": Range(int, 0, 256, note="0 loads data in the main process"),
    "batch_size": Range(int, 1, 4096),
    "load_size": Range(int, 1, 65536),
    "crop_size": Range(int, 1, 65536),
    "max_dataset_size": Range(int, 1, allow_inf=True),
    "display_winsize": Range(int, 1, 16384),
    "load_iter": Range(int, 0, note="0 loads --epoch"),
    "seed": Range(int, -1, 2 ** 32 - 1, note="-1: not seeded"),
    "max_pixels": Range(int, 1, MAX_PIXELS_LIMIT),
    "random_scale_max": Range(float, 1, 1000),
    # training (options/train_options.py)
    "display_freq": Range(int, 1),
    "display_ncols": Range(int, 0, 256, note="0: one window per image"),
    "display_id": Range(int, note="<= 0: no visdom display"),
    "display_port": Range(int, 1, 65535),
    "update_html_freq": Range(int, 1),
    "print_freq": Range(int, 1),
    "save_latest_freq": Range(int, 1),
    "save_epoch_freq": Range(int, 1),
    "epoch_count": Range(int, 1),
    "n_epochs": Range(int, 0),
    "n_epochs_decay": Range(int, 0),
    "beta1": Range(float, 0, 1, open_high=True),
    "lr": Range(float, 0, open_low=True),
    "pool_size": Range(int, 0, 10000, note="0: no image pool"),
    "lr_decay_iters": Range(int, 1),
    "lambda_gp": Range(float, 0),
    "d_steps": Range(int, 1, 1000),
    "accum_steps": Range(int, 1, 1 << 20),
    "eval_freq": Range(int, 0, note="0 = off"),
    "eval_num": Range(int, 2),
    "plot_smoothing": Range(float, 0, 1, open_high=True, note="0 = off"),
    # testing (options/test_options.py)
    "aspect_ratio": Range(float, 0.01, 100),
    "num_test": Range(int, 1),
}


def ranges_of(parser: Any) -> Dict[str, Range]:
    """``FLAG_RANGES`` plus the ranges the parser's model and dataset flags declared (``type=Range(...)``)."""
    declared = {a.dest: a.type for a in getattr(parser, "recorded", []) if isinstance(a.type, Range)}
    return {**FLAG_RANGES, **declared}


def check_ranges(opt: argparse.Namespace, ranges: Mapping[str, Range]) -> None:
    """Raise ``RangeError`` naming the first flag of ``opt`` whose value is outside its range."""
    for dest, valid in ranges.items():
        if hasattr(opt, dest):
            valid.check(f"--{dest}", getattr(opt, dest))


def choices_of(parser: Any) -> Dict[str, Choice]:
    """The named flags of the parser (``type=Choice(registry)``): dest -> its Choice."""
    return {a.dest: a.type for a in getattr(parser, "recorded", []) if isinstance(a.type, Choice)}


def check_choices(opt: argparse.Namespace, choices: Mapping[str, Choice]) -> None:
    """Raise ``ChoiceError`` naming the first named flag of ``opt`` whose value is not in its registry (None: a
    flag whose default is decided later, e.g. CUT's --normG)."""
    for dest, valid in choices.items():
        value = getattr(opt, dest)
        if value is not None:
            valid.check(f"--{dest}", value)
