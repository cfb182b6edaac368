"""Acceptance test in the spirit of the official test_before_push: train one short epoch, test, check files."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from conftest import run_test, run_train, tiny_flags

LOSS_LINE = re.compile(r"^\(epoch: \d+, iters: \d+, time: \d+\.\d{3}, data: \d+\.\d{3}\) (\w+: -?\d+\.\d{3} )+$")

CASES = {
    # name: (train flags, dataroot sub-folder, expected networks, test runs [(flags, dataroot, labels)])
    "cycle_gan": (["--model", "cycle_gan", "--netG", "resnet_6blocks"], "demo", ["G_A", "G_B", "D_A", "D_B"],
                  [(["--model", "cycle_gan"], "demo", ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]),
                   (["--model", "test", "--model_suffix", "_A"], "demo/testA", ["real", "fake"])]),
    "pix2pix_AtoB": (["--model", "pix2pix"], "demo_pix2pix", ["G", "D"],
                     [(["--model", "pix2pix"], "demo_pix2pix", ["real_A", "fake_B", "real_B"])]),
    "pix2pix_BtoA": (["--model", "pix2pix", "--direction", "BtoA"], "demo_pix2pix", ["G", "D"],
                     [(["--model", "pix2pix", "--direction", "BtoA"], "demo_pix2pix",
                       ["real_A", "fake_B", "real_B"])]),
    "colorization": (["--model", "colorization", "--netG", "unet_128"], "color", ["G", "D"],
                     [(["--model", "colorization"], "color", ["real_A", "real_B_rgb", "fake_B_rgb"])]),
    "template": (["--model", "template", "--netG", "resnet_6blocks"], "demo_pix2pix", ["G"],
                 [(["--model", "template"], "demo_pix2pix", ["data_A", "data_B", "output"])]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", list(CASES))
def test_train_then_test(case: str, demo_root: Path, tmp_path: Path, capsys) -> None:
    train_flags, root, nets, tests = CASES[case]
    ckpt = tmp_path / "checkpoints"
    run_train(train_flags + tiny_flags(case, ckpt) + [
        "--dataroot", str(demo_root / root), "--n_epochs", "1", "--n_epochs_decay", "0",
        "--print_freq", "2", "--display_freq", "2", "--update_html_freq", "2", "--save_latest_freq", "4",
        "--save_epoch_freq", "1"])
    # not a terminal here: the progress of the epoch is a plain line (the whole dataset, the run's ETA)
    assert re.search(r"^epoch 1/1: (\d+)/\1 \(100%\) \[.*, run ETA 00:00\]$", capsys.readouterr().out, re.M)
    exp = ckpt / case
    for prefix in ("latest", "1"):
        for net in nets:
            sd = torch.load(exp / f"{prefix}_net_{net}.pth", weights_only=True)
            assert sd and not any(k.startswith("module.") for k in sd)
    assert (exp / "train_opt.txt").read_text().startswith("----------------- Options ---------------")
    lines = (exp / "loss_log.txt").read_text().splitlines()
    assert lines[0].startswith("================ Training Loss (")
    loss_lines = [line for line in lines[1:] if line.strip()]
    assert len(loss_lines) >= 2 and all(LOSS_LINE.match(line) for line in loss_lines), loss_lines
    page = (exp / "web" / "index.html").read_text()
    assert f"Experiment name = {case}" in page and "epoch [1]" in page
    assert list((exp / "web" / "images").glob("epoch001_*.png"))
    for flags, test_root, labels in tests:
        web_dir = Path(run_test(flags + ["--dataroot", str(demo_root / test_root), "--name", case,
                                         "--checkpoints_dir", str(ckpt), "--results_dir", str(tmp_path / "results"),
                                         "--num_test", "3", "--gpu_ids", "-1"]))
        assert web_dir == tmp_path / "results" / case / "test_latest"
        assert re.search(r"^test: 3/3 \(100%\) \[\d\d:\d\d<00:00, ", capsys.readouterr().out, re.M)
        html = (web_dir / "index.html").read_text()
        assert f"Experiment = {case}, Phase = test, Epoch = latest" in html
        images = sorted(p.name for p in (web_dir / "images").iterdir())
        stems = sorted({name[: -len(f"_{label}.png")] for name in images for label in labels
                        if name.endswith(f"_{label}.png") and not name.endswith(f"_B_{label}.png")})
        assert len(stems) == 3
        for stem in stems:
            for label in labels:
                assert f"{stem}_{label}.png" in images
                assert f"images/{stem}_{label}.png" in html
