"""CUT and FastCUT: unpaired translation with one generator, a GAN loss and patchwise contrastive (PatchNCE) losses.

Park, Efros, Zhang, Zhu: "Contrastive Learning for Unpaired Image-to-Image Translation" (ECCV 2020). The options,
defaults, network layouts and checkpoint files follow the authors' code, so its checkpoints load and its command
lines mean the same (docs/cut.md).
"""
from __future__ import annotations

import argparse
from typing import Any, Dict, Tuple

import torch

from util.ranges import Choice, Range
from util.util import str2bool

from . import cut_options, networks
from .base_model import BaseModel, unwrap
from .cut_options import MODE_DEFAULTS, TRAIN_ONLY, cut_mode, parse_layers
from .patchnce import PatchNCELoss

class CUTModel(BaseModel):
    """G: A->B, D judges domain B, F samples and projects G's encoder features for PatchNCE."""

    needs_first_batch = True  # F's heads are built from the first batch (data_dependent_initialize)
    results_by_visual = True  # test.py: images/<visual>/<stem>.png, where the CUT code's FID commands look

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool = True) -> argparse.ArgumentParser:
        """The CUT code's options and defaults; --CUT_mode's defaults come from ``option_defaults``."""
        def flag(name: str, default: bool, help: str) -> None:
            parser.add_argument(name, type=str2bool, nargs="?", const=True, default=default, help=help)

        parser.add_argument("--CUT_mode", type=cut_mode, default="CUT",
                            help="CUT | FastCUT (any case): sets the defaults of --lambda_NCE, --nce_idt, "
                                 "--flip_equivariance, --n_epochs and --n_epochs_decay")
        parser.add_argument("--lambda_GAN", type=Range(float, 0), default=1.0, help="weight for GAN loss: GAN(G(X))")
        parser.add_argument("--lambda_NCE", type=Range(float, 0), default=1.0,
                            help="weight for NCE loss: NCE(G(X), X) (CUT 1, FastCUT 10)")
        flag("--nce_idt", True, "use NCE loss for identity mapping: NCE(G(Y), Y) (CUT True, FastCUT False)")
        parser.add_argument("--nce_layers", type=str, default="0,4,8,12,16",
                            help="compute NCE loss on which layers (ascending indices into the generator)")
        flag("--nce_includes_all_negatives_from_minibatch", False,
             "take the negatives of NCE from every image of the batch, not only from the same image")
        parser.add_argument("--netF", type=Choice(networks.FEATURE_NETWORKS), default="mlp_sample",
                            help="how to downsample the feature map " + Choice(networks.FEATURE_NETWORKS).listing())
        parser.add_argument("--netF_nc", type=Range(int, 1, 4096), default=256, help="width of F's projection heads")
        parser.add_argument("--nce_T", type=Range(float, 0, open_low=True), default=0.07,
                            help="temperature for NCE loss")
        parser.add_argument("--num_patches", type=Range(int, 0, 1 << 20, note="0: every position"), default=256,
                            help="number of patches per layer")
        flag("--flip_equivariance", False, "enforce flip-equivariance as additional regularization: each "
                                           "iteration flips the input left-right with probability 0.5 (FastCUT True)")
        norms = Choice(networks.NORM_LAYERS)
        parser.add_argument("--normG", type=norms, default=None,
                            help=f"generator normalization {norms.listing()} (default: --norm)")
        parser.add_argument("--normD", type=norms, default=None,
                            help=f"discriminator normalization {norms.listing()} (default: --norm)")
        parser.add_argument("--no_antialias", action="store_true",
                            help="use stride-2 convolutions instead of antialiased downsampling")
        parser.add_argument("--no_antialias_up", action="store_true",
                            help="use transposed convolutions instead of antialiased upsampling")
        parser.set_defaults(init_type="xavier", no_dropout=True)
        if is_train:
            parser.add_argument("--beta2", type=Range(float, 0, 1, open_high=True), default=0.999, help="Adam beta2")
            parser.add_argument("--evaluation_freq", type=Range(int, 1), default=5000,
                                help="accepted for the CUT code's command lines; unused (see --eval_freq)")
            parser.set_defaults(pool_size=0, load_crop_size_in_decay=True, n_epochs=200, n_epochs_decay=200)
        return parser

    @staticmethod
    def option_defaults(opt: argparse.Namespace, is_train: bool) -> Dict[str, Any]:
        """--CUT_mode's defaults (case-insensitive), and --normG/--normD following --norm."""
        defaults = {k: v for k, v in MODE_DEFAULTS[opt.CUT_mode].items() if is_train or k not in TRAIN_ONLY}
        defaults.update(normG=opt.norm, normD=opt.norm)
        return defaults

    validate_options = staticmethod(cut_options.validate_options)  # flag combinations CUT cannot run with

    @staticmethod
    def network_norms(opt: argparse.Namespace) -> Dict[str, str]:
        """--normG for the generator, --normD for the discriminator (each defaults to --norm)."""
        return {"G": opt.normG, "D": opt.normD}

    @staticmethod
    def network_layout(opt: argparse.Namespace) -> Dict[str, bool]:
        """The CUT code's antialiased down/upsampling unless --no_antialias / --no_antialias_up."""
        return {"no_antialias": opt.no_antialias, "no_antialias_up": opt.no_antialias_up}

    @staticmethod
    def stacks_domains(opt: argparse.Namespace) -> bool:
        """Identity NCE runs G on [real A; real B] as one batch."""
        return bool(opt.isTrain and opt.nce_idt)

    @staticmethod
    def selecting_flags() -> Tuple[str, ...]:
        """--CUT_mode alone selects --model cut (the CUT code's command lines name no model)."""
        return ("--CUT_mode",)

    def __init__(self, opt: argparse.Namespace) -> None:
        super().__init__(opt)
        self.loss_names = ["G_GAN", "D_real", "D_fake", "G", "NCE"]
        self.visual_names = ["real_A", "fake_B", "real_B"]
        self.nce_layers = parse_layers(opt.nce_layers)
        self.use_idt = bool(opt.nce_idt) and self.isTrain
        if self.use_idt:
            self.loss_names += ["NCE_Y"]
            self.visual_names += ["idt_B"]
        if not self.isTrain and opt.dataset_mode == "single":
            self.visual_names = ["real_A", "fake_B"]  # no domain B to show
        self.model_names = ["G", "F", "D"] if self.isTrain else ["G"]
        self.netG = self.build_generator("G", opt.input_nc, opt.output_nc, not opt.no_dropout, norm=opt.normG,
                                         no_antialias=opt.no_antialias, no_antialias_up=opt.no_antialias_up)
        if self.isTrain:
            self.netF = networks.define_F(opt.input_nc, opt.netF, opt.normG, not opt.no_dropout, opt.init_type,
                                          opt.init_gain, opt.no_antialias, opt=opt).to(self.device)
            self.net_specs["F"] = {"kind": "F", "netF": opt.netF, "netF_nc": opt.netF_nc}
            self.netD = self.build_discriminator("D", opt.output_nc, norm=opt.normD, no_antialias=opt.no_antialias)
            self.criterionGAN = networks.GANLoss(opt.gan_mode).to(self.device)
            self.criterionNCE = PatchNCELoss(opt).to(self.device)
            self.optimizer_G = self.make_optimizer(self.netG.parameters())
            self.optimizer_D = self.make_optimizer(self.netD.parameters())
            self.optimizers = [self.optimizer_G, self.optimizer_D]
            self.optimizer_F = None  # made by data_dependent_initialize once F's heads exist

    def data_dependent_initialize(self, data: Dict[str, Any]) -> None:
        """F's heads are sized by G's features: build them from the first batch (one forward pass, nothing
        stepped), then F's optimizer. Called before ``setup()``, so that the LR schedule, the resume and DDP see
        them; a no-op at test time (only G is used)."""
        if not self.isTrain:
            return
        self.set_input(data)
        if self.opt.lambda_NCE > 0:
            with torch.no_grad():
                self.forward()
                self.calculate_NCE_loss(self.real_A, self.fake_B)
        params = list(self.netF.parameters())
        if self.opt.lambda_NCE > 0 and params and self.optimizer_F is None:
            self.optimizer_F = self.make_optimizer(params)
            self.optimizers.append(self.optimizer_F)

    def forward(self) -> None:
        """fake = G(real), real = [A, B] with identity NCE in training; optionally flipped left-right (p = 0.5)."""
        real = torch.cat((self.real_A, self.real_B), dim=0) if self.use_idt else self.real_A
        self.flipped_for_equivariance = self.opt.flip_equivariance and self.isTrain and bool(torch.rand(()) < 0.5)
        if self.flipped_for_equivariance:
            real = torch.flip(real, [3])
        self.fake = self.netG(real)
        self.fake_B = self.fake[:self.real_A.size(0)]
        if self.use_idt:
            self.idt_B = self.fake[self.real_A.size(0):]

    def backward_D(self) -> None:
        """0.5 * (GAN(D(fake_B.detach()), False) + GAN(D(real_B), True)) [+ gradient penalty for wgangp]."""
        self.loss_D, self.loss_D_real, self.loss_D_fake = self.backward_D_basic(self.netD, self.real_B, self.fake_B,
                                                                                fake_first=True)

    def compute_G_loss(self) -> torch.Tensor:
        """GAN(D(fake_B), True) * lambda_GAN + PatchNCE (averaged with the identity term NCE_Y when used)."""
        self.loss_G_GAN = 0.0
        if self.opt.lambda_GAN > 0.0:
            self.loss_G_GAN = self.criterionGAN(self.netD(self.fake_B), True).mean() * self.opt.lambda_GAN
        self.loss_NCE = self.calculate_NCE_loss(self.real_A, self.fake_B) if self.opt.lambda_NCE > 0.0 else 0.0
        loss_NCE_both = self.loss_NCE
        if self.use_idt and self.opt.lambda_NCE > 0.0:
            self.loss_NCE_Y = self.calculate_NCE_loss(self.real_B, self.idt_B)
            loss_NCE_both = (self.loss_NCE + self.loss_NCE_Y) * 0.5
        return self.loss_G_GAN + loss_NCE_both

    def calculate_NCE_loss(self, src: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """PatchNCE between G's encoder features of ``tgt`` (queries) and of ``src`` (keys), mean over layers.

        F samples positions on the keys and reuses them for the queries. The keys carry no gradient (PatchNCE
        detaches them), so their passes run without building a graph.
        """
        feat_q = self.netG(tgt, self.nce_layers, encode_only=True)
        if self.flipped_for_equivariance:
            feat_q = [torch.flip(f, [3]) for f in feat_q]
        with torch.no_grad():
            feat_k = self.netG(src, self.nce_layers, encode_only=True)
            feat_k_pool, sample_ids = self.netF(feat_k, self.opt.num_patches, None)
        feat_q_pool, _ = self.netF(feat_q, self.opt.num_patches, sample_ids)
        total = 0.0
        for f_q, f_k in zip(feat_q_pool, feat_k_pool):
            total = total + (self.criterionNCE(f_q, f_k, batch_size=src.size(0)) * self.opt.lambda_NCE).mean()
        return total / len(self.nce_layers)

    def optimize_parameters(self) -> None:
        """The CUT order: forward; D step; then G and F step with D frozen."""
        if self.optimizer_F is None and self.opt.lambda_NCE > 0 and self.opt.netF == "mlp_sample":
            raise RuntimeError("CUTModel: call data_dependent_initialize(first batch) before setup() and training")
        self.forward()
        # update D
        self.set_requires_grad(self.netD, True)
        self.optimizer_D.zero_grad()
        self.backward_D()
        self.optimizer_D.step()
        # update G and F
        self.set_requires_grad(self.netD, False)
        self.optimizer_G.zero_grad()
        if self.optimizer_F is not None:
            self.optimizer_F.zero_grad()
        self.loss_G = self.compute_G_loss()
        self.loss_G.backward()
        self.optimizer_G.step()
        if self.optimizer_F is not None:
            self.optimizer_F.step()

    def apply_compile(self, net: torch.nn.Module) -> torch.nn.Module:
        """``--compile`` compiles G and D; F stays eager: a few small matrix products around a random draw of
        positions in Python, where compiling would only add graph breaks and compile time."""
        return net if unwrap(net) is unwrap(getattr(self, "netF", None)) else super().apply_compile(net)
