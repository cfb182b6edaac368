"""Bad flags: nonsense values and combinations get one error line that names the flag, before anything runs."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest

import options.test_options as test_options
from conftest import ROOT, load_script, refusal
from options.train_options import TrainOptions

# (flags, text the one-line error must contain)
TRAIN_ERRORS = [
    (["--crop_size", "64", "--load_size", "32"], "--crop_size 64 is larger than --load_size 32"),
    (["--preprocess", "scale_width_and_crop", "--crop_size", "64", "--load_size", "32"], "--crop_size"),
    (["--input_nc", "1"], "--lambda_identity 0.5 needs --input_nc == --output_nc"),
    (["--output_nc", "4", "--lambda_identity", "0.1"], "--lambda_identity"),
    (["--model", "cyclegan"], "--model"),
    (["--dataset_mode", "paired"], "--dataset_mode"),
    (["--netG", "unet_512"], "--netG"),
    (["--netD", "patch"], "--netD"),
    (["--norm", "group"], "--norm"),
    (["--init_type", "uniform"], "--init_type"),
    (["--gan_mode", "hinge"], "--gan_mode"),
    (["--lr_policy", "exp"], "--lr_policy"),
    (["--preprocess", "resize"], "--preprocess"),
    (["--direction", "AtoC"], "--direction"),
    (["--bad_data", "ignore"], "--bad_data"),
    (["--nan_policy", "ignore"], "--nan_policy"),
    (["--gpu_ids", "a,b"], "--gpu_ids"),
    (["--batch_size", "0"], "--batch_size"),
    (["--max_dataset_size", "0"], "--max_dataset_size"),
    (["--num_threads", "-1"], "--num_threads"),
    (["--seed", "-7"], "--seed"),
    (["--lr", "0"], "--lr"),
    (["--beta1", "1.0"], "--beta1"),
    (["--n_epochs", "-1"], "--n_epochs"),
    (["--epoch_count", "0"], "--epoch_count"),
    (["--epoch_count", "300"], "--epoch_count 300 is past the last epoch"),
    (["--lr_policy", "step", "--lr_decay_iters", "0"], "--lr_decay_iters"),
    (["--pool_size", "-1"], "--pool_size"),
    (["--save_latest_freq", "0"], "--save_latest_freq"),
    (["--accum_steps", "0"], "--accum_steps"),
    (["--plot_smoothing", "1.0"], "--plot_smoothing must be in [0, 1)"),
    (["--plot_smoothing", "-0.5"], "--plot_smoothing must be in [0, 1)"),
    (["--amp", "fp16", "--gan_mode", "wgangp"], "--amp fp16 cannot train --gan_mode wgangp"),
    (["--keep_epochs", "5,x"], "--keep_epochs"),
    (["--use_ema"], "--ema DECAY"),
]


def parse_train(tmp_path: Path, *flags: str):
    return TrainOptions().parse(["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck"),
                                 "--gpu_ids", "-1", *flags], save=False)


@pytest.mark.parametrize("flags,expected", TRAIN_ERRORS, ids=[" ".join(f) for f, _ in TRAIN_ERRORS])
def test_train_flag_errors_name_the_flag(flags: List[str], expected: str, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    message = refusal(lambda: parse_train(tmp_path, *flags), capsys)
    assert expected in message and "\n" not in message, message


@pytest.mark.parametrize("flag,value,names,hint", [
    ("--netG", "resnet_9block", "resnet_9blocks, resnet_6blocks, unet_128, unet_256, stylegan2, smallstylegan2",
     "did you mean resnet_9blocks?"),
    ("--norm", "Instance", "batch, instance, syncbatch, none", "did you mean instance?"),
    ("--gan_mode", "hinge", "lsgan, vanilla, wgangp, nonsaturating", None),
    ("--eval_best", "psnrr", "fid, kid, swd, domain_score, psnr, ssim, l1, classifier (or empty)",
     "did you mean psnr?"),
])
def test_a_bad_name_lists_the_registry(flag: str, value: str, names: str, hint: Optional[str], tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    """argparse's one line names the flag, lists the registry's names and suggests the closest one."""
    message = refusal(lambda: parse_train(tmp_path, flag, value), capsys)
    assert message.endswith(f"error: argument {flag}: '{value}' is not valid; choose one of: {names}"
                            + (f"; {hint}" if hint else "")), message


@pytest.mark.parametrize("flags", [
    ["--crop_size", "64", "--load_size", "32", "--preprocess", "crop"],  # no resize: nothing to exceed
    ["--input_nc", "1", "--lambda_identity", "0"],
    ["--model", "pix2pix", "--input_nc", "1"],  # pix2pix has no identity loss
    ["--epoch_count", "300", "--continue_train"],  # the training state decides where to continue
    ["--seed", "0", "--deterministic", "--bad_data", "skip", "--nan_policy", "skip"],
    ["--plot_smoothing", "0"],  # raw curves only
])
def test_sensible_combinations_pass(flags: List[str], tmp_path: Path) -> None:
    parse_train(tmp_path, *flags)


def test_batch_norm_with_several_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="--norm batch with several processes.*syncbatch"):
        parse_train(tmp_path, "--norm", "batch")
    assert parse_train(tmp_path, "--norm", "syncbatch").world_size == 2


@pytest.mark.parametrize("flags,expected", [(["--crop_size", "512"], "--crop_size 512 is larger than --load_size"),
                                            (["--bad_data", "maybe"], "argument --bad_data: 'maybe' is not valid")])
def test_test_flag_errors_name_the_flag(flags: List[str], expected: str, tmp_path: Path,
                                        capsys: pytest.CaptureFixture) -> None:
    message = refusal(lambda: test_options.TestOptions().parse(
        ["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck"), "--gpu_ids", "-1", *flags],
        save=False), capsys)
    assert expected in message, message


def test_unknown_flag_names_it(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse_train(tmp_path, "--n_epochz", "3")
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --n_epochz 3" in capsys.readouterr().err


@pytest.mark.parametrize("script,flags,expected", [
    ("train", ["--lr", "-1"], "error: --lr must be > 0"),
    ("train", ["--nan_policy", "ignore"], "error: argument --nan_policy: 'ignore' is not valid; choose one of: stop, "
                                          "skip"),
    ("test", ["--model", "nope"], "error: unknown model 'nope' (--model)"),
    # numbers out of range (options/ranges.py; a model's own flags through argparse), a bad --suffix
    ("train", ["--lambda_identity", "nan"], "argument --lambda_identity: must be a finite number >= 0, got nan"),
    ("train", ["--lambda_A", "-1"], "argument --lambda_A: must be >= 0, got -1"),
    ("train", ["--model", "pix2pix", "--lambda_L1", "inf"], "argument --lambda_L1: must be a finite number >= 0"),
    ("train", ["--init_gain", "nan"], "error: --init_gain must be a finite number in (0, 100], got nan"),
    ("test", ["--aspect_ratio", "0"], "error: --aspect_ratio must be in [0.01, 100], got 0.0"),
    ("test", ["--aspect_ratio", "-2"], "error: --aspect_ratio must be in [0.01, 100], got -2.0"),
    ("test", ["--suffix", "{bogus}"], "error: --suffix '{bogus}': {bogus} is not an option name"),
    ("test", ["--suffix", "{0}"], "error: --suffix '{0}' is not a valid format"),
    ("test", ["--suffix", "size{load_size"], "error: --suffix 'size{load_size' is not a valid format"),
])
def test_scripts_exit_with_one_error_line(script: str, flags: List[str], expected: str, tmp_path: Path,
                                          capsys: pytest.CaptureFixture) -> None:
    """The scripts turn a bad flag into argparse's usage + one ``error:`` line and exit status 2."""
    with pytest.raises(SystemExit) as exit_info:
        load_script(script).main(["--dataroot", str(tmp_path), "--checkpoints_dir", str(tmp_path / "ck"), *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert expected in err[-1] and not any("Traceback" in line for line in err)


@pytest.mark.slow
def test_command_line_bad_flag_has_no_traceback(tmp_path: Path) -> None:
    res = subprocess.run([sys.executable, str(ROOT / "train.py"), "--dataroot", str(tmp_path), "--netG", "unet_512"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines()[-1].startswith("train.py: error: argument --netG: 'unet_512' is not valid")
