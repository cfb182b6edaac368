"""CycleGAN: unpaired translation with two generators, two discriminators and cycle-consistency."""
from __future__ import annotations

import argparse
import itertools

import torch.nn as nn

from util.image_pool import ImagePool
from util.ranges import Range

from . import networks
from .base_model import BaseModel


class CycleGANModel(BaseModel):
    """G_A: A->B, G_B: B->A; D_A judges domain B, D_B judges domain A (paper: G, F, D_Y, D_X)."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool = True) -> argparse.ArgumentParser:
        """CycleGAN defaults to no dropout; training adds the cycle and identity loss weights."""
        parser.set_defaults(no_dropout=True)
        if is_train:
            parser.add_argument("--lambda_A", type=Range(float, 0), default=10.0,
                                help="weight for cycle loss (A -> B -> A)")
            parser.add_argument("--lambda_B", type=Range(float, 0), default=10.0,
                                help="weight for cycle loss (B -> A -> B)")
            parser.add_argument("--lambda_identity", type=Range(float, 0), default=0.5,
                                help="use identity mapping. Setting lambda_identity other than 0 has an effect of "
                                     "scaling the weight of the identity mapping loss. For example, if the weight of "
                                     "the identity loss should be 10 times smaller than the weight of the "
                                     "reconstruction loss, please set lambda_identity = 0.1")
        return parser

    @staticmethod
    def translates_both_ways(opt: argparse.Namespace) -> bool:
        """G_A and G_B: tests both directions (needs testA and testB on unaligned data)."""
        return True

    @staticmethod
    def validate_options(opt: argparse.Namespace) -> None:
        """The identity loss compares an image with its translation: equal channel counts."""
        if opt.isTrain and opt.lambda_identity > 0.0 and opt.input_nc != opt.output_nc:
            raise ValueError(f"--lambda_identity {opt.lambda_identity} needs --input_nc == --output_nc (got "
                             f"{opt.input_nc} and {opt.output_nc}); pass --lambda_identity 0")

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
            self.fake_A_pool = ImagePool(opt.pool_size)  # previously generated images
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

    def forward(self) -> None:
        """fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A)."""
        self.fake_B = self.netG_A(self.real_A)
        self.rec_A = self.netG_B(self.fake_B)
        self.fake_A = self.netG_B(self.real_B)
        self.rec_B = self.netG_A(self.fake_A)

    def backward_G(self) -> None:
        """The generators' loss, the official sum of six terms,

            loss_G = GAN(D_A(G_A(A))) + lambda_A |G_B(G_A(A)) - A|              direction A
                   + GAN(D_B(G_B(B))) + lambda_B |G_A(G_B(B)) - B|              direction B
                   + lambda_idt (lambda_B |G_A(B) - B| + lambda_A |G_B(A) - A|)   identity

        computed with ``forward``'s translations and back-propagated in these three pieces. The pieces share no
        activations, so each is back-propagated as soon as it is built and only a third of the generators'
        activations are alive at once; the gradients are those of the sum. Each network sees its inputs in the
        official order (batch-norm statistics and dropout masks follow the same sequence).
        """
        lambda_idt, lambda_A, lambda_B = self.opt.lambda_identity, self.opt.lambda_A, self.opt.lambda_B
        # 1. direction A: A -> G_A -> fake_B (judged by D_A) -> G_B -> rec_A
        self.fake_B = self.netG_A(self.real_A)
        self.rec_A = self.netG_B(self.fake_B)
        self.loss_G_A = self.criterionGAN(self.netD_A(self.fake_B), True)
        self.loss_cycle_A = self.criterionCycle(self.rec_A, self.real_A) * lambda_A
        (self.loss_G_A + self.loss_cycle_A).backward()
        # 2. direction B: B -> G_B -> fake_A (judged by D_B) -> G_A -> rec_B
        self.fake_A = self.netG_B(self.real_B)
        self.rec_B = self.netG_A(self.fake_A)
        self.loss_G_B = self.criterionGAN(self.netD_B(self.fake_A), True)
        self.loss_cycle_B = self.criterionCycle(self.rec_B, self.real_B) * lambda_B
        (self.loss_G_B + self.loss_cycle_B).backward()
        # 3. identity: G_A(B) should be B, G_B(A) should be A
        if lambda_idt > 0:
            self.idt_A = self.netG_A(self.real_B)
            self.loss_idt_A = self.criterionIdt(self.idt_A, self.real_B) * lambda_B * lambda_idt
            self.idt_B = self.netG_B(self.real_A)
            self.loss_idt_B = self.criterionIdt(self.idt_B, self.real_A) * lambda_A * lambda_idt
            (self.loss_idt_A + self.loss_idt_B).backward()
        self.loss_G = (self.loss_G_A + self.loss_G_B + self.loss_cycle_A + self.loss_cycle_B
                       + self.loss_idt_A + self.loss_idt_B)

    def backward_D_A(self) -> None:
        """D_A on real B vs pooled fake B."""
        fake_B = self.fake_B_pool.query(self.fake_B)
        self.loss_D_A = self.backward_D_basic(self.netD_A, self.real_B, fake_B).total

    def backward_D_B(self) -> None:
        """D_B on real A vs pooled fake A."""
        fake_A = self.fake_A_pool.query(self.fake_A)
        self.loss_D_B = self.backward_D_basic(self.netD_B, self.real_A, fake_A).total

    def backward_D(self) -> None:
        """Both discriminators."""
        self.backward_D_A()
        self.backward_D_B()

    def optimize_parameters(self) -> None:
        """Official order: generators (D frozen: no D parameter gradients), G step, then D_A and D_B, D step."""
        self.set_requires_grad([self.netD_A, self.netD_B], False)
        self.optimizer_G.zero_grad()
        self.backward_G()  # computes the translations as it goes (see its docstring)
        self.optimizer_G.step()
        self.set_requires_grad([self.netD_A, self.netD_B], True)
        self.optimizer_D.zero_grad()
        self.backward_D_A()
        self.backward_D_B()
        self.optimizer_D.step()
