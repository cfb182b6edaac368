"""CycleGAN: unpaired translation with two generators, two discriminators and cycle-consistency."""
from __future__ import annotations

import argparse
import itertools
from dataclasses import dataclass
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from util import amp
from util.ranges import Range

from . import networks, step_utils
from .base_model import BaseModel


@dataclass
class CycleTerms:
    """One direction's generator terms (``CycleGANModel.cycle_terms``), with the graph until back-propagated."""

    fake: torch.Tensor  # G(real)
    rec: torch.Tensor  # G_back(G(real))
    gan: torch.Tensor  # GAN(D(G(real)), real label)
    cycle: torch.Tensor  # lambda_cycle |rec - real|
    idt: Optional[torch.Tensor] = None  # G(other domain's real), when computed
    loss_idt: Optional[torch.Tensor] = None

    def total(self) -> torch.Tensor:
        """The sum of the terms computed so far."""
        return self.gan + self.cycle if self.loss_idt is None else self.gan + self.cycle + self.loss_idt


def _detached(value: Optional[torch.Tensor], default: Any = None) -> Any:
    """``value.detach()``, or ``default`` when the term was not computed."""
    return default if value is None else value.detach()


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
            self.fake_A_pool = self.add_image_pool("fake_A_pool", opt.pool_size)
            self.fake_B_pool = self.add_image_pool("fake_B_pool", opt.pool_size)
            self.criterionGAN = networks.GANLoss(opt.gan_mode).to(self.device)
            self.criterionCycle = nn.L1Loss()
            self.criterionIdt = nn.L1Loss()
            self.optimizer_G = self.make_optimizer(itertools.chain(self.netG_A.parameters(),
                                                                   self.netG_B.parameters()))
            self.optimizer_D = self.make_optimizer(itertools.chain(self.netD_A.parameters(),
                                                                   self.netD_B.parameters()))
            self.optimizers = [self.optimizer_G, self.optimizer_D]
            self.loss_idt_A = self.loss_idt_B = 0.0
        # Where the norm is per-sample (models/step_utils.py), each discriminator judges real and fake in one call,
        # and on a GPU each generator runs its translation and identity passes in one call (fewer, larger
        # kernels). On the CPU that gains nothing (measured within 5 %) and separate calls keep a third fewer
        # activations alive (cycle_gan at 256²: 2.06 instead of 2.39 GB), so generators stay unbatched there.
        self.batch_D = step_utils.per_sample_norm(opt.norm)
        self.batch_G = self.batch_D and torch.device(self.device).type == "cuda"

    def set_input(self, input: Dict[str, Any]) -> None:
        """Take A and B (swapped for ``--direction BtoA``) and the A paths."""
        AtoB = self.opt.direction == "AtoB"
        self.real_A = input["A" if AtoB else "B"].to(self.device, non_blocking=True)
        self.real_B = input["B" if AtoB else "A"].to(self.device, non_blocking=True)
        self.image_paths = input["A_paths" if AtoB else "B_paths"]

    def forward(self) -> None:
        """fake_B = G_A(A), rec_A = G_B(fake_B), fake_A = G_B(B), rec_B = G_A(fake_A)."""
        self.fake_B = self.netG_A(self.real_A)
        self.rec_A = self.netG_B(self.fake_B)
        self.fake_A = self.netG_B(self.real_B)
        self.rec_B = self.netG_A(self.fake_A)

    def eval_generators(self) -> Dict[str, str]:
        """--eval_freq on unaligned data: G_A maps dataset domain A to B, unless --direction BtoA swaps the roles."""
        return {"AtoB": "G_A", "BtoA": "G_B"} if self.opt.direction == "AtoB" else {"AtoB": "G_B", "BtoA": "G_A"}

    def compute_visuals(self) -> None:
        """Fill in the visuals a discriminator-only step (``--d_steps``) skipped, only when they are displayed."""
        missing = [n for n in ("rec_A", "rec_B", "idt_A", "idt_B") if n in self.visual_names
                   and getattr(self, n, None) is None]
        if not missing:
            return
        with torch.no_grad(), self.autocast():
            made = {"rec_A": lambda: self.netG_B(self.fake_B), "rec_B": lambda: self.netG_A(self.fake_A),
                    "idt_A": lambda: self.netG_A(self.real_B), "idt_B": lambda: self.netG_B(self.real_A)}
            for name in missing:
                setattr(self, name, amp.to_float(made[name]()))

    # ------------------------------------------------------------------ generator step
    def backward_G(self, scale: float = 1.0) -> None:
        """The generators' loss and its gradients: the official sum of six terms,

            loss_G = GAN(D_A(G_A(A))) + lambda_A |G_B(G_A(A)) - A|              direction A
                   + GAN(D_B(G_B(B))) + lambda_B |G_A(G_B(B)) - B|              direction B
                   + lambda_idt (lambda_B |G_A(B) - B| + lambda_A |G_B(A) - A|)   identity

        back-propagated in three pieces. The pieces share no activations, so each is back-propagated as soon as
        it is built and only a third of the official step's generator activations are alive at once; the
        gradients are the same sum. Every network call stays separate, in the official per-network order (so
        BatchNorm statistics and dropout masks follow the same sequence), except on the batched path
        (``batch_G``: per-sample norm on a GPU), where each identity pass shares one call with its translation.
        """
        lambda_idt, lambda_A, lambda_B = self.opt.lambda_identity, self.opt.lambda_A, self.opt.lambda_B
        idt_in_translation = self.batch_G and lambda_idt > 0
        # 1. direction A: A -> G_A -> fake_B (judged by D_A) -> G_B -> rec_A
        a = self.cycle_terms(self.netG_A, self.netG_B, self.netD_A, self.real_A, lambda_A,
                             self.real_B if idt_in_translation else None, lambda_idt * lambda_B)
        self.backward_loss(a.total() * scale)
        # 2. direction B: B -> G_B -> fake_A (judged by D_B) -> G_A -> rec_B
        b = self.cycle_terms(self.netG_B, self.netG_A, self.netD_B, self.real_B, lambda_B,
                             self.real_A if idt_in_translation else None, lambda_idt * lambda_A)
        self.backward_loss(b.total() * scale)
        # 3. identity, when it did not share the translation calls: G_A(B) should be B, G_B(A) should be A
        if lambda_idt > 0 and not idt_in_translation:
            with self.autocast():
                idt_A = amp.to_float(self.netG_A(self.real_B))
                idt_B = amp.to_float(self.netG_B(self.real_A))
            a.idt, a.loss_idt = idt_A, self.criterionIdt(idt_A, self.real_B) * lambda_B * lambda_idt
            b.idt, b.loss_idt = idt_B, self.criterionIdt(idt_B, self.real_A) * lambda_A * lambda_idt
            self.backward_loss((a.loss_idt + b.loss_idt) * scale)
        # what is printed and shown (no graph kept)
        self.fake_B, self.rec_A, self.idt_A = a.fake.detach(), a.rec.detach(), _detached(a.idt)
        self.fake_A, self.rec_B, self.idt_B = b.fake.detach(), b.rec.detach(), _detached(b.idt)
        self.loss_G_A, self.loss_cycle_A, self.loss_idt_A = a.gan.detach(), a.cycle.detach(), _detached(a.loss_idt, 0)
        self.loss_G_B, self.loss_cycle_B, self.loss_idt_B = b.gan.detach(), b.cycle.detach(), _detached(b.loss_idt, 0)
        self.loss_G = a.total().detach() + b.total().detach()

    def cycle_terms(self, netG: nn.Module, netG_back: nn.Module, netD: nn.Module, real: torch.Tensor,
                    lambda_cycle: float, idt_input: Optional[torch.Tensor], lambda_idt: float) -> "CycleTerms":
        """One direction's terms: GAN(D(G(real))) and lambda_cycle |G_back(G(real)) - real|; with ``idt_input``,
        also G(idt_input) in the same call and its identity term lambda_idt |G(idt_input) - idt_input|."""
        with self.autocast():
            inputs = [real] if idt_input is None else [real, idt_input]
            outs = step_utils.run_batched(netG, inputs, True)
            fake = outs[0]
            rec = netG_back(fake)
            pred = netD(fake)
        rec = amp.to_float(rec)
        terms = CycleTerms(fake=amp.to_float(fake), rec=rec, gan=self.criterionGAN(amp.to_float(pred), True),
                           cycle=self.criterionCycle(rec, real) * lambda_cycle)
        if idt_input is not None:
            terms.idt = amp.to_float(outs[1])
            terms.loss_idt = self.criterionIdt(terms.idt, idt_input) * lambda_idt
        return terms

    # ------------------------------------------------------------------ discriminator step
    def backward_D_basic(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """0.5 * (GAN(D(real), True) + GAN(D(fake.detach()), False)) [+ gradient penalty for wgangp]."""
        fake = fake.detach()
        with self.autocast():
            pred_real, pred_fake = step_utils.run_batched(netD, [real, fake], self.batch_D)
        loss_D_real = self.criterionGAN(amp.to_float(pred_real), True)
        loss_D_fake = self.criterionGAN(amp.to_float(pred_fake), False)
        loss_D = (loss_D_real + loss_D_fake) * 0.5
        if self.opt.gan_mode == "wgangp":
            penalty, _ = networks.cal_gradient_penalty(netD, real, fake, self.device, lambda_gp=self.opt.lambda_gp)
            loss_D = loss_D + penalty
        return loss_D

    def backward_D_A(self, scale: float = 1.0) -> None:
        """D_A on real B vs pooled fake B."""
        fake_B = self.fake_B_pool.query(self.fake_B)
        loss = self.backward_D_basic(self.netD_A, self.real_B, fake_B)
        self.backward_loss(loss * scale)
        self.loss_D_A = loss.detach()

    def backward_D_B(self, scale: float = 1.0) -> None:
        """D_B on real A vs pooled fake A."""
        fake_A = self.fake_A_pool.query(self.fake_A)
        loss = self.backward_D_basic(self.netD_B, self.real_A, fake_A)
        self.backward_loss(loss * scale)
        self.loss_D_B = loss.detach()

    def forward_fakes(self) -> None:
        """Discriminator-only step (``--d_steps``): just the two translations, without gradients."""
        with torch.no_grad(), self.autocast():
            self.fake_B = amp.to_float(self.netG_A(self.real_A))
            self.fake_A = amp.to_float(self.netG_B(self.real_B))
        self.rec_A = self.rec_B = self.idt_A = self.idt_B = None

    def optimize_parameters(self) -> None:
        """Official order: generators (D frozen: no D parameter gradients), G step, then D_A and D_B, D step."""
        plan = self.next_step_plan()
        if plan.update_G:
            self.set_requires_grad([self.netD_A, self.netD_B], False)
            if plan.zero_grad:
                self.optimizer_G.zero_grad(set_to_none=True)
            self.backward_G(plan.scale)
            if plan.step:
                self.step_optimizer(self.optimizer_G)
            self.set_requires_grad([self.netD_A, self.netD_B], True)
        else:
            self.forward_fakes()
        if plan.zero_grad:
            self.optimizer_D.zero_grad(set_to_none=True)
        self.backward_D_A(plan.scale)
        self.backward_D_B(plan.scale)
        if plan.step:
            self.step_optimizer(self.optimizer_D)
            amp.update(self.grad_scaler)
