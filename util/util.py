"""Small helpers: tensor/image conversion, image saving, directories, debugging prints, atomic writes."""
from __future__ import annotations

import argparse
import functools
import io
import os
import uuid
from pathlib import Path
from typing import Iterable, Union

import numpy as np
import torch
from PIL import Image

from util.logger import get_logger

log = get_logger(__name__)

PathLike = Union[str, os.PathLike]
# --direction: which folder/half is the input (data swaps A and B for BtoA; models and checkpoints record it)
DIRECTIONS = ("AtoB", "BtoA")
NAME_MAX = 255  # bytes in one file name on the usual file systems (ext4, XFS, APFS, NTFS counts characters)


def tensor2im(input_image, imtype: type = np.uint8) -> np.ndarray:
    """Convert batch item 0 of a [-1, 1] CHW tensor batch into an HWC image array (numpy input is only cast)."""
    if isinstance(input_image, np.ndarray):
        return input_image.astype(imtype)
    if not isinstance(input_image, torch.Tensor):
        return input_image
    image_tensor = input_image.detach()
    if image_tensor.dim() == 4:
        image_tensor = image_tensor[0]
    image_numpy = image_tensor.cpu().float().numpy()
    if image_numpy.ndim == 2:  # a lone HW map: treat as one channel
        image_numpy = image_numpy[None]
    if image_numpy.shape[0] == 1:  # grayscale is tiled to RGB, as the official code does
        image_numpy = np.tile(image_numpy, (3, 1, 1))
    image_numpy = (np.transpose(image_numpy, (1, 2, 0)) + 1.0) / 2.0 * 255.0
    # DELIBERATE FIX (docs/differences.md): clip to [0, 255] before the integer cast. The official code casts without
    # clipping, so values slightly outside [-1, 1] (e.g. bf16 overshoot of Tanh) wrap around to the opposite colour.
    if np.issubdtype(np.dtype(imtype), np.integer):
        image_numpy = np.clip(np.nan_to_num(image_numpy, nan=0.0), 0.0, 255.0)
    return image_numpy.astype(imtype)


# zlib level of saved PNGs: lossless at every level; 1 writes photos several times faster than Pillow's default 6
# for slightly larger files (docs/performance.md)
PNG_COMPRESS_LEVEL = 1


@functools.lru_cache(maxsize=None)
def _pil_format(ext: str) -> str:
    """Return the Pillow format name for a file extension (PNG when unknown); Pillow's lookup costs about a ms."""
    return Image.registered_extensions().get(ext.lower(), "PNG")


def save_image(image_numpy: np.ndarray, image_path: PathLike, aspect_ratio: float = 1.0) -> None:
    """Save an HWC uint8 array to disk (atomically), stretched by ``aspect_ratio`` (width / height factor)."""
    image_pil = Image.fromarray(image_numpy)
    w, h = image_pil.size
    # DELIBERATE FIX (docs/differences.md): PIL sizes are (width, height). aspect_ratio > 1 makes the image wider,
    # < 1 makes it taller; the official code passed (h, w*ar) and so swapped the axes of non-square images.
    if aspect_ratio > 1.0:
        image_pil = image_pil.resize((int(w * aspect_ratio), h), Image.BICUBIC)
    elif aspect_ratio < 1.0:
        image_pil = image_pil.resize((w, int(h / aspect_ratio)), Image.BICUBIC)
    buffer = io.BytesIO()
    image_format = _pil_format(os.path.splitext(os.fspath(image_path))[1])
    options = {"compress_level": PNG_COMPRESS_LEVEL} if image_format == "PNG" else {}
    image_pil.save(buffer, format=image_format, **options)
    atomic_write_bytes(image_path, buffer.getvalue(), fsync=False)


def mkdirs(paths: Union[PathLike, Iterable[PathLike]]) -> None:
    """Create one directory or every directory of a list (parents included, existing ones are fine)."""
    if isinstance(paths, (str, os.PathLike)):
        mkdir(paths)
        return
    for path in paths:
        mkdir(path)


def mkdir(path: PathLike) -> None:
    """Create a directory and its parents if it does not exist."""
    os.makedirs(path, exist_ok=True)


def diagnose_network(net: torch.nn.Module, name: str = "network") -> None:
    """Log the mean absolute gradient over the parameters of ``net`` that have one."""
    mean = 0.0
    count = 0
    for param in net.parameters():
        if param.grad is not None:
            mean += torch.mean(torch.abs(param.grad.detach())).item()
            count += 1
    if count > 0:
        mean = mean / count
    log.info(name)
    log.info(mean)


def print_numpy(x: np.ndarray, val: bool = True, shp: bool = False) -> None:
    """Log the shape and/or mean, min, max, median and std of an array."""
    x = np.asarray(x, dtype=np.float64)
    if shp:
        log.info("shape, %s", x.shape)
    if val:
        x = x.flatten()
        log.info(
            "mean = %3.3f, min = %3.3f, max = %3.3f, median = %3.3f, std=%3.3f",
            np.mean(x), np.min(x), np.max(x), np.median(x), np.std(x),
        )


def fsync_dir(directory: str) -> None:
    """Flush a directory entry to disk where the OS allows it (best effort)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_name(basename: str) -> str:
    """``.<basename>.<32 hex>.tmp``, with ``basename`` shortened so the name stays within ``NAME_MAX`` bytes (a
    file name that is itself close to the limit must still be writable)."""
    token = uuid.uuid4().hex
    room = NAME_MAX - len(f"..{token}.tmp")
    raw = os.fsencode(basename)
    return f".{os.fsdecode(raw[:room]) if len(raw) > room else basename}.{token}.tmp"


def atomic_write_bytes(path: PathLike, data: bytes, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same folder, fsync and os.replace.

    Readers never see a half-written file. ``fsync=False`` skips the flush to disk (still atomic for readers,
    but a power cut may lose the new content): used for the many small result images.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    tmp = os.path.join(directory, temp_name(os.path.basename(target)))
    # os.open with 0o666 lets the umask decide the final permissions, like a plain open() would.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if fsync and os.name == "posix":
        fsync_dir(directory)


def atomic_write_text(path: PathLike, text: str, encoding: str = "utf-8", fsync: bool = True) -> None:
    """Write text atomically (see ``atomic_write_bytes``)."""
    atomic_write_bytes(path, text.encode(encoding), fsync=fsync)


def append_text(path: PathLike, text: str) -> None:
    """Append text to a log file and flush it (appends are not atomic; used for line logs)."""
    with open(Path(path), "a", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()


TRUE_WORDS = ("true", "yes", "y", "1", "on")
FALSE_WORDS = ("false", "no", "n", "0", "off")


def str2bool(text: Union[str, bool]) -> bool:
    """A command-line boolean: true/false, yes/no, 1/0, on/off (any case); for flags that also take a value."""
    if isinstance(text, bool):
        return text
    word = str(text).strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (True or False), got '{text}'")
