"""Colorization: pix2pix from the L channel to the ab channels of Lab colour space."""
from __future__ import annotations

import argparse
from typing import Tuple

import numpy as np
import torch

from util.color import lab2rgb

from .pix2pix_model import Pix2PixModel


class ColorizationModel(Pix2PixModel):
    """pix2pix with 1 input channel (L) and 2 output channels (ab); visuals shown in RGB."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool = True) -> argparse.ArgumentParser:
        """pix2pix options with the colorization dataset."""
        Pix2PixModel.modify_commandline_options(parser, is_train)
        parser.set_defaults(dataset_mode="colorization")
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.visual_names = ["real_A", "real_B_rgb", "fake_B_rgb"]

    @staticmethod
    def lab2rgb(L: torch.Tensor, AB: torch.Tensor) -> np.ndarray:
        """Scaled (L, ab) tensors of a batch -> uint8-range RGB numpy image of the first item."""
        AB2 = AB * 110.0
        L2 = (L + 1.0) * 50.0
        Lab = torch.cat([L2, AB2], dim=1)[0].detach().float().cpu().numpy().astype(np.float64)
        rgb = lab2rgb(np.transpose(Lab, (1, 2, 0))) * 255
        return rgb

    def eval_pair(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """--eval_freq compares the predicted and the true colour images, Lab -> RGB per image (as the visuals)."""
        fakes, reals = [], []
        for i in range(self.real_A.shape[0]):
            L = self.real_A[i:i + 1].float()
            for ab, out in ((self.fake_B[i:i + 1].float(), fakes), (self.real_B[i:i + 1].float(), reals)):
                rgb = np.clip(self.lab2rgb(L, ab), 0, 255).astype(np.uint8)
                out.append(torch.from_numpy(rgb).permute(2, 0, 1))
        return torch.stack(fakes), torch.stack(reals)

    def compute_visuals(self) -> None:
        """RGB versions of the real and the predicted colour images."""
        self.real_B_rgb = self.lab2rgb(self.real_A, self.real_B)
        self.fake_B_rgb = self.lab2rgb(self.real_A, self.fake_B)
