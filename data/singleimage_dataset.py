"""Single-image translation (SinCUT): one image in ``<dataroot>/trainA``, one in ``<dataroot>/trainB``.

The CUT code's ``singleimage`` dataset mode. In training an epoch is ``PATCHES_PER_EPOCH`` samples (100,000, as in
the CUT code; ``--max_dataset_size`` lowers it), each a pair of random patches: A and B are each zoomed by their
own random factors, a ``--crop_size`` patch is cut from each and flipped at random (``--preprocess
zoom_and_patch``, bilinear resampling). At test time the dataset is the one pair, whole (``--preprocess none``
by default), so test.py translates the training image A. Both phases read ``trainA`` and ``trainB``, as the CUT
code does: there is nothing else to translate.

The random choices of a sample are drawn with the sample's own seed (data/sampler.py), so they are the same with
any number of loader workers and after a resume; the CUT code instead draws a table of zoom factors and a
permutation of grid cells when the dataset is built (docs/sincut.md).
"""
from __future__ import annotations

import os
from argparse import Namespace
from typing import Any, Dict

from PIL import Image

from data.base_dataset import BaseDataset, direction_nc, get_params, get_transform, list_images
from util.errors import InvalidInputError

PATCHES_PER_EPOCH = 100_000  # the CUT code's epoch: "the single image contains 100,000 crops"


class SingleImageDataset(BaseDataset):
    """The one A image and the one B image: random zoomed patches in training, the whole images at test time."""

    test_split = False  # nothing held out: --eval_freq is refused (options/evaluation.py)

    def __init__(self, opt: Namespace) -> None:
        """List ``trainA`` and ``trainB`` (exactly one image each: checked after the pre-flight scan, so that
        ``--bad_data skip`` can leave a broken extra file out first)."""
        BaseDataset.__init__(self, opt)
        self.dir_A = os.path.join(opt.dataroot, "trainA")
        self.dir_B = os.path.join(opt.dataroot, "trainB")
        layout = (f"--dataset_mode singleimage reads one image from {self.dir_A} and one from {self.dir_B} (in "
                  f"training and at test time)")
        self.A_paths = list_images(self.dir_A, opt, layout)
        self.B_paths = list_images(self.dir_B, opt, layout)
        self.images: Dict[str, Image.Image] = {}  # decoded once per process

    def after_preflight(self) -> None:
        """One-line error unless each folder holds exactly one image (called by the loader after its scan)."""
        for folder, paths in ((self.dir_A, self.A_paths), (self.dir_B, self.B_paths)):
            if len(paths) != 1:
                shown = ", ".join(os.path.basename(p) for p in paths[:3]) + (", ..." if len(paths) > 3 else "")
                raise InvalidInputError(
                    f"{folder} holds {len(paths)} images ({shown}), but --dataset_mode singleimage translates one "
                    f"image pair: keep one image in {folder}, or train on several with --dataset_mode unaligned")

    def image(self, path: str) -> Image.Image:
        """The decoded image (read once, then kept)."""
        if path not in self.images:
            self.images[path] = self.load_image(path)
        return self.images[path]

    def __getitem__(self, index: int) -> Dict[str, Any]:
        """{'A', 'B', 'A_paths', 'B_paths'}: two independent random patches in training, the whole pair at test
        time (``index`` only numbers the sample)."""
        nc_A, nc_B = direction_nc(self.opt)
        out: Dict[str, Any] = {}
        for key, path, channels in (("A", self.A_paths[0], nc_A), ("B", self.B_paths[0], nc_B)):
            img = self.image(path)
            params = get_params(self.opt, img.size) if self.opt.isTrain else None
            transform = get_transform(self.opt, params, grayscale=(channels == 1), method=Image.Resampling.BILINEAR)
            out[key], out[key + "_paths"] = transform(img), path
        return out

    def __len__(self) -> int:
        """Training: ``PATCHES_PER_EPOCH`` samples (at most ``--max_dataset_size``); test: the one pair."""
        if not self.opt.isTrain:
            return 1
        return int(min(PATCHES_PER_EPOCH, self.opt.max_dataset_size))
