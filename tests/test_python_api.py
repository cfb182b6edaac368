"""options/pretrained.py: a tiny trained run loaded from Python gives test.py's images (within one grey level)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, tiny_flags
from options.pretrained import PretrainedError, Translator, load_generator, load_model


@pytest.fixture(scope="module")
def trained(demo_root: Path, tmp_path_factory) -> Path:
    """A pix2pix-free CycleGAN run of one epoch on the demo data (train.py in a subprocess)."""
    ckpt = tmp_path_factory.mktemp("ckpt")
    cmd = [sys.executable, "train.py", "--dataroot", str(demo_root / "demo"), "--n_epochs", "1",
           "--n_epochs_decay", "0", "--display_id", "0", "--netG", "resnet_6blocks"] + tiny_flags("api", ckpt)
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return ckpt


def test_outputs_equal_test_py(trained: Path, demo_root: Path, tmp_path: Path) -> None:
    """A PIL image, a tensor and a folder translate to test.py --eval's fake_B PNGs (within one grey level)."""
    folder = demo_root / "demo" / "testA"
    res = subprocess.run([sys.executable, "test.py", "--dataroot", str(folder), "--model", "test", "--model_suffix",
                          "_A", "--eval", "--results_dir", str(tmp_path / "r"), "--num_test", "50"]
                         + tiny_flags("api", trained), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    pages = tmp_path / "r" / "api" / "test_latest_A" / "images"
    g = load_generator("api", checkpoints_dir=trained, net="G_A")
    assert isinstance(g, Translator) and g.info["net"] == "G_A" and g.sizes["load_size"] == 32
    files = sorted(folder.iterdir())
    written = g.translate(folder, out_dir=tmp_path / "api_out")
    assert [Path(p).name for p in written] == [f.stem + ".png" for f in files]
    for file, out in zip(files, written):
        expected = np.asarray(Image.open(pages / f"{file.stem}_fake.png"), dtype=np.int16)
        from_pil = np.asarray(g.translate(Image.open(file)), dtype=np.int16)
        from_folder = np.asarray(Image.open(out), dtype=np.int16)
        x = g.preprocess(Image.open(file))
        y = g.translate(x)
        assert isinstance(y, torch.Tensor) and y.shape == x.shape
        from_tensor = np.rint((y[0].numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.int16)
        for got in (from_pil, from_folder, from_tensor):
            assert got.shape == expected.shape and np.abs(got - expected).max() <= 1


def test_a_weights_file_path_and_a_folder_load(trained: Path) -> None:
    """The checkpoint can be named by its folder or by its .pth file; the file's network is used."""
    assert load_generator(trained / "api").info["net"] == "G_A"
    assert load_generator(trained / "api" / "latest_net_G_B.pth").info["net"] == "G_B"


@pytest.mark.parametrize("kwargs, message", [
    ({"name_or_path": "nope"}, "checkpoint not found: 'nope' is neither an experiment"),
    ({"name_or_path": "api", "net": "D_A"}, "net=D_A is a discriminator: only generators translate; choose net=G_A"),
    ({"name_or_path": "api", "amp": "fp16"}, "amp=fp16 needs a CUDA device"),
])
def test_bad_arguments_are_one_clear_error(kwargs, message: str, trained: Path) -> None:
    """A wrong name, network or amp is one PretrainedError saying what to do."""
    name = kwargs.pop("name_or_path")
    with pytest.raises(PretrainedError) as err:
        load_generator(name, checkpoints_dir=trained, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_without_config_the_architecture_is_required(trained: Path, tmp_path: Path) -> None:
    """No config.json: refused, naming architecture=; with it given, the weights load."""
    official = tmp_path / "official"
    official.mkdir()
    (official / "latest_net_G.pth").write_bytes((trained / "api" / "latest_net_G_A.pth").read_bytes())
    with pytest.raises(PretrainedError, match="architecture cannot be known: pass architecture="):
        load_generator(official)
    arch = {"netG": "resnet_6blocks", "norm": "instance", "ngf": 8, "input_nc": 3, "output_nc": 3,
            "no_dropout": True}
    assert load_generator(official, architecture=arch).info["architecture"]["ngf"] == 8


def test_load_model_gives_test_py_visuals(trained: Path, demo_root: Path, tmp_path: Path) -> None:
    """``load_model`` builds what config.json recorded (cycle_gan, both generators) and its visuals are test.py's
    PNGs, which test.py wrote through the same ``load_model``."""
    folder = demo_root / "demo"
    res = subprocess.run([sys.executable, "test.py", "--dataroot", str(folder), "--eval", "--results_dir",
                          str(tmp_path / "r"), "--num_test", "2"] + tiny_flags("api", trained),
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    images = tmp_path / "r" / "api" / "test_latest" / "images"
    model = load_model("api", checkpoints_dir=trained, flags=["--eval"])
    assert model.opt.model == "cycle_gan" and sorted(model.model_names) == ["G_A", "G_B"]
    g = load_generator("api", checkpoints_dir=trained)
    a, b = sorted((folder / "testA").iterdir())[0], sorted((folder / "testB").iterdir())[0]
    model.set_input({"A": g.preprocess(Image.open(a)), "B": g.preprocess(Image.open(b)),
                     "A_paths": [str(a)], "B_paths": [str(b)]})
    with torch.inference_mode():
        model.test()
    visuals = model.get_current_visuals()
    for key in ("fake_B", "rec_A", "fake_A"):
        got = np.rint((visuals[key][0].float().numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.int16)
        expected = np.asarray(Image.open(images / f"{a.stem}_{key}.png"), dtype=np.int16)
        assert got.shape == expected.shape and np.abs(got - expected).max() <= 1, key


def test_test_py_loads_through_the_api(trained: Path, demo_root: Path, tmp_path: Path, monkeypatch) -> None:
    """test.py's model comes from ``options.pretrained.load_model`` (one loader for the API and the script)."""
    import test as test_script
    calls = []

    def spy(opt):
        calls.append(opt.name)
        return load_model(opt)
    monkeypatch.setattr(test_script, "load_model", spy)
    test_script.main(["--dataroot", str(demo_root / "demo"), "--results_dir", str(tmp_path / "r"), "--num_test", "1"]
                     + tiny_flags("api", trained))
    assert calls == ["api"]


def test_load_model_bad_flag_is_one_error(trained: Path) -> None:
    """A flag test.py does not know is a PretrainedError, not a SystemExit."""
    with pytest.raises(PretrainedError, match="not test.py flags"):
        load_model("api", checkpoints_dir=trained, flags=["--no_such_flag", "1"])
