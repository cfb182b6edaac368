"""SinCUT: CUT trained on a single image pair (the single-image translation of the CUT paper).

Park, Efros, Zhang, Zhu: "Contrastive Learning for Unpaired Image-to-Image Translation" (ECCV 2020), Sec. 5 and
Fig. 9: one image of each domain, random zoomed patches of both as the training set (``--dataset_mode
singleimage``, ``--preprocess zoom_and_patch``), StyleGAN2-style networks (``--netG/--netD stylegan2``), and on top
of CUT's losses

* an R1 gradient penalty on D at the real images: ``lambda_R1 / 2 * E[ ||grad_x D(x)||^2 ]`` (``D_R1``);
* an identity-preservation loss: ``lambda_identity * |G(B) - B|_1`` (``idt``), on the identity pass CUT already
  makes for its NCE_Y term.

The options and their defaults are the CUT code's ``--model sincut`` (docs/sincut.md lists them and what differs).
"""
from __future__ import annotations

import argparse
from typing import Any, Dict

import torch
import torch.nn.functional as F

from util.ranges import Range

from . import cut_options, networks
from .cut_model import CUTModel

# What SinCUT changes of CUT's defaults (both phases; models/cut_model.py declares the flags).
SINCUT_DEFAULTS: Dict[str, Any] = {
    "nce_includes_all_negatives_from_minibatch": True, "dataset_mode": "singleimage", "netG": "stylegan2",
    "stylegan2_G_num_downsampling": 1, "netD": "stylegan2", "num_patches": 1, "nce_layers": "0,2,4",
    "lambda_NCE": 4.0, "ngf": 10, "ndf": 8, "load_size": 1024, "crop_size": 64,
}
TRAIN_DEFAULTS: Dict[str, Any] = {
    "gan_mode": "nonsaturating", "lr": 0.002, "beta1": 0.0, "beta2": 0.99, "preprocess": "zoom_and_patch",
    "batch_size": 16, "save_epoch_freq": 1, "save_latest_freq": 20000, "n_epochs": 8, "n_epochs_decay": 8,
}
TEST_DEFAULTS: Dict[str, Any] = {"preprocess": "none", "batch_size": 1, "num_test": 1}  # the whole image, once
# PatchNCE takes its features from these generators' encoders
GENERATORS = cut_options.RESNETS + networks.STYLEGAN2_GENERATORS


class SinCUTModel(CUTModel):
    """CUT (G: A->B, D, F) with an R1 penalty on D and an L1 identity loss on G, for one image pair."""

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool = True) -> argparse.ArgumentParser:
        """CUT's options with SinCUT's defaults, and the two loss weights."""
        parser = CUTModel.modify_commandline_options(parser, is_train)
        parser.add_argument("--lambda_R1", type=Range(float, 0), default=1.0,
                            help="weight for the R1 gradient penalty on the discriminator's real images")
        parser.add_argument("--lambda_identity", type=Range(float, 0), default=1.0,
                            help="weight for the identity preservation loss |G(B) - B| (needs --nce_idt)")
        parser.set_defaults(**SINCUT_DEFAULTS, **(TRAIN_DEFAULTS if is_train else TEST_DEFAULTS))
        return parser

    @staticmethod
    def option_defaults(opt: argparse.Namespace, is_train: bool) -> Dict[str, Any]:
        """CUT's --CUT_mode defaults, then SinCUT's own: lambda_NCE 4 and 8 + 8 epochs whatever the mode (the
        mode still sets --nce_idt and --flip_equivariance); --nce_layers 0,2 for --netG smallstylegan2."""
        defaults = CUTModel.option_defaults(opt, is_train)
        defaults["lambda_NCE"] = SINCUT_DEFAULTS["lambda_NCE"]
        if opt.netG == "smallstylegan2":  # 4 encoder layers: no layer 4 (the CUT code skips it silently)
            defaults["nce_layers"] = "0,2"
        if is_train:
            defaults.update(n_epochs=TRAIN_DEFAULTS["n_epochs"], n_epochs_decay=TRAIN_DEFAULTS["n_epochs_decay"])
        return defaults

    @staticmethod
    def validate_options(opt: argparse.Namespace) -> None:
        """CUT's checks (a ResNet or StyleGAN2 generator), and the combinations SinCUT's two terms cannot run
        with."""
        # --nce_layers in training only: a test run takes --netG from config.json after the defaults were set
        cut_options.validate_options(opt, GENERATORS, layers_at_test=False)
        if not opt.isTrain:
            return
        if opt.lambda_identity > 0 and not opt.nce_idt:
            raise ValueError(f"--lambda_identity {opt.lambda_identity} compares G(B) with B, which SinCUT computes "
                             f"only with --nce_idt; pass --nce_idt True or --lambda_identity 0")
        if opt.lambda_R1 > 0 and opt.amp == "fp16":  # as --gan_mode wgangp (options/train_options.py)
            raise ValueError("--amp fp16 cannot train --model sincut with --lambda_R1 > 0 (the R1 penalty's "
                             "gradient through D would miss the loss scale); use --amp bf16 or --amp none")

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        if self.isTrain:
            if opt.lambda_R1 > 0.0:
                self.loss_names += ["D_R1"]
            if opt.lambda_identity > 0.0:
                self.loss_names += ["idt"]

    def backward_D(self) -> None:
        """CUT's discriminator loss 0.5 * (GAN(D(fake_B.detach()), False) + GAN(D(real_B), True)) [+ the WGAN-GP
        penalty under wgangp], plus the R1 penalty at the real images."""
        def r1(pred_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
            self.loss_D_R1 = self.r1_penalty(pred_real, real)
            return self.loss_D_R1

        self.loss_D, self.loss_D_real, self.loss_D_fake = self.backward_D_basic(
            self.netD, self.real_B, self.fake_B, fake_first=True, real_penalty=r1 if self.opt.lambda_R1 > 0.0 else None)

    def r1_penalty(self, pred_real: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """R1 (Mescheder et al. 2018): ``lambda_R1 / 2`` times the squared gradient norm of D's summed output with
        respect to each real image, averaged over the batch (kept in the graph, so D is trained on it)."""
        grad, = torch.autograd.grad(outputs=pred_real.sum(), inputs=real, create_graph=True)
        return grad.pow(2).flatten(1).sum(1).mean() * (self.opt.lambda_R1 * 0.5)

    def compute_G_loss(self) -> torch.Tensor:
        """CUT's generator loss (GAN + PatchNCE, with NCE_Y) plus ``lambda_identity * |G(B) - B|``."""
        loss = super().compute_G_loss()
        if self.opt.lambda_identity > 0.0:
            self.loss_idt = F.l1_loss(self.idt_B, self.real_B) * self.opt.lambda_identity
            loss = loss + self.loss_idt
        return loss
