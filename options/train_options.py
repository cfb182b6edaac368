"""Training flags: the official ones (both versions) plus ours, marked [ours] in their help."""
from __future__ import annotations

import argparse

from models import networks
from util.loss_plot import DEFAULT_SMOOTHING
from util.ranges import Choice, Range
from util.util import str2bool

from .base_options import OURS_SECTION, REPORTS_SECTION, TRAIN_SECTION, BaseOptions
from .evaluation import BEST_KEYS, check_eval_options
from .paths import check_pretrained, parse_epochs

# --nan_policy: what training/nonfinite.py does with a NaN/Inf loss (it sits above options, so the names live here)
NAN_POLICIES = ("stop", "skip")


class TrainOptions(BaseOptions):
    """Options for train.py."""

    def __init__(self) -> None:
        super().__init__()
        self.isTrain = True

    def initialize(self, parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        """Add the training flags to the shared ones."""
        parser = BaseOptions.initialize(self, parser)
        with parser.section(REPORTS_SECTION):
            parser.add_argument("--display_freq", type=int, default=400,
                                help="frequency of showing training results on screen")
            parser.add_argument("--display_ncols", type=int, default=4,
                                help="if positive, display all images in a single visdom web panel with certain number "
                                     "of images per row.")
            parser.add_argument("--display_id", type=int, default=1, help="window id of the web display (<= 0: off)")
            parser.add_argument("--display_server", type=str, default="http://localhost",
                                help="visdom server of the web display")
            parser.add_argument("--display_env", type=str, default="main",
                                help='visdom display environment name (default is "main")')
            parser.add_argument("--display_port", type=int, default=8097, help="visdom port of the web display")
            parser.add_argument("--update_html_freq", type=int, default=1000,
                                help="frequency of saving training results to html")
            parser.add_argument("--print_freq", type=int, default=100,
                                help="frequency of showing training results on console")
            parser.add_argument("--no_html", action="store_true",
                                help="do not save intermediate training results to "
                                     "[opt.checkpoints_dir]/[opt.name]/web/")
        with parser.section(TRAIN_SECTION):
            parser.add_argument("--n_epochs", type=int, default=100,
                                help="number of epochs with the initial learning rate")
            parser.add_argument("--n_epochs_decay", type=int, default=100,
                                help="number of epochs to linearly decay learning rate to zero")
            parser.add_argument("--beta1", type=float, default=0.5, help="momentum term of adam")
            parser.add_argument("--lr", type=float, default=0.0002, help="initial learning rate for adam")
            gan_mode, lr_policy = Choice(networks.GAN_MODES), Choice(networks.LR_POLICIES)
            parser.add_argument("--gan_mode", type=gan_mode, default="lsgan",
                                help=f"the type of GAN objective. {gan_mode.listing()}. vanilla GAN loss is the "
                                     f"cross-entropy objective used in the original GAN paper.")
            parser.add_argument("--pool_size", type=int, default=50,
                                help="the size of image buffer that stores previously generated images")
            parser.add_argument("--lr_policy", type=lr_policy, default="linear",
                                help=f"learning rate policy. {lr_policy.listing()}")
            parser.add_argument("--lr_decay_iters", type=int, default=50,
                                help="multiply by a gamma every lr_decay_iters epochs (step policy)")
            parser.add_argument("--save_latest_freq", type=int, default=5000,
                                help="frequency of saving the latest results")
            parser.add_argument("--save_epoch_freq", type=int, default=5,
                                help="frequency of saving checkpoints at the end of epochs")
            parser.add_argument("--save_by_iter", action="store_true", help="whether saves model by iteration")
            parser.add_argument("--continue_train", action="store_true",
                                help="continue training: load the latest model")
            parser.add_argument("--pretrained_name", type=str, default=None,
                                help="with --continue_train, load the weights of this experiment's folder "
                                     "(fine-tuning) instead of --name's")
            parser.add_argument("--epoch_count", type=int, default=1,
                                help="the starting epoch count, we save the model by <epoch_count>, "
                                     "<epoch_count>+<save_latest_freq>, ...")
            parser.add_argument("--phase", type=str, default="train", help="train, val, test, etc")
        with parser.section(OURS_SECTION):
            parser.add_argument("--keep_last", type=Range(int, 0), default=0,
                                help="[ours] keep only the N most recent epoch checkpoints (and N iter_<N> ones), "
                                     "removing older ones as training goes; latest, best, the one resumed from and "
                                     "--keep_epochs stay (0: keep all)")
            parser.add_argument("--keep_epochs", type=str, default="",
                                help="[ours] with --keep_last, epoch checkpoints never removed, e.g. 50,100")
            parser.add_argument("--ema", type=Range(float, 0, 1, open_high=True), default=0.0,
                                help="[ours] keep an exponential moving average of each generator's weights with this "
                                     "decay (e.g. 0.999), saved as <epoch>_net_<G>_ema.pth; 0: off")
            parser.add_argument("--plot_smoothing", type=float, default=DEFAULT_SMOOTHING,
                                help="[ours] weight in [0, 1) of the moving average drawn over each loss curve of "
                                     "web/loss_plot.png (raw points faint behind it); 0 = off")
            parser.add_argument("--overwrite", action="store_true",
                                help="[ours] start a new run in an experiment folder that holds an earlier run's "
                                     "checkpoints, deleting them (and its loss logs) first; without it such a start "
                                     "stops before writing anything")
            parser.add_argument("--load_crop_size_in_decay", type=str2bool, nargs="?", const=True, default=False,
                                help="[ours] in the decay epochs (after --n_epochs) the unaligned dataset loads images "
                                     "at --crop_size instead of --load_size, so crops stop jittering (True/False; on "
                                     "by default for --model cut, as in the CUT code)")
            parser.add_argument("--lambda_gp", type=float, default=10.0,
                                help="[ours] weight of the WGAN-GP gradient penalty (used with --gan_mode wgangp)")
            parser.add_argument("--d_steps", type=int, default=1,
                                help="[ours] discriminator updates per generator update (1 = official)")
            parser.add_argument("--accum_steps", type=int, default=1,
                                help="[ours] accumulate gradients over this many batches before each optimizer step")
            nan_policy = Choice(NAN_POLICIES)
            parser.add_argument("--nan_policy", type=nan_policy, default="stop",
                                help=f"[ours] a NaN/Inf loss {nan_policy.listing()}: stop raises and keeps the "
                                     f"checkpoints on disk; skip does not apply that optimizer step, warns, goes on")
            parser.add_argument("--eval_freq", type=int, default=0,
                                help="[ours] evaluate on a fixed test subset every N training images and keep the best "
                                     "checkpoint (best_net_*.pth, best.json); 0 = off")
            parser.add_argument("--eval_metrics", type=str, default="",
                                help="[ours] comma-separated metrics of --eval_freq: swd, classifier, fid, kid "
                                     "(unaligned data) or psnr, ssim, l1, swd, fid, kid (paired); empty = "
                                     "swd,classifier for cycle_gan, psnr,ssim,l1 for pix2pix/colorization/template")
            parser.add_argument("--eval_num", type=int, default=50,
                                help="[ours] size of the fixed test subset: the first N sorted files of "
                                     "<dataroot>/testA|testB (or test; val when there is no test split)")
            eval_best = Choice(BEST_KEYS, empty=True)
            parser.add_argument("--eval_best", type=eval_best, default="",
                                help=f"[ours] metric that picks best_net_*.pth {eval_best.listing()} (a metric's name "
                                     f"stands for its key: classifier for domain_score); both directions averaged for "
                                     f"cycle_gan; empty = swd for unaligned data, l1 for paired data")
            parser.add_argument("--inception_weights", type=str, default="",
                                help="[ours] local TF-Inception weights file for the fid/kid metrics (else "
                                     "$IMG2IMG_INCEPTION_WEIGHTS); never downloaded")
        return parser

    def validate(self, opt: argparse.Namespace) -> None:
        """Training-specific checks on top of the shared ones (the numeric ranges: options/ranges.py)."""
        super().validate(opt)  # also the named flags (--gan_mode, --lr_policy, --nan_policy: type=Choice)
        if opt.overwrite and opt.continue_train:
            raise ValueError("--overwrite starts a new run and --continue_train goes on with the old one: choose one")
        last = opt.n_epochs + opt.n_epochs_decay
        if opt.epoch_count > last and not opt.continue_train:
            raise ValueError(f"--epoch_count {opt.epoch_count} is past the last epoch (--n_epochs + --n_epochs_decay "
                             f"= {last}): nothing would be trained")
        if opt.world_size > 1 and opt.norm == "batch":
            raise ValueError("--norm batch with several processes gives each process its own statistics; "
                             "use --norm syncbatch (or instance)")
        if opt.amp == "fp16" and opt.gan_mode == "wgangp":  # the loss scale sits at the networks' boundaries, where
            # the gradient penalty's second-order path into D would miss it (models/wrappers.py MixedPrecision)
            raise ValueError("--amp fp16 cannot train --gan_mode wgangp (its gradient penalty would get unscaled "
                             "gradients); use --amp bf16 or --amp none")
        check_pretrained(opt)
        if opt.use_ema and opt.ema <= 0:
            raise ValueError("--use_ema evaluates the generators' moving averages, which training keeps with --ema "
                             "DECAY (e.g. --ema 0.999)")
        parse_epochs(opt.keep_epochs)  # --keep_epochs: a list of epochs (ValueError naming the flag)
        check_eval_options(opt)  # --eval_freq, --eval_metrics, --eval_best, --inception_weights
