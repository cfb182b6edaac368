"""Learning check: a short run on the demo data moves test translations measurably towards the ground truth.

The demo data pairs every test scene in both styles (testA/x.png <-> testB/x.png), so the L1 distance between
G(testA) as written by test.py and testB is a direct measure of translation quality. The step-0 reference is a
freshly initialized generator of the same architecture.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models import networks

from conftest import run_test, run_train

SIZE = 32
FLAGS = ["--netG", "resnet_6blocks", "--ngf", "16", "--ndf", "16", "--load_size", str(SIZE), "--crop_size",
         str(SIZE), "--num_threads", "0", "--gpu_ids", "-1", "--print_freq", "50", "--display_freq", "1000",
         "--save_epoch_freq", "1", "--lr_policy", "linear", "--n_epochs_decay", "0"]


def load(path: Path) -> torch.Tensor:
    """An image as a 3xHxW tensor in [-1, 1]."""
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)


def l1_to_truth(fakes: dict, truth_dir: Path) -> float:
    """Mean L1 (in [-1, 1] units) between translated images and the ground truth of the same name."""
    return float(np.mean([(img - load(truth_dir / name)).abs().mean().item() for name, img in fakes.items()]))


def step0_fakes(src_dir: Path, norm: str, dropout: bool) -> dict:
    """Translations by an untrained generator of the same architecture (seeded)."""
    torch.manual_seed(0)
    net = networks.define_G(3, 3, 16, "resnet_6blocks", norm, dropout).eval()
    with torch.no_grad():
        return {p.name: net(load(p)[None])[0] for p in sorted(src_dir.glob("*.png"))}


def results_fakes(web_dir: Path, label: str) -> dict:
    """``<stem>_<label>.png`` images of a results page, keyed by ``<stem>.png``."""
    return {p.name[: -len(f"_{label}.png")] + ".png": load(p) for p in sorted((web_dir / "images").glob(f"*_{label}.png"))}


@pytest.fixture(scope="module")
def learning_data(tmp_path_factory) -> Path:
    from make_demo_dataset import make_demo_dataset

    root = tmp_path_factory.mktemp("learn")
    make_demo_dataset(root / "demo", size=SIZE, n_train=100, n_test=16, seed=1)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("model,epochs,margin", [("cycle_gan", 2, 0.75), ("pix2pix", 1, 0.6)])
def test_short_run_learns(model: str, epochs: int, margin: float, learning_data: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    ck = tmp_path / "ck"
    if model == "cycle_gan":
        root, test_root, extra, test_flags, label = (learning_data / "demo", learning_data / "demo" / "testA", [],
                                                     ["--model", "test", "--model_suffix", "_A"], "fake")
        truth, norm, dropout = learning_data / "demo" / "testB", "instance", False
    else:
        root, test_root, extra, test_flags, label = (learning_data / "demo_pix2pix", learning_data / "demo_pix2pix",
                                                     ["--netG", "resnet_6blocks"], ["--model", "pix2pix"], "fake_B")
        truth, norm, dropout = learning_data / "demo" / "testB", "batch", True
    run_train(["--dataroot", str(root), "--model", model, "--name", model, "--checkpoints_dir", str(ck),
               "--n_epochs", str(epochs), *FLAGS, *extra])
    web = Path(run_test(["--dataroot", str(test_root), "--name", model, "--checkpoints_dir", str(ck),
                         "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1", "--load_size", str(SIZE),
                         "--crop_size", str(SIZE), "--num_test", "16", *test_flags]))
    after = l1_to_truth(results_fakes(web, label), truth)
    before = l1_to_truth(step0_fakes(learning_data / "demo" / "testA", norm, dropout), truth)
    untranslated = l1_to_truth({p.name: load(p) for p in sorted((learning_data / "demo" / "testA").glob("*.png"))},
                               truth)
    report = {"model": model, "iterations": 100 * epochs, "l1_step0": round(before, 4),
              "l1_trained": round(after, 4), "l1_untranslated_input": round(untranslated, 4)}
    print("learning check:", json.dumps(report))
    assert len(results_fakes(web, label)) == 16
    assert after < margin * before, report
    assert after < margin * untranslated, report
