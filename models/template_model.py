"""Template for a new model: a small conditional GAN (G: A -> B with a GAN and an L1 loss, D judges domain B).

Copy this file to ``models/<name>_model.py``, rename the class to ``<Name>Model`` and change the parts: options
(``modify_commandline_options``), networks, losses and optimizers (``__init__``), ``forward``, ``backward_D``,
``backward_G`` and ``optimize_parameters``. ``--model <name>`` then finds it, and every framework flag works for
it unchanged: ``--amp``, ``--accum_steps``, ``--d_steps``, ``--continue_train``, torchrun, ``--eval_freq``, export.
docs/adding_a_model.md says what the framework expects of the names.
"""
from __future__ import annotations

import argparse

import torch.nn as nn

from util.image_pool import ImagePool
from util.ranges import Range

from . import networks
from .base_model import BaseModel


class TemplateModel(BaseModel):
    """G: A -> B trained with GAN(D(G(A))) + lambda_regression |G(A) - B|; D judges domain B."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool = True) -> argparse.ArgumentParser:
        """Aligned data by default; training adds the regression loss weight."""
        parser.set_defaults(dataset_mode="aligned")
        if is_train:
            parser.add_argument("--lambda_regression", type=Range(float, 0), default=10.0,
                                help="weight for the L1 regression loss")
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.loss_names = ["G_GAN", "G_L1", "D"]  # printed and plotted: self.loss_<name>
        self.visual_names = ["real_A", "fake_B", "real_B"]  # shown on the pages: self.<name>
        self.model_names = ["G", "D"] if self.isTrain else ["G"]  # saved and loaded: self.net<name>
        self.netG = self.build_generator("G", opt.input_nc, opt.output_nc, not opt.no_dropout)
        if self.isTrain:
            self.netD = self.build_discriminator("D", opt.output_nc)
            self.fake_B_pool = ImagePool(opt.pool_size)
            self.criterionGAN = networks.GANLoss(opt.gan_mode).to(self.device)
            self.criterionL1 = nn.L1Loss()
            self.optimizer_G = self.make_optimizer(self.netG.parameters())
            self.optimizer_D = self.make_optimizer(self.netD.parameters())
            self.optimizers = [self.optimizer_G, self.optimizer_D]

    def forward(self) -> None:
        """fake_B = G(real_A)."""
        self.fake_B = self.netG(self.real_A)

    def backward_D(self) -> None:
        """D on real B vs a pooled fake B (detached, with the gradient penalty under wgangp)."""
        self.loss_D = self.backward_D_basic(self.netD, self.real_B, self.fake_B_pool.query(self.fake_B)).total

    def backward_G(self) -> None:
        """GAN(D(fake_B), True) + lambda_regression * |fake_B - real_B|."""
        self.loss_G_GAN = self.criterionGAN(self.netD(self.fake_B), True)
        self.loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.opt.lambda_regression
        (self.loss_G_GAN + self.loss_G_L1).backward()

    def optimize_parameters(self) -> None:
        """Forward; G step with D frozen; D step."""
        self.forward()
        self.set_requires_grad(self.netD, False)
        self.optimizer_G.zero_grad()
        self.backward_G()
        self.optimizer_G.step()
        self.set_requires_grad(self.netD, True)
        self.optimizer_D.zero_grad()
        self.backward_D()
        self.optimizer_D.step()
