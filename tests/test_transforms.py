"""data/transforms.py against torchvision.transforms: the same pixels and the same random draws, bit for bit.

The datasets no longer import torchvision (it costs ~160 MB of resident memory); these tests pin that the
replacement changes nothing a researcher could see: every preprocess mode, grayscale, random and fixed crop/flip
parameters, several seeds. torchvision stays a requirement (the reference here; metrics use it).
"""
from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from data import transforms as ours
from data.base_dataset import PREPROCESS_MODES, BICUBIC, get_params, get_transform, pil_resample

tv = pytest.importorskip("torchvision.transforms", reason="torchvision is the reference these tests compare with")

REPO = Path(__file__).resolve().parents[1]


from util.image_io import DEFAULT_MAX_PIXELS  # noqa: E402 (the helpers below need it)


def make_opt(**overrides) -> argparse.Namespace:
    """The transform-related options with small sizes."""
    opt = dict(preprocess="resize_and_crop", load_size=40, crop_size=32, no_flip=False, max_pixels=DEFAULT_MAX_PIXELS,
               random_scale_max=3.0)
    opt.update(overrides)
    return argparse.Namespace(**opt)


def noise_image(w: int, h: int, seed: int, mode: str = "RGB") -> Image.Image:
    """A random 8-bit image."""
    rng = np.random.default_rng(seed)
    channels = 3 if mode == "RGB" else 1
    arr = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    return Image.fromarray(arr if channels == 3 else arr[:, :, 0], mode)


def torchvision_chain(opt: argparse.Namespace, params: dict | None, grayscale: bool) -> "tv.Compose":
    """The official get_transform written with torchvision (the official code), for the modes that use it."""
    steps = []
    if grayscale:
        steps.append(tv.Grayscale(1))
    if "resize" in opt.preprocess:
        steps.append(tv.Resize([opt.load_size, opt.load_size], interpolation=tv.InterpolationMode.BICUBIC))
    elif "scale_width" in opt.preprocess:
        steps.append(get_transform(opt, params, convert=False).transforms[0])  # official: a PIL resize too
    if "crop" in opt.preprocess:
        if params is None:
            steps.append(tv.RandomCrop(opt.crop_size))
        else:
            x, y = params["crop_pos"]
            s = opt.crop_size
            steps.append(tv.Lambda(lambda img: img.crop((x, y, x + s, y + s))
                                   if img.size[0] > s or img.size[1] > s else img))
    if opt.preprocess == "zoom_and_patch":  # the CUT code's steps, with our draws (torch's generator, in this order)
        steps.append(tv.Lambda(lambda img: cut_zoom(img, opt, params)))
        steps.append(tv.Lambda(lambda img: cut_patch(img, opt.crop_size, params)))
    if not opt.no_flip:
        if params is None:
            steps.append(tv.RandomHorizontalFlip())
        elif params["flip"]:
            steps.append(tv.Lambda(lambda img: img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    steps.append(tv.ToTensor())
    steps.append(tv.Normalize((0.5,) * (1 if grayscale else 3), (0.5,) * (1 if grayscale else 3)))
    return tv.Compose(steps)


def cut_zoom(img: Image.Image, opt: argparse.Namespace, params: dict | None) -> Image.Image:
    """The CUT code's random zoom: each side times its factor in [1 / random_scale_max, 1], at least crop_size."""
    if params is None:
        low = 1 / opt.random_scale_max
        fw, fh = (low + (1 - low) * torch.rand(2, dtype=torch.float64)).tolist()
    else:
        fw, fh = params["scale_factor"]
    w, h = img.size
    size = (int(round(max(opt.crop_size, w * fw))), int(round(max(opt.crop_size, h * fh))))
    return img.resize(size, Image.Resampling.BICUBIC)


def cut_patch(img: Image.Image, s: int, params: dict | None) -> Image.Image:
    """The CUT code's patch: grid of s x s cells at an offset in the margin, cell index // rows, index % rows."""
    w, h = img.size
    cols, rows = w // s, h // s
    if params is None:
        x0, y0 = torch.randint(0, w - cols * s + 1, (1,)).item(), torch.randint(0, h - rows * s + 1, (1,)).item()
        index = torch.randint(0, cols * rows, (1,)).item()
    else:
        (u, v), index = params["patch_offset"], params["patch_index"]
        x0, y0 = min(w - cols * s, int(u * (w - cols * s + 1))), min(h - rows * s, int(v * (h - rows * s + 1)))
    index %= cols * rows
    x, y = x0 + (index // rows) * s, y0 + (index % rows) * s
    return img.crop((x, y, x + s, y + s))


@pytest.mark.parametrize("preprocess", PREPROCESS_MODES)
@pytest.mark.parametrize("grayscale", [False, True])
@pytest.mark.parametrize("random_params", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_get_transform_equals_torchvision(preprocess: str, grayscale: bool, random_params: bool, seed: int) -> None:
    """Same tensor and the same state of torch's generator afterwards (the same number of draws)."""
    opt = make_opt(preprocess=preprocess)
    img = noise_image(53, 37 if "scale_width" not in preprocess else 61, seed)
    params = None if random_params else get_params(opt, img.size)
    torch.manual_seed(seed)
    mine = get_transform(opt, params, grayscale=grayscale)(img)
    state_mine = torch.get_rng_state()
    torch.manual_seed(seed)
    ref = torchvision_chain(opt, params, grayscale)(img)
    assert mine.dtype == ref.dtype == torch.float32
    assert mine.shape == ref.shape
    assert torch.equal(mine, ref)
    assert torch.equal(state_mine, torch.get_rng_state())


@pytest.mark.parametrize("size", [(32, 32), (33, 32), (32, 50), (90, 41)])
@pytest.mark.parametrize("seed", range(4))
def test_random_crop_equals_torchvision(size: tuple[int, int], seed: int) -> None:
    """Crop position drawn exactly as torchvision draws it (also the no-draw case of an exact fit)."""
    img = noise_image(*size, seed)
    torch.manual_seed(seed)
    mine = np.asarray(ours.RandomCrop(32)(img))
    torch.manual_seed(seed)
    ref = np.asarray(tv.RandomCrop(32)(img))
    assert np.array_equal(mine, ref)
    torch.manual_seed(seed)
    ours.RandomCrop(32)(img)
    after_mine = torch.rand(1)
    torch.manual_seed(seed)
    tv.RandomCrop(32)(img)
    assert torch.equal(after_mine, torch.rand(1))


def test_random_crop_too_small_raises() -> None:
    """An image smaller than the crop is an error (the data preflight reports it earlier with the flag's name)."""
    with pytest.raises(ValueError, match="larger than input image size"):
        ours.RandomCrop(32)(noise_image(31, 40, 0))


@pytest.mark.parametrize("seed", range(6))
def test_random_flip_equals_torchvision(seed: int) -> None:
    """One torch.rand draw decides, as in torchvision."""
    img = noise_image(20, 10, seed)
    torch.manual_seed(seed)
    mine = np.asarray(ours.RandomHorizontalFlip()(img))
    torch.manual_seed(seed)
    ref = np.asarray(tv.RandomHorizontalFlip()(img))
    assert np.array_equal(mine, ref)


@pytest.mark.parametrize("mode", ["RGB", "L"])
def test_normalized_tensor_equals_to_tensor_normalize(mode: str) -> None:
    """Every 8-bit value maps to exactly the float32 torchvision gives."""
    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img = Image.fromarray(np.stack([arr, arr[::-1], arr.T], axis=2)) if mode == "RGB" else Image.fromarray(arr)
    c = 3 if mode == "RGB" else 1
    ref = tv.Normalize((0.5,) * c, (0.5,) * c)(tv.ToTensor()(img))
    assert torch.equal(ours.ToNormalizedTensor()(img), ref)


def test_normalized_tensor_rejects_other_modes() -> None:
    """Only 8-bit L/RGB come out of load_image and Grayscale; anything else is a programming error, named."""
    with pytest.raises(ValueError, match="'RGBA'"):
        ours.ToNormalizedTensor()(Image.new("RGBA", (4, 4)))


@pytest.mark.parametrize("name", ["NEAREST", "BILINEAR", "BICUBIC", "BOX", "HAMMING", "LANCZOS"])
def test_pil_resample_accepts_interpolation_modes(name: str) -> None:
    """A custom dataset may pass torchvision's InterpolationMode or a PIL constant: both mean the same filter."""
    assert pil_resample(getattr(tv.InterpolationMode, name)) == int(getattr(Image.Resampling, name))
    assert pil_resample(getattr(Image.Resampling, name)) == int(getattr(Image.Resampling, name))
    assert pil_resample(BICUBIC) == int(Image.Resampling.BICUBIC)


def test_pil_resample_rejects_unknown() -> None:
    """A wrong method is an error naming it."""
    with pytest.raises(ValueError, match="unknown interpolation method"):
        pil_resample(99)


@pytest.mark.parametrize("random_params", [True, False])
def test_chain_pickles(random_params: bool) -> None:
    """The whole chain survives pickling (DataLoader workers under spawn) and gives the same output."""
    opt = make_opt(preprocess="scale_width_and_crop")
    img = noise_image(50, 60, 3)
    chain = get_transform(opt, None if random_params else get_params(opt, img.size), grayscale=True)
    copy = pickle.loads(pickle.dumps(chain))
    torch.manual_seed(0)
    a = chain(img)
    torch.manual_seed(0)
    assert torch.equal(a, copy(img))
    assert "RandomCrop" in repr(copy) or "CropAt" in repr(copy)


def test_training_and_test_paths_do_not_import_torchvision(tmp_path: Path) -> None:
    """Building every dataset mode and the models, as train.py/test.py do, leaves torchvision unimported."""
    code = (
        "import sys, data, models, options.train_options, options.test_options, util.visualizer, util.html\n"
        "import train, test\n"
        "from data.base_dataset import get_transform\n"
        "import argparse\n"
        "get_transform(argparse.Namespace(preprocess='resize_and_crop', load_size=8, crop_size=4, no_flip=False, max_pixels=1 << 26))\n"
        "for m in models.list_models(): models.find_model_using_name(m)\n"
        "for m in data.list_dataset_modes(): data.find_dataset_using_name(m)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in ('torchvision', 'sympy', 'torch_fidelity'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
