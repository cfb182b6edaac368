"""Options shared by training and testing: the official flags of both official versions, plus ours."""
from __future__ import annotations

import argparse
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Set, Union

import torch

import data
import models
from data.base_dataset import PREPROCESS_MODES
from data.validation import BAD_DATA_POLICIES
from models import networks
from options.ranges import check_choices, check_ranges, choices_of, ranges_of
from options.sizes import SIZE_KEYS, check_image_sizes
from util.amp import AMP_MODES
from util.errors import DEBUG_ENV, UserError, add_debug_flag
from util.image_io import DEFAULT_MAX_PIXELS
from util.logger import get_logger
from util.ranges import Choice, RangeError
from util.threads import available_cores
from util.util import DIRECTIONS, atomic_write_text, mkdirs, str2bool

from .cli import OptionParser
from .paths import check_paths

log = get_logger(__name__)

# --help groups (``OptionParser.section``); the official flags by topic, ours (marked [ours]) in a group of their own
BASIC_SECTION = "basic"
MODEL_SECTION = "model and networks"
DATA_SECTION = "data"
TRAIN_SECTION = "training"
REPORTS_SECTION = "reports and visualization"
TEST_SECTION = "testing"
OURS_SECTION = "beyond the official flags"
SECTIONS = (BASIC_SECTION, MODEL_SECTION, DATA_SECTION, TRAIN_SECTION, REPORTS_SECTION, TEST_SECTION, OURS_SECTION)


# Attributes we add to opt after parsing; not options, so not in the printed table. translates_both_ways and
# stacks_domains: the model's answers (data/validation.py's advice for a missing test folder and its check of A/B
# sizes; data cannot ask the model itself).
INTERNAL_KEYS = ("device", "explicit_flags", "rank", "world_size", "local_rank",
                 "translates_both_ways", "stacks_domains") + SIZE_KEYS


def model_selected_by(tokens: Set[str]) -> Optional[str]:
    """The model that one of ``tokens`` selects when --model is not given (``BaseModel.selecting_flags``: a flag
    only that model has, e.g. --CUT_mode for cut), or None."""
    return next((name for name in models.list_models()
                 if tokens & set(models.find_model_using_name(name).selecting_flags())), None)


CHANNELS_LAST_CHOICES = ("auto", "on", "off")
# Model flags a checkpoint's config.json records and test.py takes from it before the defaults they set.
RECORDED_MODEL_FLAGS = ("CUT_mode",)


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


def options_file(opt: argparse.Namespace) -> str:
    """``<checkpoints_dir>/<name>/<phase>_opt.txt``."""
    return os.path.join(opt.checkpoints_dir, opt.name, f"{opt.phase}_opt.txt")


def write_options_file(opt: argparse.Namespace, table: str) -> None:
    """Save the options table as ``<phase>_opt.txt`` in the experiment folder (rank 0 only)."""
    if opt.rank != 0:
        return
    mkdirs(os.path.dirname(options_file(opt)))
    atomic_write_text(options_file(opt), table)


def format_suffix(suffix: str, values: dict) -> str:
    """``--suffix`` with ``{option}`` fields filled in (e.g. ``{model}_{netG}_size{load_size}``)."""
    try:
        return suffix.format(**values)
    except KeyError as err:
        raise ValueError(f"--suffix '{suffix}': {{{err.args[0]}}} is not an option name; use option names in braces, "
                         f"e.g. {{model}}_{{netG}}_size{{load_size}}") from None
    except (ValueError, IndexError, AttributeError) as err:
        raise ValueError(f"--suffix '{suffix}' is not a valid format ({err}); use option names in braces, e.g. "
                         f"{{model}}_{{netG}}_size{{load_size}}, and double the braces meant literally") from None


class BaseOptions:
    """Defines the shared flags, applies model/dataset defaults, prints and saves the options."""

    def __init__(self) -> None:
        self.initialized = False
        self.isTrain = False
        self.parser: Optional[argparse.ArgumentParser] = None
        self.explicit: Set[str] = set()
        self.table = ""  # the options table of the last parse (what <phase>_opt.txt holds)

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the flags shared by train.py and test.py."""
        with parser.section(BASIC_SECTION):
            parser.add_argument("--dataroot", required=True,
                                help="path to images (should have subfolders trainA, trainB, valA, valB, etc)")
            parser.add_argument("--name", type=str, default="experiment_name",
                                help="name of the experiment. It decides where to store samples and models")
            parser.add_argument("--gpu_ids", type=str, default="0",
                                help="gpu ids: e.g. 0  0,1,2, 0,2. use -1 for CPU (falls back to the CPU when CUDA is "
                                     "absent)")
            parser.add_argument("--checkpoints_dir", type=str, default="./checkpoints",
                                help="models are saved here")
            parser.add_argument("--suffix", default="", type=str,
                                help="customized suffix: opt.name = opt.name + suffix: e.g., "
                                     "{model}_{netG}_size{load_size}")
            parser.add_argument("--epoch", type=str, default="latest",
                                help="which epoch to load? set to latest to use latest cached model")
            parser.add_argument("--load_iter", type=int, default="0",
                                help="which iteration to load? if load_iter > 0, the code will load models by "
                                     "iter_[load_iter]; otherwise, the code will load models by [epoch]")
            parser.add_argument("--verbose", action="store_true",
                                help="if specified, print more debugging information")
        with parser.section(MODEL_SECTION):
            parser.add_argument("--model", type=str, default="cycle_gan",
                                help="chooses which model to use. [" + " | ".join(models.list_models()) + "]; "
                                     "--CUT_mode alone selects cut")
            parser.add_argument("--input_nc", type=int, default=3,
                                help="# of input image channels: 3 for RGB and 1 for grayscale")
            parser.add_argument("--output_nc", type=int, default=3,
                                help="# of output image channels: 3 for RGB and 1 for grayscale")
            parser.add_argument("--ngf", type=int, default=64, help="# of gen filters in the last conv layer")
            parser.add_argument("--ndf", type=int, default=64, help="# of discrim filters in the first conv layer")
            netD, netG = Choice(networks.DISCRIMINATORS), Choice(networks.GENERATORS)
            parser.add_argument("--netD", type=netD, default="basic",
                                help=f"specify discriminator architecture {netD.listing()}. The basic model is a 70x70 "
                                     f"PatchGAN. n_layers allows you to specify the layers in the discriminator")
            parser.add_argument("--netG", type=netG, default="resnet_9blocks",
                                help=f"specify generator architecture {netG.listing()}")
            parser.add_argument("--n_layers_D", type=int, default=3, help="only used if netD==n_layers")
            norm, init_type = Choice(networks.NORM_LAYERS), Choice(networks.INIT_TYPES)
            parser.add_argument("--norm", type=norm, default="instance",
                                help=f"instance normalization or batch normalization {norm.listing()}")
            parser.add_argument("--init_type", type=init_type, default="normal",
                                help=f"network initialization {init_type.listing()}")
            parser.add_argument("--init_gain", type=float, default=0.02,
                                help="scaling factor for normal, xavier and orthogonal.")
            parser.add_argument("--no_dropout", type=str2bool, nargs="?", const=True, default=False,
                                help="no dropout for the generator (also --no_dropout True/False)")
            parser.add_argument("--stylegan2_G_num_downsampling", type=int, default=1,
                                help="number of downsampling layers of the StyleGAN2 generator (--netG stylegan2, "
                                     "smallstylegan2; the CUT code's flag)")
        with parser.section(DATA_SECTION):
            parser.add_argument("--dataset_mode", type=str, default="unaligned",
                                help="chooses how datasets are loaded. [" + " | ".join(data.list_dataset_modes())
                                     + "]")
            direction = Choice(DIRECTIONS)
            parser.add_argument("--direction", type=direction, default="AtoB",
                                help=f"which way to translate {direction.listing()}")
            parser.add_argument("--serial_batches", action="store_true",
                                help="if true, takes images in order to make batches, otherwise takes them randomly")
            parser.add_argument("--num_threads", default=4, type=int,
                                help="# threads for loading data (by default at most the cores this process may use)")
            parser.add_argument("--batch_size", type=int, default=1, help="input batch size (per process)")
            parser.add_argument("--load_size", type=int, default=286, help="scale images to this size")
            parser.add_argument("--crop_size", type=int, default=256, help="then crop to this size")
            parser.add_argument("--max_dataset_size", type=int, default=float("inf"),
                                help="Maximum number of samples allowed per dataset. If the dataset directory contains "
                                     "more than max_dataset_size, only a subset is loaded.")
            preprocess = Choice(PREPROCESS_MODES)
            parser.add_argument("--preprocess", type=preprocess, default="resize_and_crop",
                                help=f"scaling and cropping of images at load time {preprocess.listing()}")
            parser.add_argument("--no_flip", action="store_true",
                                help="if specified, do not flip the images for data augmentation")
            parser.add_argument("--random_scale_max", type=float, default=3.0,
                                help="--preprocess zoom_and_patch scales each side by a random factor between "
                                     "1/random_scale_max and 1 (the CUT code's flag, for single-image translation)")
        with parser.section(REPORTS_SECTION):
            parser.add_argument("--display_winsize", type=int, default=256,
                                help="display window size for both visdom and HTML")
            parser.add_argument("--use_wandb", action="store_true", help="if specified, then init wandb logging")
            parser.add_argument("--wandb_project_name", type=str, default="CycleGAN-and-pix2pix",
                                help="specify wandb project name")
        with parser.section(OURS_SECTION):
            parser.add_argument("--use_ema", action="store_true",
                                help="[ours] use each generator's moving average (<epoch>_net_<G>_ema.pth, written by "
                                     "training with --ema) in place of its weights: at test time, and for --eval_freq")
            upsample = Choice(networks.UPSAMPLE_MODES)
            parser.add_argument("--upsample", type=upsample, default="deconv",
                                help=f"[ours] generator upsampling {upsample.listing()}: deconv is the official "
                                     f"transposed conv; nearest and bilinear resize, then convolve (no checkerboard "
                                     f"artifacts)")
            add_debug_flag(parser, f"[ours] show the Python traceback of a user error (bad data, path, checkpoint) "
                                   f"instead of its one-line message; or set {DEBUG_ENV}=1")
            parser.add_argument("--use_tensorboard", action="store_true",
                                help="[ours] log losses and images to TensorBoard (checkpoints/<name>/tensorboard)")
            amp, channels_last = Choice(AMP_MODES), Choice(CHANNELS_LAST_CHOICES)
            parser.add_argument("--amp", type=amp, default="none",
                                help=f"[ours] mixed precision {amp.listing()}: none is the official fp32; bf16 runs on "
                                     f"the CPU or a GPU, fp16 on CUDA only (with a GradScaler)")
            parser.add_argument("--channels_last", type=channels_last, nargs="?", const="on", default="auto",
                                metavar="|".join(channels_last.names),
                                help=f"[ours] channels-last memory format {channels_last.listing()} for the networks "
                                     f"and activations (faster convolutions on recent GPUs); '--channels_last' alone "
                                     f"means on; auto: on for inference on the CPU (test.py; faster and leaner there), "
                                     f"off otherwise")
            parser.add_argument("--compile", action="store_true",
                                help="[ours] wrap every network in torch.compile (slow first iterations, faster "
                                     "after)")
            parser.add_argument("--seed", type=int, default=-1,
                                help="[ours] seed python/numpy/torch with seed + rank (-1: not seeded, official)")
            parser.add_argument("--deterministic", action="store_true",
                                help="[ours] deterministic kernels where PyTorch has them (slower; CPU runs with "
                                     "--seed are bit-reproducible anyway)")
            bad_data = Choice(BAD_DATA_POLICIES)
            parser.add_argument("--bad_data", type=bad_data, default="error",
                                help=f"[ours] unusable image files found by the pre-flight scan {bad_data.listing()}: "
                                     f"error stops before training, listing them; skip leaves them out with a summary")
            parser.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,  # range: options/ranges.py
                                help="[ours] pixel budget of one image, as decoded and after each resizing step of "
                                     "--preprocess; larger images are refused by name (docs/resume.md, Bad data)")
        self.initialized = True
        return parser

    def make_parser(self) -> OptionParser:
        """A fresh parser with this class's flags (``--help`` comes last: see ``gather_options``); it records
        each flag, so the ranges declared with ``type=Range(...)`` are checked too."""
        parser = OptionParser(formatter_class=argparse.ArgumentDefaultsHelpFormatter, add_help=False,
                              usage="%(prog)s --dataroot DATAROOT [--name NAME] [--model MODEL] [flag value ...] "
                                    "[@file.args]")
        parser.add_sections(SECTIONS)  # the --help groups in this order (an empty one is not shown)
        with parser.section(TRAIN_SECTION if self.isTrain else TEST_SECTION):  # the script's own flags
            return self.initialize(parser)

    def gather_options(self, argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
        """Parse base flags, then the model's and the dataset's extra flags/defaults (official order).

        ``--help`` is added after the model's and the dataset mode's flags, so ``--model pix2pix --help`` lists
        ``--lambda_L1``; ``@file`` arguments and "did you mean" come from ``options/cli.py``.
        """
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = self.make_parser()
        given = parser.given(argv)
        if "model" not in given:
            selected = model_selected_by({token.split("=", 1)[0] for token in argv})
            if selected is None:  # test.py: the model the checkpoint's config.json records
                selected = self.recorded(parser.peek(argv)).get("model")
                if selected is not None:
                    log.info("--model %s, as recorded in the checkpoint's config.json", selected)
            if selected is not None:
                parser.set_defaults(model=selected)
        opt = parser.peek(argv)
        with parser.section(f"--model {opt.model}"):
            parser = models.get_option_setter(opt.model)(parser, self.isTrain)
        opt = parser.peek(argv)
        recorded = self.recorded(opt)
        if recorded.get("model") == opt.model:  # e.g. --CUT_mode, before the defaults it sets
            parser.set_defaults(**{k: recorded[k] for k in RECORDED_MODEL_FLAGS if k in recorded and k not in given})
            opt = parser.peek(argv)
        # defaults the model derives from what is parsed so far (cut: --CUT_mode); explicit flags still win
        parser.set_defaults(**models.find_model_using_name(opt.model).option_defaults(opt, self.isTrain))
        opt = parser.peek(argv)
        with parser.section(f"--dataset_mode {opt.dataset_mode}"):
            parser = data.get_option_setter(opt.dataset_mode)(parser, self.isTrain)
        parser.add_help_flag()
        self.parser = parser
        # one argument file for train.py and test.py: the other script's flags in a file are left out (a note)
        parser.ignorable = self.other_scripts_flags(parser, opt.model, opt.dataset_mode)
        opt, extras = parser.parse_known_args(argv)
        if extras:
            parser.error(parser.unrecognized(extras, self.flags_elsewhere(parser)))
        self.explicit = parser.given(argv)
        note = parser.ignored_note("train.py" if self.isTrain else "test.py")
        if note:
            log.info("%s", note)
        return opt

    def other_scripts_flags(self, parser: OptionParser, model: str, dataset_mode: str) -> Dict[str, str]:
        """Flags that the other script (test.py for train.py and the reverse) has with this model and dataset
        mode and ``parser`` lacks: flag -> that script's name."""
        from options.test_options import TestOptions  # noqa: PLC0415 - the two scripts' options know each other
        from options.train_options import TrainOptions  # noqa: PLC0415

        other = TestOptions() if self.isTrain else TrainOptions()
        sibling = other.make_parser()
        for setter, name in ((models.get_option_setter, model), (data.get_option_setter, dataset_mode)):
            try:
                setter(name)(sibling, other.isTrain)
            except ValueError:  # e.g. --model test, which train.py refuses
                continue
        have = set(parser.flags())
        script = "test.py" if self.isTrain else "train.py"
        return {flag: script for flag in sibling.flags() if flag not in have}

    def flags_elsewhere(self, parser: OptionParser) -> Dict[str, List[str]]:
        """Flags that ``parser`` lacks but another model or dataset mode has: flag -> ['--model cycle_gan', ...]."""
        have = set(parser.flags())
        owners: Dict[str, List[str]] = {}
        for kind, names, setter in (("--model", models.list_models(), models.get_option_setter),
                                    ("--dataset_mode", data.list_dataset_modes(), data.get_option_setter)):
            for name in names:
                try:
                    flags = setter(name)(OptionParser(add_help=False), self.isTrain).flags()
                except ValueError:  # not usable by this script (--model test in train.py)
                    continue
                owners.update((flag, owners.get(flag, []) + [f"{kind} {name}"]) for flag in flags if flag not in have)
        return owners

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

    def show(self) -> None:
        """Print the options table of the last ``parse`` (what ``<phase>_opt.txt`` holds)."""
        log.info(self.table.rstrip("\n"))

    def print_options(self, opt: argparse.Namespace) -> None:
        """Print the table and save it to ``<checkpoints_dir>/<name>/<phase>_opt.txt`` (rank 0 only)."""
        message = self.format_options(opt)
        log.info(message.rstrip("\n"))
        write_options_file(opt, message)

    def validate(self, opt: argparse.Namespace) -> None:
        """One-line errors for values and combinations that cannot work (raised before anything runs)."""
        # every numeric flag (options/ranges.py) and every named one (type=Choice), also values that came from a
        # default, a model's option_defaults or a checkpoint's config.json rather than through argparse
        check_ranges(opt, ranges_of(self.parser))
        check_choices(opt, choices_of(self.parser))
        if ("resize" in opt.preprocess or "scale_width" in opt.preprocess) and "crop" in opt.preprocess \
                and opt.crop_size > opt.load_size:
            raise ValueError(f"--crop_size {opt.crop_size} is larger than --load_size {opt.load_size}: "
                             f"with --preprocess {opt.preprocess} the crop must fit the resized image")
        networks.check_upsample(opt.netG, opt.upsample)
        models.find_model_using_name(opt.model).validate_options(opt)  # the model's own checks
        check_image_sizes(opt)  # the pixel budget, and what the networks can take (options/sizes.py)

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
            opt.name = opt.name + "_" + format_suffix(opt.suffix, vars(opt))
        opt.explicit_flags = sorted(self.explicit)
        if "num_threads" not in self.explicit:  # the official 4 data workers, but no more than the cores we may use
            opt.num_threads = min(opt.num_threads, available_cores())
        opt.rank = int(os.environ.get("RANK", "0"))
        opt.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        check_paths(opt)  # --name, --epoch and the folders stay where the user said (options/paths.py)
        self.finalize(opt)
        self.validate(opt)
        model = models.find_model_using_name(opt.model)
        opt.translates_both_ways, opt.stacks_domains = model.translates_both_ways(opt), model.stacks_domains(opt)
        self.table = self.format_options(opt)
        if save:
            self.print_options(opt)
        self.resolve_device(opt)
        self.opt = opt
        return opt

    def parse_or_exit(self, argv: Optional[Sequence[str]] = None, save: bool = True) -> argparse.Namespace:
        """``parse`` for the scripts: a bad flag gives argparse's one ``error:`` line (naming it) and exit status 2.

        A ``UserError`` that is not about a flag's value (e.g. an unreadable ``config.json``) goes to the
        script's one-line report instead of argparse's usage.
        """
        try:
            return self.parse(argv, save)
        except RangeError as err:  # a flag's value: argparse's usage and error line
            (self.parser or self.make_parser()).error(str(err))
            raise  # not reached: error() exits
        except UserError:
            raise
        except ValueError as err:
            (self.parser or self.make_parser()).error(str(err))
            raise  # not reached: error() exits

    def recorded(self, opt: argparse.Namespace) -> Dict[str, Any]:
        """The options a checkpoint's config.json records that parsing reuses (test.py: ``TestOptions``); none
        for training."""
        return {}

    def finalize(self, opt: argparse.Namespace) -> None:
        """Hook for subclasses: adjust parsed options before validation (e.g. test-time overrides)."""
