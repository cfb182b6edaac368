"""Every numeric flag has a valid range (options/ranges.py and the models' own ``type=Range``), checked in one place."""
from __future__ import annotations

import math
from pathlib import Path
from typing import List

import pytest

import data
import models
from options.base_options import INTERNAL_KEYS
from options.ranges import FLAG_RANGES, ranges_of
from options.test_options import TestOptions
from options.train_options import TrainOptions
from util.ranges import Range, RangeError

TEST_ONLY = {"aspect_ratio", "num_test"}


def numeric_options(options, argv: List[str]) -> dict:
    """The numeric options (not flags of our own bookkeeping) of a parse, with the parser's ranges."""
    opt = options.parse(argv, save=False)
    values = {k: v for k, v in vars(opt).items() if k not in INTERNAL_KEYS and not isinstance(v, bool)
              and isinstance(v, (int, float))}
    return {"values": values, "ranges": ranges_of(options.parser)}


TRAIN_MODELS = [m for m in models.list_models() if m != "test"]


@pytest.mark.parametrize("phase,model", [("train", m) for m in TRAIN_MODELS] + [("test", m) for m in
                                                                                 models.list_models()])
def test_every_numeric_option_of_every_model_has_a_range(phase: str, model: str, tmp_path: Path) -> None:
    options = TrainOptions() if phase == "train" else TestOptions()
    found = numeric_options(options, ["--dataroot", str(tmp_path), "--model", model, "--gpu_ids", "-1",
                                      "--checkpoints_dir", str(tmp_path / "ck")])
    missing = sorted(set(found["values"]) - set(found["ranges"]))
    assert not missing, f"numeric options without a range (add them to options/ranges.py or use type=Range): {missing}"


@pytest.mark.parametrize("mode", data.list_dataset_modes())
def test_every_numeric_option_of_every_dataset_mode_has_a_range(mode: str, tmp_path: Path) -> None:
    extra = ["--input_nc", "1", "--output_nc", "2"] if mode == "colorization" else []
    found = numeric_options(TrainOptions(), ["--dataroot", str(tmp_path), "--model", "pix2pix", "--dataset_mode",
                                             mode, "--gpu_ids", "-1", *extra])
    assert set(found["values"]) <= set(found["ranges"])


def bad_values(valid: Range) -> List[str]:
    """Text values just outside ``valid`` (and NaN / inf for real numbers)."""
    out = []
    if valid.low is not None:
        out.append(str(valid.low if valid.open_low else (valid.low - 1 if valid.kind is int else valid.low - 0.5)))
    if valid.high is not None:
        out.append(str(valid.high if valid.open_high else (valid.high + 1 if valid.kind is int else valid.high * 2)))
    if valid.kind is float:
        out += ["nan", "inf"]
    return out


CASES = [(dest, value) for dest, valid in FLAG_RANGES.items() for value in bad_values(valid)]


@pytest.mark.parametrize("dest,value", CASES, ids=[f"{d}={v}" for d, v in CASES])
def test_values_out_of_range_are_refused_naming_the_flag(dest: str, value: str, tmp_path: Path) -> None:
    options = TestOptions() if dest in TEST_ONLY else TrainOptions()
    with pytest.raises(ValueError) as err:
        options.parse(["--dataroot", str(tmp_path), "--gpu_ids", "-1", f"--{dest}", value], save=False)
    message = str(err.value)
    assert message.startswith(f"--{dest} must be ") and "\n" not in message, message


def test_suffix_with_option_names_still_works(tmp_path: Path) -> None:
    opt = TestOptions().parse(["--dataroot", str(tmp_path), "--gpu_ids", "-1", "--name", "exp", "--suffix",
                               "{model}_{netG}_size{load_size}"], save=False)
    assert opt.name == "exp_test_resnet_9blocks_size256"


@pytest.mark.parametrize("valid,value,ok", [
    (Range(int, 1), 1, True), (Range(int, 1), 0, False), (Range(int, 1), 2.0, False), (Range(int, 1), True, False),
    (Range(int, 1), "3", False), (Range(float, 0, open_low=True), 1e-9, True), (Range(float, 0, open_low=True), 0.0,
                                                                               False),
    (Range(float, 0), math.nan, False), (Range(float, 0), math.inf, False), (Range(float, 0), 3, True),
    (Range(int, 1, allow_inf=True), math.inf, True), (Range(int, 1, allow_inf=True), -math.inf, False),
    (Range(float, 0, 1, open_high=True), 1.0, False), (Range(int), -10 ** 12, True),
])
def test_range_contains(valid: Range, value, ok: bool) -> None:
    assert valid.contains(value) is ok
    if not ok:
        with pytest.raises(RangeError, match=r"^x must be "):
            valid.check("x", value)
