"""Generator EMA (--ema, --use_ema): the average's update, its files, exact resume, test time and evaluation."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_train, tiny_flags
from data import create_dataset
from models import create_model
from models.base_model import unwrap
from options.train_options import TrainOptions

CYCLE = ["--model", "cycle_gan", "--netG", "resnet_6blocks", "--display_id", "0", "--n_epochs_decay", "0",
         "--seed", "1"]


@pytest.mark.parametrize("model_name,root", [("template", "demo_pix2pix"), ("cycle_gan", "demo")])
def test_one_step_moves_the_average_by_one_minus_decay(model_name: str, root: str, demo_root: Path,
                                                       tmp_path: Path) -> None:
    opt = TrainOptions().parse(["--dataroot", str(demo_root / root), "--model", model_name, "--netG",
                                "resnet_6blocks", "--display_id", "0", "--ema", "0.75"] + tiny_flags("e", tmp_path),
                               save=False)
    model = create_model(opt)
    model.setup(opt)
    generators = [n for n in model.model_names if n.startswith("G") and not n.endswith("_ema")]
    assert [n + "_ema" for n in generators] == [n for n in model.model_names if n.endswith("_ema")]
    before = {n: [p.detach().clone() for p in unwrap(getattr(model, "net" + n)).parameters()] for n in generators}
    model.set_input(next(iter(create_dataset(opt))))
    model.train_step()
    for n in generators:
        for w0, w1, a in zip(before[n], unwrap(getattr(model, "net" + n)).parameters(),
                             getattr(model, f"net{n}_ema").parameters()):
            torch.testing.assert_close(a, 0.75 * w0 + 0.25 * w1.detach(), rtol=0, atol=1e-7)
            assert not a.requires_grad


def test_averages_are_saved_resumed_exactly_and_used_by_test_py(demo_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    data = ["--dataroot", str(demo_root / "demo")]
    run_train(data + CYCLE + tiny_flags("straight", ckpt) + ["--n_epochs", "2", "--ema", "0.9"])
    run_train(data + CYCLE + tiny_flags("split", ckpt) + ["--n_epochs", "1", "--ema", "0.9"])
    run_train(data + CYCLE + tiny_flags("split", ckpt) + ["--n_epochs", "2", "--ema", "0.9", "--continue_train"])
    for net in ("G_A", "G_B"):
        a = torch.load(ckpt / "straight" / f"2_net_{net}_ema.pth", weights_only=True)
        b = torch.load(ckpt / "split" / f"2_net_{net}_ema.pth", weights_only=True)
        g = torch.load(ckpt / "straight" / f"2_net_{net}.pth", weights_only=True)
        assert a.keys() == g.keys()  # the generator's own keys: test.py and export load it as the generator
        assert all(torch.equal(a[k], b[k]) for k in a), net
        assert any(not torch.equal(a[k], g[k]) for k in a if a[k].is_floating_point()), net
    test = [sys.executable, str(ROOT / "test.py"), "--dataroot", str(demo_root / "demo"), "--name", "straight",
            "--model", "cycle_gan", "--checkpoints_dir", str(ckpt), "--results_dir", str(tmp_path / "r"),
            "--num_test", "1", "--gpu_ids", "-1"]
    proc = subprocess.run(test + ["--use_ema"], capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "latest_net_G_A_ema.pth" in proc.stdout + proc.stderr
    export = subprocess.run([sys.executable, str(ROOT / "export.py"), "--name", "straight", "--checkpoints_dir",
                             str(ckpt), "--net", "G_A_ema", "--format", "torchscript", "--out", str(tmp_path / "x")],
                            capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert export.returncode == 0, export.stderr[-2000:]
    assert (tmp_path / "x" / "straight_latest_net_G_A_ema.torchscript.pt").is_file()  # beside G_A's, not over it
    run_train(data + CYCLE + tiny_flags("plain", ckpt) + ["--n_epochs", "1"])
    no_average = subprocess.run(test[:5] + ["plain"] + test[6:] + ["--use_ema"], capture_output=True, text=True,
                                timeout=300, cwd=str(ROOT))
    assert no_average.returncode == 2 and "G_A_ema.pth not found: --use_ema" in no_average.stderr


def test_resuming_without_averages_starts_them_from_the_checkpoint(demo_root: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "checkpoints"
    data = ["--dataroot", str(demo_root / "demo")]
    run_train(data + CYCLE + tiny_flags("late", ckpt) + ["--n_epochs", "1"])
    run_train(data + CYCLE + tiny_flags("late", ckpt) + ["--n_epochs", "2", "--ema", "0.9", "--continue_train",
                                                         "--eval_freq", "8", "--eval_metrics", "swd", "--use_ema"])
    assert (ckpt / "late" / "2_net_G_B_ema.pth").is_file()


def test_use_ema_needs_ema_in_training(demo_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="--ema DECAY"):
        TrainOptions().parse(["--dataroot", str(demo_root / "demo"), "--use_ema"] + tiny_flags("x", tmp_path),
                             save=False)
