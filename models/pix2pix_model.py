"""pix2pix: paired translation with a conditional GAN and an L1 loss."""
from __future__ import annotations

import argparse

import torch
import torch.nn as nn

from util.ranges import Range

from . import networks
from .base_model import BaseModel


class Pix2PixModel(BaseModel):
    """G: A->B (U-Net by default); D sees the concatenation [A, B] on channels."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool = True) -> argparse.ArgumentParser:
        """pix2pix defaults: batch norm, unet_256, aligned data; training: vanilla GAN, no pool, L1 weight 100."""
        parser.set_defaults(norm="batch", netG="unet_256", dataset_mode="aligned")
        if is_train:
            parser.set_defaults(pool_size=0, gan_mode="vanilla")
            parser.add_argument("--lambda_L1", type=Range(float, 0), default=100.0, help="weight for L1 loss")
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.loss_names = ["G_GAN", "G_L1", "D_real", "D_fake"]
        self.visual_names = ["real_A", "fake_B", "real_B"]
        self.model_names = ["G", "D"] if self.isTrain else ["G"]
        self.netG = self.build_generator("G", opt.input_nc, opt.output_nc, not opt.no_dropout)
        if self.isTrain:
            self.netD = self.build_discriminator("D", opt.input_nc + opt.output_nc)
            self.criterionGAN = networks.GANLoss(opt.gan_mode).to(self.device)
            self.criterionL1 = nn.L1Loss()
            # G's weights get their gradient from one backward per step: each may be updated as soon as it is ready
            self.optimizer_G = self.make_optimizer(self.netG.parameters(), single_backward=True)
            self.optimizer_D = self.make_optimizer(self.netD.parameters())
            self.optimizers = [self.optimizer_G, self.optimizer_D]

    def forward(self) -> None:
        """fake_B = G(real_A)."""
        self.fake_B = self.netG(self.real_A)

    def backward_D(self) -> None:
        """0.5 * (GAN(D([A, fake_B].detach()), False) + GAN(D([A, B]), True)), D(fake) first as officially."""
        fake_AB = torch.cat((self.real_A, self.fake_B), 1)
        real_AB = torch.cat((self.real_A, self.real_B), 1)
        self.loss_D, self.loss_D_real, self.loss_D_fake = self.backward_D_basic(self.netD, real_AB, fake_AB,
                                                                                fake_first=True)

    def backward_G(self) -> None:
        """GAN(D([A, fake_B]), True) + lambda_L1 * L1(fake_B, B)."""
        fake_AB = torch.cat((self.real_A, self.fake_B), 1)
        self.loss_G_GAN = self.criterionGAN(self.netD(fake_AB), True)
        self.loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.opt.lambda_L1
        self.loss_G = self.loss_G_GAN + self.loss_G_L1
        self.loss_G.backward()

    def optimize_parameters(self) -> None:
        """Official order: forward, D step, then G step with D frozen (no D parameter gradients)."""
        self.forward()
        self.set_requires_grad(self.netD, True)
        self.optimizer_D.zero_grad()
        self.backward_D()
        self.optimizer_D.step()
        self.set_requires_grad(self.netD, False)
        self.optimizer_G.zero_grad()
        self.backward_G()
        self.optimizer_G.step()
