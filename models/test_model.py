"""One-direction inference with a single generator (e.g. one half of a CycleGAN, or a pretrained model)."""
from __future__ import annotations

import argparse
from typing import Any, Dict, Optional

from .base_model import BaseModel


class TestModel(BaseModel):
    """Loads ``<epoch>_net_G<model_suffix>.pth`` and translates single images; test only."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool = True) -> argparse.ArgumentParser:
        """Single-image data; ``--model_suffix`` picks which generator file to load."""
        if is_train:
            raise ValueError("--model test is for test.py only; train with --model cycle_gan or pix2pix")
        parser.set_defaults(dataset_mode="single")
        parser.add_argument("--model_suffix", type=str, default="",
                            help="In checkpoints_dir, [epoch]_net_G[model_suffix].pth will be loaded as the "
                                 "generator.")
        return parser

    @staticmethod
    def single_generator(opt: argparse.Namespace) -> Optional[str]:
        """``G<model_suffix>``: the one generator this model loads (e.g. G_A of a CycleGAN checkpoint)."""
        return "G" + opt.model_suffix

    def __init__(self, opt: argparse.Namespace) -> None:
        if opt.isTrain:
            raise ValueError("TestModel cannot be used during training")
        super().__init__(opt)
        self.loss_names = []
        self.visual_names = ["real", "fake"]
        self.model_names = ["G" + opt.model_suffix]
        self.netG = self.build_generator("G" + opt.model_suffix, opt.input_nc, opt.output_nc, not opt.no_dropout)
        setattr(self, "netG" + opt.model_suffix, self.netG)

    def set_input(self, input: Dict[str, Any]) -> None:
        """Take the single-domain batch."""
        self.real = input["A"].to(self.device)
        self.image_paths = input["A_paths"]

    def forward(self) -> None:
        """fake = G(real)."""
        self.fake = self.netG(self.real)

    def optimize_parameters(self) -> None:
        """No training for the test model."""
