"""The official training step, written plainly, as an in-process baseline for the benchmark (``--plain``).

The official figures of the issue were measured at another time; machine noise aside, a baseline measured in
the same run is the fairer comparison. ``make_plain(model)`` turns one of our models back into the official
computation: the official kernels (``nn.InstanceNorm2d``, plain padding), ``torch.optim.Adam`` with PyTorch's
default implementation, and the official step order with one graph and one backward for all generator losses
(the official cycle_gan and pix2pix steps). Only the benchmark uses this; it is not a training option.
"""
from __future__ import annotations

import itertools
import types
from typing import Any, Callable, Dict

import torch
import torch.nn as nn

from models.base_model import unwrap

_PLAIN_CLASSES = (nn.InstanceNorm2d, nn.ReflectionPad2d, nn.ReplicationPad2d)


def plain_kernels(model: Any) -> None:
    """Put every swapped layer class (fast instance norm, dtype-keeping pads) back to the official class and the
    weights back to the official (contiguous) memory layout."""
    for name in model.model_names:
        net = unwrap(getattr(model, "net" + name)).to(memory_format=torch.contiguous_format)
        for module in net.modules():
            for cls in _PLAIN_CLASSES:
                if isinstance(module, cls) and type(module) is not cls:
                    module.__class__ = cls


def official_adam(model: Any, *groups: str) -> None:
    """Replace the model's optimizers by default-implementation Adam over the named networks' parameters."""
    opt = model.opt
    optimizers = []
    for group in groups:
        params = itertools.chain(*(getattr(model, "net" + n).parameters() for n in group.split("+")))
        optimizers.append(torch.optim.Adam(params, lr=opt.lr, betas=(opt.beta1, 0.999)))
    model.optimizer_G, model.optimizer_D = optimizers
    model.optimizers = optimizers


def cycle_gan_step(self: Any) -> None:
    """Official CycleGAN optimize_parameters: forward, G step (one backward of the six terms), D_A/D_B step."""
    self.fake_B = self.netG_A(self.real_A)
    self.rec_A = self.netG_B(self.fake_B)
    self.fake_A = self.netG_B(self.real_B)
    self.rec_B = self.netG_A(self.fake_A)
    self.set_requires_grad([self.netD_A, self.netD_B], False)
    self.optimizer_G.zero_grad()
    lambda_idt, lambda_A, lambda_B = self.opt.lambda_identity, self.opt.lambda_A, self.opt.lambda_B
    if lambda_idt > 0:
        self.idt_A = self.netG_A(self.real_B)
        self.loss_idt_A = self.criterionIdt(self.idt_A, self.real_B) * lambda_B * lambda_idt
        self.idt_B = self.netG_B(self.real_A)
        self.loss_idt_B = self.criterionIdt(self.idt_B, self.real_A) * lambda_A * lambda_idt
    else:
        self.loss_idt_A = self.loss_idt_B = 0
    self.loss_G_A = self.criterionGAN(self.netD_A(self.fake_B), True)
    self.loss_G_B = self.criterionGAN(self.netD_B(self.fake_A), True)
    self.loss_cycle_A = self.criterionCycle(self.rec_A, self.real_A) * lambda_A
    self.loss_cycle_B = self.criterionCycle(self.rec_B, self.real_B) * lambda_B
    self.loss_G = (self.loss_G_A + self.loss_G_B + self.loss_cycle_A + self.loss_cycle_B + self.loss_idt_A
                   + self.loss_idt_B)
    self.loss_G.backward()
    self.optimizer_G.step()
    self.set_requires_grad([self.netD_A, self.netD_B], True)
    self.optimizer_D.zero_grad()
    for name, net, real, fake, pool in (("D_A", self.netD_A, self.real_B, self.fake_B, self.fake_B_pool),
                                        ("D_B", self.netD_B, self.real_A, self.fake_A, self.fake_A_pool)):
        fake = pool.query(fake)
        loss = (self.criterionGAN(net(real), True) + self.criterionGAN(net(fake.detach()), False)) * 0.5
        loss.backward()
        setattr(self, "loss_" + name, loss)
    self.optimizer_D.step()


def pix2pix_step(self: Any) -> None:
    """Official pix2pix optimize_parameters: forward, D step, then G step with D frozen."""
    self.fake_B = self.netG(self.real_A)
    self.set_requires_grad(self.netD, True)
    self.optimizer_D.zero_grad()
    fake_AB = torch.cat((self.real_A, self.fake_B), 1)
    self.loss_D_fake = self.criterionGAN(self.netD(fake_AB.detach()), False)
    self.loss_D_real = self.criterionGAN(self.netD(torch.cat((self.real_A, self.real_B), 1)), True)
    ((self.loss_D_fake + self.loss_D_real) * 0.5).backward()
    self.optimizer_D.step()
    self.set_requires_grad(self.netD, False)
    self.optimizer_G.zero_grad()
    self.loss_G_GAN = self.criterionGAN(self.netD(fake_AB), True)
    self.loss_G_L1 = self.criterionL1(self.fake_B, self.real_B) * self.opt.lambda_L1
    (self.loss_G_GAN + self.loss_G_L1).backward()
    self.optimizer_G.step()


_STEPS: Dict[str, tuple] = {"cycle_gan": (cycle_gan_step, ("G_A+G_B", "D_A+D_B")),
                            "pix2pix": (pix2pix_step, ("G", "D"))}


def make_plain(model: Any) -> None:
    """Turn ``model`` (after setup) into the official computation; test models only get the official kernels."""
    plain_kernels(model)
    if not model.isTrain:
        return
    if model.opt.model not in _STEPS:
        raise ValueError(f"--plain: no official step for --model {model.opt.model}; use cycle_gan or pix2pix")
    step: Callable[[Any], None]
    step, groups = _STEPS[model.opt.model]
    official_adam(model, *groups)
    model.optimize_parameters = types.MethodType(step, model)
