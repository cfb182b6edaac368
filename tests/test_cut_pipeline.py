"""CUT end to end: the CUT code's README commands (train, test), results by visual folder, config.json, a
single-folder test, a CUT-code checkpoint through test.py, --pretrained_name, export, torchrun."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import load_script, run_test, run_train, tiny_flags
from test_cut_networks import cut_checkpoint, reference_G

TRAIN = ["--netG", "resnet_6blocks", "--num_patches", "16", "--netF_nc", "16", "--n_epochs", "1",
         "--n_epochs_decay", "0", "--max_dataset_size", "4", "--print_freq", "2", "--display_freq", "2",
         "--update_html_freq", "2", "--save_epoch_freq", "1", "--seed", "1"]
# architecture flags a test run must get from config.json (none is repeated on the test command line)
ARCH = ["--normG", "batch", "--no_antialias_up"]


@pytest.fixture(scope="module")
def cut_run(demo_root: Path, tmp_path_factory) -> Tuple[Path, str]:
    """The CUT code's README training command (--CUT_mode, no --model) on the demo data; checkpoints + name."""
    ckpt = tmp_path_factory.mktemp("cut") / "checkpoints"
    run_train(["--dataroot", str(demo_root / "demo"), "--CUT_mode", "CUT"] + tiny_flags("demo_CUT", ckpt) +
              TRAIN + ARCH)
    return ckpt, "demo_CUT"


def test_training_files(cut_run) -> None:
    ckpt, name = cut_run
    exp = ckpt / name
    for prefix in ("latest", "1"):
        for net in ("G", "F", "D"):
            sd = torch.load(exp / f"{prefix}_net_{net}.pth", weights_only=True)
            assert sd and not any(k.startswith("module.") for k in sd)
    f = torch.load(exp / "latest_net_F.pth", weights_only=True)
    assert sorted({k.split(".")[0] for k in f}) == [f"mlp_{i}" for i in range(5)]
    lines = [x for x in (exp / "loss_log.txt").read_text().splitlines()[1:] if x.strip()]
    assert lines and all(re.search(r"G_GAN: .* D_real: .* D_fake: .* G: .* NCE: .* NCE_Y: ", x) for x in lines)
    assert list((exp / "web" / "images").glob("epoch001_idt_B.png"))
    options = (exp / "train_opt.txt").read_text()
    assert re.search(r"model: cut\s", options) and re.search(r"CUT_mode: CUT\s", options)


@pytest.mark.parametrize("mode_flags,dataroot,labels", [
    (["--CUT_mode", "CUT", "--phase", "train"], "demo", ["real_A", "fake_B", "real_B"]),  # the README command
    (["--model", "cut", "--dataset_mode", "single"], "demo/testA", ["real_A", "fake_B"]),  # no B needed
], ids=["readme", "single"])
def test_test_writes_images_by_visual(cut_run, demo_root: Path, tmp_path: Path, mode_flags: List[str],
                                      dataroot: str, labels: List[str]) -> None:
    ckpt, name = cut_run
    web = Path(run_test(["--dataroot", str(demo_root / dataroot), "--name", name, "--checkpoints_dir", str(ckpt),
                         "--results_dir", str(tmp_path / "results"), "--num_test", "3", "--gpu_ids", "-1",
                         "--load_size", "32", "--crop_size", "32"] + mode_flags))
    phase = "train" if "train" in mode_flags else "test"
    assert web == tmp_path / "results" / name / f"{phase}_latest"
    images = web / "images"
    assert sorted(p.name for p in images.iterdir()) == sorted(labels)
    html = (web / "index.html").read_text()
    for label in labels:
        files = sorted(p.name for p in (images / label).iterdir())
        assert len(files) == 3 and all(f.endswith(".png") for f in files)
        assert all(f"images/{label}/{f}" in html for f in files)


def test_cut_code_checkpoint_through_test_py(demo_root: Path, tmp_path: Path) -> None:
    """A latest_net_G.pth as the CUT code's CPU training writes it (``module.`` keys, no config.json) loads with
    the README flags and translates as the formulas say."""
    sd = cut_checkpoint(6, False, False, ngf=4, seed=3)
    exp = tmp_path / "checkpoints" / "from_cut_code"
    exp.mkdir(parents=True)
    torch.save({"module." + k: v for k, v in sd.items()}, exp / "latest_net_G.pth")
    web = Path(run_test(["--dataroot", str(demo_root / "demo" / "testA"), "--name", "from_cut_code",
                         "--checkpoints_dir", str(tmp_path / "checkpoints"), "--results_dir", str(tmp_path / "r"),
                         "--CUT_mode", "CUT", "--netG", "resnet_6blocks", "--ngf", "4", "--dataset_mode", "single",
                         "--load_size", "32", "--crop_size", "32", "--num_test", "2", "--gpu_ids", "-1",
                         "--channels_last", "off"]))
    for real_file in sorted((web / "images" / "real_A").iterdir()):  # the inputs: the original 32 px files
        real = np.asarray(Image.open(demo_root / "demo" / "testA" / real_file.name).convert("RGB"))
        x = torch.from_numpy((real.astype(np.float32) / 255 - 0.5) / 0.5).permute(2, 0, 1)[None]
        with torch.no_grad():
            expected, _ = reference_G(sd, x, 6, False, False)
        expected_png = ((expected[0].numpy().transpose(1, 2, 0) + 1) / 2 * 255).astype(np.uint8).astype(int)
        saved = np.asarray(Image.open(web / "images" / "fake_B" / real_file.name)).astype(int)
        assert np.abs(saved - expected_png).max() <= 1


def test_pretrained_name_fine_tunes_from_another_folder(cut_run, demo_root: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    ckpt, name = cut_run
    run_train(["--dataroot", str(demo_root / "demo"), "--CUT_mode", "CUT", "--continue_train",
               "--pretrained_name", name] + tiny_flags("fine_tuned", ckpt) + TRAIN + ARCH)
    assert f"loading the model from {ckpt / name / 'latest_net_G.pth'}" in capsys.readouterr().out
    start = torch.load(ckpt / name / "latest_net_G.pth", weights_only=True)
    tuned = torch.load(ckpt / "fine_tuned" / "latest_net_G.pth", weights_only=True)
    diffs = [float((start[k] - tuned[k]).abs().max()) for k in start if start[k].dim() == 4 and "filt" not in k]
    assert 0 < max(diffs) < 0.01  # a few Adam steps from the loaded weights, not a fresh initialisation


def test_export_reads_the_antialiased_layout(cut_run, tmp_path: Path) -> None:
    ckpt, name = cut_run
    report: Dict = load_script("export").main(["--name", name, "--checkpoints_dir", str(ckpt), "--out",
                                               str(tmp_path / "exported"), "--check_size", "36",
                                               "--format", "torchscript,onnx",
                                               "--onnx_exporter", "legacy"])  # the dynamo one: test_export.py
    assert report["net"] == "G"
    arch = report["architecture"]
    assert (arch["netG"], arch["norm"], arch["no_antialias"], arch["no_antialias_up"]) == \
        ("resnet_6blocks", "batch", False, True)
    for fmt in ("torchscript", "onnx"):
        assert Path(report["files"][fmt]).is_file()
        assert all(c["max_abs_diff"] < 1e-3 for c in report["checks"][fmt])


@pytest.mark.slow
def test_torchrun_two_processes(demo_root: Path, tmp_path: Path) -> None:
    """torchrun with gloo: F's heads exist before DDP wraps it; rank 0 alone writes plain files."""
    from test_ddp import torchrun

    ckpt = tmp_path / "checkpoints"
    flags = ["--dataroot", str(demo_root / "demo"), "--CUT_mode", "FastCUT"] + tiny_flags("ddp_cut", ckpt) + TRAIN
    out, writes = torchrun(flags, ckpt, tmp_path)
    assert writes[1] == [], writes[1][:5]
    assert "distributed training: 2 processes, backend gloo" in out
    assert out.count("(epoch: 1, iters: ") == 1  # rank 0's lines: 2 images per process, --print_freq 2
    exp = ckpt / "ddp_cut"
    f = torch.load(exp / "latest_net_F.pth", weights_only=True)
    assert len(f) == 20 and not any(k.startswith("module.") for k in f)
    g = torch.load(exp / "latest_net_G.pth", weights_only=True)
    assert not any(k.startswith("module.") for k in g)


def test_bad_data_skip_and_a_dataset_smaller_than_the_batch(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The pre-flight scan leaves unusable files out; 3 images with --batch_size 4 still train (one short batch
    that also builds F's heads)."""
    from test_bad_data import write_corpus

    root = tmp_path / "data"
    write_corpus(root / "trainA", ["rgb.png", "gray16.png", "zero_bytes.png"])
    write_corpus(root / "trainB", ["palette.png", "truncated.png", "rgba.png", "exif_rotated.jpg"])
    ckpt = tmp_path / "ck"
    run_train(["--dataroot", str(root), "--CUT_mode", "FastCUT", *tiny_flags("bad", ckpt), "--bad_data", "skip",
               "--batch_size", "4"] + TRAIN)
    out = capsys.readouterr().out  # the framework logger writes to stdout
    assert "--bad_data skip: left out 2 of 7 image files" in out
    assert "The number of training images = 3" in out
    assert len(torch.load(ckpt / "bad" / "latest_net_F.pth", weights_only=True)) == 20

