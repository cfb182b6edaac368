"""pix2pix: paired translation with a conditional GAN and an L1 loss."""
from __future__ import annotations

import argparse
from typing import Any, Dict

import torch
import torch.nn as nn

from util import amp
from util.ranges import Range

from . import networks, step_utils
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
            self.optimizer_G = self.make_optimizer(self.netG.parameters())
            self.optimizer_D = self.make_optimizer(self.netD.parameters())
            self.optimizers = [self.optimizer_G, self.optimizer_D]
        # D(fake) and D(real) in one batched call where the norm is per-sample (models/step_utils.py)
        self.batch_D = step_utils.per_sample_norm(opt.norm)
        # G's optimizer update inside its backward: each G weight is used once per step (docs/performance.md)
        self.step_G_in_backward = True

    def set_input(self, input: Dict[str, Any]) -> None:
        """Take A and B (swapped for ``--direction BtoA``) and the A paths."""
        AtoB = self.opt.direction == "AtoB"
        self.real_A = input["A" if AtoB else "B"].to(self.device, non_blocking=True)
        self.real_B = input["B" if AtoB else "A"].to(self.device, non_blocking=True)
        self.image_paths = input["A_paths" if AtoB else "B_paths"]

    def forward(self) -> None:
        """fake_B = G(real_A)."""
        self.fake_B = self.netG(self.real_A)

    def backward_D(self, scale: float = 1.0) -> None:
        """0.5 * (GAN(D([A, fake_B].detach()), False) + GAN(D([A, B]), True)) [+ gradient penalty for wgangp]."""
        fake_AB = torch.cat((self.real_A, self.fake_B), 1).detach()
        real_AB = torch.cat((self.real_A, self.real_B), 1)
        with self.autocast():  # one batched call where the norm is per-sample; D(fake) first as officially
            pred_fake, pred_real = step_utils.run_batched(self.netD, [fake_AB, real_AB], self.batch_D)
        loss_D_fake = self.criterionGAN(amp.to_float(pred_fake), False)
        loss_D_real = self.criterionGAN(amp.to_float(pred_real), True)
        loss_D = (loss_D_fake + loss_D_real) * 0.5
        if self.opt.gan_mode == "wgangp":
            penalty, _ = networks.cal_gradient_penalty(self.netD, real_AB, fake_AB, self.device,
                                                       lambda_gp=self.opt.lambda_gp)
            loss_D = loss_D + penalty
        self.backward_loss(loss_D * scale)
        self.loss_D_fake, self.loss_D_real, self.loss_D = loss_D_fake.detach(), loss_D_real.detach(), loss_D.detach()

    def backward_G(self, scale: float = 1.0) -> None:
        """GAN(D([A, fake_B]), True) + lambda_L1 * L1(fake_B, B)."""
        fake_AB = torch.cat((self.real_A, self.fake_B), 1)
        with self.autocast():
            pred_fake = self.netD(fake_AB)
        loss_G_GAN = self.criterionGAN(amp.to_float(pred_fake), True)
        loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.opt.lambda_L1
        loss_G = loss_G_GAN + loss_G_L1
        self.backward_loss(loss_G * scale)
        self.loss_G_GAN, self.loss_G_L1, self.loss_G = loss_G_GAN.detach(), loss_G_L1.detach(), loss_G.detach()

    def optimize_parameters(self) -> None:
        """Official order: forward, D step, then G step with D frozen (no D parameter gradients)."""
        plan = self.next_step_plan()
        with torch.set_grad_enabled(plan.update_G):
            with self.autocast():
                self.forward()
            self.fake_B = amp.to_float(self.fake_B)
        self.set_requires_grad(self.netD, True)
        if plan.zero_grad:
            self.optimizer_D.zero_grad(set_to_none=True)
        self.backward_D(plan.scale)
        if plan.step:
            self.step_optimizer(self.optimizer_D)
        if plan.update_G:
            self.set_requires_grad(self.netD, False)
            if plan.zero_grad:
                self.optimizer_G.zero_grad(set_to_none=True)
            # update each G parameter as soon as its gradient is ready (no accumulation or loss scaling)
            fused = (self.step_G_in_backward and plan.zero_grad and plan.step and self.grad_scaler is None
                     and getattr(self.opt, "world_size", 1) <= 1  # DDP averages the gradients after backward
                     and step_utils.can_step_in_backward(self.optimizer_G))
            with step_utils.step_in_backward(self.optimizer_G, enabled=fused):
                self.backward_G(plan.scale)
            if plan.step and not fused:
                self.step_optimizer(self.optimizer_G)
        if plan.step:
            amp.update(self.grad_scaler)
        self.fake_B = self.fake_B.detach()  # only a visual from here on
