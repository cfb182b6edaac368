"""Options shared by training and testing: the official flags of both official versions, plus ours."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Iterable, List, Optional, Sequence, Set, Union

import torch

import data
import models
from util.logger import get_logger
from util.util import str2bool

log = get_logger(__name__)


# Attributes we add to opt after parsing; not options, so not in the printed table.
INTERNAL_KEYS = ("device", "explicit_flags", "rank", "world_size", "local_rank")
# A flag only one model has selects that model when --model is not given (the CUT code's commands name none).
MODEL_SELECTING_FLAGS = {"--CUT_mode": "cut"}


def explicit_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> Set[str]:
    """Destinations of the options that appear literally on the command line ``argv``."""
    by_string = {s: a.dest for a in parser._actions for s in a.option_strings}
    found: Set[str] = set()
    for token in argv:
        if token.startswith("--"):
            name = token.split("=", 1)[0]
            if name in by_string:
                found.add(by_string[name])
    return found


CHANNELS_LAST_CHOICES = ("auto", "on", "off")


def resolve_channels_last(value: Union[str, bool], is_train: bool, device: torch.device) -> bool:
    """``--channels_last`` as a bool: auto is on for inference on the CPU (measured faster and leaner there:
    docs/performance.md) and off for training and on GPUs, where the official layout is the default."""
    if isinstance(value, bool):
        return value
    if value == "auto":
        return not is_train and torch.device(device).type == "cpu"
    return value == "on"


def parse_gpu_ids(text: str) -> List[int]:
    """``--gpu_ids`` as in the official code: '0,1' -> [0, 1]; negative ids (``-1`` = CPU) are dropped."""
    ids: List[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = int(part)
        except ValueError:
            raise ValueError(f"--gpu_ids: '{text}' is not a comma-separated list of integers (-1 = CPU)") from None
        if value >= 0:
            ids.append(value)
    return ids


class BaseOptions:
    """Defines the shared flags, applies model/dataset defaults, prints and saves the options."""

    def __init__(self) -> None:
        self.initialized = False
        self.isTrain = False
        self.parser: Optional[argparse.ArgumentParser] = None
        self.explicit: Set[str] = set()

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the flags shared by train.py and test.py."""
        # basic parameters
        parser.add_argument("--dataroot", required=True,
                            help="path to images (should have subfolders trainA, trainB, valA, valB, etc)")
        parser.add_argument("--name", type=str, default="experiment_name",
                            help="name of the experiment. It decides where to store samples and models")
        parser.add_argument("--gpu_ids", type=str, default="0",
                            help="gpu ids: e.g. 0  0,1,2, 0,2. use -1 for CPU (falls back to the CPU when CUDA is "
                                 "absent)")
        parser.add_argument("--checkpoints_dir", type=str, default="./checkpoints", help="models are saved here")
        # model parameters
        parser.add_argument("--model", type=str, default="cycle_gan",
                            help="chooses which model to use. [" + " | ".join(models.list_models()) + "]; "
                                 "--CUT_mode alone selects cut")
        parser.add_argument("--input_nc", type=int, default=3,
                            help="# of input image channels: 3 for RGB and 1 for grayscale")
        parser.add_argument("--output_nc", type=int, default=3,
                            help="# of output image channels: 3 for RGB and 1 for grayscale")
        parser.add_argument("--ngf", type=int, default=64, help="# of gen filters in the last conv layer")
        parser.add_argument("--ndf", type=int, default=64, help="# of discrim filters in the first conv layer")
        parser.add_argument("--netD", type=str, default="basic",
                            help="specify discriminator architecture [basic | n_layers | pixel]. The basic model is "
                                 "a 70x70 PatchGAN. n_layers allows you to specify the layers in the discriminator")
        parser.add_argument("--netG", type=str, default="resnet_9blocks",
                            help="specify generator architecture [resnet_9blocks | resnet_6blocks | unet_256 | "
                                 "unet_128]")
        parser.add_argument("--n_layers_D", type=int, default=3, help="only used if netD==n_layers")
        parser.add_argument("--norm", type=str, default="instance",
                            help="instance normalization or batch normalization [instance | batch | syncbatch | none]")
        parser.add_argument("--init_type", type=str, default="normal",
                            help="network initialization [normal | xavier | kaiming | orthogonal]")
        parser.add_argument("--init_gain", type=float, default=0.02,
                            help="scaling factor for normal, xavier and orthogonal.")
        parser.add_argument("--no_dropout", type=str2bool, nargs="?", const=True, default=False,
                            help="no dropout for the generator (also --no_dropout True/False)")
        parser.add_argument("--upsample", type=str, default="deconv",
                            help="[ours] generator upsampling: deconv (official transposed conv) | nearest | "
                                 "bilinear (resize-convolution, avoids checkerboard artifacts)")
        # dataset parameters
        parser.add_argument("--dataset_mode", type=str, default="unaligned",
                            help="chooses how datasets are loaded. [" + " | ".join(data.list_dataset_modes()) + "]")
        parser.add_argument("--direction", type=str, default="AtoB", help="AtoB or BtoA")
        parser.add_argument("--serial_batches", action="store_true",
                            help="if true, takes images in order to make batches, otherwise takes them randomly")
        parser.add_argument("--num_threads", default=4, type=int, help="# threads for loading data")
        parser.add_argument("--batch_size", type=int, default=1, help="input batch size (per process)")
        parser.add_argument("--load_size", type=int, default=286, help="scale images to this size")
        parser.add_argument("--crop_size", type=int, default=256, help="then crop to this size")
        parser.add_argument("--max_dataset_size", type=int, default=float("inf"),
                            help="Maximum number of samples allowed per dataset. If the dataset directory contains "
                                 "more than max_dataset_size, only a subset is loaded.")
        parser.add_argument("--preprocess", type=str, default="resize_and_crop",
                            help="scaling and cropping of images at load time [resize_and_crop | crop | scale_width "
                                 "| scale_width_and_crop | none]")
        parser.add_argument("--no_flip", action="store_true",
                            help="if specified, do not flip the images for data augmentation")
        parser.add_argument("--display_winsize", type=int, default=256,
                            help="display window size for both visdom and HTML")
        # additional parameters
        parser.add_argument("--epoch", type=str, default="latest",
                            help="which epoch to load? set to latest to use latest cached model")
        parser.add_argument("--load_iter", type=int, default="0",
                            help="which iteration to load? if load_iter > 0, the code will load models by "
                                 "iter_[load_iter]; otherwise, the code will load models by [epoch]")
        parser.add_argument("--verbose", action="store_true", help="if specified, print more debugging information")
        parser.add_argument("--suffix", default="", type=str,
                            help="customized suffix: opt.name = opt.name + suffix: e.g., {model}_{netG}_size{load_size}")
        # wandb / tensorboard parameters
        parser.add_argument("--use_wandb", action="store_true", help="if specified, then init wandb logging")
        parser.add_argument("--wandb_project_name", type=str, default="CycleGAN-and-pix2pix",
                            help="specify wandb project name")
        parser.add_argument("--use_tensorboard", action="store_true",
                            help="[ours] log losses and images to TensorBoard (checkpoints/<name>/tensorboard)")
        # speed (docs/performance.md)
        parser.add_argument("--amp", type=str, default="none",
                            help="[ours] mixed precision: none (official fp32) | bf16 (CPU or GPU) | fp16 (CUDA only, "
                                 "with a GradScaler)")
        parser.add_argument("--channels_last", nargs="?", const="on", default="auto", metavar="auto|on|off",
                            help="[ours] channels-last memory format for the networks and activations (faster "
                                 "convolutions on recent GPUs); '--channels_last' alone means on; auto: on for "
                                 "inference on the CPU (test.py; faster and leaner there), off otherwise")
        parser.add_argument("--compile", action="store_true",
                            help="[ours] wrap every network in torch.compile (slow first iterations, faster after)")
        # reproducibility and bad data (docs/resume.md)
        parser.add_argument("--seed", type=int, default=-1,
                            help="[ours] seed python/numpy/torch with seed + rank (-1: not seeded, official)")
        parser.add_argument("--deterministic", action="store_true",
                            help="[ours] deterministic kernels where PyTorch has them (slower; CPU runs with --seed "
                                 "are bit-reproducible anyway)")
        parser.add_argument("--bad_data", type=str, default="error",
                            help="[ours] unusable image files found by the pre-flight scan: error (stop before "
                                 "training, listing them) | skip (leave them out with a summary)")
        self.initialized = True
        return parser

    def make_parser(self) -> argparse.ArgumentParser:
        """A fresh parser with this class's flags."""
        parser = argparse.ArgumentParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter)
        return self.initialize(parser)

    def gather_options(self, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
        """Parse base flags, then the model's and the dataset's extra flags/defaults (official order)."""
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = self.make_parser()
        if "model" not in explicit_flags(parser, argv):
            given = {token.split("=", 1)[0] for token in argv}
            for flag, model in MODEL_SELECTING_FLAGS.items():
                if flag in given:
                    parser.set_defaults(model=model)
        opt, _ = parser.parse_known_args(argv)
        parser = models.get_option_setter(opt.model)(parser, self.isTrain)
        opt, _ = parser.parse_known_args(argv)
        # defaults the model derives from what is parsed so far (cut: --CUT_mode); explicit flags still win
        parser.set_defaults(**models.find_model_using_name(opt.model).option_defaults(opt, self.isTrain))
        opt, _ = parser.parse_known_args(argv)
        parser = data.get_option_setter(opt.dataset_mode)(parser, self.isTrain)
        self.parser = parser
        opt = parser.parse_args(argv)
        self.explicit = explicit_flags(parser, argv)
        return opt

    def format_options(self, opt: argparse.Namespace) -> str:
        """The official options table, with ``[default: X]`` where a value differs from its default."""
        lines = ["----------------- Options ---------------"]
        for k, v in sorted(vars(opt).items()):
            if k in INTERNAL_KEYS:
                continue
            comment = ""
            default = self.parser.get_default(k) if self.parser is not None else None
            if v != default:
                comment = "\t[default: %s]" % str(default)
            lines.append("{:>25}: {:<30}{}".format(str(k), str(v), comment))
        lines.append("----------------- End -------------------")
        return "\n".join(lines) + "\n"

    def print_options(self, opt: argparse.Namespace) -> None:
        """Print the table and save it to ``<checkpoints_dir>/<name>/<phase>_opt.txt`` (rank 0 only)."""
        message = self.format_options(opt)
        log.info(message.rstrip("\n"))
        if getattr(opt, "rank", 0) != 0:
            return
        from util.util import atomic_write_text, mkdirs

        expr_dir = os.path.join(opt.checkpoints_dir, opt.name)
        mkdirs(expr_dir)
        atomic_write_text(os.path.join(expr_dir, f"{opt.phase}_opt.txt"), message)

    def validate(self, opt: argparse.Namespace) -> None:
        """One-line errors for values and combinations that cannot work (raised before anything runs)."""
        from data.base_dataset import PREPROCESS_MODES
        from models import networks
        from util.amp import AMP_MODES

        checks = [("--netG", opt.netG, networks.list_generators()),
                  ("--netD", opt.netD, networks.list_discriminators()),
                  ("--norm", opt.norm, networks.list_norms()),
                  ("--init_type", opt.init_type, networks.INIT_TYPES),
                  ("--upsample", opt.upsample, networks.UPSAMPLE_MODES),
                  ("--direction", opt.direction, ("AtoB", "BtoA")),
                  ("--preprocess", opt.preprocess, PREPROCESS_MODES),
                  ("--amp", opt.amp, AMP_MODES)]
        for flag, value, valid in checks:
            if value not in valid:
                raise ValueError(f"{flag} '{value}' is not valid; choose one of: {', '.join(valid)}")
        for flag in ("batch_size", "input_nc", "output_nc", "ngf", "ndf", "crop_size", "load_size",
                     "max_dataset_size"):
            if getattr(opt, flag) < 1:
                raise ValueError(f"--{flag} must be >= 1, got {getattr(opt, flag)}")
        if not isinstance(opt.channels_last, bool) and opt.channels_last not in CHANNELS_LAST_CHOICES:
            raise ValueError(f"--channels_last '{opt.channels_last}' is not valid; choose one of: "
                             f"{', '.join(CHANNELS_LAST_CHOICES)}")
        if opt.bad_data not in ("error", "skip"):
            raise ValueError(f"--bad_data '{opt.bad_data}' is not valid; choose one of: error, skip")
        if opt.seed < -1:
            raise ValueError(f"--seed must be >= 0 (or -1: not seeded), got {opt.seed}")
        if opt.num_threads < 0:
            raise ValueError(f"--num_threads must be >= 0 (0 loads data in the main process), got {opt.num_threads}")
        if ("resize" in opt.preprocess or "scale_width" in opt.preprocess) and "crop" in opt.preprocess \
                and opt.crop_size > opt.load_size:
            raise ValueError(f"--crop_size {opt.crop_size} is larger than --load_size {opt.load_size}: "
                             f"with --preprocess {opt.preprocess} the crop must fit the resized image")
        models.find_model_using_name(opt.model).validate_options(opt)  # the model's own checks

    def resolve_device(self, opt: argparse.Namespace) -> None:
        """Turn ``--gpu_ids`` into a list and ``opt.device``; fall back to the CPU when CUDA is absent."""
        opt.gpu_ids = parse_gpu_ids(opt.gpu_ids) if isinstance(opt.gpu_ids, str) else list(opt.gpu_ids)
        if opt.gpu_ids and not torch.cuda.is_available():
            log.info("CUDA is not available: running on the CPU (pass --gpu_ids -1 to silence this)")
            opt.gpu_ids = []
        local_rank = os.environ.get("LOCAL_RANK")
        if opt.gpu_ids and local_rank is not None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
            opt.gpu_ids = [int(local_rank)]
        if opt.gpu_ids:
            torch.cuda.set_device(opt.gpu_ids[0])
            opt.device = torch.device(f"cuda:{opt.gpu_ids[0]}")
        else:
            opt.device = torch.device("cpu")
        opt.channels_last = resolve_channels_last(opt.channels_last, opt.isTrain, opt.device)

    def parse(self, argv: Optional[Sequence[str]] = None, save: bool = True) -> argparse.Namespace:
        """Parse the command line (or ``argv``), apply the suffix, validate, print/save, set the device."""
        opt = self.gather_options(argv)
        opt.isTrain = self.isTrain
        if opt.suffix:
            suffix = ("_" + opt.suffix.format(**vars(opt))) if opt.suffix != "" else ""
            opt.name = opt.name + suffix
        opt.explicit_flags = sorted(self.explicit)
        opt.rank = int(os.environ.get("RANK", "0"))
        opt.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.finalize(opt)
        self.validate(opt)
        if save:
            self.print_options(opt)
        self.resolve_device(opt)
        self.opt = opt
        return opt

    def parse_or_exit(self, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
        """``parse`` for the scripts: a bad flag gives argparse's one ``error:`` line (naming it) and exit status 2."""
        try:
            return self.parse(argv)
        except ValueError as err:
            (self.parser or self.make_parser()).error(str(err))
            raise  # not reached: error() exits

    def finalize(self, opt: argparse.Namespace) -> None:
        """Hook for subclasses: adjust parsed options before validation (e.g. test-time overrides)."""
