"""Paired dataset: each file of ``<dataroot>/<phase>`` holds A and B side by side."""
from __future__ import annotations

import os
from argparse import Namespace
from typing import Any

from data.base_dataset import (BaseDataset, check_load_crop, check_preprocess, direction_nc, get_params,
                               get_transform, list_images)


class AlignedDataset(BaseDataset):
    """A|B image pairs for pix2pix; A and B share one crop position and one flip decision."""

    def __init__(self, opt: Namespace) -> None:
        """List ``<dataroot>/<phase>`` and check the preprocessing flags."""
        BaseDataset.__init__(self, opt)
        check_preprocess(opt.preprocess)
        check_load_crop(opt)
        self.dir_AB = os.path.join(opt.dataroot, opt.phase)
        layout = (f"--dataset_mode aligned reads {self.dir_AB}/*.jpg|png, each image holding A and B side by side "
                  f"(see datasets/combine_A_and_B.py)")
        self.AB_paths = list_images(self.dir_AB, opt, layout)
        self.input_nc, self.output_nc = direction_nc(opt)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return {'A', 'B', 'A_paths', 'B_paths'}; an odd total width drops the last column."""
        AB_path = self.AB_paths[index]
        AB = self.load_image(AB_path)
        w, h = AB.size
        w2 = int(w / 2)
        A = AB.crop((0, 0, w2, h))
        B = AB.crop((w2, 0, 2 * w2, h))
        params = get_params(self.opt, A.size)
        A = get_transform(self.opt, params, grayscale=(self.input_nc == 1))(A)
        B = get_transform(self.opt, params, grayscale=(self.output_nc == 1))(B)
        return {"A": A, "B": B, "A_paths": AB_path, "B_paths": AB_path}

    def __len__(self) -> int:
        """Number of A|B files."""
        return len(self.AB_paths)
