"""Tests of the embedded demo dataset generator (datasets/make_demo_dataset.py)."""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import data

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "datasets" / "make_demo_dataset.py"
SIZE, N_TRAIN, N_TEST = 32, 5, 3


def load_generator():
    """Import the generator script as a module."""
    spec = importlib.util.spec_from_file_location("make_demo_dataset", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gen = load_generator()


def snapshot(*folders: Path) -> dict[str, bytes]:
    """Relative path -> bytes of every file under the folders."""
    out = {}
    for folder in folders:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                out[f"{folder.name}/{p.relative_to(folder)}"] = p.read_bytes()
    return out


def pixels(path: Path) -> np.ndarray:
    """Image pixels as int16 (for differences)."""
    return np.asarray(Image.open(path).convert("RGB")).astype(np.int16)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One small demo set shared by the read-only tests."""
    return gen.make_demo_dataset(tmp_path_factory.mktemp("d") / "demo", SIZE, N_TRAIN, N_TEST, seed=0)


def test_layout_and_counts(demo: dict) -> None:
    out, p2p = Path(demo["out_dir"]), Path(demo["pix2pix_dir"])
    assert p2p == out.parent / "demo_pix2pix" and demo["generated"]
    names_train = [f"{i:04d}.png" for i in range(N_TRAIN)]
    names_test = [f"{i:04d}.png" for i in range(N_TEST)]
    for sub, names, size in [(out / "trainA", names_train, (SIZE, SIZE)), (out / "trainB", names_train, (SIZE, SIZE)),
                             (out / "testA", names_test, (SIZE, SIZE)), (out / "testB", names_test, (SIZE, SIZE)),
                             (p2p / "train", names_train, (2 * SIZE, SIZE)), (p2p / "test", names_test, (2 * SIZE, SIZE))]:
        assert sorted(p.name for p in sub.iterdir()) == names, sub
        for name in names:
            with Image.open(sub / name) as img:
                assert img.size == size and img.mode == "RGB" and img.format == "PNG"
    assert json.loads((out / "demo.json").read_text())["size"] == SIZE
    assert demo["counts"]["demo/trainA"] == N_TRAIN and demo["counts"]["demo_pix2pix/test"] == N_TEST


def test_styles_differ_and_test_pairs_match(demo: dict) -> None:
    out, p2p = Path(demo["out_dir"]), Path(demo["pix2pix_dir"])
    for i in range(N_TEST):
        a, b = pixels(out / "testA" / f"{i:04d}.png"), pixels(out / "testB" / f"{i:04d}.png")
        assert np.abs(a - b).mean() > 40  # night is not day
        assert a.mean() > b.mean() + 40  # night is darker
        pair = pixels(p2p / "test" / f"{i:04d}.png")
        assert np.array_equal(pair[:, :SIZE], a) and np.array_equal(pair[:, SIZE:], b)
    # The same scene in two styles shares its layout: the edges of A and B line up better than across scenes.
    def edges(x: np.ndarray) -> np.ndarray:
        """Boolean map of strong luminance steps."""
        g = x.mean(-1)
        return (np.abs(np.diff(g, axis=0))[:, :-1] + np.abs(np.diff(g, axis=1))[:-1]) > 25

    a0, b0, b1 = (edges(pixels(out / f / n)) for f, n in [("testA", "0000.png"), ("testB", "0000.png"),
                                                          ("testB", "0001.png")])
    assert (a0 & b0).sum() > (a0 & b1).sum()


def test_train_domains_are_unpaired(demo: dict) -> None:
    out, p2p = Path(demo["out_dir"]), Path(demo["pix2pix_dir"])
    for i in range(N_TRAIN):
        name = f"{i:04d}.png"
        pair = pixels(p2p / "train" / name)
        assert np.array_equal(pair[:, :SIZE], pixels(out / "trainA" / name))  # pix2pix A = the trainA scene
        assert not np.array_equal(pair[:, SIZE:], pixels(out / "trainB" / name))  # trainB shows another scene
    scenes = {(out / "trainA" / f"{i:04d}.png").read_bytes() for i in range(N_TRAIN)}
    assert len(scenes) == N_TRAIN


def test_deterministic_and_seeded(tmp_path: Path) -> None:
    r1 = gen.make_demo_dataset(tmp_path / "one" / "demo", SIZE, 3, 2, seed=7)
    r2 = gen.make_demo_dataset(tmp_path / "two" / "demo", SIZE, 3, 2, seed=7)
    s1 = snapshot(Path(r1["out_dir"]), Path(r1["pix2pix_dir"]))
    s2 = snapshot(Path(r2["out_dir"]), Path(r2["pix2pix_dir"]))
    assert s1 == s2 and len(s1) == 3 * 3 + 3 * 2 + 1
    r3 = gen.make_demo_dataset(tmp_path / "three" / "demo", SIZE, 3, 2, seed=8)
    s3 = snapshot(Path(r3["out_dir"]), Path(r3["pix2pix_dir"]))
    assert s3["demo/trainA/0000.png"] != s1["demo/trainA/0000.png"]


def test_skips_complete_set_and_regenerates_on_change(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    assert gen.make_demo_dataset(out, SIZE, 4, 2)["generated"]
    stamp = (out / "trainA" / "0000.png").stat().st_mtime_ns
    again = gen.make_demo_dataset(out, SIZE, 4, 2)
    assert not again["generated"] and (out / "trainA" / "0000.png").stat().st_mtime_ns == stamp
    (out / "testB" / "0001.png").unlink()  # incomplete -> regenerate
    assert gen.make_demo_dataset(out, SIZE, 4, 2)["generated"]
    assert (out / "testB" / "0001.png").is_file()
    (out / "trainA" / "keep_me.txt").write_text("user file")
    smaller = gen.make_demo_dataset(out, SIZE, 2, 1)  # other parameters -> regenerate, stale images removed
    assert smaller["generated"]
    assert sorted(p.name for p in (out / "trainA").iterdir()) == ["0000.png", "0001.png", "keep_me.txt"]
    assert sorted(p.name for p in (tmp_path / "demo_pix2pix" / "test").iterdir()) == ["0000.png"]
    assert gen.make_demo_dataset(out, SIZE, 2, 1, force=True)["generated"]


@pytest.mark.parametrize("bad", [dict(size=4), dict(n_train=0), dict(n_test=0)])
def test_rejects_bad_parameters(bad: dict, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        gen.make_demo_dataset(tmp_path / "demo", **{"size": SIZE, "n_train": 2, "n_test": 1, **bad})


def test_cli(tmp_path: Path) -> None:
    out = tmp_path / "cli" / "demo"
    cmd = [sys.executable, str(SCRIPT), "--out", str(out), "--size", "16", "--n_train", "2", "--n_test", "1",
           "--seed", "3"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "demo dataset written to" in proc.stdout
    assert Image.open(out / "testB" / "0000.png").size == (16, 16)
    assert Image.open(tmp_path / "cli" / "demo_pix2pix" / "train" / "0001.png").size == (32, 16)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0 and "nothing to do" in proc.stdout


def _opt(dataroot: Path, **kw) -> argparse.Namespace:
    """Complete default options for the data loader, with small sizes."""
    from options.defaults import default_options

    base = dict(dataroot=str(dataroot), phase="train", dataset_mode="unaligned", serial_batches=False,
                num_threads=0, batch_size=2, load_size=SIZE, crop_size=SIZE - 4)
    base.update(kw)
    return default_options("cycle_gan", is_train=True, **base)


@pytest.mark.parametrize("mode", ["unaligned", "aligned"])
def test_demo_loads_with_the_data_package(mode: str, demo: dict) -> None:
    root = Path(demo["out_dir"] if mode == "unaligned" else demo["pix2pix_dir"])
    for phase, n in (("train", N_TRAIN), ("test", N_TEST)):
        loader = data.create_dataset(_opt(root, dataset_mode=mode, phase=phase))
        assert len(loader) == n
        batch = next(iter(loader))
        assert batch["A"].shape == batch["B"].shape == (min(2, n), 3, SIZE - 4, SIZE - 4)
