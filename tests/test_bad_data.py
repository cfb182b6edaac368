"""Bad data: a generated corpus of awkward image files, each converted correctly or reported before training."""
from __future__ import annotations

import argparse
import io
import shutil
import struct
import zlib
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import numpy as np
import pytest
import torch
from PIL import Image

import data
from conftest import run_test, run_train, tiny_flags
from data.base_dataset import load_image
from data.image_folder import EmptyDatasetError
from data.validation import BadDataError, check_image, check_layout, describe_bad, main as validation_main, scan
from options.defaults import default_options

S = 40  # side of the generated images (>= the 32 px crops used below)


def gradient(h: int = S, w: int = S) -> np.ndarray:
    """An 8-bit RGB test picture: a distinct colour in every pixel."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // max(1, w - 1), y * 255 // max(1, h - 1), (x + y) % 256], -1).astype(np.uint8)


def noise(h: int = S, w: int = S) -> np.ndarray:
    """Random 8-bit RGB pixels (incompressible, so cutting a file really cuts pixel data)."""
    return np.random.default_rng(1).integers(0, 256, (h, w, 3)).astype(np.uint8)


def png_file(w: int, h: int, depth: int, color: bool, raw: bytes) -> bytes:
    """A PNG written by hand (PIL cannot write 16-bit RGB, nor lie about the size)."""
    def chunk(tag: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))

    header = struct.pack(">IIBBBBB", w, h, depth, 2 if color else 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png16(arr: np.ndarray, color: bool) -> bytes:
    """A 16-bit PNG of ``arr``."""
    h, w = arr.shape[:2]
    return png_file(w, h, 16, color, b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h)))


def jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, "JPEG", quality=95, **kw)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------- corpus
# name -> (writer(path), check(rgb array)) for files that must be converted; the check gets load_image's result.
G16 = (np.arange(S * S).reshape(S, S) * 40).astype(np.uint16)  # spans 0..63960: clipping would saturate
RGB16 = np.random.default_rng(0).integers(0, 65536, (S, S, 3)).astype(np.uint16)
PALETTE = Image.fromarray(gradient()).quantize(8)
RGBA = np.dstack([gradient(), np.tile(np.array([0, 128, 255], np.uint8), (S, S // 3 + 1))[:, :S]])
EXIF_MARK = (4, 6)  # centre of a red 5x5 block at (x, y) = (4, 6) before the rotation


def _exif_jpeg(path: Path) -> None:
    img = Image.new("RGB", (S, S // 2), (0, 0, 255))
    x, y = EXIF_MARK
    img.paste((255, 0, 0), (x - 2, y - 2, x + 3, y + 3))
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: viewers rotate 90 degrees clockwise
    path.write_bytes(jpeg_bytes(img, exif=exif.tobytes(), subsampling=0))


def _tiff_rgb16(path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    tifffile.imwrite(path, RGB16, photometric="rgb")


def _alpha_expected() -> np.ndarray:
    a = RGBA[..., 3:4].astype(np.float64) / 255
    return gradient() * a + 255 * (1 - a)


CONVERTED: Dict[str, Tuple[Callable[[Path], None], Callable[[np.ndarray], bool]]] = {
    "rgb.png": (lambda p: Image.fromarray(gradient()).save(p), lambda a: np.array_equal(a, gradient())),
    "gray.png": (lambda p: Image.fromarray(gradient()[..., 0]).save(p),
                 lambda a: np.array_equal(a, np.dstack([gradient()[..., 0]] * 3))),
    "onebit.png": (lambda p: Image.fromarray(gradient()[..., 0] > 127).save(p),
                   lambda a: set(np.unique(a)) <= {0, 255} and np.array_equal(a[..., 0], a[..., 2])),
    "gray16.png": (lambda p: Image.fromarray(G16).save(p),
                   lambda a: np.array_equal(a[..., 0], ((G16.astype(np.int64) + 128) // 257).astype(np.uint8))),
    "gray16.tif": (lambda p: Image.fromarray(G16).save(p),
                   lambda a: np.array_equal(a[..., 1], ((G16.astype(np.int64) + 128) // 257).astype(np.uint8))),
    "rgb16.png": (lambda p: p.write_bytes(png16(RGB16, True)),
                  lambda a: np.abs(a.astype(int) - RGB16 / 257).max() <= 1),
    "rgb16.tif": (_tiff_rgb16, lambda a: np.abs(a.astype(int) - RGB16 / 257).max() <= 1),
    "float.tif": (lambda p: Image.fromarray((gradient()[..., 0] / 255).astype(np.float32)).save(p),
                  lambda a: np.abs(a[..., 0].astype(int) - gradient()[..., 0]).max() <= 1),
    "palette.png": (lambda p: PALETTE.save(p),
                    lambda a: np.array_equal(a, np.asarray(PALETTE.convert("RGB")))),
    "palette_transparent.png": (lambda p: PALETTE.save(p, transparency=0),
                                lambda a: (a[np.asarray(PALETTE) == 0] == 255).all()
                                and np.array_equal(a[np.asarray(PALETTE) != 0],
                                                   np.asarray(PALETTE.convert("RGB"))[np.asarray(PALETTE) != 0])),
    "rgba.png": (lambda p: Image.fromarray(RGBA).save(p),
                 lambda a: np.abs(a.astype(float) - _alpha_expected()).max() <= 1),
    "gray_alpha.png": (lambda p: Image.fromarray(np.ascontiguousarray(RGBA[..., [0, 3]])).save(p),
                       lambda a: (a[RGBA[..., 3] == 0] == 255).all()),
    "cmyk.jpg": (lambda p: p.write_bytes(jpeg_bytes(Image.new("CMYK", (S, S), (0, 255, 255, 0)))),
                 lambda a: np.abs(a.astype(int) - [255, 0, 0]).max() <= 3),
    "exif_rotated.jpg": (_exif_jpeg,
                         lambda a: a.shape[:2] == (S, S // 2)  # portrait after turning upright
                         and a[EXIF_MARK[0], S // 2 - 1 - EXIF_MARK[1], 0] > 200),
}

# name -> (writer, expected problem text) for files that must be reported with their name.
REPORTED: Dict[str, Tuple[Callable[[Path], None], str]] = {
    "zero_bytes.png": (lambda p: p.write_bytes(b""), "empty file (0 bytes)"),
    "text.jpg": (lambda p: p.write_text("this is not a picture\n" * 20), "not an image PIL can read"),
    "html.png": (lambda p: p.write_text("<html><body>404 Not Found</body></html>"), "not an image PIL can read"),
    "truncated.jpg": (lambda p: p.write_bytes(_half(jpeg_bytes(Image.fromarray(noise())))), "truncated or corrupt"),
    "truncated.png": (lambda p: p.write_bytes(_half(_png(noise()))), "truncated or corrupt"),
    "bad_crc.png": (lambda p: p.write_bytes(_flip_idat(_png(noise()))), "truncated or corrupt"),
    "bomb.png": (lambda p: p.write_bytes(png_file(30000, 30000, 8, True, b"")), "too large for PIL's safety limit"),
}


def _png(arr: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(arr).save(buffer, "PNG")
    return buffer.getvalue()


def _half(blob: bytes) -> bytes:
    """The first half of a file (a download cut short)."""
    assert len(blob) > 2000
    return blob[: len(blob) // 2]


def _flip_idat(png: bytes) -> bytes:
    """Change one byte of the compressed pixel data (the chunk CRC no longer matches)."""
    at = png.index(b"IDAT") + 20
    return png[:at] + bytes([png[at] ^ 0xFF]) + png[at + 1:]


def write_corpus(folder: Path, names: List[str]) -> List[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name in names:
        writer = CONVERTED[name][0] if name in CONVERTED else REPORTED[name][0]
        writer(folder / name)
        paths.append(folder / name)
    return paths


def scan_opt(**kw) -> argparse.Namespace:
    """Training options with every default (the real parser's), small sizes."""
    return default_options(**{**dict(crop_size=32, load_size=36), **kw})


# ---------------------------------------------------------------------------------------------------- per file
@pytest.mark.parametrize("name", list(CONVERTED))
def test_converted_correctly(name: str, tmp_path: Path) -> None:
    (path,) = write_corpus(tmp_path, [name])
    img = load_image(str(path))
    assert img.mode == "RGB"
    assert CONVERTED[name][1](np.asarray(img)), name
    for full in (True, False):
        check = check_image(str(path), scan_opt(), full=full)
        assert check.problem is None, check.problem


KINDS = {"gray.png": ["grayscale"], "gray16.png": ["16-bit", "grayscale"], "rgb16.png": ["16-bit"],
         "float.tif": ["float", "grayscale"], "palette_transparent.png": ["palette", "alpha"], "rgba.png": ["alpha"],
         "cmyk.jpg": ["CMYK"], "exif_rotated.jpg": ["exif"], "rgb.png": []}


@pytest.mark.parametrize("full", [True, False], ids=["decode", "headers"])
def test_conversions_are_counted(full: bool, tmp_path: Path) -> None:
    paths = write_corpus(tmp_path, list(KINDS))
    for path in paths:
        assert check_image(str(path), scan_opt(), full=full).kinds == KINDS[path.name], path.name
    report = scan([str(p) for p in paths], scan_opt(), full=full)
    assert report.conversions == {"16-bit": 2, "grayscale": 3, "float": 1, "palette": 1, "alpha": 2, "CMYK": 1,
                                  "exif": 1}


@pytest.mark.parametrize("name", list(REPORTED))
@pytest.mark.parametrize("full", [True, False], ids=["decode", "headers"])
def test_reported_with_name_and_advice(name: str, full: bool, tmp_path: Path) -> None:
    (path,) = write_corpus(tmp_path, [name])
    check = check_image(str(path), scan_opt(), full=full)
    assert check.problem is not None and REPORTED[name][1] in check.problem, check.problem
    line = describe_bad(check)
    assert name in line and check.advice and check.advice in line


@pytest.mark.parametrize("preprocess,bad", [("crop", True), ("resize_and_crop", False), ("scale_width", False),
                                            ("none", False)])
def test_smaller_than_crop_size(preprocess: str, bad: bool, tmp_path: Path) -> None:
    path = tmp_path / "small.png"
    Image.fromarray(gradient(20, 24)).save(path)
    check = check_image(str(path), scan_opt(preprocess=preprocess), full=True)
    assert (check.problem is not None) == bad
    if bad:
        assert "--crop_size 32" in check.problem and "--preprocess" in check.advice


def test_aligned_odd_width_drops_the_last_column(tmp_path: Path) -> None:
    arr = np.zeros((S, 2 * S + 1, 3), np.uint8)
    arr[:, :S] = (10, 20, 30)
    arr[:, S:2 * S] = (200, 100, 50)
    arr[:, -1] = (255, 255, 255)  # the odd column: must not reach B
    (tmp_path / "train").mkdir()
    Image.fromarray(arr).save(tmp_path / "train" / "pair.png")
    opt = dataset_opt(tmp_path, "aligned", preprocess="none", no_flip=True)
    loader = data.create_dataset(opt)
    item = loader.dataset[0]
    assert item["A"].shape[-1] == S and item["B"].shape[-1] == S
    assert torch.allclose(item["B"][:, :, -1], torch.tensor([200, 100, 50]).view(3, 1) / 127.5 - 1)
    report = scan([str(tmp_path / "train" / "pair.png")], opt, side_by_side=True)
    assert report.conversions == {"odd-width": 1}


def test_too_narrow_pair_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "line.png"
    Image.new("RGB", (1, 40)).save(path)
    check = check_image(str(path), scan_opt(), full=True, side_by_side=True)
    assert "too narrow" in check.problem


# ---------------------------------------------------------------------------------------------------- datasets
def dataset_opt(root: Path, mode: str, **kw) -> argparse.Namespace:
    """Parsed training options for a dataset mode (with its own defaults, e.g. colorization's channels)."""
    from options.train_options import TrainOptions

    argv = ["--dataroot", str(root), "--dataset_mode", mode, "--model", "pix2pix", "--checkpoints_dir",
            str(root / "ck"), "--load_size", "36", "--crop_size", "32", "--num_threads", "0", "--gpu_ids", "-1"]
    for key, value in kw.items():
        if value is True:
            argv.append(f"--{key}")
        else:
            argv += [f"--{key}", str(value)]
    return TrainOptions().parse(argv, save=False)


# Good files per folder, by dataset mode (default 2): singleimage reads exactly one image per folder; and the flags
# that keep its epoch (100,000 patches) short.
GOOD_FILES = {"singleimage": 1}
MODE_FLAGS: Dict[str, Dict[str, object]] = {"singleimage": {"max_dataset_size": 4}}


def universal_root(root: Path, bad: str, mode: str = "") -> Dict[str, Path]:
    """A layout every dataset mode can read (train/, trainA/, trainB/), one bad file in each folder."""
    bad_files = {}
    for sub in ("train", "trainA", "trainB"):
        folder = root / sub
        folder.mkdir(parents=True)
        for i in range(GOOD_FILES.get(mode, 2)):
            Image.fromarray(np.tile(gradient(), (1, 2, 1))).save(folder / f"good{i}.png")
        REPORTED[bad][0](folder / f"broken_{sub}.png")
        bad_files[sub] = folder / f"broken_{sub}.png"
    return bad_files


def mode_root(root: Path, mode: str) -> Path:
    """The --dataroot of ``universal_root`` for a mode: single reads one folder (a root holding trainA and trainB is
    refused); pass the checkpoints folder outside it."""
    return root / "trainA" if mode == "single" else root


@pytest.mark.parametrize("mode", data.list_dataset_modes())
def test_every_dataset_mode_stops_on_bad_files(mode: str, tmp_path: Path) -> None:
    bad = universal_root(tmp_path, "zero_bytes.png", mode)
    opt = dataset_opt(mode_root(tmp_path, mode), mode, checkpoints_dir=tmp_path / "ck", **MODE_FLAGS.get(mode, {}))
    with pytest.raises(BadDataError) as err:
        data.create_dataset(opt)
    message = str(err.value)
    assert "--bad_data skip" in message and "empty file" in message
    assert any(str(p) in message for p in bad.values())


@pytest.mark.parametrize("mode", data.list_dataset_modes())
def test_every_dataset_mode_skips_bad_files(mode: str, tmp_path: Path, caplog) -> None:
    bad = universal_root(tmp_path, "truncated.png", mode)
    caplog.set_level("INFO", logger="img2img")
    opt = dataset_opt(mode_root(tmp_path, mode), mode, bad_data="skip", checkpoints_dir=tmp_path / "ck",
                      **MODE_FLAGS.get(mode, {}))
    loader = data.create_dataset(opt)
    assert "--bad_data skip: left out" in caplog.text
    for paths in (v for k, v in vars(loader.dataset).items() if k.endswith("_paths") and isinstance(v, list)):
        assert paths and not {str(p) for p in bad.values()} & set(paths)
    batches = list(loader)  # every remaining file loads
    assert len(batches) == len(loader.dataset)


def test_training_stops_before_it_starts(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_corpus(root / "trainA", ["rgb.png", "gray.png", "zero_bytes.png", "truncated.jpg", "text.jpg"])
    write_corpus(root / "trainB", ["rgb.png", "cmyk.jpg", "bad_crc.png"])
    ckpt = tmp_path / "ck"
    with pytest.raises(BadDataError) as err:
        run_train(["--model", "cycle_gan", "--dataroot", str(root), *tiny_flags("bad", ckpt), "--n_epochs", "1",
                   "--n_epochs_decay", "0"])
    message = str(err.value)
    assert message.startswith("4 of 8 image files cannot be used")
    for name in ("trainA/zero_bytes.png", "trainA/truncated.jpg", "trainA/text.jpg", "trainB/bad_crc.png"):
        assert name in message
    assert not list((ckpt / "bad").glob("*.pth"))


@pytest.mark.slow
def test_skip_policy_trains_on_the_rest(tmp_path: Path, caplog) -> None:
    root = tmp_path / "data"
    write_corpus(root / "trainA", ["rgb.png", "gray16.png", "rgba.png", "zero_bytes.png", "html.png"])
    write_corpus(root / "trainB", ["palette.png", "exif_rotated.jpg", "truncated.png", "cmyk.jpg"])
    caplog.set_level("INFO", logger="img2img")
    ckpt = tmp_path / "ck"
    run_train(["--model", "cycle_gan", "--netG", "resnet_6blocks", "--dataroot", str(root),
               *tiny_flags("skip", ckpt), "--n_epochs", "1", "--n_epochs_decay", "0", "--bad_data", "skip",
               "--pool_size", "0", "--print_freq", "1", "--save_epoch_freq", "1"])
    assert "--bad_data skip: left out 3 of 9 image files" in caplog.text
    assert "The number of training images = 3" in caplog.text
    assert "converted when loaded:" in caplog.text and "EXIF-rotated" in caplog.text
    assert (ckpt / "skip" / "latest_net_G_A.pth").is_file()


def test_nothing_left_after_skipping(tmp_path: Path) -> None:
    write_corpus(tmp_path / "trainA", ["zero_bytes.png", "text.jpg"])
    write_corpus(tmp_path / "trainB", ["rgb.png"])
    with pytest.raises(BadDataError, match="none of the 2 images in .*trainA"):
        data.create_dataset(dataset_opt(tmp_path, "unaligned", bad_data="skip"))


def test_preprocess_none_needs_one_size_for_batches(tmp_path: Path) -> None:
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    for i, side in enumerate((32, 32, 48)):
        Image.new("RGB", (side, side)).save(tmp_path / "trainA" / f"{i}.png")
        Image.new("RGB", (32, 32)).save(tmp_path / "trainB" / f"{i}.png")
    with pytest.raises(BadDataError, match="--preprocess none with --batch_size 2 needs images of one size"):
        data.create_dataset(dataset_opt(tmp_path, "unaligned", preprocess="none", batch_size=2))
    assert len(data.create_dataset(dataset_opt(tmp_path, "unaligned", preprocess="none"))) == 3


# ---------------------------------------------------------------------------------------------------- folders
def test_missing_dataroot_names_the_flag(tmp_path: Path) -> None:
    opt = default_options(dataroot=str(tmp_path / "nope"), dataset_mode="aligned")
    with pytest.raises(FileNotFoundError, match="--dataroot .*nope does not exist"):
        check_layout(opt)


def test_missing_trainB_names_it(tmp_path: Path) -> None:
    write_corpus(tmp_path / "trainA", ["rgb.png"])
    with pytest.raises(FileNotFoundError, match="trainB not found: --dataset_mode unaligned reads"):
        data.create_dataset(dataset_opt(tmp_path, "unaligned"))


def test_image_folder_as_unaligned_root_suggests_single(tmp_path: Path) -> None:
    write_corpus(tmp_path, ["rgb.png"])
    with pytest.raises(FileNotFoundError, match="--dataset_mode single"):
        data.create_dataset(dataset_opt(tmp_path, "unaligned"))


def test_empty_folder_names_it(tmp_path: Path) -> None:
    (tmp_path / "trainA").mkdir()
    (tmp_path / "trainB").mkdir()
    (tmp_path / "trainA" / "notes.txt").write_text("no images here")
    with pytest.raises(EmptyDatasetError, match="no images found in .*trainA"):
        data.create_dataset(dataset_opt(tmp_path, "unaligned"))


@pytest.mark.parametrize("model,advice", [("cycle_gan", "--model test --dataroot "),
                                          ("cut", "--dataset_mode single --dataroot ")])
def test_testB_missing_at_test_time_suggests_model_test(model: str, advice: str, demo_root: Path,
                                                        tmp_path: Path) -> None:
    root = tmp_path / "only_a"
    shutil.copytree(demo_root / "demo" / "testA", root / "testA")
    with pytest.raises(FileNotFoundError) as err:
        run_test(["--model", model, "--dataroot", str(root), "--name", "x", "--checkpoints_dir",
                  str(tmp_path / "ck"), "--results_dir", str(tmp_path / "r"), "--gpu_ids", "-1"])
    message = str(err.value)
    assert "testB does not exist" in message and advice + str(root / "testA") in message
    assert "\n" not in message


def test_cli_lists_bad_files(tmp_path: Path, caplog) -> None:
    write_corpus(tmp_path, ["rgb.png", "zero_bytes.png", "truncated.jpg"])
    caplog.set_level("INFO", logger="img2img")
    assert validation_main([str(tmp_path), "--full"]) == 1
    assert "zero_bytes.png: empty file" in caplog.text and "truncated.jpg: truncated" in caplog.text
    (tmp_path / "zero_bytes.png").unlink()
    (tmp_path / "truncated.jpg").unlink()
    assert validation_main([str(tmp_path)]) == 0


def test_cli_refuses_a_pixel_budget_out_of_range(tmp_path: Path, capsys) -> None:
    """``python -m data.validation X --max_pixels 0`` would report every file as over budget: refused as a flag."""
    write_corpus(tmp_path, ["rgb.png"])
    with pytest.raises(SystemExit) as err:
        validation_main([str(tmp_path), "--max_pixels", "0"])
    assert err.value.code == 2 and "--max_pixels" in capsys.readouterr().err
    assert validation_main([str(tmp_path), "--max_pixels", "64"]) == 1  # the 1 .. limit range is what is taken
