"""pix2pix: paired translation with a conditional GAN and an L1 loss."""
from __future__ import annotations

import argparse
from typing import Any, Dict

import torch
import torch.nn as nn

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
            parser.add_argument("--lambda_L1", type=float, default=100.0, help="weight for L1 loss")
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
            self.optimizer_G = self.make_optimizer(self.netG.parameters())
            self.optimizer_D = self.make_optimizer(self.netD.parameters())
            self.optimizers = [self.optimizer_G, self.optimizer_D]

    def set_input(self, input: Dict[str, Any]) -> None:
        """Take A and B (swapped for ``--direction BtoA``) and the A paths."""
        AtoB = self.opt.direction == "AtoB"
        self.real_A = input["A" if AtoB else "B"].to(self.device)
        self.real_B = input["B" if AtoB else "A"].to(self.device)
        self.image_paths = input["A_paths" if AtoB else "B_paths"]

    def forward(self) -> None:
        """fake_B = G(real_A)."""
        self.fake_B = self.netG(self.real_A)

    def backward_D(self, scale: float = 1.0) -> None:
        """0.5 * (GAN(D([A, fake_B].detach()), False) + GAN(D([A, B]), True)) [+ gradient penalty for wgangp]."""
        fake_AB = torch.cat((self.real_A, self.fake_B), 1).detach()
        self.loss_D_fake = self.criterionGAN(self.netD(fake_AB), False)
        real_AB = torch.cat((self.real_A, self.real_B), 1)
        self.loss_D_real = self.criterionGAN(self.netD(real_AB), True)
        self.loss_D = (self.loss_D_fake + self.loss_D_real) * 0.5
        if self.opt.gan_mode == "wgangp":
            penalty, _ = networks.cal_gradient_penalty(self.netD, real_AB, fake_AB, self.device,
                                                       lambda_gp=self.opt.lambda_gp)
            self.loss_D = self.loss_D + penalty
        (self.loss_D * scale).backward()

    def backward_G(self, scale: float = 1.0) -> None:
        """GAN(D([A, fake_B]), True) + lambda_L1 * L1(fake_B, B)."""
        fake_AB = torch.cat((self.real_A, self.fake_B), 1)
        self.loss_G_GAN = self.criterionGAN(self.netD(fake_AB), True)
        self.loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.opt.lambda_L1
        self.loss_G = self.loss_G_GAN + self.loss_G_L1
        (self.loss_G * scale).backward()

    def optimize_parameters(self) -> None:
        """Official order: forward, D step, then G step with D frozen."""
        plan = self.next_step_plan()
        with torch.set_grad_enabled(plan.update_G):
            self.forward()
        self.set_requires_grad(self.netD, True)
        if plan.zero_grad:
            self.optimizer_D.zero_grad(set_to_none=True)
        self.backward_D(plan.scale)
        if plan.step:
            self.optimizer_D.step()
        if plan.update_G:
            self.set_requires_grad(self.netD, False)
            if plan.zero_grad:
                self.optimizer_G.zero_grad(set_to_none=True)
            self.backward_G(plan.scale)
            if plan.step:
                self.optimizer_G.step()
