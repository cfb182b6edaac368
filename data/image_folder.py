"""Listing the image files of a dataset folder.

``make_dataset`` walks a folder recursively in sorted order and keeps the files whose name ends with one of
``IMG_EXTENSIONS`` (case-sensitive, as in the official code) and that are regular files (or symbolic links to
them): a FIFO, socket or device with an image name is skipped with a warning saying what it is. Unlike the
official code a missing folder raises a ``FileNotFoundError`` that names the folder and the expected layout, and
``find_images`` raises ``EmptyDatasetError`` for a folder without images, so a run fails before training starts.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Optional

import torch.utils.data as data

from util.errors import MissingPathError, UserError
from util.image_io import IMG_EXTENSIONS, is_image_file, list_image_files, load_image  # noqa: F401 (API)

DEFAULT_LAYOUT = "a folder of images (" + " ".join(IMG_EXTENSIONS) + "), sub-folders are searched too"


class EmptyDatasetError(UserError, RuntimeError):
    """A dataset folder exists but holds no image file."""


def _cap(max_dataset_size: float, n: int) -> int:
    """Return min(max_dataset_size, n) as an int (``max_dataset_size`` may be ``inf``)."""
    return int(min(max_dataset_size, n))


def make_dataset(dir: str, max_dataset_size: float = float("inf"), layout: Optional[str] = None) -> list[str]:
    """List the image files under ``dir`` (recursive, sorted) and return the first ``max_dataset_size``.

    ``layout`` describes what the caller expected, for the error raised when ``dir`` is missing.
    """
    if not os.path.isdir(dir):
        expected = layout or DEFAULT_LAYOUT
        raise MissingPathError(f"dataset folder {dir} does not exist (or is not a folder); expected {expected}")
    images, _ = list_image_files(dir)  # skipped entries (FIFOs, sockets, ...) are logged there
    return images[:_cap(max_dataset_size, len(images))]


def find_images(dir: str, max_dataset_size: float = float("inf"), layout: Optional[str] = None) -> list[str]:
    """Like ``make_dataset`` but sorted and never empty: raise ``EmptyDatasetError`` naming ``dir`` otherwise."""
    paths = sorted(make_dataset(dir, float("inf"), layout))
    if not paths:
        raise EmptyDatasetError(
            f"no images found in {dir} (searched recursively for files ending in {' '.join(IMG_EXTENSIONS)})"
        )
    capped = paths[:_cap(max_dataset_size, len(paths))]
    if not capped:
        raise EmptyDatasetError(f"--max_dataset_size {max_dataset_size} leaves no image of {dir}")
    return capped


def default_loader(path: str) -> Any:
    """Open an image as RGB through the shared ``load_image`` helper."""
    return load_image(path)


class ImageFolder(data.Dataset):
    """A flat dataset of the images under ``root`` (kept for compatibility with the official module)."""

    def __init__(self, root: str, transform: Optional[Callable] = None, return_paths: bool = False,
                 loader: Callable[[str], Any] = default_loader) -> None:
        """List the images of ``root``; raise ``EmptyDatasetError`` if there are none."""
        imgs = sorted(make_dataset(root))
        if not imgs:
            raise EmptyDatasetError(
                f"Found 0 images in: {root}\nSupported image extensions are: {','.join(IMG_EXTENSIONS)}"
            )
        self.root = root
        self.imgs = imgs
        self.transform = transform
        self.return_paths = return_paths
        self.loader = loader

    def __getitem__(self, index: int) -> Any:
        """Return the (transformed) image, and its path when ``return_paths``."""
        path = self.imgs[index]
        img = self.loader(path)
        if self.transform is not None:
            img = self.transform(img)
        return (img, path) if self.return_paths else img

    def __len__(self) -> int:
        """Number of images."""
        return len(self.imgs)
