"""The one way this project reads an image file: the extensions it lists, and ``load_image`` -> 8-bit RGB.

Datasets, the pre-flight scan, the metrics and the training-time evaluation all read images through here, so
every place converts 16-bit, grayscale, palette, alpha and EXIF-rotated files the same way and names the file
when it cannot be read.
"""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMG_EXTENSIONS: list[str] = [
    ".jpg", ".JPG", ".jpeg", ".JPEG",
    ".png", ".PNG", ".ppm", ".PPM", ".bmp", ".BMP",
    ".tif", ".TIF", ".tiff", ".TIFF",
]


def is_image_file(filename: str) -> bool:
    """Return True when ``filename`` ends with one of ``IMG_EXTENSIONS`` (case-sensitive, as the official code)."""
    return any(filename.endswith(ext) for ext in IMG_EXTENSIONS)


class ImageReadError(OSError):
    """An image file could not be opened or decoded."""


EXIF_ORIENTATION = 0x0112
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


def has_alpha(img: Image.Image) -> bool:
    """True for modes with an alpha channel and for images with a transparency key (palette, L, RGB)."""
    return img.mode in ALPHA_MODES or "transparency" in img.info


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode (docs/resume.md, "Bad data"); always a new image.

    16-bit grayscale (``I;16*``) is scaled by 255/65535 with rounding, not clipped as ``convert`` does; ``I``
    (32-bit) is taken as 8-bit when all values fit in 0..255, else as 16-bit; float (``F``) as 0..1 when its
    maximum is <= 1, else as 0..255. Alpha is composited over white. 16-bit RGB files arrive from PIL already
    reduced to their high byte. Palette, grayscale, 1-bit, CMYK and YCbCr go through PIL's ``convert``.
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
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        scale = 255.0 if arr.size and arr.max() <= 1.0 else 1.0
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


def load_image(path: str) -> Image.Image:
    """Open ``path`` as 8-bit RGB (EXIF orientation applied, see ``to_rgb``); raise ``ImageReadError`` naming it."""
    try:
        with Image.open(path) as img:
            img.load()
            if exif_orientation(img) != 1:
                img = ImageOps.exif_transpose(img)
            return to_rgb(img)
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"cannot read image file {path}: {err}") from err
