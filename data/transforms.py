"""The few PIL-image transforms the datasets use, without importing torchvision.

``import torchvision`` costs about 160 MB of resident memory here (its package init pulls in ``torch._dynamo``,
sympy and triton) for five operations that are one PIL or tensor call each. These classes give the same results as
``torchvision.transforms`` for PIL images, bit for bit, and draw their random numbers from torch's generator in the
same way (``RandomCrop`` two ``torch.randint`` calls, ``RandomHorizontalFlip`` one ``torch.rand``), so a seed gives
the same crops and flips as the official code; tests/test_transforms.py compares each with torchvision.
Every transform is a picklable class (DataLoader workers under ``spawn``).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image

Transform = Callable[[Any], Any]


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

    def __init__(self, size: tuple[int, int], resample: int) -> None:
        """Remember the target (height, width) and the PIL resampling constant."""
        self.size = (int(size[0]), int(size[1]))
        self.resample = int(resample)

    def __call__(self, img: Image.Image) -> Image.Image:
        """Return the resized image."""
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
        """Return the cropped image; raise ValueError when the image is smaller than the crop."""
        w, h = img.size
        th = tw = self.size
        if h < th or w < tw:
            raise ValueError(f"Required crop size {(th, tw)} is larger than input image size {(h, w)}")
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
        if torch.rand(1) < self.p:
            return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        return img

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
