"""Unpaired dataset: ``<dataroot>/<phase>A`` and ``<dataroot>/<phase>B``."""
from __future__ import annotations

import os
import random
from argparse import Namespace
from typing import Any

from data.base_dataset import BaseDataset, direction_nc, get_transform, list_images


class UnalignedDataset(BaseDataset):
    """Unpaired A and B images for CycleGAN; B is drawn at random unless ``--serial_batches``."""

    def __init__(self, opt: Namespace) -> None:
        """List both folders and build independent A and B transforms."""
        BaseDataset.__init__(self, opt)
        self.dir_A = os.path.join(opt.dataroot, opt.phase + "A")
        self.dir_B = os.path.join(opt.dataroot, opt.phase + "B")
        layout = (f"--dataset_mode unaligned reads two folders, {self.dir_A} and {self.dir_B} "
                  f"(for a single folder use --dataset_mode single)")
        self.A_paths = list_images(self.dir_A, opt, layout)
        self.B_paths = list_images(self.dir_B, opt, layout)
        self.A_size = len(self.A_paths)
        self.B_size = len(self.B_paths)
        self.at_crop_size = False  # --load_crop_size_in_decay, in the decay epochs
        self._build_transforms()

    def _build_transforms(self) -> None:
        """The A and B transforms; loading at --crop_size instead of --load_size in the decay epochs if asked."""
        opt = Namespace(**vars(self.opt))
        if self.at_crop_size:
            opt.load_size = opt.crop_size
        nc_A, nc_B = direction_nc(opt)
        self.transform_A = get_transform(opt, grayscale=(nc_A == 1))
        self.transform_B = get_transform(opt, grayscale=(nc_B == 1))

    def set_epoch(self, epoch: int) -> bool:
        """With ``--load_crop_size_in_decay``, switch to load_size = crop_size after ``--n_epochs``; return whether
        the transforms changed (data-loader workers then need the new copy)."""
        opt = self.opt
        # short-circuits at test time, whose options have neither training flag
        wanted = bool(opt.isTrain and opt.load_crop_size_in_decay and epoch > opt.n_epochs)
        if wanted == self.at_crop_size:
            return False
        self.at_crop_size = wanted
        self._build_transforms()
        return True

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return {'A', 'B', 'A_paths', 'B_paths'} with A = A[index % |A|] and a serial or random B."""
        A_path = self.A_paths[index % self.A_size]
        if self.opt.serial_batches:
            index_B = index % self.B_size
        else:
            index_B = random.randint(0, self.B_size - 1)
        B_path = self.B_paths[index_B]
        A = self.transform_A(self.load_image(A_path))
        B = self.transform_B(self.load_image(B_path))
        return {"A": A, "B": B, "A_paths": A_path, "B_paths": B_path}

    def __len__(self) -> int:
        """The larger of the two folder sizes."""
        return max(self.A_size, self.B_size)
