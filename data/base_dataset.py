"""Base class of every dataset and ``get_transform``, the official transform chain.

The steps of the chain live in data/transforms.py.

The transform order and semantics follow the official ``get_transform`` (and, for ``zoom_and_patch``, the CUT
code's); two deliberate differences:

* every step is a small picklable callable class (no lambdas or closures), so DataLoader workers also start
  under the ``spawn`` method (Windows, macOS) — official issues #203 and #947;
* ``--preprocess none`` returns the image at its exact size: the official code rounds each side to a
  multiple of 4, which breaks the U-Nets (docs/differences.md); our generators handle any size themselves.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from argparse import ArgumentParser, Namespace
from typing import Any, Optional

import numpy as np
import torch.utils.data as data

from data import transforms
from data.transforms import BICUBIC, CropAt, HorizontalFlip, Method, ScaleWidth, pil_resample  # noqa: F401 (API)
from data.image_folder import find_images
from util.image_io import (DEFAULT_MAX_PIXELS, ImageReadError, ImageSizeError, exif_orientation,  # noqa: F401 (API)
                           has_alpha, load_image, to_rgb)
from util.ranges import Choice

PREPROCESS_MODES: tuple[str, ...] = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none",
                                     "zoom_and_patch")


def check_preprocess(preprocess: str) -> None:
    """Raise ``ChoiceError`` naming ``--preprocess`` when ``preprocess`` is not one of ``PREPROCESS_MODES`` (a
    dataset built in code, not through the options); cheap when it is (called per sample)."""
    if preprocess not in PREPROCESS_MODES:
        Choice(PREPROCESS_MODES).check("--preprocess", preprocess)


def check_load_crop(opt: Namespace) -> None:
    """Raise ValueError when a resize-then-crop mode would crop more than it resized to (official assert)."""
    if opt.preprocess in ("resize_and_crop", "scale_width_and_crop") and opt.crop_size > opt.load_size:
        raise ValueError(
            f"--crop_size {opt.crop_size} is larger than --load_size {opt.load_size} with --preprocess "
            f"{opt.preprocess}; use a crop_size <= load_size"
        )


def direction_nc(opt: Namespace) -> tuple[int, int]:
    """Return the (A, B) channel counts after applying ``--direction`` (BtoA swaps input_nc and output_nc)."""
    if opt.direction == "BtoA":
        return opt.output_nc, opt.input_nc
    return opt.input_nc, opt.output_nc


class BaseDataset(data.Dataset, ABC):
    """Abstract base of the datasets: stores ``opt`` and ``root``; subclasses implement __len__ / __getitem__."""

    def __init__(self, opt: Namespace) -> None:
        """Store the options and the dataset root (``opt.dataroot``)."""
        self.opt = opt
        self.root = opt.dataroot

    @staticmethod
    def modify_commandline_options(parser: ArgumentParser, is_train: bool) -> ArgumentParser:
        """Add dataset-specific options or change defaults; the base class changes nothing."""
        return parser

    def load_image(self, path: str) -> Any:
        """``load_image`` (8-bit RGB, errors naming the file) with this run's pixel budget ``--max_pixels``."""
        return load_image(path, max_pixels(self.opt))

    def after_preflight(self) -> None:
        """Checks of the files left after the loader's pre-flight scan (``--bad_data skip`` may have dropped
        some); the base class has none."""

    @abstractmethod
    def __len__(self) -> int:
        """Return the number of samples."""

    @abstractmethod
    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return one sample as a dict of tensors and path strings."""


def list_images(folder: str, opt: Namespace, layout: str) -> list[str]:
    """Sorted image paths of ``folder`` capped at ``--max_dataset_size``; clear errors if missing or empty."""
    return find_images(folder, opt.max_dataset_size, layout)


def max_pixels(opt: Namespace) -> int:
    """The pixel budget of ``opt`` (``--max_pixels``)."""
    return int(opt.max_pixels)


def preprocess_sizes(size: tuple[int, int], opt: Namespace) -> list[tuple[str, tuple[int, int]]]:
    """The (w, h) an image of ``size`` has after each resizing or cropping step of ``get_transform``.

    Used to check a file before loading it (pre-flight scan): the pixel budget at each step, the final size
    against what the networks can take.
    """
    check_preprocess(opt.preprocess)
    w, h = size
    steps: list[tuple[str, tuple[int, int]]] = []
    if "resize" in opt.preprocess:
        w, h = opt.load_size, opt.load_size
        steps.append(("the resize to --load_size", (w, h)))
    elif "scale_width" in opt.preprocess:
        w, h = ScaleWidth(opt.load_size, opt.crop_size).output_size((w, h))
        steps.append(("the scale to a width of --load_size", (w, h)))
    if "crop" in opt.preprocess and max(w, h) > opt.crop_size:
        w, h = opt.crop_size, opt.crop_size
        steps.append(("the crop to --crop_size", (w, h)))
    if "zoom" in opt.preprocess:  # at most the image itself (factors <= 1), at least --crop_size per side
        w, h = max(w, opt.crop_size), max(h, opt.crop_size)
        steps.append(("the random zoom of --preprocess zoom_and_patch", (w, h)))
    if "patch" in opt.preprocess:
        w, h = opt.crop_size, opt.crop_size
        steps.append(("the patch of --crop_size", (w, h)))
    return steps


def get_params(opt: Namespace, size: tuple[int, int]) -> dict[str, Any]:
    """Draw the random crop position and flip for an image of ``size`` = (w, h), shared by paired images; for
    ``--preprocess zoom_and_patch`` also the zoom factors (``scale_factor``), the grid cell (``patch_index``) and
    the grid's offset (``patch_offset``, fractions of the margin)."""
    check_preprocess(opt.preprocess)
    w, h = size
    new_w, new_h = w, h
    if opt.preprocess == "resize_and_crop":
        new_w = new_h = opt.load_size
    elif opt.preprocess == "scale_width_and_crop":
        new_w = opt.load_size
        new_h = opt.load_size * h // w
    x = random.randint(0, int(np.maximum(0, new_w - opt.crop_size)))
    y = random.randint(0, int(np.maximum(0, new_h - opt.crop_size)))
    flip = random.random() > 0.5
    params: dict[str, Any] = {"crop_pos": (x, y), "flip": flip}
    if "zoom" in opt.preprocess:
        low = 1.0 / opt.random_scale_max
        params["scale_factor"] = (random.uniform(low, 1.0), random.uniform(low, 1.0))
    if "patch" in opt.preprocess:
        params["patch_index"] = random.randrange(1 << 30)
        params["patch_offset"] = (random.random(), random.random())
    return params


def get_transform(opt: Namespace, params: Optional[dict[str, Any]] = None, grayscale: bool = False,
                  method: Method = BICUBIC, convert: bool = True) -> transforms.Compose:
    """Build the official transform chain: grayscale, resize/scale, crop, flip, then tensor in [-1, 1].

    The resizing steps refuse (``ImageSizeError``) a result over ``--max_pixels`` before resizing.
    """
    check_preprocess(opt.preprocess)
    steps: list[Any] = []
    if grayscale:
        steps.append(transforms.Grayscale())
    budget = max_pixels(opt)
    if "resize" in opt.preprocess:
        steps.append(transforms.Resize((opt.load_size, opt.load_size), pil_resample(method), budget))
    elif "scale_width" in opt.preprocess:
        steps.append(ScaleWidth(opt.load_size, opt.crop_size, method, budget))
    if "crop" in opt.preprocess:
        if params is None:
            steps.append(transforms.RandomCrop(opt.crop_size))
        else:
            steps.append(CropAt(tuple(params["crop_pos"]), opt.crop_size))
    if "zoom" in opt.preprocess:
        factors = None if params is None else params.get("scale_factor")
        steps.append(transforms.RandomZoom(opt.crop_size, opt.random_scale_max, method, budget, factors))
    if "patch" in opt.preprocess:
        given = params or {}
        steps.append(transforms.Patch(opt.crop_size, given.get("patch_index"), given.get("patch_offset")))
    # preprocess 'none': no rounding to a multiple of 4 (deliberate fix, see the module docstring).
    if not opt.no_flip:
        if params is None:
            steps.append(transforms.RandomHorizontalFlip())
        elif params["flip"]:
            steps.append(HorizontalFlip())
    if convert:
        steps.append(transforms.ToNormalizedTensor())
    return transforms.Compose(steps)
