"""Template dataset: a documented starting point for writing your own dataset class.

To add a dataset called ``dummy``:

1. create ``data/dummy_dataset.py`` with a class ``DummyDataset(BaseDataset)`` — the file name and the class
   name must match (``--dataset_mode dummy`` finds it by name);
2. optionally implement ``modify_commandline_options`` to add flags or change defaults;
3. implement ``__init__`` (list the files, build transforms), ``__getitem__`` (return a dict) and ``__len__``.

This example reads A|B pairs from ``<dataroot>/<phase>`` like the aligned dataset, and returns them under the
keys ``data_A``, ``data_B`` and ``path`` (the official template's keys).
"""
from __future__ import annotations

import os
from argparse import ArgumentParser, Namespace
from typing import Any

from data.base_dataset import BaseDataset, direction_nc, get_params, get_transform, list_images
from util.ranges import Range


class TemplateDataset(BaseDataset):
    """Example dataset returning {'data_A', 'data_B', 'path'}."""

    @staticmethod
    def modify_commandline_options(parser: ArgumentParser, is_train: bool) -> ArgumentParser:
        """Add ``--new_dataset_option`` and change two defaults (dataset defaults win over model defaults)."""
        parser.add_argument("--new_dataset_option", type=Range(float), default=1.0, help="new dataset option")
        parser.set_defaults(max_dataset_size=10, new_dataset_option=2.0)
        return parser

    def __init__(self, opt: Namespace) -> None:
        """List the files of ``<dataroot>/<phase>`` and remember the options."""
        BaseDataset.__init__(self, opt)
        self.dir = os.path.join(opt.dataroot, opt.phase)
        layout = f"--dataset_mode template reads {self.dir}/*.png|jpg holding A and B side by side"
        self.image_paths = list_images(self.dir, opt, layout)
        self.new_dataset_option = opt.new_dataset_option
        self.nc_A, self.nc_B = direction_nc(opt)

    def __getitem__(self, index: int) -> dict[str, Any]:
        """Return one pair; A and B share the random crop and flip."""
        path = self.image_paths[index]
        AB = self.load_image(path)
        w2 = AB.size[0] // 2
        A = AB.crop((0, 0, w2, AB.size[1]))
        B = AB.crop((w2, 0, 2 * w2, AB.size[1]))
        params = get_params(self.opt, A.size)
        data_A = get_transform(self.opt, params, grayscale=(self.nc_A == 1))(A)
        data_B = get_transform(self.opt, params, grayscale=(self.nc_B == 1))(B)
        return {"data_A": data_A, "data_B": data_B, "path": path}

    def __len__(self) -> int:
        """Number of files."""
        return len(self.image_paths)
