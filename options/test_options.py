"""Test flags: the official ones plus ours; the architecture comes from the checkpoint's config when present."""
from __future__ import annotations

import argparse
from typing import Any, Dict, Optional, Tuple

from models import find_model_using_name
from models.arch_config import apply_config

from .base_options import OURS_SECTION, BaseOptions
from .recorded import apply_recorded, recorded_options


class TestOptions(BaseOptions):
    """Options for test.py."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self) -> None:
        super().__init__()
        self._recorded: Optional[Tuple[Tuple[str, str], Dict[str, Any]]] = None

    def recorded(self, opt: argparse.Namespace) -> Dict[str, Any]:
        """The options of ``<checkpoints_dir>/<name>/config.json`` (read once per folder; a damaged file is named
        by a ``ConfigError``); empty for checkpoints without one."""
        key = (opt.checkpoints_dir, opt.name)
        if self._recorded is None or self._recorded[0] != key:
            self._recorded = (key, recorded_options(*key))
        return self._recorded[1]

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the test flags to the shared ones."""
        parser = BaseOptions.initialize(self, parser)
        parser.add_argument("--results_dir", type=str, default="./results/", help="saves results here.")
        parser.add_argument("--aspect_ratio", type=float, default=1.0, help="aspect ratio of result images")
        parser.add_argument("--phase", type=str, default="test", help="train, val, test, etc")
        parser.add_argument("--eval", action="store_true", help="use eval mode during test time.")
        parser.add_argument("--num_test", type=int, default=50, help="how many test images to run")
        with parser.section(OURS_SECTION):
            parser.add_argument("--force_direction", action="store_true",
                                help="[ours] translate with --direction even where the checkpoint's config.json "
                                     "records the other direction (the generator then gets images of the domain it "
                                     "was not trained on)")
        parser.set_defaults(model="test")
        # To avoid cropping, the load_size should be the same as crop_size
        parser.set_defaults(load_size=parser.get_default("crop_size"))
        return parser

    def finalize(self, opt: argparse.Namespace) -> None:
        """Official test-time settings; architecture, direction and sizes from the checkpoint config unless given."""
        explicit = set(opt.explicit_flags)
        opt.num_threads = 0
        if "batch_size" not in explicit:
            opt.batch_size = 1
        opt.serial_batches = True
        opt.no_flip = True
        opt.display_id = -1
        single = find_model_using_name(opt.model).single_generator(opt)
        apply_config(opt, explicit, single)
        apply_recorded(opt, explicit, self.recorded(opt), one_generator=single is not None)
