"""Shared fixtures: a tiny generated dataset and helpers to run train.py / test.py in-process."""
from __future__ import annotations

import argparse
import functools
import logging
import shutil
import sys
from pathlib import Path
from typing import Callable, List, Sequence

import pytest
import torch

import models

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"
sys.path.insert(0, str(ROOT / "datasets"))
# The suite runs tiny networks: one intra-op thread avoids thread hand-off overhead (several times faster
# here) and keeps the second core free for the data-loader and subprocess tests.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def framework_console_per_test():
    """Drop the console handler a test's in-process main() attached: it writes to that test's captured stdout,
    which pytest closes afterwards (a later test's log line would fail with a logging error)."""
    yield
    root = logging.getLogger("img2img")
    for handler in list(root.handlers):
        if getattr(handler, "_img2img", False):
            root.removeHandler(handler)


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """The embedded demo dataset at 32 px: ``demo`` (unaligned), ``demo_pix2pix`` (aligned), ``color``."""
    from make_demo_dataset import make_demo_dataset

    base = tmp_path_factory.mktemp("data")
    make_demo_dataset(base / "demo", size=32, n_train=8, n_test=4, seed=0)
    color = base / "color"
    for split, src in (("train", "trainA"), ("test", "testA")):
        shutil.copytree(base / "demo" / src, color / split)
    for domain in ("A", "B"):  # one image pair (--dataset_mode singleimage)
        first = sorted((base / "demo" / f"train{domain}").iterdir())[0]
        (base / "single_image" / f"train{domain}").mkdir(parents=True)
        shutil.copy(first, base / "single_image" / f"train{domain}" / first.name)
    return base


def tiny_flags(name: str, checkpoints: Path, size: int = 32) -> List[str]:
    """Flags that keep a run CPU-sized: small nets, small images, no visdom, no workers."""
    return ["--name", name, "--checkpoints_dir", str(checkpoints), "--ngf", "8", "--ndf", "8",
            "--load_size", str(size), "--crop_size", str(size), "--num_threads", "0", "--gpu_ids", "-1"]


# ------------------------------------------------------------------ what a model says about itself
# The tests ask each model (its default options, its instance's names) instead of keeping tables keyed by model
# name, so a new models/<name>_model.py is tested the moment it exists. The tables below are keyed by dataset mode,
# network and option name: a new model needs no entry; a new dataset mode or generator family might.

# The demo data (``demo_root``) of each dataset mode: a model trains (or, test-only, tests) on its default one.
DEMO_DATA = {"unaligned": "demo", "aligned": "demo_pix2pix", "colorization": "color", "single": "demo/testA",
             "singleimage": "single_image"}
# Flags that keep an epoch of a dataset mode CPU-sized, by mode: singleimage's epoch is 100,000 patches of its one
# pair (here 8, the demo's training-set size), in SinCUT's batches of 16 (here 1, as for the other models).
SMALL_DATA = {"singleimage": ["--max_dataset_size", "8", "--batch_size", "1"]}
# A smaller generator of the family of a model's default --netG (the 32 px demo images need no deeper one).
SMALL_NETG = {"unet_256": "unet_128", "resnet_9blocks": "resnet_6blocks", "stylegan2": "smallstylegan2"}
# Options that size a model's extra work (CUT's patch sampler: --num_patches, --netF_nc), by option name: passed
# to every model whose parser has them.
SMALL_OPTIONS = {"num_patches": "16", "netF_nc": "16"}
# Models with a training mode (``test`` only loads a generator at test time).
TRAINABLE = [m for m in models.list_models() if m != "test"]


@functools.lru_cache(maxsize=None)
def _defaults(model: str, is_train: bool) -> argparse.Namespace:
    from options.defaults import default_options

    return default_options(model, is_train=is_train)


def model_defaults(model: str, is_train: bool = True) -> argparse.Namespace:
    """The complete default options of ``--model model`` (a copy: callers may change it)."""
    return argparse.Namespace(**vars(_defaults(model, is_train)))


def model_data(demo_root: Path, model: str, is_train: bool = True) -> Path:
    """The demo dataroot of the model's default ``--dataset_mode``."""
    mode = model_defaults(model, is_train).dataset_mode
    if mode not in DEMO_DATA:
        raise KeyError(f"--model {model} trains on --dataset_mode {mode}: add its demo folder to DEMO_DATA")
    return demo_root / DEMO_DATA[mode]


def small_flags(model: str, is_train: bool = True) -> List[str]:
    """``--model model`` with a smaller generator of its default family, its sizing options at small values and
    (training) a small epoch of its default dataset mode."""
    opt = model_defaults(model, is_train)
    flags = ["--model", model] + (SMALL_DATA.get(opt.dataset_mode, []) if is_train else [])
    if opt.netG in SMALL_NETG:
        flags += ["--netG", SMALL_NETG[opt.netG]]
    for name, value in SMALL_OPTIONS.items():
        if hasattr(opt, name):
            flags += [f"--{name}", value]
    return flags


def is_unaligned(model: str) -> bool:
    """True when the model trains on unaligned data by default (no ground truth: scored per direction)."""
    return model_defaults(model).dataset_mode == "unaligned"


def load_script(name: str):
    """Import a top-level script (train.py, test.py) by path; ``test`` would otherwise be the stdlib package."""
    import importlib.util

    key = f"img2img_script_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, ROOT / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def run_train(argv: Sequence[str]) -> None:
    """Run train.py's main in this process (visdom off)."""
    load_script("train").main(list(argv) + ["--display_id", "0"])


def run_test(argv: Sequence[str]) -> str:
    """Run test.py's main in this process; return the results folder."""
    return load_script("test").main(list(argv))


def shared_dataset(name: str) -> Path:
    """Path of a real dataset in ../shared/datasets, or skip the test with the reason."""
    path = SHARED_DATASETS / name
    if not path.is_dir():
        pytest.skip(f"{path} is not available (only CI and project machines have ../shared/datasets)")
    return path


def refusal(parse: Callable[[], object], capsys: pytest.CaptureFixture) -> str:
    """The one-line refusal of a bad flag: argparse's error line (exit status 2) for a name outside its registry
    (type=Choice refuses it while parsing), the ValueError's message for the checks after parsing."""
    with pytest.raises((ValueError, SystemExit)) as err:
        parse()
    if err.type is SystemExit:
        assert err.value.code == 2
        return capsys.readouterr().err.strip().splitlines()[-1]
    return str(err.value)
