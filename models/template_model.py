"""Template for a new model: a regression baseline (G trained with an L1 loss only).

Copy this file to ``models/<name>_model.py``, rename the class to ``<Name>Model`` and fill in the five parts:
``modify_commandline_options``, ``__init__`` (loss_names, visual_names, model_names, networks, optimizers),
``set_input``, ``forward`` and ``optimize_parameters``. ``--model <name>`` then finds it.

Keep the BaseModel helpers it uses, and every option works for the copy too: networks from ``build_generator``
(recorded in config.json), Adam from ``make_optimizer``, network calls under ``self.autocast()`` with outputs
through ``amp.to_float`` (``--amp``), ``backward_loss``/``step_optimizer`` (fp16 loss scaling), and
``next_step_plan`` (``--accum_steps``). ``eval_pair`` says what ``--eval_freq`` compares; image pools, if any,
come from ``add_image_pool`` so that resuming restores them. See docs/adding_a_model.md.
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Tuple

import torch

from util import amp
from util.metrics.images import from_model_range
from util.ranges import Range

from .base_model import BaseModel


class TemplateModel(BaseModel):
    """Learns data_B = G(data_A) with an L1 regression loss."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool = True) -> argparse.ArgumentParser:
        """Aligned data by default; training adds the regression loss weight."""
        parser.set_defaults(dataset_mode="aligned")
        if is_train:
            parser.add_argument("--lambda_regression", type=Range(float, 0), default=1.0,
                                help="weight for the regression loss")
        return parser

    @staticmethod
    def network_kinds(is_train: bool) -> Tuple[str, ...]:
        """Only a generator (no discriminator)."""
        return ("G",)

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        # Official bug fixed: the official template names its loss 'loss_G', so printing looks up 'loss_loss_G'.
        self.loss_names = ["G"]
        self.visual_names = ["data_A", "data_B", "output"]
        self.model_names = ["G"]
        self.netG = self.build_generator("G", opt.input_nc, opt.output_nc, False)
        if self.isTrain:
            self.criterionLoss = torch.nn.L1Loss()
            self.optimizer = self.make_optimizer(self.netG.parameters())
            self.optimizers = [self.optimizer]

    def set_input(self, input: Dict[str, Any]) -> None:
        """Take A and B (swapped for BtoA) and the paths."""
        AtoB = self.opt.direction == "AtoB"
        self.data_A = input["A" if AtoB else "B"].to(self.device)
        self.data_B = input["B" if AtoB else "A"].to(self.device)
        self.image_paths = input["A_paths" if AtoB else "B_paths"]

    def forward(self) -> None:
        """output = G(data_A)."""
        self.output = self.netG(self.data_A)

    def backward(self, scale: float = 1.0) -> None:
        """L1(output, data_B) * lambda_regression (the loss in fp32 also under ``--amp``)."""
        loss = self.criterionLoss(amp.to_float(self.output), self.data_B) * self.opt.lambda_regression
        self.backward_loss(loss * scale)
        self.loss_G = loss.detach()

    def optimize_parameters(self) -> None:
        """Forward, backward, step (with gradient accumulation when asked)."""
        plan = self.next_step_plan()
        with self.autocast():
            self.forward()
        if plan.zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        self.backward(plan.scale)
        if plan.step:
            self.step_optimizer(self.optimizer)
            amp.update(self.grad_scaler)
        self.output = amp.to_float(self.output).detach()  # only a visual from here on

    def eval_pair(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """--eval_freq compares the output with data_B."""
        return from_model_range(self.output.float().cpu()), from_model_range(self.data_B.float().cpu())
