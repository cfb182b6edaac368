"""What a run recorded in config.json is reused: test.py takes the model, --CUT_mode, the direction and the sizes
from it (explicit flags win and are said), and each results folder names the checkpoint it comes from.

Each test does what a user does: train.py, then test.py, in subprocesses on the demo data.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest
from PIL import Image

from conftest import ROOT, tiny_flags
from data.base_dataset import PREPROCESS_MODES
from models import arch_config

TRAIN = ["--n_epochs", "1", "--n_epochs_decay", "0", "--display_id", "0", "--no_html", "--print_freq", "1000",
         "--max_dataset_size", "4"]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    """Run ``script`` with ``args`` from the repository root (no debug variable)."""
    env = {k: v for k, v in os.environ.items() if k != "IMG2IMG_DEBUG"}
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def ok(res: subprocess.CompletedProcess) -> str:
    """The output of a run that must succeed (stdout and stderr together)."""
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


def one_error(res: subprocess.CompletedProcess, script: str) -> str:
    """The one error line of a refused run: exit status 2, no traceback."""
    assert res.returncode == 2, res.stdout[-2000:] + res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    return [line for line in res.stderr.splitlines() if line.startswith(f"{script}: error:")][-1]


def image_sizes(web_dir: Path, label: str) -> List[tuple]:
    """The sizes of the result images of one label (both result layouts)."""
    images = sorted(web_dir.glob(f"images/*_{label}.png")) + sorted(web_dir.glob(f"images/{label}/*.png"))
    assert images, sorted(str(p) for p in web_dir.rglob("*.png"))
    return [Image.open(p).size for p in images]


@pytest.fixture(scope="module")
def cut_run(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A FastCUT run trained at --load_size 36 --crop_size 32 (checkpoints folder, experiment ``cut``)."""
    ck = tmp_path_factory.mktemp("recorded")
    ok(run("train.py", "--model", "cut", "--CUT_mode", "fastcut", "--dataroot", str(demo_root / "demo"), *TRAIN,
           *tiny_flags("cut", ck), "--load_size", "36"))
    return ck


def test_preprocess_names_match_the_datasets() -> None:
    assert arch_config.PREPROCESS_NAMES == PREPROCESS_MODES


def test_config_records_model_mode_direction_and_sizes(cut_run: Path) -> None:
    options = json.loads((cut_run / "cut" / "config.json").read_text())["options"]
    assert {k: options[k] for k in ("model", "CUT_mode", "direction", "load_size", "crop_size", "preprocess")} == {
        "model": "cut", "CUT_mode": "FastCUT", "direction": "AtoB", "load_size": 36, "crop_size": 32,
        "preprocess": "resize_and_crop"}


def test_test_py_builds_the_recorded_model_at_the_recorded_size(cut_run: Path, demo_root: Path,
                                                                tmp_path: Path) -> None:
    """``test.py --name <a CUT run>`` without --model: the CUT test model, FastCUT, at 32 px (not 256)."""
    out = ok(run("test.py", "--dataroot", str(demo_root / "demo"), "--name", "cut", "--checkpoints_dir",
                 str(cut_run), "--results_dir", str(tmp_path), "--gpu_ids", "-1", "--num_test", "2"))
    assert "--model cut, as recorded in the checkpoint's config.json" in out
    assert ("--preprocess resize_and_crop --load_size 32 --crop_size 32 (trained with --preprocess "
            "resize_and_crop --load_size 36 --crop_size 32)") in out
    table = (cut_run / "cut" / "test_opt.txt").read_text()
    assert "CUT_mode: FastCUT" in " ".join(table.split())
    web = tmp_path / "cut" / "test_latest"
    assert set(image_sizes(web, "fake_B")) == {(32, 32)}


def test_a_given_size_wins_and_is_said(cut_run: Path, demo_root: Path, tmp_path: Path) -> None:
    out = ok(run("test.py", "--dataroot", str(demo_root / "demo"), "--name", "cut", "--checkpoints_dir",
                 str(cut_run), "--results_dir", str(tmp_path), "--gpu_ids", "-1", "--num_test", "1",
                 "--crop_size", "48"))
    assert ("--crop_size 48 given; the checkpoint was trained with --preprocess resize_and_crop --load_size 36 "
            "--crop_size 32") in out
    assert set(image_sizes(tmp_path / "cut" / "test_latest", "fake_B")) == {(48, 48)}


def test_a_direction_against_the_record_is_refused_unless_forced(cut_run: Path, demo_root: Path,
                                                                 tmp_path: Path) -> None:
    args = ["--dataroot", str(demo_root / "demo"), "--name", "cut", "--checkpoints_dir", str(cut_run),
            "--results_dir", str(tmp_path), "--gpu_ids", "-1", "--num_test", "1", "--direction", "BtoA"]
    line = one_error(run("test.py", *args), "test.py")
    assert "--direction BtoA: the checkpoint was trained with --direction AtoB" in line
    assert "add --force_direction" in line and not (tmp_path / "cut").exists()
    out = ok(run("test.py", *args, "--force_direction"))
    assert ("--direction BtoA given (--force_direction); the checkpoint was trained AtoB: translating B to A with "
            "the A->B generator") in out


def test_the_recorded_direction_is_used(demo_root: Path, tmp_path: Path) -> None:
    """pix2pix trained BtoA, tested without --direction: B to A, as trained (the log says so)."""
    ck = tmp_path / "ck"
    ok(run("train.py", "--model", "pix2pix", "--netG", "resnet_6blocks", "--direction", "BtoA", "--dataroot",
           str(demo_root / "demo_pix2pix"), *TRAIN, *tiny_flags("p2p", ck)))
    out = ok(run("test.py", "--model", "pix2pix", "--dataroot", str(demo_root / "demo_pix2pix"), "--name", "p2p",
                 "--checkpoints_dir", str(ck), "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1",
                 "--num_test", "1"))
    assert "--direction BtoA, as the checkpoint was trained" in out
    assert "direction: BtoA" in " ".join((ck / "p2p" / "test_opt.txt").read_text().split())


def test_an_older_config_keeps_todays_defaults(cut_run: Path, demo_root: Path, tmp_path: Path) -> None:
    """A config.json without the new keys (an earlier version): --model and sizes as before (256 px)."""
    ck = tmp_path / "ck"
    (ck / "cut").mkdir(parents=True)
    for name in ("latest_net_G.pth", "latest_net_D.pth", "latest_net_F.pth"):
        (ck / "cut" / name).write_bytes((cut_run / "cut" / name).read_bytes())
    cfg = json.loads((cut_run / "cut" / "config.json").read_text())
    for key in ("model", "CUT_mode", "load_size", "crop_size", "preprocess"):
        del cfg["options"][key]
    (ck / "cut" / "config.json").write_text(json.dumps(cfg))
    out = ok(run("test.py", "--model", "cut", "--dataroot", str(demo_root / "demo"), "--name", "cut",
                 "--checkpoints_dir", str(ck), "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1",
                 "--num_test", "1"))
    assert "as recorded" not in out and "image sizes from" not in out
    assert set(image_sizes(tmp_path / "res" / "cut" / "test_latest", "fake_B")) == {(256, 256)}


@pytest.mark.parametrize("key,value,expect", [
    ("crop_size", "big", "options.crop_size must be an integer"),
    ("model", "nope", "options.model 'nope'"),
    ("preprocess", "zoom", "options.preprocess 'zoom'"),
])
def test_a_damaged_record_is_named(cut_run: Path, demo_root: Path, tmp_path: Path, key: str, value: str,
                                   expect: str) -> None:
    ck = tmp_path / "ck"
    (ck / "cut").mkdir(parents=True)
    cfg = json.loads((cut_run / "cut" / "config.json").read_text())
    cfg["options"][key] = value
    (ck / "cut" / "config.json").write_text(json.dumps(cfg))
    line = one_error(run("test.py", "--dataroot", str(demo_root / "demo"), "--name", "cut", "--checkpoints_dir",
                         str(ck), "--gpu_ids", "-1"), "test.py")
    assert str(ck / "cut" / "config.json") in line and expect in line, line


def test_single_generator_results_have_their_own_folder(demo_root: Path, tmp_path: Path) -> None:
    """--model test --model_suffix _A and _B: test_latest_A and test_latest_B, each page with its generator and
    a checkpoint.json naming the epoch and iterations; an official checkpoint (no config, no state) still tests."""
    ck = tmp_path / "ck"
    ok(run("train.py", "--model", "cycle_gan", "--netG", "resnet_6blocks", "--dataroot", str(demo_root / "demo"),
           *TRAIN, *tiny_flags("cg", ck)))
    for suffix, folder in (("_A", "testA"), ("_B", "testB")):
        ok(run("test.py", "--model", "test", "--model_suffix", suffix, "--dataroot", str(demo_root / "demo" / folder),
               "--name", "cg", "--checkpoints_dir", str(ck), "--results_dir", str(tmp_path / "res"), "--gpu_ids",
               "-1", "--num_test", "1"))
    for suffix in ("_A", "_B"):
        web = tmp_path / "res" / "cg" / f"test_latest{suffix}"
        record = json.loads((web / "checkpoint.json").read_text())
        assert list(record["networks"]) == [f"G{suffix}"]
        assert (record["trained_epoch"], record["total_iters"], record["epoch_complete"]) == (1, 4, True)
        assert record["saved_at"] and record["prefix"] == "latest"
        page = (web / "index.html").read_text()
        assert (f"Experiment = cg, Phase = test, Epoch = latest; checkpoint latest: epoch 1 (complete), "
                f"total_iters 4, saved {record['saved_at']}") in page
    assert not (tmp_path / "res" / "cg" / "test_latest").exists()
    # the official layout: one latest_net_G.pth, no config.json, no training state
    official = tmp_path / "official" / "pretrained"
    official.mkdir(parents=True)
    (official / "latest_net_G.pth").write_bytes((ck / "cg" / "latest_net_G_A.pth").read_bytes())
    ok(run("test.py", "--model", "test", "--dataroot", str(demo_root / "demo" / "testA"), "--name", "pretrained",
           "--checkpoints_dir", str(official.parent), "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1",
           "--num_test", "1", "--ngf", "8", "--netG", "resnet_6blocks", "--no_dropout", "--load_size", "32",
           "--crop_size", "32"))
    record = json.loads((tmp_path / "res" / "pretrained" / "test_latest" / "checkpoint.json").read_text())
    assert record["total_iters"] is None and "no training state" in record["note"]


def test_epoch_best_reports_best_json(cut_run: Path, demo_root: Path, tmp_path: Path) -> None:
    ck = tmp_path / "ck"
    (ck / "cut").mkdir(parents=True)
    for name in ("G", "D", "F"):
        (ck / "cut" / f"best_net_{name}.pth").write_bytes((cut_run / "cut" / f"latest_net_{name}.pth").read_bytes())
    (ck / "cut" / "config.json").write_bytes((cut_run / "cut" / "config.json").read_bytes())
    (ck / "cut" / "best.json").write_text(json.dumps({"metric": "l1", "value": 0.25, "direction": "lower",
                                                      "epoch": 7, "total_iters": 28}))
    out = ok(run("test.py", "--dataroot", str(demo_root / "demo"), "--name", "cut", "--checkpoints_dir", str(ck),
                 "--results_dir", str(tmp_path / "res"), "--gpu_ids", "-1", "--num_test", "1", "--epoch", "best"))
    assert "checkpoint best: epoch 7, total_iters 28, saved " in out and "best l1 0.25 (best.json)" in out
    record = json.loads((tmp_path / "res" / "cut" / "test_best" / "checkpoint.json").read_text())
    assert (record["trained_epoch"], record["total_iters"], record["best"]) == (7, 28, {"metric": "l1",
                                                                                        "value": 0.25})


def test_export_records_how_the_run_was_trained(cut_run: Path, tmp_path: Path) -> None:
    """export.py writes what config.json records into its report and checks at the trained crop size."""
    out = ok(run("export.py", "--name", "cut", "--checkpoints_dir", str(cut_run), "--out", str(tmp_path)))
    assert ("the checkpoint was trained with --model cut --CUT_mode FastCUT --direction AtoB --preprocess "
            "resize_and_crop --load_size 36 --crop_size 32") in out
    report = json.loads((tmp_path / "cut_latest_net_G.json").read_text())
    assert report["trained"] == {"model": "cut", "CUT_mode": "FastCUT", "direction": "AtoB",
                                 "preprocess": "resize_and_crop", "load_size": 36, "crop_size": 32}
    assert report["checks"]["export"][0]["input_shape"] == [1, 3, 32, 32]
    line = one_error(run("export.py", "--name", "cut", "--checkpoints_dir", str(cut_run), "--out",
                         str(tmp_path / "f"), "--net", "F"), "export.py")
    assert line == "export.py: error: --net F is CUT's feature sampler: only generators export; choose --net G"
    assert not (tmp_path / "f").exists()


def test_a_record_without_the_generator_is_said(cut_run: Path, demo_root: Path, tmp_path: Path) -> None:
    """--model test --model_suffix _A on a record that has no G_A: the log names config.json, not only a flag."""
    ck = tmp_path / "ck"
    (ck / "cut").mkdir(parents=True)
    (ck / "cut" / "config.json").write_bytes((cut_run / "cut" / "config.json").read_bytes())
    (ck / "cut" / "latest_net_G_A.pth").write_bytes((cut_run / "cut" / "latest_net_G.pth").read_bytes())
    res = run("test.py", "--model", "test", "--model_suffix", "_A", "--dataroot", str(demo_root / "demo" / "testA"),
              "--name", "cut", "--checkpoints_dir", str(ck), "--gpu_ids", "-1", "--results_dir", str(tmp_path / "r"))
    assert f"{ck / 'cut' / 'config.json'} describes no network G_A (it has D, F, G)" in res.stdout + res.stderr
