"""Image loading and conversion shared by every metric: all metrics take uint8 NCHW RGB tensors.

Protocol: files are listed recursively and sorted, keeping the dataset extension list
(``util.image_io.IMG_EXTENSIONS``) and only regular files (``util.image_io.list_image_files``: a FIFO would
block); each file is read by the datasets' loader ``util.image_io.load_image`` (8-bit RGB with the same
conversions: 16-bit scaled, EXIF orientation applied, alpha over white; the same pixel budget); when a ``size``
is given the image is resized to ``size x size`` (square, aspect ratio not kept, as the datasets' ``resize``)
with PIL bicubic. Without a size every image of a set must have the same size.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from util.errors import InvalidInputError, MissingPathError
from util.image_io import DEFAULT_MAX_PIXELS, IMG_EXTENSIONS, check_pixels, list_image_files
from util.image_io import load_image as read_rgb

PathLike = str | os.PathLike

# The visual labels test.py writes (``<stem>_<label>.png``, or ``<label>/<stem>.png`` for CUT): real_A, fake_B, rec_A,
# idt_B, real, fake (--model test), fake_B_rgb (colorization).
VISUAL_LABEL = re.compile(r"(?:real|fake|rec|idt)(?:_[AB])?(?:_rgb)?")
_LABELLED_STEM = re.compile(r"^(?P<stem>.+?)_(?P<label>(?:real|fake|rec|idt)(?:_[AB])?(?:_rgb)?)$")


def _preferred(labels: Iterable[str], kind: str) -> list[str]:
    """The labels of ``kind`` (``fake`` or ``real``), B first (the usual target domain)."""
    return sorted((x for x in labels if x.startswith(kind)), key=lambda x: (not x.startswith(kind + "_B"), x))


def visuals_folder_problem(folder: PathLike, suffix: str | None, flag: str, kind: str) -> str | None:
    """A one-line reason when ``folder``, read without ``suffix``, is a folder of test.py visuals (several labels such
    as real_A, fake_B, rec_A per input, or one subfolder per label) whose images would all be scored as one set.

    ``flag`` names the folder's flag (``--fake_dir``) and ``kind`` the visual to suggest (``fake``/``real``)."""
    root = Path(folder)
    if suffix or not root.is_dir():
        return None
    subdirs = sorted(d.name for d in root.iterdir() if d.is_dir() and VISUAL_LABEL.fullmatch(d.name))
    if len(subdirs) >= 2:
        wanted = _preferred(subdirs, kind) or subdirs
        return (f"{flag} {root} holds test.py's visuals in one folder per visual ({', '.join(subdirs)}): scoring "
                f"them all as one set mixes real, translated and reconstructed images; pass {flag} "
                f"{root / wanted[0]}")
    files, _skipped = list_image_files(str(root))
    labels_of: dict[str, set[str]] = {}
    for f in files:
        m = _LABELLED_STEM.match(Path(f).stem)
        if m:
            labels_of.setdefault(m.group("stem"), set()).add(m.group("label"))
    labels = sorted({label for found in labels_of.values() for label in found})
    if len(labels) < 2 or not any(len(found) >= 2 for found in labels_of.values()):
        return None
    wanted = _preferred(labels, kind) or labels
    suffix_flag = flag.replace("_dir", "_suffix")
    others = f" (or {', '.join('_' + x for x in wanted[1:])})" if len(wanted) > 1 else ""
    return (f"{flag} {root} holds test.py's visuals ({', '.join('_' + x for x in labels)} per input): without "
            f"{suffix_flag} they would all be scored as one set; pass {suffix_flag} _{wanted[0]}{others}")


def list_images(folder: PathLike, suffix: str | None = None) -> list[Path]:
    """Sorted image files under ``folder`` (recursive); with ``suffix`` only files whose stem ends with it."""
    root = Path(folder)
    if not root.is_dir():
        raise MissingPathError(f"image folder not found: {root}")
    files, _skipped = list_image_files(str(root))  # FIFOs, sockets, ... are skipped with a warning there
    found = sorted(Path(f) for f in files if not suffix or Path(f).stem.endswith(suffix))
    if not found:
        what = f" whose name ends with '{suffix}'" if suffix else ""
        raise InvalidInputError(f"no images{what} found in {root} (extensions: {' '.join(IMG_EXTENSIONS)})")
    return found


def strip_suffix(path: PathLike, suffix: str | None) -> str:
    """File stem of ``path`` without ``suffix`` (e.g. ``img1_fake_B.png`` with ``_fake_B`` -> ``img1``)."""
    stem = Path(path).stem
    if suffix and stem.endswith(suffix):
        return stem[: -len(suffix)]
    return stem


def load_image(path: PathLike, size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """One image file as a uint8 3xHxW tensor (``util.image_io.load_image``; PIL bicubic resize to ``size`` x
    ``size`` when given). Errors name the file (``ImageReadError``, ``ImageSizeError``: both ValueErrors)."""
    img = read_rgb(os.fspath(path), max_pixels)
    if size is not None and img.size != (size, size):
        check_pixels((size, size), max_pixels, os.fspath(path), "the resize to --size")
        img = img.resize((size, size), Image.BICUBIC)
    arr = np.asarray(img, dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def load_images(source: PathLike | Sequence[PathLike], size: int | None = None,
                suffix: str | None = None, max_images: int | None = None,
                max_pixels: int = DEFAULT_MAX_PIXELS) -> torch.Tensor:
    """Load a folder (or a list of files) into a uint8 Nx3xHxW tensor; see the module docstring for the protocol."""
    if isinstance(source, (str, os.PathLike)):
        paths: list[Path] = list_images(source, suffix)
    else:
        paths = [Path(p) for p in source]
        if not paths:
            raise ValueError("empty list of image files")
    if max_images is not None:
        paths = paths[:max_images]
    tensors = [load_image(p, size, max_pixels) for p in paths]
    first = tuple(tensors[0].shape)
    for p, t in zip(paths, tensors):
        if tuple(t.shape) != first:
            raise InvalidInputError(f"image {p} has size {tuple(t.shape[1:])} but {paths[0]} has {first[1:]}; "
                             "pass a size (--size) to resize all images")
    return torch.stack(tensors)


def from_model_range(images: torch.Tensor) -> torch.Tensor:
    """Generator output in [-1, 1] (NCHW float) -> uint8 as the saved PNGs: clamp, (x+1)/2*255, truncate."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    x = images.detach().float().clamp(-1.0, 1.0)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    return ((x + 1.0) / 2.0 * 255.0).to(torch.uint8)


def check_uint8(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Validate an Nx3xHxW uint8 tensor (a single 3xHxW image is given a batch axis) and return it."""
    if not torch.is_tensor(images):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(images).__name__}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dtype != torch.uint8:
        raise TypeError(f"{name} must be uint8 in [0, 255] (use util.metrics.images.from_model_range for "
                        f"[-1, 1] generator outputs), got {images.dtype}")
    if images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"{name} must be Nx3xHxW, got shape {tuple(images.shape)}")
    if images.shape[0] == 0:
        raise ValueError(f"{name} is empty")
    return images


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 NCHW tensor to ``size`` x ``size`` (torch bicubic with antialias, close to PIL bicubic)."""
    if images.shape[-2:] == (size, size):
        return images
    out = F.interpolate(images.float(), size=(size, size), mode="bicubic", antialias=True, align_corners=False)
    return out.round().clamp(0, 255).to(torch.uint8)


def batches(images: torch.Tensor, batch_size: int) -> Iterable[torch.Tensor]:
    """Yield consecutive slices of ``images`` of at most ``batch_size`` items."""
    for start in range(0, images.shape[0], batch_size):
        yield images[start:start + batch_size]
