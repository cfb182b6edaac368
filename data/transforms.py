"""The PIL-image transforms the datasets use, the official ones without importing torchvision.

``import torchvision`` costs about 160 MB of resident memory here (its package init pulls in ``torch._dynamo``,
sympy and triton) for five operations that are one PIL or tensor call each. The torchvision-named classes give the
same results as ``torchvision.transforms`` for PIL images, bit for bit, and draw their random numbers from torch's
generator in the same way (``RandomCrop`` two ``torch.randint`` calls, ``RandomHorizontalFlip`` one
``torch.rand``), so a seed gives the same crops and flips as the official code; tests/test_transforms.py compares
each with torchvision. ``ScaleWidth``, ``CropAt`` and ``HorizontalFlip`` are the official code's own steps (scale
to a width, crop at the position and flip as decided by ``get_params``, shared by paired images). ``RandomZoom`` and
``Patch`` are the CUT code's ``--preprocess zoom_and_patch`` for single-image translation (random per-side zoom,
then one cell of a grid of crop-sized patches). Every transform
is a picklable class (DataLoader workers under ``spawn``).

The resizing steps check the size they would produce against the pixel budget (``max_pixels``, the
``--max_pixels`` flag) before resizing: a 1x80000 image scaled to a width of 286 would need 6.5 G pixels.
"""
from __future__ import annotations

from typing import Any, Callable, Sequence, Union

import numpy as np
import torch
from PIL import Image

from util.image_io import DEFAULT_MAX_PIXELS, ImageSizeError, check_pixels, source_of

Transform = Callable[[Any], Any]

BICUBIC = int(Image.Resampling.BICUBIC)

# torchvision InterpolationMode values (its enum's ``.value``) -> PIL resampling constants; matched by value so that
# a dataset passing ``method=InterpolationMode.BILINEAR`` works without this module importing torchvision.
_PIL_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}

Method = Union[int, Any]  # a PIL resampling constant or a torchvision InterpolationMode


def pil_resample(method: Method) -> int:
    """Map a PIL resampling constant or a torchvision ``InterpolationMode`` to a PIL resampling constant."""
    value = getattr(method, "value", method)
    if isinstance(value, str):
        if value not in _PIL_RESAMPLE:
            raise ValueError(f"unknown interpolation method {method!r}; choose one of {', '.join(_PIL_RESAMPLE)}")
        return int(_PIL_RESAMPLE[value])
    if int(value) not in {int(r) for r in Image.Resampling}:
        raise ValueError(f"unknown interpolation method {method!r}")
    return int(value)


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        """Remember the transforms."""
        self.transforms = list(transforms)

    def __call__(self, img: Any) -> Any:
        """Return ``img`` passed through every transform."""
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        """One transform per line, like torchvision's Compose."""
        inner = "".join(f"\n    {t!r}" for t in self.transforms)
        return f"Compose({inner}\n)"


class Grayscale:
    """Convert to one-channel 8-bit grey (PIL's ITU-R 601-2 luma, as torchvision does for PIL images)."""

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return ``img.convert('L')``."""
        return img.convert("L")

    def __repr__(self) -> str:
        """Readable description."""
        return "Grayscale(num_output_channels=1)"


class Resize:
    """Resize to exactly ``(height, width)`` with a PIL resampling filter."""

    def __init__(self, size: tuple[int, int], resample: int, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        """Remember the target (height, width), the PIL resampling constant and the pixel budget."""
        self.size = (int(size[0]), int(size[1]))
        self.resample = int(resample)
        self.max_pixels = int(max_pixels)

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return the resized image (``ImageSizeError`` when the result would be over the pixel budget)."""
        check_pixels((self.size[1], self.size[0]), self.max_pixels, source_of(img), "the resize to --load_size")
        return img.resize((self.size[1], self.size[0]), self.resample)

    def __repr__(self) -> str:
        """Readable description."""
        return f"Resize(size={list(self.size)}, resample={Image.Resampling(self.resample).name})"


class RandomCrop:
    """Crop a random ``size`` x ``size`` square (no padding); the position comes from torch's generator."""

    def __init__(self, size: int) -> None:
        """Remember the square's side."""
        self.size = int(size)

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return the cropped image; raise ``ImageSizeError`` (a ValueError) when the image is smaller."""
        w, h = img.size
        th = tw = self.size
        if h < th or w < tw:
            raise ImageSizeError(f"{source_of(img)}: Required crop size {(th, tw)} is larger than input image size "
                                 f"{(h, w)}; use a smaller --crop_size or a resizing --preprocess")
        if w == tw and h == th:
            return img.crop((0, 0, w, h))
        top = int(torch.randint(0, h - th + 1, size=(1,)).item())
        left = int(torch.randint(0, w - tw + 1, size=(1,)).item())
        return img.crop((left, top, left + tw, top + th))

    def __repr__(self) -> str:
        """Readable description."""
        return f"RandomCrop(size={self.size})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p`` (one ``torch.rand`` draw per call)."""

    def __init__(self, p: float = 0.5) -> None:
        """Remember the flip probability."""
        self.p = p

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return the image, mirrored with probability ``p``."""
        return HorizontalFlip()(img) if torch.rand(1) < self.p else img

    def __repr__(self) -> str:
        """Readable description."""
        return f"RandomHorizontalFlip(p={self.p})"


class ToNormalizedTensor:
    """8-bit PIL image (RGB or L) -> float tensor C x H x W, scaled to [0, 1] and then to [-1, 1].

    The same operations as torchvision's ``ToTensor`` followed by ``Normalize(0.5, 0.5)``: ``x / 255``, then
    ``(x - 0.5) / 0.5`` in float32, so the values are identical.
    """

    def __call__(self, img: Image.Image) -> torch.Tensor:
        """Return the normalized tensor; raise ValueError for modes other than 8-bit L/RGB."""
        if img.mode not in ("L", "RGB"):
            raise ValueError(f"expected an 8-bit L or RGB image, got mode {img.mode!r}")
        arr = np.array(img, dtype=np.uint8, copy=True)
        if arr.ndim == 2:
            arr = arr[:, :, None]
        x = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
        return x.to(dtype=torch.get_default_dtype()).div(255).sub_(0.5).div_(0.5)

    def __repr__(self) -> str:
        """Readable description."""
        return "ToNormalizedTensor(mean=0.5, std=0.5)"


class ScaleWidth:
    """Resize to width ``target_size`` keeping the aspect ratio, height at least ``crop_size``."""

    def __init__(self, target_size: int, crop_size: int, method: Method = BICUBIC,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        """Remember the target width, the minimal height, the resampling method and the pixel budget."""
        self.target_size = target_size
        self.crop_size = crop_size
        self.resample = pil_resample(method)
        self.max_pixels = int(max_pixels)

    def output_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """The (w, h) an image of ``size`` = (w, h) gets: width ``target_size``, aspect kept, h >= crop_size."""
        ow, oh = size
        if ow == self.target_size and oh >= self.crop_size:
            return ow, oh
        return self.target_size, int(max(self.target_size * oh / ow, self.crop_size))

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return the resized image (unchanged when it already has the target width and enough height)."""
        w, h = self.output_size(img.size)
        if (w, h) == img.size:
            return img
        check_pixels((w, h), self.max_pixels, source_of(img), "the scale to a width of --load_size")
        return img.resize((w, h), self.resample)

    def __repr__(self) -> str:
        """Readable description for printed transforms."""
        return f"ScaleWidth(target_size={self.target_size}, crop_size={self.crop_size})"


class CropAt:
    """Crop a ``size`` square at a fixed position, only when the image is larger than it in some dimension."""

    def __init__(self, pos: tuple[int, int], size: int) -> None:
        """Remember the top-left corner and the square size."""
        self.pos = pos
        self.size = size

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return the cropped image (the official semantics, including no-op for small images)."""
        ow, oh = img.size
        x1, y1 = self.pos
        if ow > self.size or oh > self.size:
            return img.crop((x1, y1, x1 + self.size, y1 + self.size))
        return img

    def __repr__(self) -> str:
        """Readable description for printed transforms."""
        return f"CropAt(pos={self.pos}, size={self.size})"


class HorizontalFlip:
    """Flip an image left-right (deterministic; the flip decision comes from ``get_params``)."""

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return the mirrored image."""
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)

    def __repr__(self) -> str:
        """Readable description for printed transforms."""
        return "HorizontalFlip()"


class RandomZoom:
    """Scale the width and the height by factors between ``1 / scale_max`` and 1 (each side its own factor, drawn
    from torch's generator unless ``factors`` = (fw, fh) is given), never below ``crop_size`` (the first half of
    the CUT code's ``--preprocess zoom_and_patch``)."""

    def __init__(self, crop_size: int, scale_max: float, method: Method = BICUBIC,
                 max_pixels: int = DEFAULT_MAX_PIXELS, factors: Union[Sequence[float], None] = None) -> None:
        """Remember the floor, the largest shrink, the resampling method, the pixel budget and fixed factors."""
        self.crop_size = int(crop_size)
        self.scale_max = float(scale_max)
        self.resample = pil_resample(method)
        self.max_pixels = int(max_pixels)
        self.factors = None if factors is None else (float(factors[0]), float(factors[1]))

    def output_size(self, size: tuple[int, int], factors: tuple[float, float]) -> tuple[int, int]:
        """The (w, h) an image of ``size`` gets with the factors (fw, fh)."""
        w, h = size
        return (int(round(max(self.crop_size, w * factors[0]))), int(round(max(self.crop_size, h * factors[1]))))

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return the zoomed image (``ImageSizeError`` when it would be over the pixel budget)."""
        factors = self.factors
        if factors is None:
            low = 1.0 / self.scale_max
            drawn = low + (1.0 - low) * torch.rand(2, dtype=torch.float64)
            factors = (float(drawn[0]), float(drawn[1]))
        w, h = self.output_size(img.size, factors)
        check_pixels((w, h), self.max_pixels, source_of(img), "the random zoom of --preprocess zoom_and_patch")
        return img.resize((w, h), self.resample)

    def __repr__(self) -> str:
        """Readable description."""
        return f"RandomZoom(crop_size={self.crop_size}, scale_max={self.scale_max}, factors={self.factors})"


class Patch:
    """One ``size`` x ``size`` cell of a grid of such cells laid over the image at an offset within the leftover
    margin: cell ``index`` modulo the number of cells, counted down the columns (the second half of
    ``--preprocess zoom_and_patch``). ``index`` and ``offset`` (fractions of the margin, each in [0, 1)) are drawn
    from torch's generator unless given."""

    def __init__(self, size: int, index: Union[int, None] = None,
                 offset: Union[Sequence[float], None] = None) -> None:
        """Remember the side, and a fixed cell and offset if given."""
        self.size = int(size)
        self.index = None if index is None else int(index)
        self.offset = None if offset is None else (float(offset[0]), float(offset[1]))

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return the cell; ``ImageSizeError`` when the image is smaller than one cell."""
        w, h = img.size
        s = self.size
        cols, rows = w // s, h // s
        if cols == 0 or rows == 0:
            raise ImageSizeError(f"{source_of(img)}: {w}x{h} is smaller than a {s}x{s} patch of --preprocess "
                                 f"zoom_and_patch; use a smaller --crop_size")
        room_x, room_y = w - cols * s, h - rows * s
        if self.offset is None:
            x0 = int(torch.randint(0, room_x + 1, size=(1,)).item())
            y0 = int(torch.randint(0, room_y + 1, size=(1,)).item())
        else:
            x0 = min(room_x, int(self.offset[0] * (room_x + 1)))
            y0 = min(room_y, int(self.offset[1] * (room_y + 1)))
        index = self.index if self.index is not None else int(torch.randint(0, cols * rows, size=(1,)).item())
        index %= cols * rows
        left, top = x0 + (index // rows) * s, y0 + (index % rows) * s
        return img.crop((left, top, left + s, top + s))

    def __repr__(self) -> str:
        """Readable description."""
        return f"Patch(size={self.size}, index={self.index}, offset={self.offset})"
