"""Tests of the data package and the dataset scripts (combine_A_and_B, make_dataset_aligned, cityscapes)."""
from __future__ import annotations

import argparse
import functools
import http.server
import importlib.util
import logging
import os
import pickle
import random
import shutil
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import data
from options.defaults import default_options
from data.base_dataset import PREPROCESS_MODES, ImageReadError, get_params, get_transform, load_image
from data.image_folder import IMG_EXTENSIONS, EmptyDatasetError, is_image_file, make_dataset
from util.color import lab2rgb, rgb2lab

REPO = Path(__file__).resolve().parents[1]
DATASET_SCRIPTS = REPO / "datasets"
MODES = data.list_dataset_modes()
W, H = 40, 30  # non-square source images


# ----------------------------------------------------------------------------------------------- helpers
def make_opt(dataroot: Path | str, **overrides) -> argparse.Namespace:
    """Training options with every default (the real parser's) and small sizes."""
    values = dict(dataroot=str(dataroot), name="t", checkpoints_dir="ckpt", ngf=8, ndf=8, netG="resnet_6blocks",
                  num_threads=0, load_size=32, crop_size=24, display_winsize=32)
    return default_options(overrides.pop("model", "cycle_gan"), **{**values, **overrides})


def save_noise(path: Path, w: int, h: int, seed: int) -> np.ndarray:
    """Write a random RGB PNG and return its pixels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return arr


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    """A dataroot with every layout: train/ (A|B pairs), trainA/ (4, one nested), trainB/ (3); and beside them
    single_image/ (one image in trainA/ and in trainB/)."""
    r = tmp_path / "root"
    for i in range(3):
        save_noise(r / "train" / f"{i}.png", 2 * W, H, i)
    for i in range(3):
        save_noise(r / "trainA" / f"a{i}.png", W, H, 10 + i)
    save_noise(r / "trainA" / "sub" / "a9.jpg", W, H, 19)
    for i in range(3):
        save_noise(r / "trainB" / f"b{i}.png", W, H, 20 + i)
    save_noise(r / "single_image" / "trainA" / "a.png", W, H, 30)
    save_noise(r / "single_image" / "trainB" / "b.png", W, H, 31)
    return r


def dataroot_for(mode: str, r: Path) -> Path:
    """The --dataroot a mode reads: 'single' points at one folder, 'singleimage' at the root's single_image/ (one
    image per domain) where there is one, the others at the root."""
    if mode == "singleimage" and (r / "single_image").is_dir():
        return r / "single_image"
    return r / "trainA" if mode == "single" else r


# Options a mode needs here, by mode: singleimage's epoch (100,000 patches of its one pair) cut to 4.
MODE_OPTIONS = {"singleimage": {"max_dataset_size": 4}}


def mode_opt(mode: str, r: Path, **overrides) -> argparse.Namespace:
    """Options for ``mode`` with its dataset's flags and defaults (``default_options`` parses them)."""
    return make_opt(dataroot_for(mode, r), dataset_mode=mode, **{**MODE_OPTIONS.get(mode, {}), **overrides})


def load_script(name: str):
    """Import one of the datasets/*.py scripts as a module."""
    spec = importlib.util.spec_from_file_location(name, DATASET_SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def check_tensor(t: torch.Tensor, channels: int | None = None) -> None:
    """A CHW float32 tensor within [-1, 1]."""
    assert isinstance(t, torch.Tensor)
    assert t.dtype == torch.float32
    assert t.ndim == 3
    if channels is not None:
        assert t.shape[0] == channels
    assert t.min() >= -1.0 - 1e-6 and t.max() <= 1.0 + 1e-6


# ----------------------------------------------------------------------------------------------- file listing
def test_img_extensions_are_the_official_list() -> None:
    assert IMG_EXTENSIONS == [".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP",
                              ".tif", ".TIF", ".tiff", ".TIFF"]
    assert is_image_file("x.png") and is_image_file("x.TIFF") and is_image_file("a.b.jpeg")
    assert not is_image_file("x.Png")  # case-sensitive, as official
    assert not is_image_file("x.gif") and not is_image_file("png")


def test_make_dataset_recursive_sorted_and_capped(tmp_path: Path) -> None:
    for rel in ["b.png", "a.jpg", "z/c.png", "z/y/d.bmp", "notes.txt", "e.gif", "m/f.PNG"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    got = [os.path.relpath(p, tmp_path) for p in make_dataset(str(tmp_path))]
    assert got == ["a.jpg", "b.png", os.path.join("m", "f.PNG"), os.path.join("z", "c.png"),
                   os.path.join("z", "y", "d.bmp")]
    assert len(make_dataset(str(tmp_path), 2)) == 2
    assert len(make_dataset(str(tmp_path), float("inf"))) == 5


def test_make_dataset_missing_folder_names_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match="nowhere") as err:
        make_dataset(str(missing))
    assert "expected" in str(err.value)


@pytest.mark.parametrize("mode", MODES)
def test_missing_dataroot_error_names_folder(mode: str, tmp_path: Path) -> None:
    opt = mode_opt(mode, tmp_path / "nope")
    with pytest.raises(FileNotFoundError) as err:
        data.find_dataset_using_name(mode)(opt)
    assert str(tmp_path / "nope") in str(err.value)
    assert "--dataset_mode" in str(err.value)


@pytest.mark.parametrize("mode", MODES)
def test_empty_folder_error_names_folder(mode: str, tmp_path: Path) -> None:
    for sub in ["train", "trainA", "trainB"]:
        (tmp_path / sub).mkdir()
        (tmp_path / sub / "readme.txt").write_text("not an image")
    opt = mode_opt(mode, tmp_path)
    with pytest.raises(EmptyDatasetError, match="no images found in " + str(tmp_path)):
        data.find_dataset_using_name(mode)(opt)


def test_load_image_names_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(ImageReadError, match="broken.png"):
        load_image(str(bad))
    gray = tmp_path / "g.png"
    Image.new("L", (5, 4), 128).save(gray)
    img = load_image(str(gray))
    assert img.mode == "RGB" and img.size == (5, 4)


# ----------------------------------------------------------------------------------------------- registry
def test_registry_lists_the_official_modes() -> None:
    assert {"aligned", "unaligned", "single", "colorization", "template"} <= set(MODES)
    assert "base" not in MODES


@pytest.mark.parametrize("mode", MODES)
def test_find_dataset_class_by_name(mode: str) -> None:
    cls = data.find_dataset_using_name(mode)
    assert issubclass(cls, data.BaseDataset) and cls is not data.BaseDataset
    assert cls.__name__.lower() == mode.replace("_", "") + "dataset"
    parser = argparse.ArgumentParser()
    assert data.get_option_setter(mode)(parser, True) is parser


@pytest.mark.parametrize("name", ["nonexistent", "base", "Aligned"])
def test_unknown_dataset_mode_lists_valid_names(name: str) -> None:
    with pytest.raises(ValueError) as err:
        data.find_dataset_using_name(name)
    for mode in MODES:
        assert mode in str(err.value)
    assert name in str(err.value)


# ----------------------------------------------------------------------------------------------- transforms
def expected_size(mode: str, w: int, h: int, load: int, crop: int) -> tuple[int, int]:
    """The (w, h) the official get_transform gives (our 'none' keeps the exact size)."""
    if mode in ("resize_and_crop", "crop", "scale_width_and_crop"):
        return crop, crop
    if mode == "scale_width":
        return load, int(max(load * h / w, crop))
    if mode == "none":
        return w, h
    if mode == "zoom_and_patch":  # zoomed to at least crop_size per side, then one crop_size patch
        return crop, crop
    raise AssertionError(f"add the expected output size of preprocess mode {mode} to this test")


@pytest.mark.parametrize("use_params", [False, True])
@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_preprocess_output_size_non_square(mode: str, use_params: bool) -> None:
    opt = make_opt("x", preprocess=mode, load_size=32, crop_size=24)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (53, 37, 3), dtype=np.uint8))  # 37x53
    params = get_params(opt, img.size) if use_params else None
    for grayscale in (False, True):
        out = get_transform(opt, params, grayscale=grayscale)(img)
        w, h = expected_size(mode, 37, 53, 32, 24)
        assert tuple(out.shape) == (1 if grayscale else 3, h, w)
        check_tensor(out)
    pil = get_transform(opt, params, convert=False)(img)
    assert isinstance(pil, Image.Image) and pil.size == expected_size(mode, 37, 53, 32, 24)


def test_preprocess_none_keeps_exact_pixels() -> None:
    opt = make_opt("x", preprocess="none", no_flip=True)
    arr = np.random.default_rng(1).integers(0, 256, (53, 37, 3), dtype=np.uint8)
    out = get_transform(opt)(Image.fromarray(arr))
    expected = torch.from_numpy(arr).permute(2, 0, 1).float() / 255 * 2 - 1
    assert torch.allclose(out, expected, atol=1e-6)


def test_scale_width_keeps_matching_width() -> None:
    opt = make_opt("x", preprocess="scale_width", load_size=37, crop_size=24, no_flip=True)
    img = Image.new("RGB", (37, 53))
    assert get_transform(opt, convert=False)(img).size == (37, 53)  # already right: untouched
    small = Image.new("RGB", (37, 10))
    assert get_transform(opt, convert=False)(small).size == (37, 24)  # height floor = crop_size


@pytest.mark.parametrize("bad", ["resize", "resize_and_scale", "None", ""])
def test_unknown_preprocess_raises(bad: str, root: Path) -> None:
    opt = make_opt(root, preprocess=bad)
    with pytest.raises(ValueError, match="--preprocess"):
        get_transform(opt)
    with pytest.raises(ValueError, match="--preprocess"):
        get_params(opt, (W, H))
    for mode in MODES:
        with pytest.raises(ValueError, match="--preprocess"):
            cls = data.find_dataset_using_name(mode)
            cls(mode_opt(mode, root, preprocess=bad))[0]


@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_get_params_ranges(mode: str) -> None:
    opt = make_opt("x", preprocess=mode, load_size=32, crop_size=24)
    w, h = 37, 53
    new_w, new_h = {"resize_and_crop": (32, 32), "scale_width_and_crop": (32, 32 * h // w)}.get(mode, (w, h))
    random.seed(0)
    flips, xs, ys = set(), set(), set()
    for _ in range(300):
        p = get_params(opt, (w, h))
        x, y = p["crop_pos"]
        assert 0 <= x <= max(0, new_w - 24) and 0 <= y <= max(0, new_h - 24)
        flips.add(p["flip"])
        xs.add(x)
        ys.add(y)
    assert flips == {True, False}
    assert max(xs) == max(0, new_w - 24) and max(ys) == max(0, new_h - 24) and min(xs) == 0


def test_params_flip_is_a_mirror() -> None:
    opt = make_opt("x", preprocess="crop", crop_size=24)
    img = Image.fromarray(np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8))
    plain = get_transform(opt, {"crop_pos": (5, 3), "flip": False})(img)
    flipped = get_transform(opt, {"crop_pos": (5, 3), "flip": True})(img)
    assert torch.equal(flipped, plain.flip(-1))
    assert not torch.equal(flipped, plain)
    no_flip = get_transform(make_opt("x", preprocess="crop", crop_size=24, no_flip=True), {"crop_pos": (5, 3),
                                                                                            "flip": True})(img)
    assert torch.equal(no_flip, plain)
    expected = torch.from_numpy(np.array(img)[3:27, 5:29]).permute(2, 0, 1).float() / 127.5 - 1
    assert torch.allclose(plain, expected, atol=1e-6)


@pytest.mark.parametrize("use_params", [False, True])
@pytest.mark.parametrize("mode", PREPROCESS_MODES)
def test_transforms_pickle(mode: str, use_params: bool) -> None:
    """Spawned DataLoader workers pickle the dataset and its transforms (official #203/#947)."""
    opt = make_opt("x", preprocess=mode)
    params = get_params(opt, (37, 53)) if use_params else None
    t = get_transform(opt, params, grayscale=True)
    clone = pickle.loads(pickle.dumps(t))
    img = Image.new("RGB", (37, 53), (10, 200, 30))
    assert clone(img).shape == t(img).shape


# ----------------------------------------------------------------------------------------------- datasets
OUTPUT_KEYS = {
    "aligned": {"A", "B", "A_paths", "B_paths"},
    "unaligned": {"A", "B", "A_paths", "B_paths"},
    "colorization": {"A", "B", "A_paths", "B_paths"},
    "single": {"A", "A_paths"},
    "singleimage": {"A", "B", "A_paths", "B_paths"},
    "template": {"data_A", "data_B", "path"},
}

SOURCE_SIZE = {"colorization": (2 * W, H)}  # reads the whole files of train/, not one half


@pytest.mark.parametrize("preprocess", PREPROCESS_MODES)
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_yields_normalised_tensors(mode: str, preprocess: str, root: Path) -> None:
    opt = mode_opt(mode, root, preprocess=preprocess)
    ds = data.find_dataset_using_name(mode)(opt)
    assert len(ds) > 0
    item = ds[len(ds) - 1]
    if mode in OUTPUT_KEYS:
        assert set(item) == OUTPUT_KEYS[mode]
    tensors = [v for v in item.values() if isinstance(v, torch.Tensor)]
    paths = [v for v in item.values() if isinstance(v, str)]
    assert tensors and paths and len(tensors) + len(paths) == len(item)
    src_w, src_h = SOURCE_SIZE.get(mode, (W, H))
    size = expected_size(preprocess, src_w, src_h, opt.load_size, opt.crop_size)
    for t in tensors:
        check_tensor(t)
        assert (t.shape[2], t.shape[1]) == size
    for p in paths:
        assert os.path.isfile(p)
    clone = pickle.loads(pickle.dumps(ds))  # spawn-safe datasets
    assert len(clone) == len(ds)


def test_aligned_shares_crop_and_flip(tmp_path: Path) -> None:
    half = np.random.default_rng(3).integers(0, 256, (H, W, 3), dtype=np.uint8)
    for i in range(4):
        (tmp_path / "train").mkdir(exist_ok=True)
        Image.fromarray(np.concatenate([half, half], 1)).save(tmp_path / "train" / f"{i}.png")
    random.seed(1)
    torch.manual_seed(1)
    for preprocess in ("crop", "resize_and_crop", "scale_width_and_crop"):
        opt = make_opt(tmp_path, dataset_mode="aligned", preprocess=preprocess, crop_size=16, load_size=32)
        ds = data.find_dataset_using_name("aligned")(opt)
        seen = set()
        for _ in range(3):
            for i in range(len(ds)):
                item = ds[i]
                assert torch.equal(item["A"], item["B"])
                assert item["A_paths"] == item["B_paths"] == str(tmp_path / "train" / f"{i}.png")
                seen.add(item["A"].sum().item())
        assert len(seen) > 1  # the crops/flips really are random


def test_aligned_odd_width_drops_one_column(tmp_path: Path) -> None:
    w2 = 20
    cols = np.tile(np.arange(2 * w2 + 1, dtype=np.uint8)[None, :, None] * 5, (H, 1, 3))
    (tmp_path / "train").mkdir()
    Image.fromarray(cols).save(tmp_path / "train" / "odd.png")
    opt = make_opt(tmp_path, dataset_mode="aligned", preprocess="none", no_flip=True)
    item = data.find_dataset_using_name("aligned")(opt)[0]
    assert item["A"].shape == item["B"].shape == (3, H, w2)
    to_uint8 = lambda t: ((t[0, 0] + 1) * 127.5).round().to(torch.int64)  # noqa: E731
    assert to_uint8(item["A"]).tolist() == [5 * c for c in range(w2)]
    assert to_uint8(item["B"]).tolist() == [5 * c for c in range(w2, 2 * w2)]


@pytest.mark.parametrize("preprocess", ["resize_and_crop", "scale_width_and_crop"])
def test_aligned_crop_larger_than_load_raises(preprocess: str, root: Path) -> None:
    opt = make_opt(root, dataset_mode="aligned", preprocess=preprocess, load_size=16, crop_size=24)
    with pytest.raises(ValueError, match="--crop_size"):
        data.find_dataset_using_name("aligned")(opt)


def test_aligned_crop_mode_ignores_load_size(root: Path) -> None:
    opt = make_opt(root, dataset_mode="aligned", preprocess="crop", load_size=16, crop_size=24)
    assert data.find_dataset_using_name("aligned")(opt)[0]["A"].shape == (3, 24, 24)


@pytest.mark.parametrize("direction", ["AtoB", "BtoA"])
@pytest.mark.parametrize("nc", [(1, 3), (3, 1), (1, 1), (3, 3)])
@pytest.mark.parametrize("mode", ["aligned", "unaligned", "template", "single"])
def test_grayscale_channels_follow_direction(mode: str, nc: tuple[int, int], direction: str, root: Path) -> None:
    opt = mode_opt(mode, root, input_nc=nc[0], output_nc=nc[1], direction=direction)
    item = data.find_dataset_using_name(mode)(opt)[0]
    nc_A, nc_B = nc if direction == "AtoB" else nc[::-1]
    key_A, key_B = ("data_A", "data_B") if mode == "template" else ("A", "B")
    check_tensor(item[key_A], nc_A)
    if mode != "single":
        check_tensor(item[key_B], nc_B)
    if nc_A == 1 and mode in ("unaligned", "single"):  # gray = PIL's luminance of the RGB file
        opt.preprocess, opt.no_flip = "none", True
        item = data.find_dataset_using_name(mode)(opt)[0]
        gray = np.array(Image.open(item["A_paths"]).convert("RGB").convert("L"))
        assert torch.allclose(item["A"][0], torch.from_numpy(gray) / 127.5 - 1, atol=1e-6)


def test_unaligned_pairs_and_length(root: Path) -> None:
    opt = make_opt(root, serial_batches=True, preprocess="none", no_flip=True)
    ds = data.find_dataset_using_name("unaligned")(opt)
    assert (ds.A_size, ds.B_size, len(ds)) == (4, 3, 4)
    assert ds.A_paths == sorted(ds.A_paths) and ds.A_paths[-1].endswith(os.path.join("sub", "a9.jpg"))
    for i in range(6):
        item = ds[i]
        assert item["A_paths"] == ds.A_paths[i % 4] and item["B_paths"] == ds.B_paths[i % 3]
        expected = torch.from_numpy(np.array(Image.open(ds.B_paths[i % 3]))).permute(2, 0, 1) / 127.5 - 1
        assert torch.allclose(item["B"], expected, atol=1e-6)
    random.seed(0)
    opt.serial_batches = False
    drawn = {ds[0]["B_paths"] for _ in range(30)}
    assert drawn == set(ds.B_paths)


def test_single_reads_dataroot_itself(root: Path) -> None:
    ds = data.find_dataset_using_name("single")(make_opt(root / "trainB", dataset_mode="single"))
    assert len(ds) == 3
    assert set(ds[0]) == {"A", "A_paths"} and ds[0]["A_paths"] == str(root / "trainB" / "b0.png")


def test_colorization_lab_channels(root: Path) -> None:
    opt = mode_opt("colorization", root, preprocess="none", no_flip=True)
    assert (opt.input_nc, opt.output_nc, opt.direction) == (1, 2, "AtoB")
    item = data.find_dataset_using_name("colorization")(opt)[0]
    check_tensor(item["A"], 1)
    check_tensor(item["B"], 2)
    lab = rgb2lab(np.asarray(Image.open(item["A_paths"]).convert("RGB")))
    L = torch.from_numpy(lab[..., 0]) / 50 - 1
    assert torch.allclose(item["A"][0], L, atol=1e-5)
    assert torch.allclose(item["B"][1], torch.from_numpy(lab[..., 2]) / 110, atol=1e-5)


@pytest.mark.parametrize("bad", [dict(input_nc=3), dict(output_nc=3), dict(direction="BtoA")])
def test_colorization_rejects_other_channels(bad: dict, root: Path) -> None:
    opt = mode_opt("colorization", root)
    vars(opt).update(bad)
    with pytest.raises(ValueError, match="--input_nc 1 --output_nc 2 --direction AtoB"):
        data.find_dataset_using_name("colorization")(opt)


def test_template_options_and_keys(root: Path) -> None:
    opt = mode_opt("template", root)
    assert opt.new_dataset_option == 2.0 and opt.max_dataset_size == 10
    parser = argparse.ArgumentParser()
    parser.add_argument("--max_dataset_size", type=int, default=5)
    parser = data.get_option_setter("template")(parser, False)
    assert parser.get_default("new_dataset_option") == 2.0
    assert parser.parse_args(["--new_dataset_option", "3"]).new_dataset_option == 3.0
    item = data.find_dataset_using_name("template")(opt)[0]
    assert set(item) == {"data_A", "data_B", "path"}


# ----------------------------------------------------------------------------------------------- loader wrapper
class _Capture(logging.Handler):
    """Collect the messages of one logger."""

    def __init__(self) -> None:
        """Start with no messages."""
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the formatted message."""
        self.messages.append(record.getMessage())


@pytest.mark.parametrize("mode", MODES)
def test_create_dataset_logs_and_batches(mode: str, root: Path) -> None:
    capture = _Capture()
    logger = data.log
    logger.addHandler(capture)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        loader = data.create_dataset(mode_opt(mode, root, batch_size=2, serial_batches=True))
    finally:
        logger.removeHandler(capture)
        logger.setLevel(old_level)
    cls = data.find_dataset_using_name(mode)
    assert capture.messages == [f"dataset [{cls.__name__}] was created"]
    assert isinstance(loader.dataset, cls) and isinstance(loader.dataloader, torch.utils.data.DataLoader)
    assert loader.load_data() is loader and len(loader) == len(loader.dataset)
    batches = list(loader)
    assert len(batches) == (len(loader) + 1) // 2
    first = batches[0]
    for value in first.values():
        if isinstance(value, torch.Tensor):
            assert value.shape[0] == 2 and value.dtype == torch.float32
        else:
            assert isinstance(value, list) and len(value) == 2 and all(isinstance(p, str) for p in value)
    loader.set_epoch(3)  # no DDP: a harmless no-op


def test_max_dataset_size_caps_len_and_iteration(root: Path) -> None:
    loader = data.create_dataset(make_opt(root, max_dataset_size=2, serial_batches=True))
    assert len(loader.dataset) == 2 and len(loader) == 2  # list capped by make_dataset
    assert sum(b["A"].shape[0] for b in loader) == 2
    # The loader cap alone: i * batch_size >= max_dataset_size stops the iteration (official semantics).
    for i in range(3, 6):
        save_noise(root / "trainA" / f"a{i}.png", W, H, 30 + i)
    opt = make_opt(root, serial_batches=True, batch_size=2)
    loader = data.create_dataset(opt)
    assert len(loader) == 7 and len(list(loader)) == 4
    opt.max_dataset_size = 3
    assert len(loader) == 3
    assert len(list(loader)) == 2  # batches 0 and 1 (2 < 3); batch 2 would start at item 4
    opt.max_dataset_size = 1
    assert len(list(loader)) == 1


def test_dataloader_with_a_worker(root: Path) -> None:
    loader = data.create_dataset(make_opt(root, num_threads=1, batch_size=2))
    assert loader.dataloader.num_workers == 1 and loader.dataloader.persistent_workers
    for _ in range(2):  # two epochs through the persistent worker
        batches = list(loader)
        assert len(batches) == 2
        check_tensor(batches[0]["A"][0], 3)


def epoch_batches(loader, epochs: int = 2) -> list:
    """Every batch of ``epochs`` epochs (set_epoch 1, 2, ...), as the training loop iterates them."""
    out = []
    for epoch in range(1, epochs + 1):
        loader.set_epoch(epoch)
        out.extend(list(loader))
    return out


@pytest.mark.parametrize("mode", ["unaligned", "aligned"])
def test_augmentation_is_the_same_with_0_or_2_workers(mode: str, root: Path) -> None:
    """Random crops, flips and the random B image depend on (seed, epoch, index) only, not on the workers."""
    runs = {}
    for workers in (0, 2):
        random.seed(123)  # the workers' RNG and the main process's differ: neither may matter
        loader = data.create_dataset(mode_opt(mode, root, num_threads=workers, seed=7, load_size=36, crop_size=24))
        runs[workers] = epoch_batches(loader)
        loader.close()
    assert len(runs[0]) == len(runs[2]) == 2 * len(loader)
    for a, b in zip(runs[0], runs[2]):
        assert a["A_paths"] == b["A_paths"] and a["B_paths"] == b["B_paths"]
        assert torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])
    first, second = runs[0][: len(loader)], runs[0][len(loader):]
    same = {tuple(x["A_paths"]): x["A"] for x in first}
    assert any(not torch.equal(same[tuple(x["A_paths"])], x["A"]) for x in second), "epochs must draw anew"
    other = data.create_dataset(mode_opt(mode, root, seed=8, load_size=36, crop_size=24))
    assert any(not torch.equal(a["A"], b["A"]) for a, b in zip(runs[0], epoch_batches(other)))


def test_loading_leaves_the_global_rngs_alone(root: Path) -> None:
    """Samples drawn in the main process (0 workers) neither consume nor reseed python/numpy/torch RNGs."""
    loader = data.create_dataset(mode_opt("unaligned", root, seed=7, load_size=36, crop_size=24))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    epoch_batches(loader, 1)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_close_stops_workers_and_a_new_epoch_restarts_them(root: Path) -> None:
    loader = data.create_dataset(make_opt(root, num_threads=2, batch_size=1))
    next(iter(loader))  # mid-epoch
    workers = list(loader.dataloader._iterator._workers)
    assert workers and all(w.is_alive() for w in workers)
    loader.close()
    assert not any(w.is_alive() for w in workers)
    loader.close()  # idempotent
    assert len(list(loader)) == len(loader)


def test_process_ending_mid_epoch_exits(root: Path) -> None:
    """Workers ignore SIGTERM (Ctrl-C handling); a script that stops mid-epoch must still exit, not hang."""
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); sys.path.insert(0, {str(REPO / 'tests')!r})\n"
            "import argparse, data\n"
            "from test_data import make_opt\n"
            f"loader = data.create_dataset(make_opt({str(root)!r}, num_threads=2))\n"
            "next(iter(loader))\n"
            "raise SystemExit(3)  # like an error or a NaN stop in the middle of an epoch\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)  # ~3 s
    assert proc.returncode == 3, proc.stderr[-2000:]


def test_distributed_sampler_when_world_size_above_one(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(dist, "get_rank", lambda group=None: 1)
    loader = data.create_dataset(make_opt(root))
    sampler = loader.sampler
    assert isinstance(sampler, torch.utils.data.distributed.DistributedSampler) and sampler.shuffle
    assert loader.dataloader.sampler is sampler
    assert len(loader) == 4 and len(loader.dataloader) == 2  # len() reports the full dataset under DDP
    loader.set_epoch(5)
    assert sampler.epoch == 5
    serial = data.create_dataset(make_opt(root, serial_batches=True))
    assert not serial.sampler.shuffle


# ----------------------------------------------------------------------------------------------- Lab colour
def test_lab_reference_values() -> None:
    px = np.array([[[255, 255, 255], [255, 0, 0], [0, 0, 0]]], dtype=np.uint8)
    lab = rgb2lab(px)
    assert lab.dtype == np.float32 and lab.shape == (1, 3, 3)
    np.testing.assert_allclose(lab[0, 0], [100.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(lab[0, 1], [53.24, 80.09, 67.20], atol=0.01)
    np.testing.assert_allclose(lab[0, 2], [0.0, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(rgb2lab(px.astype(np.float64) / 255), lab, atol=1e-5)
    back = lab2rgb(np.array([[[100.0, 0.0, 0.0], [53.24, 80.09, 67.20]]]))
    assert back.dtype == np.float64
    np.testing.assert_allclose(back, [[[1, 1, 1], [1, 0, 0]]], atol=1e-3)


def test_lab_round_trip() -> None:
    rgb = np.random.default_rng(4).random((16, 16, 3))
    assert np.abs(lab2rgb(rgb2lab(rgb)) - rgb).max() < 1e-4
    assert lab2rgb(np.array([[[50.0, 0.0, -200.0]]])).max() <= 1.0  # out of gamut is clipped


def test_lab_matches_skimage() -> None:
    color = pytest.importorskip("skimage.color", reason="scikit-image not installed; reference values cover Lab")
    rgb = np.random.default_rng(5).integers(0, 256, (12, 9, 3), dtype=np.uint8)
    np.testing.assert_allclose(rgb2lab(rgb), color.rgb2lab(rgb), atol=1e-3)
    lab = color.rgb2lab(rgb)
    np.testing.assert_allclose(lab2rgb(lab), color.lab2rgb(lab), atol=1e-6)


# ----------------------------------------------------------------------------------------------- prep scripts
def make_split_folders(tmp_path: Path, use_AB: bool = False) -> tuple[Path, Path]:
    """fold_A/fold_B with train (2 pairs + one unpaired A) and test (1 pair)."""
    fa, fb = tmp_path / "A", tmp_path / "B"
    for split, names in (("train", ["x0", "x1"]), ("test", ["y0"])):
        for k, name in enumerate(names):
            na, nb = (f"{name}_A.png", f"{name}_B.png") if use_AB else (f"{name}.png", f"{name}.png")
            save_noise(fa / split / na, 8, 6, k)
            save_noise(fb / split / nb, 5, 6, 100 + k)
    save_noise(fa / "train" / ("lonely_A.png" if use_AB else "lonely.png"), 8, 6, 9)
    (fa / "stray.txt").write_text("not a split")
    return fa, fb


@pytest.mark.parametrize("use_AB", [False, True])
def test_combine_without_multiprocessing_never_touches_the_pool(use_AB: bool, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    combine = load_script("combine_A_and_B")

    def no_pool(*args, **kwargs):
        """Fail the test if the pool is created."""
        raise AssertionError("Pool used with --no_multiprocessing")

    monkeypatch.setattr(combine, "Pool", no_pool)
    fa, fb = make_split_folders(tmp_path, use_AB)
    n = combine.combine(str(fa), str(fb), str(tmp_path / "AB"), use_AB=use_AB, no_multiprocessing=True)
    assert n == 3
    assert sorted(os.listdir(tmp_path / "AB" / "train")) == ["x0.png", "x1.png"]
    out = np.asarray(Image.open(tmp_path / "AB" / "train" / "x1.png"))
    a = np.asarray(Image.open(fa / "train" / ("x1_A.png" if use_AB else "x1.png")))
    b = np.asarray(Image.open(fb / "train" / ("x1_B.png" if use_AB else "x1.png")))
    assert out.shape == (6, 13, 3)
    assert np.array_equal(out, np.concatenate([a, b], 1))
    assert os.listdir(tmp_path / "AB" / "test") == ["y0.png"]
    # --num_imgs caps the sorted list per split before pairing: train keeps only 'lonely' (no B), test keeps y0.
    assert combine.combine(str(fa), str(fb), str(tmp_path / "AB2"), num_imgs=1, use_AB=use_AB,
                           no_multiprocessing=True) == 1


def test_combine_cli_with_pool(tmp_path: Path) -> None:
    fa, fb = make_split_folders(tmp_path)
    proc = subprocess.run([sys.executable, str(DATASET_SCRIPTS / "combine_A_and_B.py"), "--fold_A", str(fa),
                           "--fold_B", str(fb), "--fold_AB", str(tmp_path / "AB")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "split = train, use 3/3 images" in proc.stdout  # the unpaired file is listed, then skipped
    assert sorted(os.listdir(tmp_path / "AB" / "train")) == ["x0.png", "x1.png"]
    assert Image.open(tmp_path / "AB" / "test" / "y0.png").size == (13, 6)


def test_combine_height_mismatch_names_files(tmp_path: Path) -> None:
    combine = load_script("combine_A_and_B")
    save_noise(tmp_path / "A" / "train" / "p.png", 8, 6, 0)
    save_noise(tmp_path / "B" / "train" / "p.png", 8, 7, 1)
    with pytest.raises(ValueError, match="p.png"):
        combine.combine(str(tmp_path / "A"), str(tmp_path / "B"), str(tmp_path / "AB"), no_multiprocessing=True)


def test_make_dataset_aligned(tmp_path: Path) -> None:
    aligned = load_script("make_dataset_aligned")
    for split, n in (("train", 3), ("test", 2)):
        for i in range(n):
            save_noise(tmp_path / f"{split}A" / f"{i}.png", 10, 7, i)
            save_noise(tmp_path / f"{split}B" / f"{i}.png", 10, 7, 50 + i)
    (tmp_path / "trainA" / "nested").mkdir()
    save_noise(tmp_path / "trainA" / "nested" / "9.png", 10, 7, 9)  # top level only
    assert aligned.make_aligned(str(tmp_path)) == {"test": 2, "train": 3}
    assert sorted(os.listdir(tmp_path / "train")) == ["0000.jpg", "0001.jpg", "0002.jpg"]
    assert sorted(os.listdir(tmp_path / "test")) == ["0000.jpg", "0001.jpg"]
    assert Image.open(tmp_path / "train" / "0002.jpg").size == (20, 7)
    save_noise(tmp_path / "testB" / "extra.png", 10, 7, 99)
    with pytest.raises(ValueError, match="testA has 2 images but testB has 3"):
        aligned.make_aligned(str(tmp_path))


def test_make_dataset_aligned_cli_missing_folder(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, str(DATASET_SCRIPTS / "make_dataset_aligned.py"), "--dataset-path",
                           str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "testA" in proc.stderr


def fake_cityscapes(root: Path, counts: dict[str, int]) -> tuple[Path, Path]:
    """A gtFine/leftImg8bit tree in the Cityscapes layout: two cities, a photo and a colour label map per id."""
    gt, left = root / "gtFine", root / "leftImg8bit"
    for split, n in counts.items():
        for i in range(n):
            city = "aachen" if i % 2 == 0 else "bremen"
            stem = f"{city}_{i:06d}_000019"
            save_noise(left / split / city / f"{stem}_leftImg8bit.png", 40, 20, i)
            label = np.zeros((20, 40, 3), np.uint8)
            label[:, : 10 + i] = (128, 64, 128)  # a flat "road" colour, different per image
            (gt / split / city).mkdir(parents=True, exist_ok=True)
            Image.fromarray(label).save(gt / split / city / f"{stem}_gtFine_color.png")
            Image.fromarray(label[:, :, 0]).save(gt / split / city / f"{stem}_gtFine_labelIds.png")  # ignored
    return gt, left


def test_prepare_cityscapes_writes_aligned_and_unaligned(tmp_path: Path) -> None:
    gt, left = fake_cityscapes(tmp_path, {"train": 3, "val": 2})
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(DATASET_SCRIPTS / "prepare_cityscapes_dataset.py"), "--gtFine_dir",
                           str(gt), "--leftImg8bit_dir", str(left), "--output_dir", str(out), "--size", "16"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "full Cityscapes train split has 2975" in proc.stdout + proc.stderr  # a subset: reported, not refused
    assert sorted(os.listdir(out)) == ["test", "testA", "testB", "train", "trainA", "trainB"]
    assert sorted(os.listdir(out / "train")) == ["0.jpg", "1.jpg", "2.jpg"]
    assert sorted(os.listdir(out / "testA")) == ["0_A.jpg", "1_A.jpg"]
    assert sorted(os.listdir(out / "testB")) == ["0_B.jpg", "1_B.jpg"]
    # sorted by city then id: aachen 0, 2, then bremen 1; photo on the left, label on the right
    pair = np.asarray(Image.open(out / "train" / "1.jpg"), np.float64)
    assert pair.shape == (16, 32, 3)
    photo = np.asarray(Image.open(left / "train" / "aachen" / "aachen_000002_000019_leftImg8bit.png").convert("RGB")
                       .resize((16, 16), Image.BICUBIC), np.float64)
    assert np.abs(pair[:, :16] - photo).mean() < 4  # JPEG at quality 100
    assert np.abs(pair[:, :16] - np.asarray(Image.open(out / "trainA" / "1_A.jpg"), np.float64)).mean() < 4
    road = pair[8, 16:18]  # the left edge of the label half is road colour
    assert np.abs(road - (128, 64, 128)).max() < 12
    opt = make_opt(out, dataset_mode="aligned", load_size=16, crop_size=16, no_flip=True)
    item = data.find_dataset_using_name("aligned")(opt)[0]
    assert item["A"].shape == item["B"].shape == (3, 16, 16)


def test_prepare_cityscapes_errors_name_the_problem(tmp_path: Path) -> None:
    prepare = load_script("prepare_cityscapes_dataset")
    gt, left = fake_cityscapes(tmp_path, {"train": 2, "val": 1})
    with pytest.raises(FileNotFoundError, match="--gtFine_dir"):
        prepare.prepare(str(tmp_path / "nowhere"), str(left), str(tmp_path / "out"))
    with pytest.raises(FileNotFoundError, match="--leftImg8bit_dir"):
        prepare.prepare(str(gt), str(tmp_path / "nowhere"), str(tmp_path / "out"))
    orphan = left / "val" / "bremen" / "bremen_000077_000019_leftImg8bit.png"
    save_noise(orphan, 40, 20, 7)
    with pytest.raises(ValueError, match="photo without label: .*bremen_000077_000019_leftImg8bit.png"):
        prepare.prepare(str(gt), str(left), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()  # both splits are checked before anything is written


def _pixel_budget_worlds(tmp_path: Path) -> dict[str, list[str]]:
    """For each dataset script that reads images: the arguments of a run over one 10x7 pair."""
    fa, fb = make_split_folders(tmp_path / "combine")
    for split in ("trainA", "trainB", "testA", "testB"):
        save_noise(tmp_path / "aligned" / split / "0.png", 10, 7, 1)
    gt, left = fake_cityscapes(tmp_path / "city", {"train": 1, "val": 1})
    return {"combine_A_and_B": ["--fold_A", str(fa), "--fold_B", str(fb), "--fold_AB", str(tmp_path / "AB"),
                                "--no_multiprocessing"],
            "make_dataset_aligned": ["--dataset-path", str(tmp_path / "aligned")],
            "prepare_cityscapes_dataset": ["--gtFine_dir", str(gt), "--leftImg8bit_dir", str(left), "--output_dir",
                                           str(tmp_path / "city_out"), "--size", "16"]}


@pytest.mark.parametrize("script", ["combine_A_and_B", "make_dataset_aligned", "prepare_cityscapes_dataset"])
def test_dataset_scripts_take_the_pixel_budget_their_message_names(script: str, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture) -> None:
    """An image over the budget is refused by name, and the --max_pixels that the message suggests exists."""
    from util.image_io import ImageSizeError

    argv = _pixel_budget_worlds(tmp_path)[script]
    main = load_script(script).main
    with pytest.raises(ImageSizeError, match=r"\.png.*--max_pixels 20\b"):
        main(argv + ["--max_pixels", "20"])  # every test image has 5 x 6 or more pixels
    assert main(argv + ["--max_pixels", str(40 * 20)]) == 0  # the largest test image (cityscapes, 40 x 20) fits
    with pytest.raises(SystemExit) as bad:
        main(argv + ["--max_pixels", "0"])
    assert bad.value.code == 2 and "--max_pixels" in capsys.readouterr().err


# ----------------------------------------------------------------------------------------------- download scripts
DOWNLOADS = {
    "download_cyclegan_dataset.sh": ["apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo",
                                     "cezanne2photo", "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes",
                                     "facades", "iphone2dslr_flower", "ae_photos", "mini", "mini_pix2pix",
                                     "mini_colorization"],
    "download_pix2pix_dataset.sh": ["cityscapes", "night2day", "edges2handbags", "edges2shoes", "facades", "maps"],
    "download_cut_dataset.sh": ["apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo",
                                "cezanne2photo", "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades",
                                "iphone2dslr_flower", "ae_photos", "grumpifycat"],
}
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="the download scripts need bash")


def run_script(script: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a download script with bash."""
    local = {"no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost"}
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **local, **(env or {})})


@needs_bash
@pytest.mark.parametrize("script", sorted(DOWNLOADS))
def test_download_unknown_name_lists_valid_ones(script: str) -> None:
    for args in (["no_such_set"], []):
        proc = run_script(DATASET_SCRIPTS / script, *args)
        assert proc.returncode == 1
        for name in DOWNLOADS[script]:
            assert name in proc.stdout + proc.stderr


@needs_bash
@pytest.mark.parametrize("script", sorted(DOWNLOADS))
def test_download_cityscapes_prints_licence_note(script: str) -> None:
    proc = run_script(DATASET_SCRIPTS / script, "cityscapes")
    assert proc.returncode == 1
    assert "prepare_cityscapes_dataset.py" in proc.stdout + proc.stderr


class _Quiet(http.server.SimpleHTTPRequestHandler):
    """A file server that does not log requests."""

    def log_message(self, *args) -> None:
        """Drop the request log."""


@pytest.fixture()
def local_server(tmp_path: Path):
    """Serve tmp_path/served over http on localhost (no network)."""
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(_Quiet, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@needs_bash
@pytest.mark.parametrize("script", sorted(DOWNLOADS))
def test_download_from_local_server(script: str, tmp_path: Path, local_server) -> None:
    served, url = local_server
    name = "facades"
    src = tmp_path / "src" / name / "trainA"
    save_noise(src / "1.png", 4, 4, 0)
    if script != "download_pix2pix_dataset.sh":  # the CycleGAN server's .zip archives (CUT's script uses them too)
        with zipfile.ZipFile(served / f"{name}.zip", "w") as zf:
            zf.write(src / "1.png", f"{name}/trainA/1.png")
    else:
        shutil.make_archive(str(served / name), "gztar", root_dir=tmp_path / "src", base_dir=name)
    copy = tmp_path / "repo" / "datasets"
    copy.mkdir(parents=True)
    shutil.copy(DATASET_SCRIPTS / script, copy / script)
    shutil.copy(DATASET_SCRIPTS / "download_archive.sh", copy / "download_archive.sh")  # their shared body
    proc = run_script(copy / script, name, env={"DATASET_BASE_URL": url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (copy / name / "trainA" / "1.png").is_file()
    assert sorted(p.name for p in copy.iterdir()) == sorted([script, "download_archive.sh", name])  # archive removed
    # A name the server does not have: an HTTP error, exit 1, no partial archive left.
    proc = run_script(copy / script, "maps", env={"DATASET_BASE_URL": url})
    assert proc.returncode == 1 and "maps" in proc.stderr
    assert sorted(p.name for p in copy.iterdir()) == sorted([script, "download_archive.sh", name])


@needs_bash
@pytest.mark.parametrize("script", sorted(DOWNLOADS))
def test_download_unreachable_server(script: str, tmp_path: Path) -> None:
    copy = tmp_path / "datasets"
    copy.mkdir()
    shutil.copy(DATASET_SCRIPTS / script, copy / script)
    shutil.copy(DATASET_SCRIPTS / "download_archive.sh", copy / "download_archive.sh")  # their shared body
    proc = run_script(copy / script, "facades", env={"DATASET_BASE_URL": "http://127.0.0.1:9"})
    assert proc.returncode == 1
    assert "cannot reach http://127.0.0.1:9/facades" in proc.stderr and "check your network" in proc.stderr
    assert sorted(p.name for p in copy.iterdir()) == sorted([script, "download_archive.sh"])  # no partial file
