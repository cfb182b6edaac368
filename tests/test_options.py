"""Options: every official flag parses, defaults and their precedence, suffix, printed table, saved file."""
from __future__ import annotations

from pathlib import Path

import pytest

import models
from conftest import refusal
from data.base_dataset import PREPROCESS_MODES
from data.validation import BAD_DATA_POLICIES
from models import networks
from options.base_options import CHANNELS_LAST_CHOICES
from options.evaluation import BEST_KEYS
from options.test_options import TestOptions
from options.train_options import NAN_POLICIES, TrainOptions
from util.amp import AMP_MODES
from util.ranges import Choice
from util.util import DIRECTIONS

# Every official flag with a non-default value (the official option files).
OFFICIAL_BASE = {
    "--name": "exp", "--gpu_ids": "-1", "--model": "cycle_gan", "--input_nc": "3", "--output_nc": "3",
    "--ngf": "32", "--ndf": "32", "--netD": "n_layers", "--netG": "resnet_6blocks", "--n_layers_D": "4",
    "--norm": "batch", "--init_type": "xavier", "--init_gain": "0.05", "--no_dropout": None,
    "--dataset_mode": "unaligned", "--direction": "BtoA", "--serial_batches": None, "--num_threads": "2",
    "--batch_size": "2", "--load_size": "300", "--crop_size": "200", "--max_dataset_size": "10",
    "--preprocess": "scale_width_and_crop", "--no_flip": None, "--display_winsize": "128", "--epoch": "3",
    "--load_iter": "0", "--verbose": None, "--suffix": "", "--use_wandb": None, "--wandb_project_name": "p",
}
OFFICIAL_TRAIN = {
    "--display_freq": "10", "--display_ncols": "2", "--display_id": "0", "--display_server": "http://h",
    "--display_env": "e", "--display_port": "8098", "--update_html_freq": "20", "--print_freq": "5",
    "--no_html": None, "--save_latest_freq": "50", "--save_epoch_freq": "2", "--save_by_iter": None,
    "--continue_train": None, "--epoch_count": "3", "--phase": "train", "--n_epochs": "7", "--n_epochs_decay": "8",
    "--beta1": "0.9", "--lr": "0.001", "--gan_mode": "vanilla", "--pool_size": "10", "--lr_policy": "step",
    "--lr_decay_iters": "9", "--lambda_A": "5", "--lambda_B": "6", "--lambda_identity": "0.1",
}
OFFICIAL_TEST = {"--results_dir": "r", "--aspect_ratio": "1.5", "--phase": "val", "--eval": None,
                 "--num_test": "7"}


def argv_of(flags: dict) -> list:
    out = []
    for k, v in flags.items():
        out += [k] if v is None else [k, v]
    return out


def parse_train(tmp_path: Path, *argv: str):
    return TrainOptions().parse(["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck"),
                                 "--gpu_ids", "-1", *argv])


def parse_test(tmp_path: Path, *argv: str):
    return TestOptions().parse(["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck"),
                                "--gpu_ids", "-1", *argv])


def test_every_official_train_flag_parses(tmp_path: Path) -> None:
    opt = parse_train(tmp_path, *argv_of({**OFFICIAL_BASE, **OFFICIAL_TRAIN}))
    assert (opt.netD, opt.n_layers_D, opt.norm, opt.direction, opt.load_size) == ("n_layers", 4, "batch", "BtoA", 300)
    assert (opt.no_dropout, opt.serial_batches, opt.no_flip, opt.verbose, opt.no_html) == (True,) * 5
    assert (opt.lambda_A, opt.lambda_identity, opt.lr_policy, opt.gan_mode) == (5.0, 0.1, "step", "vanilla")
    assert opt.isTrain and opt.gpu_ids == [] and str(opt.device) == "cpu"


def test_every_official_test_flag_parses(tmp_path: Path) -> None:
    base = {k: v for k, v in OFFICIAL_BASE.items() if k not in ("--model", "--dataset_mode")}
    opt = parse_test(tmp_path, *argv_of({**base, **OFFICIAL_TEST}), "--model_suffix", "_A")
    assert (opt.model, opt.dataset_mode, opt.model_suffix, opt.num_test, opt.phase) == ("test", "single", "_A", 7, "val")
    assert opt.eval and opt.aspect_ratio == 1.5 and not opt.isTrain


def test_official_defaults(tmp_path: Path) -> None:
    opt = parse_train(tmp_path)
    assert (opt.model, opt.netG, opt.netD, opt.norm, opt.load_size, opt.crop_size) == \
        ("cycle_gan", "resnet_9blocks", "basic", "instance", 286, 256)
    assert opt.no_dropout is True  # cycle_gan default
    assert (opt.lr, opt.beta1, opt.n_epochs, opt.n_epochs_decay, opt.pool_size) == (0.0002, 0.5, 100, 100, 50)
    assert (opt.display_freq, opt.print_freq, opt.save_latest_freq, opt.save_epoch_freq) == (400, 100, 5000, 5)
    assert opt.max_dataset_size == float("inf") and opt.load_iter == 0
    assert (opt.d_steps, opt.accum_steps, opt.upsample) == (1, 1, "deconv")


def test_test_defaults(tmp_path: Path) -> None:
    opt = parse_test(tmp_path)
    assert (opt.model, opt.dataset_mode, opt.load_size, opt.num_test, opt.results_dir) == \
        ("test", "single", 256, 50, "./results/")
    assert (opt.num_threads, opt.batch_size, opt.serial_batches, opt.no_flip, opt.display_id) == (0, 1, True, True, -1)
    assert opt.no_dropout is False  # the test model does not set it (official)
    # the test load_size is the *default* crop size, so a user crop does not carry over
    assert parse_test(tmp_path, "--crop_size", "128").load_size == 256


@pytest.mark.parametrize("model", models.list_models())
def test_every_model_parses_with_its_defaults(tmp_path: Path, model: str) -> None:
    if model == "test":
        with pytest.raises(ValueError, match="test.py only"):
            parse_train(tmp_path, "--model", model)
        opt = parse_test(tmp_path, "--model", model)
    else:
        opt = parse_train(tmp_path, "--model", model)
        parse_test(tmp_path, "--model", model)
    assert opt.model == model


def test_pix2pix_and_colorization_defaults(tmp_path: Path) -> None:
    p = parse_train(tmp_path, "--model", "pix2pix")
    assert (p.norm, p.netG, p.dataset_mode, p.pool_size, p.gan_mode, p.lambda_L1, p.no_dropout) == \
        ("batch", "unet_256", "aligned", 0, "vanilla", 100.0, False)
    c = parse_train(tmp_path, "--model", "colorization")
    # dataset defaults (colorization dataset) override model defaults, which override base defaults
    assert (c.dataset_mode, c.input_nc, c.output_nc, c.netG) == ("colorization", 1, 2, "unet_256")
    t = parse_train(tmp_path, "--model", "template")
    assert t.dataset_mode == "aligned" and t.lambda_regression == 10.0


def test_precedence_user_beats_dataset_beats_model(tmp_path: Path) -> None:
    opt = parse_train(tmp_path, "--model", "pix2pix", "--norm", "instance", "--dataset_mode", "template")
    assert opt.norm == "instance"  # user over model default
    assert opt.max_dataset_size == 10 and opt.new_dataset_option == 2.0  # template dataset defaults
    opt = parse_train(tmp_path, "--model", "pix2pix", "--dataset_mode", "template", "--max_dataset_size", "3")
    assert opt.max_dataset_size == 3


def test_suffix_formatting(tmp_path: Path) -> None:
    opt = parse_train(tmp_path, "--name", "exp", "--suffix", "{model}_{netG}_size{load_size}")
    assert opt.name == "exp_cycle_gan_resnet_9blocks_size286"
    assert (tmp_path / "ck" / opt.name / "train_opt.txt").is_file()


def test_printed_table_and_opt_files(tmp_path: Path) -> None:
    opt = parse_train(tmp_path, "--name", "tbl", "--ngf", "32")
    text = (tmp_path / "ck" / "tbl" / "train_opt.txt").read_text()
    lines = text.splitlines()
    assert lines[0] == "----------------- Options ---------------"
    assert lines[-1] == "----------------- End -------------------"
    assert "{:>25}: {:<30}{}".format("ngf", "32", "\t[default: 64]") in lines
    assert "{:>25}: {:<30}{}".format("netG", "resnet_9blocks", "") in lines
    parse_test(tmp_path, "--name", "tbl")
    assert (tmp_path / "ck" / "tbl" / "test_opt.txt").is_file()
    assert opt.name == "tbl"


@pytest.mark.parametrize("flag,value,match", [
    ("--netG", "unet_512", "--netG"), ("--norm", "sync_batch", "--norm"), ("--netD", "patch", "--netD"),
    ("--preprocess", "resize", "--preprocess"), ("--direction", "AtoC", "--direction"),
    ("--gan_mode", "hinge", "--gan_mode"), ("--lr_policy", "exp", "--lr_policy"), ("--model", "cyclegan", "--model"),
    ("--dataset_mode", "paired", "dataset_mode"), ("--init_type", "uniform", "--init_type"),
    ("--upsample", "pixelshuffle", "--upsample"), ("--gpu_ids", "a,b", "--gpu_ids"),
    ("--channels_last", "yes", "--channels_last"),
])
def test_bad_values_name_the_flag(tmp_path: Path, flag: str, value: str, match: str,
                                  capsys: pytest.CaptureFixture) -> None:
    assert match in refusal(lambda: parse_train(tmp_path, flag, value), capsys)


def test_crop_larger_than_load_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--crop_size"):
        parse_train(tmp_path, "--load_size", "64", "--crop_size", "128")
    assert parse_train(tmp_path, "--load_size", "64", "--crop_size", "128", "--preprocess", "crop").crop_size == 128


def test_gpu_ids_fall_back_to_cpu(tmp_path: Path) -> None:
    import torch

    opt = TrainOptions().parse(["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path), "--gpu_ids", "0,1"])
    if torch.cuda.is_available():
        assert opt.gpu_ids[0] == 0
    else:
        assert opt.gpu_ids == [] and str(opt.device) == "cpu"


@pytest.mark.parametrize("args,train,test", [
    ([], False, True), (["--channels_last"], True, True), (["--channels_last", "on"], True, True),
    (["--channels_last", "off"], False, False), (["--channels_last", "auto"], False, True),
])
def test_channels_last_resolves_per_phase_on_the_cpu(tmp_path: Path, args: list, train: bool, test: bool) -> None:
    """auto: channels-last for inference on the CPU only; the flag alone means on (as before it took a value)."""
    assert parse_train(tmp_path, "--gpu_ids", "-1", *args, "--amp", "none").channels_last is train
    assert parse_test(tmp_path, "--gpu_ids", "-1", *args).channels_last is test


# Each named flag and the registry its names come from (the module that implements them).
REGISTRY_FLAGS = [("--netG", networks.GENERATORS), ("--netD", networks.DISCRIMINATORS),
                  ("--norm", networks.NORM_LAYERS), ("--init_type", networks.INIT_TYPES),
                  ("--upsample", networks.UPSAMPLE_MODES), ("--direction", DIRECTIONS),
                  ("--preprocess", PREPROCESS_MODES), ("--amp", AMP_MODES),
                  ("--channels_last", CHANNELS_LAST_CHOICES), ("--bad_data", BAD_DATA_POLICIES),
                  ("--gan_mode", networks.GAN_MODES), ("--lr_policy", networks.LR_POLICIES),
                  ("--nan_policy", NAN_POLICIES), ("--eval_best", BEST_KEYS)]


@pytest.mark.parametrize("flag,registry", REGISTRY_FLAGS, ids=[f for f, _ in REGISTRY_FLAGS])
def test_help_lists_exactly_the_registry(flag: str, registry) -> None:
    """The help text and the check of a named flag both come from its registry: the names, in its order."""
    action = next(a for a in TrainOptions().make_parser().recorded if flag in a.option_strings)
    names = list(registry)
    assert isinstance(action.type, Choice) and list(action.type.names) == names
    assert "[" + " | ".join(names) + "]" in action.help and action.help.count(" | ") == len(names) - 1, action.help
    assert action.default in names or (action.default == "" and action.type.empty)


@pytest.mark.parametrize("model", models.list_models())
def test_every_named_flag_lists_its_names(model: str) -> None:
    """Also the named flags a model adds: the help shows exactly the names its Choice accepts."""
    is_train = model != "test"
    options = TrainOptions() if is_train else TestOptions()
    parser = models.get_option_setter(model)(options.make_parser(), is_train)
    for action in parser.recorded:
        if isinstance(action.type, Choice):
            assert action.type.listing() in action.help, (action.dest, action.help)
