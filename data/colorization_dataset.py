"""Colorization dataset: RGB images of ``<dataroot>/<phase>`` turned into (L, ab) pairs."""
from __future__ import annotations

import os
from argparse import ArgumentParser, Namespace
from typing import Any

import numpy as np
import torch

from data.base_dataset import BaseDataset, get_transform, list_images
from util.color import rgb2lab


class ColorizationDataset(BaseDataset):
    """A = L / 50 - 1 (1 channel), B = ab / 110 (2 channels), from CIE Lab (D65) of each image."""

    @staticmethod
    def modify_commandline_options(parser: ArgumentParser, is_train: bool) -> ArgumentParser:
        """Default to input_nc=1, output_nc=2 and direction AtoB."""
        parser.set_defaults(input_nc=1, output_nc=2, direction="AtoB")
        return parser

    def __init__(self, opt: Namespace) -> None:
        """List ``<dataroot>/<phase>`` and check the channel and direction flags."""
        BaseDataset.__init__(self, opt)
        if not (opt.input_nc == 1 and opt.output_nc == 2 and opt.direction == "AtoB"):
            raise ValueError(
                "--dataset_mode colorization needs --input_nc 1 --output_nc 2 --direction AtoB "
                f"(got input_nc={opt.input_nc}, output_nc={opt.output_nc}, direction={opt.direction})"
            )
        self.dir = os.path.join(opt.dataroot, opt.phase)
        layout = f"--dataset_mode colorization reads the colour images of {self.dir}"
        self.AB_paths = list_images(self.dir, opt, layout)
        self.transform = get_transform(opt, convert=False)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return {'A': L channel, 'B': ab channels, 'A_paths', 'B_paths'} as float32 tensors."""
        path = self.AB_paths[index]
        im = np.asarray(self.transform(self.load_image(path)))
        lab = torch.from_numpy(np.ascontiguousarray(rgb2lab(im).transpose(2, 0, 1)))
        A = lab[[0], ...] / 50.0 - 1.0
        B = lab[[1, 2], ...] / 110.0
        return {"A": A, "B": B, "A_paths": path, "B_paths": path}

    def __len__(self) -> int:
        """Number of images."""
        return len(self.AB_paths)
