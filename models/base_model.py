"""BaseModel: what every model shares — networks, optimizers, schedules, saving/loading, visuals and losses."""
from __future__ import annotations

import argparse
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from util import amp
from util.image_pool import ImagePool
from util.logger import get_logger
from util.metrics.images import from_model_range

from . import arch_config, checkpoint_io, ema, layers, networks, wrappers
from .optimizers import allocate_adam_state, make_adam
from .step_control import ManagedOptimizer, StepControl
from .wrappers import unwrap  # noqa: F401 (part of the model API)

log = get_logger(__name__)


class DiscriminatorLoss(NamedTuple):
    """``BaseModel.backward_D_basic``'s result: the loss back-propagated and its two GAN terms."""

    total: torch.Tensor
    real: torch.Tensor
    fake: torch.Tensor


class BaseModel(ABC):
    """Abstract base of all models; subclasses declare loss_names, model_names and visual_names."""

    # The training loop calls ``data_dependent_initialize`` with the first batch before ``setup`` (CUT's F).
    needs_first_batch = False
    # test.py writes ``images/<visual>/<stem>.png`` instead of ``images/<stem>_<visual>.png`` (CUT's layout).
    results_by_visual = False

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.isTrain = opt.isTrain
        self.gpu_ids = list(opt.gpu_ids)
        self.device = opt.device
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        if opt.preprocess != "scale_width":
            torch.backends.cudnn.benchmark = True
        self.loss_names: List[str] = []
        self.model_names: List[str] = []
        self.visual_names: List[str] = []
        self.optimizers: List[torch.optim.Optimizer] = []
        self.schedulers: List[Any] = []
        self.image_paths: List[str] = []
        self.metric = 0.0  # used by the plateau LR policy
        self.net_specs: Dict[str, Dict[str, Any]] = {}
        self.amp_mode = opt.amp  # --amp (util/amp.py): applied by wrap_networks; fp16 keeps a GradScaler
        amp.check_amp(self.amp_mode, self.device)
        self.grad_scaler = amp.make_grad_scaler(self.amp_mode, self.device) if self.isTrain else None
        # --accum_steps, --d_steps, the fp16 scaler and stepping inside backward (models/step_control.py)
        self.step_control = StepControl(opt.accum_steps if self.isTrain else 1, opt.d_steps if self.isTrain else 1,
                                        self.grad_scaler, opt.world_size)

    @staticmethod
    def modify_commandline_options(parser: argparse.ArgumentParser, is_train: bool) -> argparse.ArgumentParser:
        """Add model-specific flags or change defaults; the base model changes nothing."""
        return parser

    @staticmethod
    def network_kinds(is_train: bool) -> Tuple[str, ...]:
        """The kinds of network (``"G"``, ``"D"``) that see the dataset's images, for their minimum input size:
        generators and discriminators in training, generators at test time."""
        return ("G", "D") if is_train else ("G",)

    @staticmethod
    def option_defaults(opt: argparse.Namespace, is_train: bool) -> Dict[str, Any]:
        """Defaults that depend on options already parsed (applied after ``modify_commandline_options``, so
        explicit flags still win); the base model has none."""
        return {}

    @staticmethod
    def validate_options(opt: argparse.Namespace) -> None:
        """Raise ValueError naming the flag for option values this model cannot work with (at parse time)."""

    def data_dependent_initialize(self, data: Dict[str, Any]) -> None:
        """Build what depends on the data from the first batch, before ``setup``; the base model needs nothing."""

    def set_input(self, input: Dict[str, Any]) -> None:
        """Unpack a batch: ``real_A``, ``real_B`` (swapped for ``--direction BtoA``) and the A paths; a
        single-folder batch (``--dataset_mode single``) has only ``real_A``."""
        AtoB = self.opt.direction == "AtoB" or "B" not in input
        self.real_A = input["A" if AtoB else "B"].to(self.device, non_blocking=True)
        if "B" in input:
            self.real_B = input["B" if AtoB else "A"].to(self.device, non_blocking=True)
        self.image_paths = input["A_paths" if AtoB else "B_paths"]

    @abstractmethod
    def forward(self) -> None:
        """Run the forward pass (called by optimize_parameters and test)."""

    @abstractmethod
    def optimize_parameters(self) -> None:
        """Compute losses and gradients and update the weights for one batch."""

    # ------------------------------------------------------------------ building
    def build_generator(self, name: str, input_nc: int, output_nc: int, use_dropout: bool,
                        norm: Optional[str] = None, no_antialias: bool = True,
                        no_antialias_up: bool = True) -> nn.Module:
        """``define_G`` with the options (``norm`` default ``--norm``; antialias off: the official layout),
        recorded for the checkpoint config, on the model's device."""
        o = self.opt
        spec = {"kind": "G", "netG": o.netG, "input_nc": input_nc, "output_nc": output_nc, "ngf": o.ngf,
                "norm": norm or o.norm, "use_dropout": bool(use_dropout), "upsample": o.upsample}
        if not (no_antialias and no_antialias_up):  # recorded only when used: other configs stay as they were
            spec.update(no_antialias=bool(no_antialias), no_antialias_up=bool(no_antialias_up))
        extras = self.network_extras("G", o.netG, name)  # e.g. the StyleGAN2 channel table's resolution
        spec.update(extras)
        net = networks.define_G(input_nc, output_nc, o.ngf, o.netG, spec["norm"], use_dropout, o.init_type,
                                o.init_gain, upsample=spec["upsample"], no_antialias=no_antialias,
                                no_antialias_up=no_antialias_up, **extras)
        self.net_specs[name] = spec
        return net.to(self.device)

    def build_discriminator(self, name: str, input_nc: int, norm: Optional[str] = None,
                            no_antialias: bool = True) -> nn.Module:
        """``define_D`` with the options (``norm`` default ``--norm``; antialias off: the official layout),
        recorded for the checkpoint config, on the model's device."""
        o = self.opt
        spec = {"kind": "D", "netD": o.netD, "input_nc": input_nc, "ndf": o.ndf, "n_layers_D": o.n_layers_D,
                "norm": norm or o.norm}
        if not no_antialias:
            spec["no_antialias"] = False
        extras = self.network_extras("D", o.netD, name)
        spec.update(extras)
        net = networks.define_D(input_nc, o.ndf, o.netD, o.n_layers_D, spec["norm"], o.init_type, o.init_gain,
                                no_antialias=no_antialias, **extras)
        self.net_specs[name] = spec
        return net.to(self.device)

    def network_extras(self, kind: str, arch: str, name: str) -> Dict[str, int]:
        """``networks.network_extras`` of the network ``arch`` (--netG/--netD) from the options; at test time the
        values the checkpoint's config.json records for the network ``name`` win (e.g. the resolution of the
        StyleGAN2 channel table, which the options derive from the training sizes)."""
        extras = networks.network_extras(kind, arch, self.opt)
        if extras and not self.isTrain:
            recorded = (arch_config.read_config(self.save_dir) or {}).get("networks", {}).get(name, {})
            if recorded.get(f"net{kind}") == arch:
                extras.update({k: recorded[k] for k in extras if k in recorded})
        return extras

    def allocate_optimizer_state(self) -> None:
        """Create the optimizers' state before the first step (after any resume); see ``allocate_adam_state``."""
        for optimizer in self.optimizers:
            allocate_adam_state(optimizer.optimizer if isinstance(optimizer, ManagedOptimizer) else optimizer)

    def make_optimizer(self, params: Iterable[nn.Parameter], single_backward: bool = False) -> ManagedOptimizer:
        """Adam(lr, betas=(beta1, beta2)) in its fused kernel (docs/performance.md), managed by the framework
        (models/step_control.py); beta2 is 0.999 as in the official code unless the model has ``--beta2`` (cut).
        ``single_backward``: the parameters get their gradient from one backward per step, so the framework may
        apply each update as soon as that gradient is ready (less memory)."""
        betas = (self.opt.beta1, getattr(self.opt, "beta2", 0.999))
        return ManagedOptimizer(make_adam(params, lr=self.opt.lr, betas=betas, device=self.device),
                                self.step_control, in_backward=single_backward)

    def manage_optimizers(self) -> None:
        """Put every optimizer the model created itself (a plain ``torch.optim`` one) under the framework's
        control, in its attribute and in ``self.optimizers``."""
        managed: Dict[int, ManagedOptimizer] = {}
        for name, value in list(vars(self).items()):
            if isinstance(value, torch.optim.Optimizer):
                managed[id(value)] = ManagedOptimizer(value, self.step_control)
                setattr(self, name, managed[id(value)])
        self.optimizers = [o if isinstance(o, ManagedOptimizer) else managed.get(id(o)) or
                           ManagedOptimizer(o, self.step_control) for o in self.optimizers]

    @property
    def micro_step(self) -> int:
        """Training batches so far (drives ``--accum_steps`` and ``--d_steps``; saved with the training state)."""
        return self.step_control.micro_step

    @micro_step.setter
    def micro_step(self, value: int) -> None:
        self.step_control.micro_step = int(value)

    @property
    def image_pools(self) -> Dict[str, ImagePool]:
        """The model's image pools by attribute name (saved with the training state, so that resuming restores
        them)."""
        return {name: value for name, value in vars(self).items() if isinstance(value, ImagePool)}

    def named_networks(self) -> "OrderedDict[str, nn.Module]":
        """The model's networks by name (``model_names`` order), possibly wrapped."""
        return OrderedDict((n, getattr(self, "net" + n)) for n in self.model_names)

    # ------------------------------------------------------------------ lifecycle
    def setup(self, opt: argparse.Namespace) -> None:
        """Create schedulers, load networks for testing/resuming, and print the networks."""
        if self.isTrain:
            self.manage_optimizers()
            self.schedulers = [networks.get_scheduler(optimizer.optimizer, opt) for optimizer in self.optimizers]
            if opt.ema > 0:  # --ema: each generator's average, saved and resumed as a network of its own
                for name in ema.generator_names(self.model_names):
                    setattr(self, "net" + name + ema.EMA_SUFFIX, ema.make_average(unwrap(getattr(self, "net" + name))))
                    self.model_names.append(name + ema.EMA_SUFFIX)
        if not self.isTrain or opt.continue_train:
            load_suffix = checkpoint_io.load_prefix(opt.load_iter, opt.epoch)
            self.load_networks(load_suffix)
        self.print_networks(opt.verbose)
        self.wrap_networks()
        # Losses a step has not computed yet (e.g. G losses during the first --d_steps discriminator-only
        # steps) read as 0 until then instead of failing the first print.
        for name in self.loss_names:
            if not hasattr(self, "loss_" + name):
                setattr(self, "loss_" + name, 0.0)

    # ------------------------------------------------------------------ wrappers (opt-in, fixed order)
    def wrap_networks(self) -> None:
        """Apply the opt-in wrappers to every network in a fixed order: memory format, DDP, torch.compile, and
        ``--amp`` (autocast inside, float32 outputs: the model's code is the same with and without it).

        Saving and loading always go through ``unwrap``, so files stay plain official state_dicts.
        """
        for name in self.model_names:
            if name.endswith(ema.EMA_SUFFIX):
                continue  # averages are only read (evaluation) and saved
            net = getattr(self, "net" + name)
            net = self.apply_memory_format(net)
            net = self.apply_ddp(net)
            net = self.apply_compile(net)
            net = wrappers.wrap_mixed_precision(net, self.amp_mode, self.device, self.grad_scaler)
            setattr(self, "net" + name, net)

    def apply_memory_format(self, net: nn.Module) -> nn.Module:
        """Kernel and layout choices that keep the math (docs/performance.md): fast instance norm, pads that keep
        the ``--amp`` dtype, and channels-last weights with ``--channels_last``. Modules and keys stay the same."""
        net = layers.use_fast_kernels(net)
        if self.amp_mode != "none":
            net = layers.keep_dtype_in_padding(net)
        return wrappers.to_channels_last(net) if self.opt.channels_last else net

    def apply_ddp(self, net: nn.Module) -> nn.Module:
        """DistributedDataParallel under torchrun with several processes (models/wrappers.py); identity otherwise."""
        return wrappers.wrap_ddp(net, self.device)

    def apply_compile(self, net: nn.Module) -> nn.Module:
        """``--compile``: wrap the network in torch.compile (saving/loading unwrap it); identity otherwise."""
        return wrappers.compile_network(net) if self.opt.compile else net

    def eval(self) -> None:
        """Put every network in eval mode (BatchNorm running stats, no dropout)."""
        for net in self.named_networks().values():
            net.eval()

    def test(self) -> None:
        """Forward pass without gradients, then the visuals hook."""
        with torch.no_grad():
            self.forward()
            self.compute_visuals()

    # ------------------------------------------------------------------ what --eval_freq compares
    def eval_generators(self) -> Dict[str, str]:
        """Unaligned data: the network (a ``model_names`` entry) that translates each direction, ``AtoB`` = dataset
        domain A to B. By the usual names: G_A and G_B (G_A maps the model's A to B), or one G (A to B);
        ``--direction BtoA`` swaps the dataset's domains. Override for other names."""
        names = set(self.model_names)
        if {"G_A", "G_B"} <= names:
            mine = {"AtoB": "G_A", "BtoA": "G_B"}
        elif "G" in names:
            mine = {"AtoB": "G"}
        else:
            return {}
        if self.opt.direction == "AtoB":
            return mine
        return {("BtoA" if d == "AtoB" else "AtoB"): net for d, net in mine.items()}

    def eval_pair(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Paired data, after ``forward()``: (output, ground truth) of the batch as uint8 RGB images."""
        return from_model_range(self.fake_B.float().cpu()), from_model_range(self.real_B.float().cpu())

    def compute_visuals(self) -> None:
        """Hook for extra visual outputs (colorization turns Lab back into RGB)."""

    def get_image_paths(self) -> List[str]:
        """Paths of the images of the current batch."""
        return self.image_paths

    def update_learning_rate(self) -> None:
        """Step every scheduler once (end of epoch) and log the change of the first optimizer's LR."""
        old_lr = self.optimizers[0].param_groups[0]["lr"]
        for scheduler in self.schedulers:
            if self.opt.lr_policy == "plateau":
                scheduler.step(self.metric)
            else:
                scheduler.step()
        lr = self.optimizers[0].param_groups[0]["lr"]
        log.info("learning rate %.7f -> %.7f", old_lr, lr)

    def get_current_visuals(self) -> "OrderedDict[str, Any]":
        """Visual tensors by name, in ``visual_names`` order; a visual no step has computed yet (e.g. identity
        images before the first generator step under ``--d_steps``) is left out."""
        return OrderedDict((name, getattr(self, name)) for name in self.visual_names
                           if isinstance(name, str) and getattr(self, name, None) is not None)

    def get_current_losses(self) -> "OrderedDict[str, float]":
        """Loss values by name (``loss_<name>`` attributes), in ``loss_names`` order."""
        out: "OrderedDict[str, float]" = OrderedDict()
        for name in self.loss_names:
            value = getattr(self, "loss_" + name)
            out[name] = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        return out

    # ------------------------------------------------------------------ steps
    def train_step(self) -> None:
        """One training batch as the framework runs it (models/step_control.py): the model's own
        ``optimize_parameters``, or under ``--d_steps`` a discriminator-only step, with the optimizers following
        ``--accum_steps`` and the fp16 loss scale."""
        plan = self.step_control.begin()
        try:
            with amp.weight_cache_scope(self.amp_mode, self.device):  # --amp: each weight cast once per step
                if plan.update_G:
                    self.optimize_parameters()
                    if plan.last and self.isTrain and self.opt.ema > 0:
                        self.update_averages()
                else:
                    self.discriminator_step()
        finally:
            self.step_control.end()

    def update_averages(self) -> None:
        """``--ema``: move each generator's average towards its new weights."""
        for name in ema.generator_names(self.model_names):
            ema.update_average(getattr(self, "net" + name + ema.EMA_SUFFIX), unwrap(getattr(self, "net" + name)),
                               self.opt.ema)

    def discriminator_step(self) -> None:
        """``--d_steps``: the translations without gradients, then ``backward_D`` and the optimizers' step (the
        generators' optimizers have no gradients, so they change nothing)."""
        with torch.no_grad():
            self.forward()
        trained = [net for name, net in self.named_networks().items() if not name.endswith(ema.EMA_SUFFIX)]
        self.set_requires_grad(trained, True)  # a step may have left D frozen (the averages stay frozen)
        for optimizer in self.optimizers:
            optimizer.zero_grad()
        self.backward_D()
        for optimizer in self.optimizers:
            optimizer.step()

    def backward_D(self) -> None:
        """The discriminators' losses and gradients (GAN models; ``--d_steps`` needs it)."""
        raise NotImplementedError(f"{type(self).__name__} has no backward_D(); --d_steps needs a discriminator step")

    def backward_D_basic(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor, fake_first: bool = False,
                         real_penalty: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None
                         ) -> DiscriminatorLoss:
        """The discriminator's GAN loss, back-propagated: ``0.5 * (GAN(D(real), True) + GAN(D(fake.detach()),
        False))``, plus the gradient penalty under ``--gan_mode wgangp``, plus ``real_penalty(D(real), real)`` when
        given (``real`` then requires grad: e.g. an R1 penalty). Needs ``self.criterionGAN``.

        Where D normalizes each sample on its own (no batch norm), real and fake go through D in one call (the same
        numbers, fewer calls); otherwise in two calls, fake first if ``fake_first`` (batch-norm statistics follow
        the calls' order).
        """
        fake = fake.detach()
        if real_penalty is not None:
            real = real.detach().requires_grad_(True)
        order = [fake, real] if fake_first else [real, fake]
        if per_sample(netD) and order[0].shape[1:] == order[1].shape[1:]:
            first, second = netD(torch.cat(order, 0)).split([order[0].shape[0], order[1].shape[0]], 0)
        else:
            first, second = netD(order[0]), netD(order[1])
        pred_fake, pred_real = (first, second) if fake_first else (second, first)
        loss_real = self.criterionGAN(pred_real, True).mean()
        loss_fake = self.criterionGAN(pred_fake, False).mean()
        loss = (loss_real + loss_fake) * 0.5
        if self.opt.gan_mode == "wgangp":
            loss = loss + networks.cal_gradient_penalty(netD, real.detach(), fake, self.device,
                                                        lambda_gp=self.opt.lambda_gp)[0]
        if real_penalty is not None:
            loss = loss + real_penalty(pred_real, real)
        loss.backward()
        return DiscriminatorLoss(loss.detach(), loss_real.detach(), loss_fake.detach())

    def set_requires_grad(self, nets: nn.Module | Sequence[Optional[nn.Module]], requires_grad: bool = False) -> None:
        """Switch gradient tracking for the parameters of one network or a list (None entries are skipped)."""
        if not isinstance(nets, (list, tuple)):
            nets = [nets]
        for net in nets:
            if net is not None:
                for param in net.parameters():
                    param.requires_grad = requires_grad

    # ------------------------------------------------------------------ checkpoints
    def save_networks(self, epoch: int | str) -> None:
        """Save ``<epoch>_net_<name>.pth`` per network (plain CPU state_dicts) and the architecture config."""
        if self.opt.rank != 0:
            return
        os.makedirs(self.save_dir, exist_ok=True)
        for name, net in self.named_networks().items():
            path = checkpoint_io.net_path(self.save_dir, epoch, name)
            checkpoint_io.save_weights(checkpoint_io.plain_state_dict(unwrap(net)), path)
        arch_config.write_config(self.save_dir, arch_config.build_config(self.opt, self.net_specs))

    def load_networks(self, epoch: int | str) -> None:
        """Load ``<epoch>_net_<name>.pth`` into every network (official, old and wrapped checkpoints accepted), from
        ``--pretrained_name``'s folder when training with it (fine-tuning), else from this experiment's."""
        pretrained = self.opt.pretrained_name if self.isTrain else None
        folder = os.path.join(self.opt.checkpoints_dir, pretrained) if pretrained else self.save_dir
        for name, net in self.named_networks().items():
            if not self.isTrain and self.opt.use_ema and name in ema.generator_names(self.model_names):
                name = name + ema.EMA_SUFFIX  # --use_ema: the generator's average in its place
                if not os.path.exists(checkpoint_io.net_path(folder, epoch, name)) and os.path.isdir(folder):
                    raise checkpoint_io.CheckpointError(
                        f"{checkpoint_io.net_path(folder, epoch, name)} not found: --use_ema loads the generators' "
                        f"moving averages, which training writes with --ema DECAY; drop --use_ema for this run")
            elif name.endswith(ema.EMA_SUFFIX) and not os.path.isfile(checkpoint_io.net_path(folder, epoch, name)):
                log.warning("%s has no %s: --ema starts the average from the loaded generator", folder, name)
                net.load_state_dict(unwrap(getattr(self, "net" + name[: -len(ema.EMA_SUFFIX)])).state_dict())
                continue
            path = checkpoint_io.require_net_file(folder, epoch, name)
            log.info("loading the model from %s", path)
            checkpoint_io.load_network(unwrap(net), path, name=name, map_location=self.device)

    def print_networks(self, verbose: bool) -> None:
        """Parameter count per network (and the discriminators' receptive field); the modules if verbose."""
        log.info("---------- Networks initialized -------------")
        size = self.opt.crop_size
        for name, net in self.named_networks().items():
            bare = unwrap(net)
            if verbose:
                log.info("%s", bare)
            log.info("[Network %s] Total number of parameters : %.3f M", name,
                     networks.count_parameters(bare) / 1e6)
            if name.startswith("D"):
                geo = networks.discriminator_geometry(bare, size)
                log.info("[Network %s] receptive field : %dx%d, output map : %dx%d for a %dx%d input", name,
                         geo["receptive_field"], geo["receptive_field"], geo["output_size"], geo["output_size"],
                         size, size)
        log.info("-----------------------------------------------")

    # ---- what the other layers ask the model (class-level hooks)
    # options/ and data/ ask these instead of testing --model's name.
    @classmethod
    def network_norms(cls, opt: argparse.Namespace) -> Dict[str, str]:
        """The normalization of the generators ("G") and the discriminators ("D"): ``--norm`` for both."""
        return {"G": opt.norm, "D": opt.norm}

    @classmethod
    def network_layout(cls, opt: argparse.Namespace) -> Dict[str, bool]:
        """The keyword switches ``networks.define_G``/``define_D`` take beyond the flags (``no_antialias``,
        ``no_antialias_up``): the official layout, without antialiased resampling."""
        return {"no_antialias": True, "no_antialias_up": True}

    @classmethod
    def translates_both_ways(cls, opt: argparse.Namespace) -> bool:
        """True for a model with a generator per direction that tests both (it needs both test folders on
        unaligned data); one generator translates one way."""
        return False

    @classmethod
    def stacks_domains(cls, opt: argparse.Namespace) -> bool:
        """True when training runs a network on real A and real B stacked as one batch (their preprocessed sizes
        must then be one); the base model keeps them apart."""
        return False

    @classmethod
    def selecting_flags(cls) -> Tuple[str, ...]:
        """Flags that only this model has and that select it when ``--model`` is not given (the CUT code's
        command lines name no model); none."""
        return ()

    @staticmethod
    def single_generator(opt: argparse.Namespace) -> Optional[str]:
        """The network a test run loads alone from another model's checkpoint (its config.json entry gives the
        architecture), or None: the model's own networks, described by the checkpoint's options."""
        return None

def per_sample(net: nn.Module) -> bool:
    """True when no layer of ``net`` mixes the samples of a batch (no batch norm), so stacking inputs on the batch
    axis changes no result."""
    batch_norms = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, layers.CPUSyncBatchNorm)
    return not any(isinstance(m, batch_norms) for m in net.modules())
