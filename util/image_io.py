"""The one way this project lists and reads image files: ``list_image_files`` and ``load_image`` -> 8-bit RGB.

Datasets, the pre-flight scan, evaluate.py, the metrics, the training-time evaluation, export.py --check_image
and the dataset scripts all read images through here, so every place converts 16-bit, grayscale, palette,
alpha, float and EXIF-rotated files the same way and refuses the same files with the same message:

* only regular files (and symbolic links to them) are images: a FIFO, socket or device named ``x.png`` is
  listed as skipped (opening a FIFO would wait forever), and ``load_image`` refuses it;
* an image larger than the pixel budget (``max_pixels``, the ``--max_pixels`` flag, default
  ``DEFAULT_MAX_PIXELS``) is refused from its header, before any pixel is decoded; the resizing steps of the
  data pipeline check the size they would produce against the same budget (``check_pixels``).
"""
from __future__ import annotations

import os
import stat
from typing import Any, List, Optional, Tuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from util.errors import UserError
from util.logger import get_logger
from util.ranges import Range

log = get_logger(__name__)

# 64 Mi pixels (e.g. 8192 x 8192, 192 MB as 8-bit RGB): below PIL's own decompression-bomb warning (~89 M pixels).
DEFAULT_MAX_PIXELS = 2 ** 26
MAX_PIXELS_LIMIT = 2 ** 28  # the largest --max_pixels accepted (PIL refuses images above ~179 M pixels anyway)


def add_max_pixels_flag(parser: Any, help: str) -> None:
    """Declare ``--max_pixels`` (the pixel budget of one image; 1 .. MAX_PIXELS_LIMIT) on an argparse ``parser``."""
    parser.add_argument("--max_pixels", type=Range(int, 1, MAX_PIXELS_LIMIT), default=DEFAULT_MAX_PIXELS, help=help)
SOURCE_KEY = "img2img_source"  # ``Image.info`` key naming the file an image was loaded from (for error messages)

IMG_EXTENSIONS: list[str] = [
    ".jpg", ".JPG", ".jpeg", ".JPEG",
    ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP",
    ".tif", ".TIF", ".tiff", ".TIFF",
]


def is_image_file(filename: str) -> bool:
    """Return True when ``filename`` ends with one of ``IMG_EXTENSIONS`` (case-sensitive, as the official code)."""
    return any(filename.endswith(ext) for ext in IMG_EXTENSIONS)


class ImageReadError(UserError, OSError, ValueError):
    """An image file could not be opened or decoded (the message names it); an OSError and a ValueError too, for
    the callers that catch either."""


class ImageSizeError(UserError, ValueError):
    """An image is, or would become, too large for the pixel budget, or too small for a step (names the file)."""


# ---------------------------------------------------------------------------------------------------- files
FILE_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
              (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def special_kind(path: str) -> Optional[str]:
    """What ``path`` is when it exists but is not a regular file (a FIFO, a socket, ...); else None.

    Follows symbolic links and never opens the file (opening a FIFO waits for a writer, forever).
    """
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None  # missing or inaccessible: opening it gives the precise error
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in FILE_KINDS if test(mode)), "not a regular file")


def file_kind(path: str) -> Optional[str]:
    """None for a regular file (or a symbolic link to one), else what ``path`` is, in words."""
    if os.path.isfile(path):
        return None
    if not os.path.exists(path):
        return "a broken symbolic link" if os.path.islink(path) else "missing"
    return special_kind(path) or "not a regular file"


def list_image_files(folder: str) -> Tuple[List[str], List[Tuple[str, str]]]:
    """Image files under ``folder`` (recursive, sorted) and the entries skipped as (path, what it is).

    An entry is an image when its name ends with one of ``IMG_EXTENSIONS`` and it is a regular file or a symbolic
    link to one; other entries with an image name (FIFO, socket, device, broken link) are skipped, with a warning.
    """
    images: List[str] = []
    skipped: List[Tuple[str, str]] = []
    for root, _, names in sorted(os.walk(folder)):
        for name in sorted(names):
            if not is_image_file(name):
                continue
            path = os.path.join(root, name)
            kind = file_kind(path)
            if kind is None:
                images.append(path)
            else:
                skipped.append((path, kind))
                log.warning("skipped %s: %s, not an image file", path, kind)
    return images, skipped


# ---------------------------------------------------------------------------------------------------- budget
def source_of(img: Image.Image) -> str:
    """The file an image was loaded from (kept in ``img.info`` by ``load_image``), for error messages."""
    return str(img.info.get(SOURCE_KEY, "an image"))


def check_pixels(size: Tuple[int, int], max_pixels: int, source: str, step: str = "") -> None:
    """Raise ``ImageSizeError`` when an image of ``size`` = (w, h) is over the pixel budget ``max_pixels``."""
    w, h = size
    if w * h <= max_pixels:
        return
    became = f" would become {w}x{h} in {step}" if step else f" is {w}x{h}"
    raise ImageSizeError(f"{source}{became} = {w * h:,} pixels, over the budget of --max_pixels {max_pixels:,}; "
                         "downscale or remove the image (or raise --max_pixels if the memory is there)")


EXIF_ORIENTATION = 0x0112
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def has_alpha(img: Image.Image) -> bool:
    """True for modes with an alpha channel and for images with a transparency key (palette, L, RGB)."""
    return img.mode in ALPHA_MODES or "transparency" in img.info


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode (docs/resume.md, "Bad data"); always a new image.

    16-bit grayscale (``I;16*``) is scaled by 255/65535 with rounding, not clipped as ``convert`` does; ``I``
    (32-bit) is taken as 8-bit when all values fit in 0..255, else as 16-bit; float (``F``) as 0..1 when its
    largest finite value is <= 1, else as 0..255 (+inf becomes white, NaN and -inf black). Alpha is composited
    over white. 16-bit RGB files arrive from PIL already reduced to their high byte. Palette, grayscale, 1-bit, CMYK and YCbCr go through PIL's ``convert``.
    """
    mode = img.mode
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(img).astype(np.int64)
        if mode == "I" and arr.size and 0 <= arr.min() and arr.max() <= 255:
            eight = arr.astype(np.uint8)
        else:
            eight = ((np.clip(arr, 0, 65535) + 128) // 257).astype(np.uint8)
        return Image.fromarray(eight).convert("RGB")
    if mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        finite = arr[np.isfinite(arr)]
        scale = 255.0 if finite.size and finite.max() <= 1.0 else 1.0  # judged on the finite pixels only
        arr = np.nan_to_num(arr, nan=0.0, posinf=255.0 / scale, neginf=0.0)  # +inf is white, NaN and -inf black
        return Image.fromarray(np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)).convert("RGB")
    if has_alpha(img):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def exif_orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright, also when absent or unreadable)."""
    try:
        return int(img.getexif().get(EXIF_ORIENTATION, 1) or 1)
    except Exception:  # a broken EXIF block must not make a readable image unreadable
        return 1


def load_image(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as 8-bit RGB (EXIF orientation applied, see ``to_rgb``); raise an error naming it.

    ``ImageReadError``: not a regular file, unreadable or corrupt; ``ImageSizeError``: more than ``max_pixels``
    pixels (judged from the header, before decoding). The result's ``info`` names the file (``source_of``).
    """
    kind = special_kind(path)
    if kind is not None:
        raise ImageReadError(f"cannot read image file {path}: it is {kind}, not an image file; remove it")
    try:
        with Image.open(path) as img:
            check_pixels(img.size, max_pixels, str(path))
            img.load()
            if exif_orientation(img) != 1:
                img = ImageOps.exif_transpose(img)
            rgb = to_rgb(img)
    except Image.DecompressionBombError as err:
        raise ImageReadError(f"cannot read image file {path}: too large for PIL's safety limit ({err}); "
                             "downscale it") from err
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        if isinstance(err, ImageSizeError):
            raise
        raise ImageReadError(f"cannot read image file {path}: {err}") from err
    rgb.info[SOURCE_KEY] = str(path)
    return rgb
