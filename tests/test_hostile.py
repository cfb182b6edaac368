"""Files and values a careless user or an attacker can hand the program: each is handled, or refused by name.

Image bombs (an aspect-ratio bomb, PIL's decompression bombs, images over the pixel budget), special files
(FIFO, socket, broken link) in image folders, file names at the file system's limit or not valid UTF-8, two
inputs with one base name, a file changed after the pre-flight scan, images smaller than the networks take, a
float TIFF with +inf, a damaged config.json, and every program that reads an image reading it the same way.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import pytest
import torch
from PIL import Image

import data
from conftest import ROOT, load_script, run_test, run_train, tiny_flags
from data.validation import BadDataError, check_image
from models import arch_config, networks
from options.test_options import TestOptions
from options.train_options import TrainOptions
from test_bad_data import G16, _exif_jpeg, png_file, scan_opt
from util.image_io import (ImageReadError, ImageSizeError, MAX_PIXELS_LIMIT, list_image_files, load_image,
                           special_kind)
from util.errors import cli_main
from util.result_names import ResultNames, fit_stem
from util.util import NAME_MAX, atomic_write_bytes

S = 40
sys.path.insert(0, str(ROOT / "bench"))  # bench/make_paired_from_photos.py reads photos too


def picture(path: Path, w: int = S, h: int = S, seed: int = 0) -> Path:
    """An 8-bit RGB PNG of random pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3)).astype(np.uint8)).save(path)
    return path


# ---------------------------------------------------------------------------------------------------- bombs
def strip(path: Path) -> Path:
    """The aspect-ratio bomb: a 1x80000 PNG of a few hundred bytes."""
    Image.new("RGB", (1, 80000), (10, 20, 30)).save(path)
    return path


@pytest.mark.parametrize("preprocess,refused", [("scale_width_and_crop", True), ("scale_width", True),
                                                ("resize_and_crop", False), ("crop", True), ("none", False)])
@pytest.mark.parametrize("full", [True, False], ids=["decode", "headers"])
def test_aspect_ratio_bomb_is_found_by_the_preflight(preprocess: str, refused: bool, full: bool,
                                                     tmp_path: Path) -> None:
    opt = scan_opt(preprocess=preprocess, load_size=286, crop_size=256)
    check = check_image(str(strip(tmp_path / "strip.png")), opt, full=full)
    assert (check.problem is not None) == refused, check.problem
    if refused and "scale_width" in preprocess:
        assert "would become 286x22880000" in check.problem and "--max_pixels" in check.problem


@pytest.mark.parametrize("preprocess", ["scale_width_and_crop", "scale_width"])
def test_aspect_ratio_bomb_is_refused_by_the_loader_before_resizing(preprocess: str, tmp_path: Path) -> None:
    """A file replaced by a bomb after the scan: the transform refuses it, naming it, without allocating."""
    path = strip(tmp_path / "strip.png")
    opt = scan_opt(preprocess=preprocess, load_size=286, crop_size=256, no_flip=True)
    with pytest.raises(ImageSizeError, match=r"strip\.png would become 286x22880000 .*--max_pixels"):
        data.base_dataset.get_transform(opt)(load_image(str(path)))


def bomb(path: Path, side: int = 30000) -> Path:
    """A PNG header claiming side x side pixels (over PIL's limit at 30000)."""
    path.write_bytes(png_file(side, side, 8, True, b""))
    return path


def evaluate_error(argv: List[str], capsys) -> str:
    """evaluate.py's one error line for ``argv`` (as its ``__main__`` runs it: exit status 2)."""
    evaluate = load_script("evaluate")
    assert cli_main(lambda: evaluate.main(argv), prog="evaluate.py", argv=argv) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("evaluate.py: error: "), lines
    return lines[0]


def test_decompression_bomb_is_one_error_in_evaluate(tmp_path: Path, capsys) -> None:
    folder = tmp_path / "fake"
    picture(folder / "ok.png")
    bomb(folder / "zz_bomb.png")
    message = evaluate_error(["--fake_dir", str(folder), "--real_dir", str(folder), "--metrics", "swd"], capsys)
    assert "zz_bomb.png" in message and "too large for PIL's safety limit" in message


@pytest.mark.parametrize("side,expected", [(30000, "too large for PIL's safety limit"), (13000, "--max_pixels")])
def test_huge_check_image_is_one_error_in_export(side: int, expected: str, tmp_path: Path) -> None:
    export = load_script("export")
    with pytest.raises(export.ExportError) as err:
        export.load_check_image(str(bomb(tmp_path / "big.png", side)), 3, 64)
    assert "--check_image" in str(err.value) and "big.png" in str(err.value) and expected in str(err.value)


def test_images_in_pils_warning_range_are_refused_from_the_header(tmp_path: Path) -> None:
    """13000 x 13000 (169 M pixels) is below PIL's error limit; the budget refuses it before decoding 1.4 GB."""
    path = bomb(tmp_path / "big.png", 13000)
    with pytest.raises(ImageSizeError, match="13000x13000 = 169,000,000 pixels, over the budget of --max_pixels"):
        load_image(str(path))
    for full in (True, False):
        assert "over the budget of --max_pixels" in check_image(str(path), scan_opt(), full=full).problem


@pytest.mark.parametrize("flags,expected", [
    (["--load_size", "100000"], "--load_size must be an integer in 1..65536, got 100000"),
    (["--load_size", "20000"], "--load_size 20000 asks for 20000x20000 = 400,000,000 pixels per image, over "
                               "--max_pixels 67,108,864"),
    (["--crop_size", "9000", "--load_size", "9000"], "--load_size 9000 asks for"),
    (["--max_pixels", str(MAX_PIXELS_LIMIT + 1)], "--max_pixels must be an integer in 1.."),
    (["--ngf", "100000"], "--ngf must be an integer in 1..1024"),
    (["--batch_size", "1000000"], "--batch_size must be an integer in 1..4096"),
])
def test_flags_that_ask_for_too_much(flags: List[str], expected: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError) as err:
        TrainOptions().parse(["--dataroot", str(tmp_path), "--gpu_ids", "-1", *flags], save=False)
    assert expected in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("flags,expected", [(["--size", "100000"], "--size must be an integer in 1..16384"),
                                            (["--size", "9000"], "--size 9000 asks for 81,000,000 pixels")])
def test_evaluate_size_is_bounded(flags: List[str], expected: str, tmp_path: Path, capsys) -> None:
    picture(tmp_path / "a.png")
    assert expected in evaluate_error(["--fake_dir", str(tmp_path), "--real_dir", str(tmp_path), "--metrics", "swd",
                                       *flags], capsys)


# ---------------------------------------------------------------------------------------------------- special files
def make_special(kind: str, path: Path) -> None:
    """A FIFO, a bound UNIX socket, or a broken symbolic link at ``path``."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "socket":
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()  # the socket file stays
    else:
        os.symlink(path.parent / "nowhere.png", path)


SPECIAL = {"fifo": "a FIFO (named pipe)", "socket": "a socket", "broken_link": "a broken symbolic link"}
needs_posix = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs and UNIX sockets are POSIX")


@pytest.fixture
def short_tmp() -> Path:
    """A short folder path (UNIX socket paths are limited to about 100 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="h14"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@needs_posix
@pytest.mark.parametrize("kind", list(SPECIAL))
def test_special_files_are_skipped_with_what_they_are(kind: str, short_tmp: Path, caplog) -> None:
    picture(short_tmp / "a.png")
    os.symlink(short_tmp / "a.png", short_tmp / "b_link.png")  # a link to a regular file is an image
    make_special(kind, short_tmp / "c.png")
    caplog.set_level("WARNING", logger="img2img")
    images, skipped = list_image_files(str(short_tmp))
    assert [Path(p).name for p in images] == ["a.png", "b_link.png"]
    assert skipped == [(str(short_tmp / "c.png"), SPECIAL[kind])]
    assert f"c.png: {SPECIAL[kind]}, not an image file" in caplog.text
    assert [Path(p).name for p in data.image_folder.make_dataset(str(short_tmp))] == ["a.png", "b_link.png"]
    from util.metrics.images import list_images

    assert [p.name for p in list_images(short_tmp)] == ["a.png", "b_link.png"]


@needs_posix
@pytest.mark.parametrize("kind", ["fifo", "socket"])
@pytest.mark.parametrize("full", [True, False], ids=["decode", "headers"])
def test_preflight_says_what_a_special_file_is(kind: str, full: bool, short_tmp: Path) -> None:
    make_special(kind, short_tmp / "x.png")
    check = check_image(str(short_tmp / "x.png"), scan_opt(), full=full)
    assert check.problem == f"{SPECIAL[kind]}, not an image file" and "empty" not in check.problem
    assert special_kind(str(short_tmp / "x.png")) == SPECIAL[kind]
    with pytest.raises(ImageReadError, match=re.escape(f"x.png: it is {SPECIAL[kind]}")):
        load_image(str(short_tmp / "x.png"))  # refused before opening: a FIFO would block


@needs_posix
def test_evaluate_finishes_with_a_fifo_in_its_folders(short_tmp: Path) -> None:
    """The command a user runs; before, it waited forever on the FIFO."""
    for i in range(2):
        picture(short_tmp / f"{i}.png", seed=i)
    os.mkfifo(short_tmp / "2.png")
    res = subprocess.run([sys.executable, str(ROOT / "evaluate.py"), "--fake_dir", str(short_tmp), "--real_dir",
                          str(short_tmp), "--paired", "--metrics", "psnr,l1"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "2.png: a FIFO (named pipe), not an image file" in res.stdout + res.stderr
    assert "evaluating 2 fake images" in res.stdout


@needs_posix
def test_eval_freq_subset_skips_a_fifo(short_tmp: Path, demo_root: Path) -> None:
    from training.evaluator import eval_options, load_folder

    for i in range(3):
        picture(short_tmp / f"{i}.png", 32, 32, seed=i)
    os.mkfifo(short_tmp / "1b.png")
    opt = TrainOptions().parse(["--dataroot", str(demo_root / "demo"), "--gpu_ids", "-1", "--crop_size", "32",
                                "--load_size", "32"], save=False)
    inputs, rgb = load_folder(str(short_tmp), eval_options(opt, "test"), 5, grayscale=False)
    assert rgb.shape == (3, 3, 32, 32)


# ---------------------------------------------------------------------------------------------------- names
@pytest.fixture
def tiny_generator(tmp_path: Path) -> List[str]:
    """A saved untrained generator and the test.py flags that load it (--model test)."""
    ckpt = tmp_path / "ck"
    (ckpt / "g").mkdir(parents=True)
    net = networks.define_G(3, 3, 4, "resnet_6blocks", "instance", False)
    torch.save(net.state_dict(), ckpt / "g" / "latest_net_G.pth")
    return ["--model", "test", "--netG", "resnet_6blocks", "--ngf", "4", "--norm", "instance", "--no_dropout",
            "--name", "g", "--checkpoints_dir", str(ckpt), "--results_dir", str(tmp_path / "results"),
            "--load_size", "32", "--crop_size", "32", "--gpu_ids", "-1"]


def page_and_files(web_dir: str) -> tuple[str, List[bytes]]:
    """The results page (it must be valid UTF-8) and the raw names of the result images."""
    page = (Path(web_dir) / "index.html").read_bytes().decode("utf-8")
    return page, sorted(os.listdir(os.fsencode(os.path.join(web_dir, "images"))))


@pytest.mark.parametrize("length", [200, 210, 246, 251])
def test_long_file_names_work_in_test_py(length: int, tmp_path: Path, tiny_generator: List[str]) -> None:
    stem = ("x" * length)[:length]
    picture(tmp_path / "in" / f"{stem}.png", 32, 32)
    page, files = page_and_files(run_test(tiny_generator + ["--dataroot", str(tmp_path / "in")]))
    assert len(files) == 2 and all(len(f) <= NAME_MAX for f in files)
    if length <= NAME_MAX - len("_fake.png"):  # the official names whenever they fit
        assert files == [f"{stem}_fake.png".encode(), f"{stem}_real.png".encode()]
    for name in files:
        assert f'src="images/{name.decode()}"' in page


def test_non_utf8_file_name_still_gets_its_page(tmp_path: Path, tiny_generator: List[str]) -> None:
    folder = tmp_path / "in"
    picture(folder / "a.png", 32, 32)
    raw = os.path.join(os.fsencode(folder), b"caf\xe9.png")  # latin-1, not UTF-8
    Image.new("RGB", (32, 32), (200, 10, 10)).save(os.fsdecode(raw), format="PNG")
    page, files = page_and_files(run_test(tiny_generator + ["--dataroot", str(folder)]))
    assert b"caf\xe9_fake.png" in files and b"caf\xe9_real.png" in files
    assert 'src="images/caf%E9_fake.png"' in page  # the link is the file's own bytes
    assert "caf\ufffd" in page  # the caption shows the undecodable byte as U+FFFD


def test_same_base_name_in_subfolders_gives_one_result_each(tmp_path: Path, tiny_generator: List[str]) -> None:
    folder = tmp_path / "in"
    picture(folder / "a" / "x.png", 32, 32, seed=1)
    picture(folder / "b" / "x.png", 32, 32, seed=2)
    picture(folder / "x.jpg", 32, 32, seed=3)
    web_dir = run_test(tiny_generator + ["--dataroot", str(folder)])
    page, files = page_and_files(web_dir)
    stems = ["x", "x__b", "x__jpg"]
    assert files == sorted(f"{s}_{label}.png".encode() for s in stems for label in ("fake", "real"))
    for stem, source in zip(stems, ["a/x.png", "b/x.png", "x.jpg"]):
        saved = np.asarray(Image.open(Path(web_dir) / "images" / f"{stem}_real.png"))
        original = np.asarray(load_image(str(folder / source)))
        assert np.abs(saved.astype(int) - original).max() <= 1, stem  # each input's own picture
        assert page.count(f"<h3>{stem}</h3>") == 1


@pytest.mark.parametrize("paths,stems", [
    (["/d/a/x.png", "/d/b/x.png", "/d/a/x.png"], ["x", "x__b", "x"]),  # stable: one path, one name
    (["/d/x.png", "/d/x.jpg", "/d/x__jpg.png"], ["x", "x__jpg", "x__jpg__png"]),
    (["/d/a/s/x.png", "/d/b/s/x.png"], ["x", "x__b_s"]),
])
def test_result_names_are_unique_and_stable(paths: List[str], stems: List[str]) -> None:
    names = ResultNames()
    assert [names.stem_for(p) for p in paths] == stems


@pytest.mark.parametrize("stem", ["a" * 300, "é" * 200, "b" * 246])
def test_result_stems_fit_the_file_system(stem: str, tmp_path: Path) -> None:
    fitted = fit_stem(stem, "_fake_B.png")
    assert len(os.fsencode(fitted + "_fake_B.png")) <= NAME_MAX
    assert fit_stem(stem + "z", "_fake_B.png") != fitted or len(os.fsencode(stem)) <= NAME_MAX - 11
    atomic_write_bytes(tmp_path / (fitted + "_fake_B.png"), b"x")  # its temporary name fits too
    assert (tmp_path / (fitted + "_fake_B.png")).read_bytes() == b"x"


# ---------------------------------------------------------------------------------------------------- changed files
def changed(how: str, path: Path) -> None:
    """What happens to a file after the pre-flight scan."""
    if how == "deleted":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(b"<html>not an image</html>")
    else:  # replaced by an aspect-ratio bomb: 1 x 80000 scaled to a width of --load_size
        strip(path)


def train_with_change(root: Path, ckpt: Path, how: str, policy: str, monkeypatch, extra=()) -> None:
    """One tiny CycleGAN epoch in which trainA/3.png changes right after the pre-flight scan."""
    def preflight_then_change(dataset, opt):
        report = data.validation.preflight(dataset, opt)
        if how:
            changed(how, root / "trainA" / "3.png")
        return report

    monkeypatch.setattr(data, "preflight", preflight_then_change)
    run_train(["--model", "cycle_gan", "--netG", "resnet_6blocks", "--dataroot", str(root),
               *tiny_flags("changed", ckpt), "--n_epochs", "1", "--n_epochs_decay", "0", "--bad_data", policy,
               "--preprocess", "scale_width_and_crop", "--pool_size", "0", "--save_epoch_freq", "1",
               "--save_latest_freq", "100", "--print_freq", "1", *extra])


@pytest.fixture
def six_pairs(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for i in range(6):
        picture(root / "trainA" / f"{i}.png", 32, 32, seed=i)
        picture(root / "trainB" / f"{i}.png", 32, 32, seed=10 + i)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("how", ["deleted", "garbage", "bomb"])
def test_file_changed_after_the_scan_saves_and_stops(how: str, six_pairs: Path, tmp_path: Path,
                                                     monkeypatch) -> None:
    ckpt = tmp_path / "ck"
    with pytest.raises(data.DataChangedError) as err:
        train_with_change(six_pairs, ckpt, how, "error", monkeypatch)
    message = str(err.value)
    assert "trainA/3.png" in message and "--bad_data skip" in message and "--continue_train" in message
    assert "\n" not in message
    state = torch.load(ckpt / "changed" / "latest_train_state.pth", weights_only=False)
    assert (ckpt / "changed" / "latest_net_G_A.pth").is_file()
    assert 0 <= state["epoch_iter"] < 6 and state["epoch"] == 1
    picture(six_pairs / "trainA" / "3.png", 32, 32, seed=3)  # fixed: the run goes on from there
    train_with_change(six_pairs, ckpt, "", "error", monkeypatch, extra=["--continue_train"])
    assert (ckpt / "changed" / "1_net_G_A.pth").is_file()


@pytest.mark.slow
def test_file_changed_after_the_scan_is_skipped_with_bad_data_skip(six_pairs: Path, tmp_path: Path, monkeypatch,
                                                                   caplog) -> None:
    caplog.set_level("INFO", logger="img2img")
    train_with_change(six_pairs, tmp_path / "ck", "deleted", "skip", monkeypatch)
    assert "--bad_data skip: left out sample" in caplog.text and "trainA/3.png" in caplog.text
    assert (tmp_path / "ck" / "changed" / "1_net_G_A.pth").is_file()


# ---------------------------------------------------------------------------------------------------- small images
NETS = [("G", name, norm) for name in networks.list_generators() for norm in networks.list_norms()] + \
       [("D", name, norm) for name in networks.list_discriminators() for norm in networks.list_norms()]


def runs(net: torch.nn.Module, side: int) -> bool:
    """Whether a training-mode forward pass of one side x side image works."""
    try:
        with torch.no_grad():
            net(torch.zeros(1, 3, side, side))
        return True
    except (RuntimeError, ValueError):
        return False


@pytest.mark.parametrize("kind,name,norm", NETS, ids=[f"{k}-{n}-{m}" for k, n, m in NETS])
def test_min_side_is_what_the_network_takes(kind: str, name: str, norm: str) -> None:
    side = networks.min_side_for(kind, name, norm)
    norm_name = "batch" if norm == "syncbatch" else norm  # SyncBatchNorm needs a process group to run
    net = networks.define_G(3, 3, 4, name, norm_name) if kind == "G" else networks.define_D(3, 4, name, 3, norm_name)
    net.train()
    assert runs(net, side) and runs(net, side + 7)
    if side > 1:
        assert not runs(net, side - 1)


AA_NETS = [("G", name) for name in networks.list_generators() if name.startswith("resnet")] + \
          [("D", name) for name in networks.list_discriminators()]


@pytest.mark.parametrize("kind,name", AA_NETS, ids=[f"{k}-{n}" for k, n in AA_NETS])
def test_min_side_of_the_antialiased_layout_is_what_the_network_takes(kind: str, name: str) -> None:
    """CUT's layout (--model cut): its blur-downsampling counts like the strided convolution it replaces."""
    side = networks.min_side_for(kind, name, "instance", no_antialias=False, no_antialias_up=False)
    net = networks.define_G(3, 3, 4, name, "instance", no_antialias=False, no_antialias_up=False) if kind == "G" \
        else networks.define_D(3, 4, name, 3, "instance", no_antialias=False)
    net.train()
    assert runs(net, side) and runs(net, side + 7)
    if side > 1:
        assert not runs(net, side - 1)


@pytest.mark.parametrize("w,h", [(33, 17), (6, 6), (1, 1)])
def test_preflight_names_images_smaller_than_the_networks(w: int, h: int, tmp_path: Path) -> None:
    for i, side in enumerate([(40, 40), (w, h)]):
        for folder in ("trainA", "trainB"):
            picture(tmp_path / folder / f"{i}.png", *side)
    opt = TrainOptions().parse(["--dataroot", str(tmp_path), "--gpu_ids", "-1", "--preprocess", "none",
                                "--checkpoints_dir", str(tmp_path / "ck")], save=False)
    with pytest.raises(BadDataError) as err:
        data.create_dataset(opt)
    message = str(err.value)
    assert f"trainA/1.png: {w}x{h} is smaller than --netD basic can take (24x24 at least)" in message
    assert "--preprocess" in message


@pytest.mark.parametrize("w,h,refused", [(33, 17, False), (6, 6, False), (1, 1, True)])
def test_test_time_needs_only_the_generator_size(w: int, h: int, refused: bool, tmp_path: Path) -> None:
    picture(tmp_path / "in" / "0.png", w, h)
    opt = TestOptions().parse(["--dataroot", str(tmp_path / "in"), "--model", "test", "--preprocess", "none",
                               "--gpu_ids", "-1", "--checkpoints_dir", str(tmp_path / "ck")], save=False)
    if refused:
        with pytest.raises(BadDataError, match="smaller than --netG resnet_9blocks can take"):
            data.create_dataset(opt)
    else:
        assert len(data.create_dataset(opt)) == 1


@pytest.mark.parametrize("netD,ok", [("basic", False), ("pixel", True)])
def test_crop_size_below_the_networks_is_a_flag_error(netD: str, ok: bool, tmp_path: Path) -> None:
    argv = ["--dataroot", str(tmp_path), "--gpu_ids", "-1", "--crop_size", "16", "--load_size", "16", "--netD", netD]
    if ok:
        TrainOptions().parse(argv, save=False)
    else:
        with pytest.raises(ValueError, match="--crop_size 16 is smaller than --netD basic can take"):
            TrainOptions().parse(argv, save=False)


def test_float_tiff_with_inf_keeps_its_picture(tmp_path: Path) -> None:
    values = (np.arange(S * S).reshape(S, S) / (S * S - 1)).astype(np.float32)  # 0..1
    values[3, 4] = np.inf
    values[5, 6] = np.nan
    Image.fromarray(values).save(tmp_path / "f.tif")
    got = np.asarray(load_image(str(tmp_path / "f.tif")))[..., 0].astype(int)
    finite = np.isfinite(values)
    assert np.abs(got[finite] - np.rint(values[finite] * 255)).max() == 0
    assert got[3, 4] == 255 and got[5, 6] == 0


# ---------------------------------------------------------------------------------------------------- config.json
def write_config(save_dir: Path, change: Callable[[Dict], None]) -> Path:
    """A valid config.json of a test-model generator, then ``change`` applied to it."""
    save_dir.mkdir(parents=True, exist_ok=True)
    opt = TestOptions().parse(["--dataroot", str(save_dir), "--model", "test", "--gpu_ids", "-1"], save=False)
    spec = {"kind": "G", "netG": "resnet_6blocks", "input_nc": 3, "output_nc": 3, "ngf": 8, "norm": "instance",
            "use_dropout": False, "upsample": "deconv"}
    cfg = arch_config.build_config(opt, {"G": spec, "D": {"kind": "D", "netD": "basic", "input_nc": 3, "ndf": 8,
                                                          "n_layers_D": 3, "norm": "instance"}})
    change(cfg)
    (save_dir / "config.json").write_text(json.dumps(cfg))
    return save_dir / "config.json"


def _set(path: str, value) -> Callable[[Dict], None]:
    def change(cfg: Dict) -> None:
        *parents, last = path.split(".")
        node = cfg
        for key in parents:
            node = node[key]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return change


CONFIG_CASES = {
    "ngf_string": (_set("networks.G.ngf", "8"), "networks.G.ngf must be an integer in 1..1024, got '8'"),
    "ngf_huge": (_set("networks.G.ngf", 100000), "networks.G.ngf must be an integer in 1..1024, got 100000"),
    "ngf_nan": (_set("networks.G.ngf", math.nan), "networks.G.ngf must be an integer"),
    "ngf_float": (_set("networks.G.ngf", 8.0), "networks.G.ngf must be an integer"),
    "netG_missing": (_set("networks.G.netG", KeyError), "networks.G.netG is missing"),
    "netG_unknown": (_set("networks.G.netG", "resnet_99blocks"), "networks.G.netG 'resnet_99blocks' is not valid"),
    "entry_string": (_set("networks.G", "resnet_6blocks"), "networks.G must be a JSON object"),
    "dropout_string": (_set("networks.G.use_dropout", "no"), "networks.G.use_dropout must be true or false"),
    "input_nc_zero": (_set("networks.G.input_nc", 0), "networks.G.input_nc must be an integer in 1..64"),
    "options_missing": (_set("options", KeyError), "options is missing"),
    "option_netG": (_set("options.netG", 7), "options.netG must be a string"),
    "option_init_gain": (_set("options.init_gain", -1), "options.init_gain must be in (0, 100]"),
    "format": (_set("format", 2), "format must be 1"),
    "not_an_object": (lambda cfg: cfg.clear(), "format must be 1"),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_config_json_is_checked_against_its_schema(case: str, tmp_path: Path) -> None:
    change, expected = CONFIG_CASES[case]
    path = write_config(tmp_path / "ck" / "x", change)
    with pytest.raises(ValueError) as err:
        TestOptions().parse(["--dataroot", str(tmp_path), "--model", "test", "--name", "x", "--checkpoints_dir",
                             str(tmp_path / "ck"), "--gpu_ids", "-1"], save=False)
    message = str(err.value)
    assert message.startswith(f"{path}: {expected}"), message
    assert "--netG" not in message.split(";")[0] and "\n" not in message
    export = load_script("export")
    with pytest.raises(ValueError, match="config.json: "):
        export.load_generator(export.make_parser().parse_args(["--name", "x", "--checkpoints_dir",
                                                               str(tmp_path / "ck"), "--out", str(tmp_path)]))


def test_valid_config_json_still_applies(tmp_path: Path) -> None:
    write_config(tmp_path / "ck" / "x", lambda cfg: None)
    opt = TestOptions().parse(["--dataroot", str(tmp_path), "--model", "test", "--name", "x", "--checkpoints_dir",
                               str(tmp_path / "ck"), "--gpu_ids", "-1"], save=False)
    assert (opt.netG, opt.ngf) == ("resnet_6blocks", 8)


# ---------------------------------------------------------------------------------------------------- one loader
def _tensor_to_rgb(x: torch.Tensor) -> np.ndarray:
    """A [-1, 1] CHW tensor back to 8-bit HWC."""
    return np.rint((x.numpy().transpose(1, 2, 0) + 1) * 127.5).astype(np.uint8)


def read_by_dataset(path: Path, out: Path) -> np.ndarray:
    opt = TestOptions().parse(["--dataroot", str(path.parent), "--model", "test", "--preprocess", "none",
                               "--gpu_ids", "-1", "--checkpoints_dir", str(out)], save=False)
    return _tensor_to_rgb(data.create_dataset(opt).dataset[0]["A"])


def read_by_evaluate(path: Path, out: Path) -> np.ndarray:
    from util.metrics.images import load_image as metrics_load

    return metrics_load(path).permute(1, 2, 0).numpy()


def read_by_export(path: Path, out: Path) -> np.ndarray:
    return _tensor_to_rgb(load_script("export").load_check_image(str(path), 3, 64)[0])


def read_by_combine(path: Path, out: Path) -> np.ndarray:
    from combine_A_and_B import image_write

    image_write(str(path), str(path), str(out / "ab.png"))
    ab = np.asarray(Image.open(out / "ab.png"))
    return ab[:, : ab.shape[1] // 2]


def read_by_cityscapes(path: Path, out: Path) -> np.ndarray:
    from prepare_cityscapes_dataset import load_resized

    return np.asarray(load_resized(str(path), 24))


def read_by_paired_photos(path: Path, out: Path) -> np.ndarray:
    from make_paired_from_photos import make_pair, to_gray

    pair = np.asarray(make_pair(path, 24, to_gray))
    return pair[:, 24:]


def read_by_eval_freq(path: Path, out: Path) -> np.ndarray:
    from training.evaluator import eval_options, load_folder

    opt = TrainOptions().parse(["--dataroot", str(path.parent), "--gpu_ids", "-1", "--crop_size", "24",
                                "--load_size", "24", "--checkpoints_dir", str(out)], save=False)
    return load_folder(str(path.parent), eval_options(opt, "test"), 1, grayscale=False)[1][0].permute(1, 2, 0).numpy()


# reader -> (function, the resize it does to the loaded image: None or a side)
READERS = {"dataset": (read_by_dataset, None), "evaluate": (read_by_evaluate, None), "export": (read_by_export, None),
           "combine_A_and_B": (read_by_combine, None), "cityscapes": (read_by_cityscapes, 24),
           "make_paired_from_photos": (read_by_paired_photos, 24), "eval_freq": (read_by_eval_freq, 24)}


def gray16(path: Path) -> None:
    Image.fromarray(G16).save(path)


FILES = {"gray16.png": gray16, "exif_rotated.jpg": _exif_jpeg}


@pytest.mark.parametrize("reader", list(READERS))
@pytest.mark.parametrize("name", list(FILES))
def test_every_reader_reads_like_the_datasets(reader: str, name: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    FILES[name](folder / name)
    function, side = READERS[reader]
    got = function(folder / name, tmp_path)
    expected = load_image(str(folder / name))
    if side is not None:
        expected = expected.resize((side, side), Image.BICUBIC)
    assert got.shape == np.asarray(expected).shape
    assert np.abs(got.astype(int) - np.asarray(expected)).max() <= 1


@pytest.mark.parametrize("reader", list(READERS))
def test_every_reader_refuses_a_bomb_by_name(reader: str, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    bomb(folder / "big.png", 13000)
    with pytest.raises((ImageReadError, ImageSizeError, BadDataError, ValueError, RuntimeError)) as err:
        READERS[reader][0](folder / "big.png", tmp_path)
    assert "big.png" in str(err.value) and "--max_pixels" in str(err.value)


@pytest.mark.parametrize("name", list(FILES))
def test_evaluate_scores_a_file_against_its_own_loaded_pixels(name: str, tmp_path: Path) -> None:
    """A 16-bit ground truth against its 8-bit conversion (was PSNR 9.07 dB), an EXIF-rotated photo against its
    upright pixels (was a shape error): identical."""
    fake, real = tmp_path / "fake", tmp_path / "real"
    fake.mkdir()
    real.mkdir()
    FILES[name](real / name)
    Image.fromarray(np.asarray(load_image(str(real / name)))).save(fake / (Path(name).stem + ".png"))
    results = load_script("evaluate").main(["--fake_dir", str(fake), "--real_dir", str(real), "--paired",
                                            "--metrics", "psnr,l1"])
    assert results["psnr"] == math.inf and results["l1"] == 0.0


# ---------------------------------------------------------------------------------------------------- silently wrong
# Inputs that used to run and give wrong pictures or numbers (or crash deep inside): each is now refused at start
# with one line naming the file or flag and the fix, exit status 2, and nothing written. Each case builds its
# input under ``tmp`` and returns the command line (script first) and a text the error line must contain.
def turned_pair(path: Path, orientation: int) -> Path:
    """An A|B JPEG (A red, B blue) carrying an EXIF orientation tag."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.new("RGB", (2 * S, S), (255, 0, 0))
    img.paste((0, 0, 255), (S, 0, 2 * S, S))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, format="JPEG", exif=exif.tobytes())
    return path


def visuals(folder: Path, labels: List[str], by_folder: bool = False, size: int = S) -> Path:
    """What test.py writes: ``<stem>_<label>.png`` per input and visual (or ``<label>/<stem>.png``)."""
    for i in range(2):
        for label in labels:
            picture(folder / label / f"im{i}.png" if by_folder else folder / f"im{i}_{label}.png", size, size, i)
    return folder


def pictures(folder: Path, size: int, n: int = 2) -> Path:
    """``n`` random pictures of ``size`` x ``size``."""
    for i in range(n):
        picture(folder / f"im{i}.png", size, size, i)
    return folder


def weights_file(tmp: Path) -> Path:
    """A stand-in Inception weights file (the error comes before it is read)."""
    path = tmp / "weights.pth"
    path.write_bytes(b"not read")
    return path


CYCLE = ["cycle_gan_visuals", ["real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B"]]


def _tiny(name: str, tmp: Path, *flags: str) -> List[str]:
    """Tiny CPU flags, checkpoints under ``tmp/ck``."""
    return [*tiny_flags(name, tmp / "ck"), "--n_epochs", "1", "--n_epochs_decay", "0", "--display_id", "0", *flags]


def _aligned_with_turned(tmp: Path, demo: Path, phase: str, orientation: int) -> Path:
    root = tmp / "facades"
    shutil.copytree(demo / "demo_pix2pix", root)
    turned_pair(root / phase / "zz_turned.jpg", orientation)
    return root


def _exif_train(tmp: Path, demo: Path):
    root = _aligned_with_turned(tmp, demo, "train", 3)
    return (["train.py", "--model", "pix2pix", "--netG", "unet_128", "--dataroot", str(root), *_tiny("p", tmp)],
            "zz_turned.jpg: holds A and B side by side but has EXIF orientation 3 (rotated 180 degrees)")


def _exif_test(tmp: Path, demo: Path):
    root = _aligned_with_turned(tmp, demo, "test", 6)
    return (["test.py", "--model", "pix2pix", "--netG", "unet_128", "--dataroot", str(root), "--results_dir",
             str(tmp / "res"), *tiny_flags("p", tmp / "ck")], "zz_turned.jpg: holds A and B side by side but has "
            "EXIF orientation 6")


def _evaluate(tmp: Path, fake: Path, real: Path, *flags: str) -> List[str]:
    return ["evaluate.py", "--fake_dir", str(fake), "--real_dir", str(real), *flags]


def _single_on_root(tmp: Path, demo: Path):
    root = tmp / "h2z"
    shutil.copytree(demo / "demo", root)
    return (["test.py", "--model", "test", "--dataroot", str(root), "--results_dir", str(tmp / "res"),
             *tiny_flags("t", tmp / "ck")], f"pass the folder to translate, e.g. --dataroot {root / 'testA'}")


def _results_in_data(tmp: Path, demo: Path):
    folder = tmp / "h2z" / "testA"
    shutil.copytree(demo / "demo" / "testA", folder)
    return (["test.py", "--model", "test", "--dataroot", str(folder), "--results_dir", str(folder / "results"),
             *tiny_flags("t", tmp / "ck")], f"choose a --results_dir outside {folder}")


def _data_in_results(tmp: Path, demo: Path):
    pages = tmp / "res" / "t" / "test_latest" / "images"
    shutil.copytree(demo / "demo" / "testA", pages)
    return (["test.py", "--model", "test", "--dataroot", str(pages), "--results_dir", str(tmp / "res"),
             *tiny_flags("t", tmp / "ck")], f"inside {tmp / 'res' / 't'} where this run writes its outputs")


def _checkpoints_in_data(tmp: Path, demo: Path):
    root = tmp / "h2z"
    shutil.copytree(demo / "demo", root)
    return (["train.py", "--model", "cycle_gan", "--dataroot", str(root), *_tiny("c", tmp, "--max_dataset_size", "2"),
             "--checkpoints_dir", str(root / "trainA" / "runs")], "choose a --checkpoints_dir outside")


def _cut_sizes(tmp: Path, demo: Path):
    root = tmp / "h2z"
    shutil.copytree(demo / "demo", root)
    for path in (root / "trainB").glob("*.png"):
        Image.open(path).resize((40, 36)).save(path)
    return (["train.py", "--model", "cut", "--dataroot", str(root), "--preprocess", "none",
             *_tiny("cut", tmp, "--max_dataset_size", "2")],
            "--model cut with --nce_idt feeds A and B images through G as one batch, so they need one size")


SILENT_CASES: Dict[str, Callable[[Path, Path], tuple]] = {
    "aligned-exif-3-train": _exif_train,  # A and B swapped
    "aligned-exif-6-test": _exif_test,  # A and B mixed
    "evaluate-test-visuals": lambda tmp, demo: (
        _evaluate(tmp, visuals(tmp / "images", CYCLE[1]), pictures(tmp / "real", S), "--metrics", "swd"),
        "holds test.py's visuals (_fake_A, _fake_B, _real_A, _real_B, _rec_A, _rec_B per input): without "
        "--fake_suffix they would all be scored as one set; pass --fake_suffix _fake_B (or _fake_A)"),
    "evaluate-test-visuals-as-real": lambda tmp, demo: (
        _evaluate(tmp, pictures(tmp / "fake", S), visuals(tmp / "images", ["real_A", "fake_B", "real_B"]),
                  "--metrics", "swd"), "pass --real_suffix _real_B (or _real_A)"),
    "evaluate-visuals-by-folder": lambda tmp, demo: (
        _evaluate(tmp, visuals(tmp / "images", ["real_A", "fake_B", "real_B"], by_folder=True),
                  pictures(tmp / "real", S), "--metrics", "swd"), f"pass --fake_dir {tmp / 'images' / 'fake_B'}"),
    "evaluate-sizes-differ": lambda tmp, demo: (
        _evaluate(tmp, pictures(tmp / "fake", 32), pictures(tmp / "real", S), "--metrics", "swd"),
        "swd need fake and real images of one size, but the fake images"),
    "evaluate-size-1": lambda tmp, demo: (
        _evaluate(tmp, pictures(tmp / "fake", S), pictures(tmp / "real", S), "--metrics", "swd", "--size", "1"),
        "swd needs images of at least 16x16, but the fake images"),
    "evaluate-paired-shapes": lambda tmp, demo: (
        _evaluate(tmp, pictures(tmp / "fake", 32), pictures(tmp / "real", S), "--paired"),
        "psnr, ssim, l1 need fake and real images of one size"),
    "evaluate-paired-size-1": lambda tmp, demo: (
        _evaluate(tmp, pictures(tmp / "fake", S), pictures(tmp / "real", S), "--paired", "--size", "1"),
        "ssim needs images of at least 11x11"),
    "evaluate-fid-one-image": lambda tmp, demo: (
        _evaluate(tmp, pictures(tmp / "fake", S, 1), pictures(tmp / "real", S), "--metrics", "kid",
                  "--inception_weights", str(weights_file(tmp))), "kid needs at least 2 images per set"),
    "single-on-cyclegan-root": _single_on_root,
    "results-inside-dataroot": _results_in_data,
    "dataroot-inside-results": _data_in_results,
    "checkpoints-inside-data": _checkpoints_in_data,
    "cut-preprocess-none-sizes": _cut_sizes,
}


def tree(folder: Path) -> Dict[str, bytes]:
    """Every file under ``folder`` with its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", list(SILENT_CASES))
def test_silently_wrong_input_is_one_line(case: str, demo_root: Path, tmp_path: Path) -> None:
    argv, expected = SILENT_CASES[case](tmp_path, demo_root)
    before = tree(tmp_path)
    env = {k: v for k, v in os.environ.items() if k not in ("IMG2IMG_DEBUG", "IMG2IMG_INCEPTION_WEIGHTS")}
    res = subprocess.run([sys.executable, str(ROOT / argv[0]), *argv[1:]], cwd=ROOT, capture_output=True, text=True,
                         timeout=300, env=env)
    lines = [line for line in res.stderr.splitlines() if line.strip()]
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr[-3000:]
    assert lines and lines[-1].startswith(f"{argv[0]}: error: ") and sum(": error: " in x for x in lines) == 1, lines
    assert expected in lines[-1], lines[-1]
    assert tree(tmp_path) == before, "a refused start must write nothing"


def test_cut_with_every_position_trains(demo_root: Path, tmp_path: Path) -> None:
    """``--num_patches 0`` (documented as every position) trains: all H*W positions of each layer are patches."""
    run_train(["--model", "cut", "--dataroot", str(demo_root / "demo"), "--num_patches", "0", "--netF_nc", "8",
               *_tiny("all", tmp_path, "--max_dataset_size", "2")])
    assert (tmp_path / "ck" / "all" / "latest_net_F.pth").is_file()


def test_fastcut_takes_a_and_b_of_different_sizes(demo_root: Path, tmp_path: Path) -> None:
    """Without --nce_idt, B never goes through G with A: --preprocess none with other B sizes is fine."""
    root = tmp_path / "h2z"
    shutil.copytree(demo_root / "demo", root)
    for path in (root / "trainB").glob("*.png"):
        Image.open(path).resize((40, 36)).save(path)
    run_train(["--model", "cut", "--CUT_mode", "FastCUT", "--dataroot", str(root), "--preprocess", "none",
               *_tiny("fast", tmp_path, "--max_dataset_size", "2")])
    assert (tmp_path / "ck" / "fast" / "latest_net_G.pth").is_file()


@pytest.mark.parametrize("orientation,refused", [(1, False), (2, True), (3, True), (6, True), (8, True)])
@pytest.mark.parametrize("full", [True, False], ids=["decode", "headers"])
def test_turned_pair_is_refused_unless_upright(orientation: int, refused: bool, full: bool, tmp_path: Path) -> None:
    path = turned_pair(tmp_path / "pair.jpg", orientation)
    check = check_image(str(path), scan_opt(preprocess="none"), full=full, side_by_side=True)
    assert (check.problem is not None) == refused, check.problem
    alone = check_image(str(path), scan_opt(preprocess="none"), full=full)  # one picture: turned upright, fine
    assert alone.problem is None and ("exif" in alone.kinds) == (orientation != 1)


def test_turned_pair_is_left_out_with_bad_data_skip(demo_root: Path, tmp_path: Path, caplog) -> None:
    root = _aligned_with_turned(tmp_path, demo_root, "train", 3)
    opt = TrainOptions().parse(["--model", "pix2pix", "--dataroot", str(root), "--bad_data", "skip",
                                *tiny_flags("p", tmp_path / "ck")])
    loader = data.create_dataset(opt)
    assert all("zz_turned" not in p for p in loader.dataset.AB_paths) and len(loader.dataset) > 0
    assert "zz_turned.jpg: holds A and B side by side but has EXIF orientation 3" in caplog.text


def test_visuals_check_leaves_other_folders_alone(tmp_path: Path) -> None:
    """Only a folder with several visual labels per input is refused; a suffix or one label is fine."""
    from util.metrics.images import visuals_folder_problem

    images = visuals(tmp_path / "images", ["real_A", "fake_B", "real_B"])
    assert visuals_folder_problem(images, "_fake_B", "--fake_dir", "fake") is None
    assert "--fake_suffix _fake_B" in visuals_folder_problem(images, None, "--fake_dir", "fake")
    mine = visuals(tmp_path / "mine", ["fake"])  # a user's own im0_fake.png, im1_fake.png
    assert visuals_folder_problem(mine, None, "--fake_dir", "fake") is None
    assert visuals_folder_problem(pictures(tmp_path / "plain", S), None, "--fake_dir", "fake") is None


def test_a_diverging_run_ends_with_one_line(demo_root: Path, tmp_path: Path) -> None:
    """``--lr 1e30``: the losses become NaN; train.py says so in one line (exit status 1), no traceback."""
    res = subprocess.run([sys.executable, str(ROOT / "train.py"), "--model", "cycle_gan", "--netG", "resnet_6blocks",
                          "--dataroot", str(demo_root / "demo"), *tiny_flags("lr", tmp_path / "ck"), "--n_epochs",
                          "1", "--n_epochs_decay", "0", "--display_id", "0", "--lr", "1e30"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300,
                         env={k: v for k, v in os.environ.items() if k != "IMG2IMG_DEBUG"})
    assert res.returncode == 1, res.stderr[-3000:]
    assert "Traceback" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("train.py: error: non-finite loss ("), res.stderr
    assert "Lower --lr" in errors[0]


def test_data_loader_workers_ignore_sighup() -> None:
    """A closed terminal sends SIGHUP to the whole process group: the workers live on while the main process
    saves (data.sampler.quiet_worker), as for Ctrl-C and SIGTERM."""
    code = ("import os, signal, time; from data.sampler import quiet_worker; quiet_worker(0); "
            "[os.kill(os.getpid(), s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)]; time.sleep(0.1); "
            "print('alive')")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "alive", res.stderr


def test_combine_replaces_existing_pairs_only_with_overwrite(demo_root: Path, tmp_path: Path) -> None:
    for fold in ("A", "B"):
        (tmp_path / fold / "train").mkdir(parents=True)
        for src in sorted((demo_root / "demo" / "trainA").glob("*.png"))[:2]:
            shutil.copy(src, tmp_path / fold / "train" / src.name)
    cmd = [sys.executable, str(ROOT / "datasets" / "combine_A_and_B.py"), "--fold_A", str(tmp_path / "A"),
           "--fold_B", str(tmp_path / "B"), "--fold_AB", str(tmp_path / "AB"), "--no_multiprocessing"]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=120).returncode == 0
    first = sorted((tmp_path / "AB" / "train").iterdir())
    assert len(first) == 2
    first[1].write_bytes(b"edited")
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert f"{first[0]} exists (and 1 more of the 2 images to write): pass --overwrite" in again.stderr
    assert first[1].read_bytes() == b"edited"
    assert subprocess.run(cmd + ["--overwrite"], capture_output=True, text=True, timeout=120).returncode == 0
    assert Image.open(first[1]).size == (64, 32)
