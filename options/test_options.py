"""Test flags: the official ones plus ours; the architecture comes from the checkpoint's config when present."""
from __future__ import annotations

import argparse

from models import find_model_using_name
from models.arch_config import apply_config

from .base_options import BaseOptions


class TestOptions(BaseOptions):
    """Options for test.py."""

    __test__ = False  # not a pytest test class, despite the name

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the test flags to the shared ones."""
        parser = BaseOptions.initialize(self, parser)
        parser.add_argument("--results_dir", type=str, default="./results/", help="saves results here.")
        parser.add_argument("--aspect_ratio", type=float, default=1.0, help="aspect ratio of result images")
        parser.add_argument("--phase", type=str, default="test", help="train, val, test, etc")
        parser.add_argument("--eval", action="store_true", help="use eval mode during test time.")
        parser.add_argument("--num_test", type=int, default=50, help="how many test images to run")
        parser.set_defaults(model="test")
        # To avoid cropping, the load_size should be the same as crop_size
        parser.set_defaults(load_size=parser.get_default("crop_size"))
        return parser

    def finalize(self, opt: argparse.Namespace) -> None:
        """Official test-time settings; architecture flags from the checkpoint config unless given explicitly."""
        explicit = set(opt.explicit_flags)
        opt.num_threads = 0
        if "batch_size" not in explicit:
            opt.batch_size = 1
        opt.serial_batches = True
        opt.no_flip = True
        opt.display_id = -1
        apply_config(opt, explicit, find_model_using_name(opt.model).single_generator(opt))
