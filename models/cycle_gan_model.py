"""CycleGAN: unpaired translation with two generators, two discriminators and cycle-consistency."""
from __future__ import annotations

import argparse
import itertools
from typing import Any, Dict

import torch
import torch.nn as nn

from util.image_pool import ImagePool

from . import networks
from .base_model import BaseModel


class CycleGANModel(BaseModel):
    """G_A: A->B, G_B: B->A; D_A judges domain B, D_B judges domain A (paper: G, F, D_Y, D_X)."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool = True) -> argparse.ArgumentParser:
        """CycleGAN defaults to no dropout; training adds the cycle and identity loss weights."""
        parser.set_defaults(no_dropout=True)
        if is_train:
            parser.add_argument("--lambda_A", type=float, default=10.0, help="weight for cycle loss (A -> B -> A)")
            parser.add_argument("--lambda_B", type=float, default=10.0, help="weight for cycle loss (B -> A -> B)")
            parser.add_argument("--lambda_identity", type=float, default=0.5,
                                help="use identity mapping. Setting lambda_identity other than 0 has an effect of "
                                     "scaling the weight of the identity mapping loss. For example, if the weight of "
                                     "the identity loss should be 10 times smaller than the weight of the "
                                     "reconstruction loss, please set lambda_identity = 0.1")
        return parser

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.loss_names = ["D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B"]
        visual_names_A = ["real_A", "fake_B", "rec_A"]
        visual_names_B = ["real_B", "fake_A", "rec_B"]
        if self.isTrain and opt.lambda_identity > 0.0:
            visual_names_A.append("idt_B")
            visual_names_B.append("idt_A")
        self.visual_names = visual_names_A + visual_names_B
        self.model_names = ["G_A", "G_B", "D_A", "D_B"] if self.isTrain else ["G_A", "G_B"]
        dropout = not opt.no_dropout
        self.netG_A = self.build_generator("G_A", opt.input_nc, opt.output_nc, dropout)
        self.netG_B = self.build_generator("G_B", opt.output_nc, opt.input_nc, dropout)
        if self.isTrain:
            self.netD_A = self.build_discriminator("D_A", opt.output_nc)
            self.netD_B = self.build_discriminator("D_B", opt.input_nc)
            if opt.lambda_identity > 0.0 and opt.input_nc != opt.output_nc:
                raise ValueError(f"--lambda_identity {opt.lambda_identity} needs --input_nc == --output_nc "
                                 f"(got {opt.input_nc} and {opt.output_nc}); pass --lambda_identity 0")
            self.fake_A_pool = ImagePool(opt.pool_size)
            self.fake_B_pool = ImagePool(opt.pool_size)
            self.criterionGAN = networks.GANLoss(opt.gan_mode).to(self.device)
            self.criterionCycle = nn.L1Loss()
            self.criterionIdt = nn.L1Loss()
            self.optimizer_G = self.make_optimizer(itertools.chain(self.netG_A.parameters(),
                                                                   self.netG_B.parameters()))
            self.optimizer_D = self.make_optimizer(itertools.chain(self.netD_A.parameters(),
                                                                   self.netD_B.parameters()))
            self.optimizers = [self.optimizer_G, self.optimizer_D]
            self.loss_idt_A = self.loss_idt_B = 0.0

    def set_input(self, input: Dict[str, Any]) -> None:
        """Take A and B (swapped for ``--direction BtoA``) and the A paths."""
        AtoB = self.opt.direction == "AtoB"
        self.real_A = input["A" if AtoB else "B"].to(self.device)
        self.real_B = input["B" if AtoB else "A"].to(self.device)
        self.image_paths = input["A_paths" if AtoB else "B_paths"]

    def forward(self) -> None:
        """fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A)."""
        self.fake_B = self.netG_A(self.real_A)
        self.rec_A = self.netG_B(self.fake_B)
        self.fake_A = self.netG_B(self.real_B)
        self.rec_B = self.netG_A(self.fake_A)

    def backward_D_basic(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """0.5 * (GAN(D(real), True) + GAN(D(fake.detach()), False)) [+ gradient penalty for wgangp]."""
        loss_D_real = self.criterionGAN(netD(real), True)
        fake = fake.detach()
        loss_D_fake = self.criterionGAN(netD(fake), False)
        loss_D = (loss_D_real + loss_D_fake) * 0.5
        if self.opt.gan_mode == "wgangp":
            penalty, _ = networks.cal_gradient_penalty(netD, real, fake, self.device, lambda_gp=self.opt.lambda_gp)
            loss_D = loss_D + penalty
        return loss_D

    def backward_D_A(self, scale: float = 1.0) -> None:
        """D_A on real B vs pooled fake B."""
        fake_B = self.fake_B_pool.query(self.fake_B)
        self.loss_D_A = self.backward_D_basic(self.netD_A, self.real_B, fake_B)
        (self.loss_D_A * scale).backward()

    def backward_D_B(self, scale: float = 1.0) -> None:
        """D_B on real A vs pooled fake A."""
        fake_A = self.fake_A_pool.query(self.fake_A)
        self.loss_D_B = self.backward_D_basic(self.netD_B, self.real_A, fake_A)
        (self.loss_D_B * scale).backward()

    def backward_G(self, scale: float = 1.0) -> None:
        """Adversarial + cycle (+ identity) losses of both generators."""
        lambda_idt = self.opt.lambda_identity
        lambda_A, lambda_B = self.opt.lambda_A, self.opt.lambda_B
        if lambda_idt > 0:
            self.idt_A = self.netG_A(self.real_B)
            self.loss_idt_A = self.criterionIdt(self.idt_A, self.real_B) * lambda_B * lambda_idt
            self.idt_B = self.netG_B(self.real_A)
            self.loss_idt_B = self.criterionIdt(self.idt_B, self.real_A) * lambda_A * lambda_idt
        else:
            self.loss_idt_A = 0
            self.loss_idt_B = 0
        self.loss_G_A = self.criterionGAN(self.netD_A(self.fake_B), True)
        self.loss_G_B = self.criterionGAN(self.netD_B(self.fake_A), True)
        self.loss_cycle_A = self.criterionCycle(self.rec_A, self.real_A) * lambda_A
        self.loss_cycle_B = self.criterionCycle(self.rec_B, self.real_B) * lambda_B
        self.loss_G = (self.loss_G_A + self.loss_G_B + self.loss_cycle_A + self.loss_cycle_B
                       + self.loss_idt_A + self.loss_idt_B)
        (self.loss_G * scale).backward()

    def optimize_parameters(self) -> None:
        """Official order: forward, G step (D frozen), then D_A and D_B step."""
        plan = self.next_step_plan()
        with torch.set_grad_enabled(plan.update_G):
            self.forward()
        if plan.update_G:
            self.set_requires_grad([self.netD_A, self.netD_B], False)
            if plan.zero_grad:
                self.optimizer_G.zero_grad(set_to_none=True)
            self.backward_G(plan.scale)
            if plan.step:
                self.optimizer_G.step()
            self.set_requires_grad([self.netD_A, self.netD_B], True)
        if plan.zero_grad:
            self.optimizer_D.zero_grad(set_to_none=True)
        self.backward_D_A(plan.scale)
        self.backward_D_B(plan.scale)
        if plan.step:
            self.optimizer_D.step()
