"""bench/quality_known.py: the known transformation T, the data split, the scores and baselines, and tiny runs."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import quality_known as qk

ROOT = Path(__file__).resolve().parents[1]
TINY_NETS = "--netG resnet_6blocks --ngf 8 --ndf 8"


def make_photos(folder: Path, n: int = 30, size: int = 40, seed: int = 0) -> Path:
    """``n`` smooth, colourful stand-ins for photos (gradients and a disc), PNG."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        c0, c1, c2 = rng.uniform(0, 255, (3, 3))
        img = c0 * (1 - xx[..., None]) + c1 * xx[..., None]
        cy, cx, r = rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8), rng.uniform(0.1, 0.3)
        disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < r ** 2
        img[disc] = c2
        img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
        Image.fromarray(img).save(folder / f"photo_{i:03d}.png")
    return folder


# ---------------------------------------------------------------------------------------------------- T
@pytest.mark.parametrize("hue,chroma,gamma", [(100.0, 0.6, 1.2), (120.0, 1.0, 1.0), (-45.0, 0.4, 0.8),
                                              (30.0, 0.3, 2.0)])
def test_the_transformation_is_exactly_invertible(hue: float, chroma: float, gamma: float) -> None:
    t = qk.ColourTransform(hue, chroma, gamma)
    m = t.matrix
    assert np.allclose(m.sum(axis=1), 1.0) and (m >= -1e-12).all()  # maps the RGB cube into itself: no clipping
    p = np.random.default_rng(0).uniform(0, 1, (2000, 3))
    q = t.forward(p)
    assert q.min() >= 0 and q.max() <= 1
    assert np.abs(t.backward(q) - p).max() < 1e-9
    grey = np.linspace(0, 1, 11)[:, None].repeat(3, axis=1)
    assert np.allclose(t.forward(grey), grey ** gamma)  # grey stays grey; the hue turns about the grey axis
    # the chroma plane: rotated by `hue` and scaled by `chroma` (eigenvalue chroma * e^{i hue})
    eig = np.linalg.eigvals(m)
    assert np.isclose(max(abs(e) for e in eig if not np.isclose(e, 1.0)), chroma)
    assert any(np.isclose(np.angle(e, deg=True), hue if hue <= 180 else hue - 360) for e in eig)


def test_eight_bit_round_trip_and_limits() -> None:
    u = np.random.default_rng(1).integers(0, 256, (5000, 3), dtype=np.uint8)
    permutation = qk.ColourTransform(120.0, 1.0, 1.0)  # a channel permutation: exact even in 8 bits
    assert np.array_equal(permutation.apply_uint8(permutation.apply_uint8(u), inverse=True), u)
    default = qk.ColourTransform()
    back = default.apply_uint8(default.apply_uint8(u), inverse=True).astype(int)
    assert np.abs(back - u).mean() < 0.5  # only the rounding of T(x) to 8 bits is lost
    assert qk.ColourTransform.max_chroma(100.0) == pytest.approx(0.6527, abs=1e-4)
    with pytest.raises(qk.BenchError, match="--chroma must be in"):
        qk.ColourTransform(100.0, 0.7, 1.0)
    with pytest.raises(qk.BenchError, match="--gamma"):
        qk.ColourTransform(100.0, 0.5, 0.0)


# ---------------------------------------------------------------------------------------------------- data
def test_split_is_disjoint_and_complete() -> None:
    parts = qk.split_indices(101, 20, seed=3)
    sets = [set(v) for v in parts.values()]
    assert sum(len(s) for s in sets) == 101 and set.union(*sets) == set(range(101))
    assert len(parts["test"]) == 20 and abs(len(parts["A"]) - len(parts["B"])) <= 1
    assert parts == qk.split_indices(101, 20, seed=3) and parts != qk.split_indices(101, 20, seed=4)
    with pytest.raises(qk.BenchError, match="too few"):
        qk.split_indices(11, 10, seed=0)


def test_built_data_set(tmp_path: Path) -> None:
    import argparse

    photos = make_photos(tmp_path / "photos", n=20)
    files = qk.photo_files([photos])
    args = argparse.Namespace(size=32, test_num=6, data_seed=0)
    t = qk.ColourTransform()
    root, meta = qk.build_data(files, tmp_path / "out", args, t)
    sources = {k: set(v) for k, v in meta["sources"].items()}
    assert not (sources["A"] & sources["B"] or sources["A"] & sources["test"] or sources["B"] & sources["test"])
    assert sum(len(v) for v in sources.values()) == 20 and meta["counts"] == {"test": 6, "A": 7, "B": 7}
    names = meta["names"]
    assert sorted(os.listdir(root / "testA")) == sorted(os.listdir(root / "testB")) == sorted(names["test"])
    assert sorted(os.listdir(root / "trainA")) == sorted(names["A"])
    x = qk.read_folder(root / "testA", names["test"])
    tx = qk.read_folder(root / "testB", names["test"])
    assert x.shape == (6, 32, 32, 3) and np.array_equal(tx, t.apply_uint8(x))  # the known answer, stored
    # trainB holds T of its own photos (none of which is in trainA)
    b_photo = qk.square(Image.open(meta["sources"]["B"][0]), 32)
    assert np.array_equal(qk.read_folder(root / "trainB", names["B"][:1])[0], t.apply_uint8(b_photo))
    stamp = (root / "meta.json").stat().st_mtime_ns
    assert qk.build_data(files, tmp_path / "out", args, t)[0] == root  # cached: not rebuilt
    assert (root / "meta.json").stat().st_mtime_ns == stamp
    other, _ = qk.build_data(files, tmp_path / "out", args, qk.ColourTransform(hue=60.0, chroma=0.4))
    assert other != root  # another T, another set


# ---------------------------------------------------------------------------------------------------- scores
def test_scores_and_baselines() -> None:
    rng = np.random.default_rng(0)
    real = rng.integers(10, 240, (4, 16, 16, 3), dtype=np.uint8)
    shifted = (real.astype(int) + 3).astype(np.uint8)
    s = qk.scores(shifted, real)
    assert s["l1"] == pytest.approx(3.0) and s["psnr"] == pytest.approx(10 * math.log10(255 ** 2 / 9))
    t = qk.ColourTransform(100.0, 0.6, 1.0)
    tx = t.apply_uint8(real)
    base = qk.baselines(real, tx)
    assert base["identity"]["l1"] == pytest.approx(np.abs(real.astype(float) - tx).mean())
    assert base["perfect"]["l1"] == 0.0 and math.isinf(base["perfect"]["psnr"])
    assert base["affine"]["l1"] < 0.5  # without a gamma T is linear: the least-squares fit finds it
    curved = qk.baselines(real, qk.ColourTransform(100.0, 0.6, 1.5).apply_uint8(real))
    assert 0.5 < curved["affine"]["l1"] < curved["identity"]["l1"]


def test_config_parsing_and_the_comparison_lines() -> None:
    c = qk.parse_config("ema: --model cycle_gan --ema 0.99")
    assert (c.label, c.flags, c.ema, c.slug) == ("ema", ["--model", "cycle_gan", "--ema", "0.99"], True, "ema")
    assert qk.parse_config("--model cut").label == "--model cut"
    with pytest.raises(qk.BenchError, match="--seed is set by the benchmark"):
        qk.parse_config("x: --model cut --seed 3")
    with pytest.raises(qk.BenchError, match="--ema needs a number"):
        qk.parse_config("x: --ema")

    def run(label: str, seed: int, l1: float) -> dict:
        return {"config": label, "seed": seed, "error": None, "iterations": 100, "train_s": 10.0,
                "scores": {"G": {"l1": l1, "psnr": 20.0}}}

    configs = [qk.Config("a", []), qk.Config("b", []), qk.Config("c", [])]
    runs = [run("a", s, v) for s, v in enumerate([10.0, 11.0, 12.0])] + \
           [run("b", s, v) for s, v in enumerate([20.0, 21.0, 22.0])] + \
           [run("c", s, v) for s, v in enumerate([10.5, 12.0, 13.5])]
    rows = qk.summarise(configs, runs)
    assert rows[0]["l1"]["mean"] == 11.0 and rows[0]["l1"]["std"] == pytest.approx(1.0)
    pairs = {(p["a"], p["b"]): p for p in qk.comparisons(rows)}
    assert pairs[("a", "b")]["exceeds"] and pairs[("a", "b")]["welch_t"] == pytest.approx(10 / math.sqrt(2 / 3))
    assert pairs[("a", "c")]["exceeds"] is False
    lines = qk.comparison_lines(list(pairs.values()))
    assert lines[0].startswith("- a < b: L1 lower by 10.00") and "LARGER than the spread" in lines[0]
    assert "within the spread: no claim" in lines[1]


def test_without_photos_it_says_to_pass_photos(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(qk, "DEFAULT_PHOTO_DIRS", (tmp_path / "absent",))
    with pytest.raises(qk.BenchError, match="pass --photos DIR"):
        qk.main(["--out", str(tmp_path / "out")])
    proc = subprocess.run([sys.executable, str(ROOT / "bench" / "quality_known.py"), "--photos",
                           str(tmp_path / "absent")], capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0 and "not a folder" in proc.stderr


# ---------------------------------------------------------------------------------------------------- runs
def tiny_args(tmp_path: Path, *extra: str) -> list:
    return ["--photos", str(make_photos(tmp_path / "photos")), "--out", str(tmp_path / "out"), "--size", "32",
            "--test_num", "6", "--seeds", "1", "--budget", "4", "--threads", "1", "--net_flags", TINY_NETS, *extra]


@pytest.mark.slow
def test_tiny_end_to_end_run(tmp_path: Path) -> None:
    """Two configs, one seed, a few seconds each (at once where there are two cores: --jobs): stopped by SIGTERM,
    saved, scored, tabulated in the alternating order."""
    from util.threads import available_cores
    jobs = str(min(2, available_cores()))
    res = qk.main(tiny_args(tmp_path, "--config", "cycle_gan ema: --model cycle_gan --ema 0.9", "--config",
                            "fastcut: --model cut --CUT_mode FastCUT --num_patches 16 --netF_nc 16", "--jobs", jobs))
    assert res["jobs"] == int(jobs)
    runs = {r["config"]: r for r in res["runs"]}
    assert [r["error"] for r in res["runs"]] == [None, None]
    cyc, fast = runs["cycle_gan ema"], runs["fastcut"]
    for r in (cyc, fast):
        assert r["exit_status"] == 143 and r["iterations"] >= 1 and r["train_s"] >= 4.0
        assert 0 < r["scores"]["G"]["l1"] < 255 and len(r["scores"]["G"]["l1_per_image"]) == 6
    assert {"G", "G_ema", "G_B"} == set(cyc["scores"]) and set(fast["scores"]) == {"G"}
    assert cyc["scores"]["G"]["net"] == "G_A" and cyc["scores"]["G_ema"]["net"] == "G_A_ema"
    out = tmp_path / "out"
    saved = json.loads((out / "quality_known.json").read_text())
    assert [r["label"] for r in saved["rows"]] == ["cycle_gan ema", "cycle_gan ema, use_ema", "fastcut"]
    assert saved["baselines"]["perfect"]["psnr"] == "inf" and len(saved["comparisons"]) == 3
    md = (out / "quality_known.md").read_text()
    for label in ("| cycle_gan ema |", "| cycle_gan ema, use_ema |", "| fastcut |", "| baseline: identity",
                  "| baseline: best affine colour map", "| baseline: perfect (T(x) itself) |"):
        assert label in md
    assert "spread unknown (one seed)" in md
    assert not list((out / "checkpoints").rglob("*.pth"))  # deleted after scoring
    assert (out / "samples" / "fastcut_seed0.png").is_file()
    assert "--seed 0" in " ".join(cyc["argv"]) and "--n_epochs_decay 0" in " ".join(cyc["argv"])


def test_jobs_need_their_own_cores(tmp_path: Path) -> None:
    """--jobs without --threads, or more threads in all than cores, is one error: runs sharing cores would not
    get equal wall-clock time."""
    with pytest.raises(qk.BenchError, match="--jobs 2 needs --threads T"):
        qk.main(tiny_args(tmp_path, "--jobs", "2", "--threads", "0"))
    with pytest.raises(qk.BenchError, match="--jobs 2 needs --threads T"):
        qk.main(tiny_args(tmp_path, "--jobs", "2", "--threads", "4096"))


@pytest.mark.slow
def test_official_row_when_a_checkout_is_beside_the_repository(tmp_path: Path) -> None:
    """The official train.py under the SIGTERM wrapper: saves latest on the stop, scored with the API."""
    folder = Path(os.environ.get("OFFICIAL_DIR", ROOT.parent / "official"))
    if not (folder / "train.py").is_file():
        pytest.skip(f"no official checkout at {folder} (set OFFICIAL_DIR)")
    res = qk.main(tiny_args(tmp_path, "--config", "cycle_gan: --model cycle_gan", "--official", str(folder)))
    runs = {r["config"]: r for r in res["runs"]}
    official = runs[qk.OFFICIAL_LABEL]
    assert official["error"] is None and official["exit_status"] == 143 and official["official"]
    assert official["iterations"] >= 1 and official["iterations"] == official["stopped_iters"]
    assert set(official["scores"]) == {"G", "G_B"} and "--seed" not in official["argv"]
    md = (tmp_path / "out" / "quality_known.md").read_text()
    assert f"| {qk.OFFICIAL_LABEL} |" in md and "1 unseeded" in md
