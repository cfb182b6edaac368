"""One-folder dataset for one-direction inference: reads ``<dataroot>`` itself."""
from __future__ import annotations

from argparse import Namespace
from typing import Any

from data.base_dataset import BaseDataset, direction_nc, get_transform, list_images


class SingleDataset(BaseDataset):
    """The images of ``--dataroot`` (point it at the folder, e.g. datasets/horse2zebra/testA)."""

    def __init__(self, opt: Namespace) -> None:
        """List ``opt.dataroot`` and build the transform (grayscale when the direction-adjusted input_nc is 1)."""
        BaseDataset.__init__(self, opt)
        layout = "--dataset_mode single reads the images of --dataroot itself (e.g. datasets/horse2zebra/testA)"
        self.A_paths = list_images(opt.dataroot, opt, layout)
        nc_A, _ = direction_nc(opt)
        self.transform = get_transform(opt, grayscale=(nc_A == 1))

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return {'A', 'A_paths'}."""
        A_path = self.A_paths[index]
        return {"A": self.transform(self.load_image(A_path)), "A_paths": A_path}

    def __len__(self) -> int:
        """Number of images."""
        return len(self.A_paths)
