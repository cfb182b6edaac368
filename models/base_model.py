"""BaseModel: what every model shares — networks, optimizers, schedules, saving/loading, visuals and losses."""
from __future__ import annotations

import argparse
import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from util import amp
from util.image_pool import ImagePool
from util.logger import get_logger
from util.metrics.images import from_model_range

from . import arch_config, checkpoint_io, layers, networks, wrappers
from .optimizers import allocate_adam_state, make_adam
from .wrappers import unwrap  # noqa: F401 (part of the model API)

log = get_logger(__name__)


@dataclass(frozen=True)
class StepPlan:
    """What one call of ``optimize_parameters`` does under ``--d_steps`` and ``--accum_steps``."""

    zero_grad: bool  # first micro-batch of an accumulation group: clear gradients
    step: bool  # last micro-batch of the group: apply the optimizer
    update_G: bool  # this group updates the generator(s) too (every d_steps-th group)
    scale: float  # loss multiplier for backward (1 / accum_steps)


class BaseModel(ABC):
    """Abstract base of all models; subclasses declare loss_names, model_names and visual_names."""

    # The training loop calls ``data_dependent_initialize`` with the first batch before ``setup`` (CUT's F).
    needs_first_batch = False
    # test.py writes ``images/<visual>/<stem>.png`` instead of ``images/<stem>_<visual>.png`` (CUT's layout).
    results_by_visual = False

    def __init__(self, opt: argparse.Namespace) -> None:
        self.opt = opt
        self.isTrain = opt.isTrain
        self.gpu_ids = list(getattr(opt, "gpu_ids", []) or [])
        self.device = getattr(opt, "device", None) or torch.device("cpu")
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
        self.micro_step = 0  # optimize_parameters calls so far (drives --d_steps / --accum_steps)
        self.image_pools: Dict[str, ImagePool] = {}  # add_image_pool: saved with the training state
        self.amp_mode = getattr(opt, "amp", "none")  # --amp (util/amp.py); fp16 keeps a GradScaler
        amp.check_amp(self.amp_mode, self.device)
        self.grad_scaler = amp.make_grad_scaler(self.amp_mode, self.device) if self.isTrain else None

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

    @abstractmethod
    def set_input(self, input: Dict[str, Any]) -> None:
        """Unpack a batch from the data loader."""

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
                "norm": norm or o.norm, "use_dropout": bool(use_dropout), "upsample": getattr(o, "upsample", "deconv")}
        if not (no_antialias and no_antialias_up):  # recorded only when used: other configs stay as they were
            spec.update(no_antialias=bool(no_antialias), no_antialias_up=bool(no_antialias_up))
        net = networks.define_G(input_nc, output_nc, o.ngf, o.netG, spec["norm"], use_dropout, o.init_type,
                                o.init_gain, upsample=spec["upsample"], no_antialias=no_antialias,
                                no_antialias_up=no_antialias_up)
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
        net = networks.define_D(input_nc, o.ndf, o.netD, o.n_layers_D, spec["norm"], o.init_type, o.init_gain,
                                no_antialias=no_antialias)
        self.net_specs[name] = spec
        return net.to(self.device)

    def allocate_optimizer_state(self) -> None:
        """Create the optimizers' state before the first step (after any resume); see ``allocate_adam_state``."""
        for optimizer in getattr(self, "optimizers", []):
            allocate_adam_state(optimizer)

    def make_optimizer(self, params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        """Adam(lr, betas=(beta1, beta2)) in its fused kernel (docs/performance.md); beta2 is 0.999 as in the
        official code unless the model has a ``--beta2`` option (cut)."""
        betas = (self.opt.beta1, getattr(self.opt, "beta2", 0.999))
        return make_adam(params, lr=self.opt.lr, betas=betas, device=self.device)

    def named_networks(self) -> "OrderedDict[str, nn.Module]":
        """The model's networks by name (``model_names`` order), possibly wrapped."""
        return OrderedDict((n, getattr(self, "net" + n)) for n in self.model_names)

    # ------------------------------------------------------------------ lifecycle
    def setup(self, opt: argparse.Namespace) -> None:
        """Create schedulers, load networks for testing/resuming, and print the networks."""
        if self.isTrain:
            self.schedulers = [networks.get_scheduler(optimizer, opt) for optimizer in self.optimizers]
        if not self.isTrain or opt.continue_train:
            load_suffix = "iter_%d" % opt.load_iter if opt.load_iter > 0 else opt.epoch
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
        """Apply the opt-in wrappers to every network in a fixed order: memory format, DDP, torch.compile.

        Saving and loading always go through ``unwrap``, so files stay plain official state_dicts.
        """
        for name in self.model_names:
            net = getattr(self, "net" + name)
            net = self.apply_memory_format(net)
            net = self.apply_ddp(net)
            net = self.apply_compile(net)
            setattr(self, "net" + name, net)

    def apply_memory_format(self, net: nn.Module) -> nn.Module:
        """Kernel and layout choices that keep the math (docs/performance.md): fast instance norm, pads that keep
        the ``--amp`` dtype, and channels-last weights with ``--channels_last``. Modules and keys stay the same."""
        net = layers.use_fast_kernels(net)
        if self.amp_mode != "none":
            net = layers.keep_dtype_in_padding(net)
        return wrappers.to_channels_last(net) if getattr(self.opt, "channels_last", False) else net

    def apply_ddp(self, net: nn.Module) -> nn.Module:
        """DistributedDataParallel under torchrun with several processes (models/wrappers.py); identity otherwise."""
        return wrappers.wrap_ddp(net, self.device)

    def apply_compile(self, net: nn.Module) -> nn.Module:
        """``--compile``: wrap the network in torch.compile (saving/loading unwrap it); identity otherwise."""
        return wrappers.compile_network(net) if getattr(self.opt, "compile", False) else net

    def eval(self) -> None:
        """Put every network in eval mode (BatchNorm running stats, no dropout)."""
        for net in self.named_networks().values():
            net.eval()

    def test(self) -> None:
        """Forward pass without gradients (under ``--amp`` autocast), then the visuals hook."""
        with torch.no_grad():
            with self.autocast():
                self.forward()
            self.compute_visuals()

    # ------------------------------------------------------------------ mixed precision (util/amp.py)
    def autocast(self) -> Any:
        """The ``--amp`` autocast context for network calls (a no-op for the default fp32)."""
        return amp.autocast(self.amp_mode, self.device)

    def backward_loss(self, loss: torch.Tensor) -> None:
        """``loss.backward()``, scaled by the fp16 GradScaler when there is one."""
        amp.backward(loss, self.grad_scaler)

    def step_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        """Step ``optimizer`` (through the GradScaler under fp16), then free its gradients right away."""
        amp.step(optimizer, self.grad_scaler)
        optimizer.zero_grad(set_to_none=True)

    def add_image_pool(self, name: str, pool_size: int) -> ImagePool:
        """A history of generated images for a discriminator, registered so that resuming restores it."""
        pool = ImagePool(pool_size)
        self.image_pools[name] = pool
        return pool

    # ------------------------------------------------------------------ what --eval_freq compares
    def eval_generators(self) -> Dict[str, str]:
        """Unaligned data: the network (a ``model_names`` entry) that translates each direction, ``AtoB`` = dataset
        domain A to B. A model that translates one way names one direction; the base model names none."""
        return {}

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
        """Visual tensors by name, in ``visual_names`` order (``--amp`` half-precision outputs as float32)."""
        return OrderedDict((name, amp.to_float(getattr(self, name))) for name in self.visual_names
                           if isinstance(name, str))

    def get_current_losses(self) -> "OrderedDict[str, float]":
        """Loss values by name (``loss_<name>`` attributes), in ``loss_names`` order."""
        out: "OrderedDict[str, float]" = OrderedDict()
        for name in self.loss_names:
            value = getattr(self, "loss_" + name)
            out[name] = float(value.detach()) if isinstance(value, torch.Tensor) else float(value)
        return out

    # ------------------------------------------------------------------ steps
    def next_step_plan(self) -> StepPlan:
        """Advance the micro-step counter and say what this batch does (official: every batch updates all)."""
        accum = max(1, int(getattr(self.opt, "accum_steps", 1)))
        d_steps = max(1, int(getattr(self.opt, "d_steps", 1)))
        i = self.micro_step
        self.micro_step += 1
        pos, group = i % accum, i // accum
        return StepPlan(zero_grad=pos == 0, step=pos == accum - 1, update_G=group % d_steps == d_steps - 1,
                        scale=1.0 / accum)

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
        if getattr(self.opt, "rank", 0) != 0:
            return
        os.makedirs(self.save_dir, exist_ok=True)
        for name, net in self.named_networks().items():
            path = os.path.join(self.save_dir, "%s_net_%s.pth" % (epoch, name))
            checkpoint_io.save_weights(checkpoint_io.plain_state_dict(unwrap(net)), path)
        arch_config.write_config(self.save_dir, arch_config.build_config(self.opt, self.net_specs))

    def load_networks(self, epoch: int | str) -> None:
        """Load ``<epoch>_net_<name>.pth`` into every network (official, old and wrapped checkpoints accepted)."""
        for name, net in self.named_networks().items():
            path = os.path.join(self.save_dir, "%s_net_%s.pth" % (epoch, name))
            log.info("loading the model from %s", path)
            if not os.path.isfile(path):
                raise checkpoint_io.CheckpointError(self._missing_checkpoint_message(path, name))
            checkpoint_io.load_network(unwrap(net), path, name=name, map_location=self.device)

    def _missing_checkpoint_message(self, path: str, name: str) -> str:
        """Explain a missing network file and list the checkpoints that do exist for that network."""
        found = []
        if os.path.isdir(self.save_dir):
            tail = "_net_%s.pth" % name
            found = sorted(f[: -len(tail)] for f in os.listdir(self.save_dir) if f.endswith(tail))
        where = ("available for %s: %s (choose with --epoch / --load_iter)" % (name, ", ".join(found)) if found
                 else "no checkpoint of network %s in %s (check --name and --checkpoints_dir)" % (name, self.save_dir))
        return "checkpoint file not found: %s; %s" % (path, where)

    def print_networks(self, verbose: bool) -> None:
        """Parameter count per network (and the discriminators' receptive field); the modules if verbose."""
        log.info("---------- Networks initialized -------------")
        size = getattr(self.opt, "crop_size", 256)
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
    # options/ and data/ ask these instead of testing --model's name. The ``cls.__name__`` branches are
    # TEMPORARY fallbacks for models that do not override the hook yet (CUTModel, CycleGANModel): delete each
    # one when that model file defines the override.
    @classmethod
    def network_norms(cls, opt: argparse.Namespace) -> Dict[str, str]:
        """The normalization of the generators ("G") and the discriminators ("D"): ``--norm`` for both."""
        if cls.__name__ == "CUTModel":  # TEMPORARY: until CUTModel.network_norms returns --normG/--normD
            return {"G": opt.normG, "D": opt.normD}
        return {"G": opt.norm, "D": opt.norm}

    @classmethod
    def network_layout(cls, opt: argparse.Namespace) -> Dict[str, bool]:
        """The keyword switches ``networks.define_G``/``define_D`` take beyond the flags (``no_antialias``,
        ``no_antialias_up``): the official layout, without antialiased resampling."""
        if cls.__name__ == "CUTModel":  # TEMPORARY: until CUTModel.network_layout returns its antialias flags
            return {"no_antialias": opt.no_antialias, "no_antialias_up": opt.no_antialias_up}
        return {"no_antialias": True, "no_antialias_up": True}

    @classmethod
    def translates_both_ways(cls, opt: argparse.Namespace) -> bool:
        """True for a model with a generator per direction that tests both (it needs both test folders on
        unaligned data); one generator translates one way."""
        return cls.__name__ == "CycleGANModel"  # TEMPORARY: False once CycleGANModel overrides this with True

    @classmethod
    def selecting_flags(cls) -> Tuple[str, ...]:
        """Flags that only this model has and that select it when ``--model`` is not given (the CUT code's
        command lines name no model); none."""
        return ("--CUT_mode",) if cls.__name__ == "CUTModel" else ()  # TEMPORARY: until CUTModel overrides this

    @staticmethod
    def single_generator(opt: argparse.Namespace) -> Optional[str]:
        """The network a test run loads alone from another model's checkpoint (its config.json entry gives the
        architecture), or None: the model's own networks, described by the checkpoint's options."""
        return None
