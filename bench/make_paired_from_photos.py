"""Derive an aligned (pix2pix) dataset from unpaired photo folders: A = a degraded view of the photo, B = the photo.

Each photo of ``<src>/<split>A`` and ``<src>/<split>B`` (both domains, interleaved A0, B0, A1, B1 ... so that the
first N files mix both) is resized to ``size`` x ``size`` (PIL bicubic), turned into A by the chosen ``mode``
and written as one A|B file ``<out>/<split>/<k>_<domain>_<stem>.jpg`` (JPEG quality 95 without chroma
subsampling, so no colour bleeds across the A|B seam; the B half is the ground truth as stored), the layout of
``--dataset_mode aligned``.

Modes (``DERIVATIONS``): ``gray`` (ITU-R 601 luma, replicated to 3 channels: a colorization task) and ``edges``
(PIL FIND_EDGES on the luma, inverted and thresholded: dark lines on white, an edges -> photo task).

Example:
    python bench/make_paired_from_photos.py --src ../shared/datasets/apple2orange --out bench/out/a2o_gray2photo
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Dict, List, Mapping, Optional, Sequence

from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from util.image_io import is_image_file, load_image  # noqa: E402
from util.logger import get_logger, setup_logging  # noqa: E402

log = get_logger("make_paired_from_photos")

EDGE_THRESHOLD = 24  # FIND_EDGES response (0..255) above which a pixel is drawn as a line
FORMAT = "jpeg-q95-444"  # part of the completeness marker: files written another way are rewritten


def to_gray(photo: Image.Image) -> Image.Image:
    """ITU-R 601 luma of the photo as a 3-channel image."""
    return photo.convert("L").convert("RGB")


def to_edges(photo: Image.Image) -> Image.Image:
    """Dark edge lines on white from the luma (FIND_EDGES, thresholded), as a 3-channel image."""
    edges = photo.convert("L").filter(ImageFilter.FIND_EDGES)
    lines = edges.point(lambda v: 0 if v > EDGE_THRESHOLD else 255)
    return lines.convert("RGB")


DERIVATIONS: Mapping[str, Callable[[Image.Image], Image.Image]] = {"gray": to_gray, "edges": to_edges}


def interleaved(src: Path, split: str) -> List[tuple[str, Path]]:
    """(domain, path) of ``<split>A`` and ``<split>B`` in sorted order, interleaved A0, B0, A1, B1, ..."""
    lists: Dict[str, List[Path]] = {}
    for domain in "AB":
        folder = src / f"{split}{domain}"
        if not folder.is_dir():
            raise FileNotFoundError(f"photo folder not found: {folder}")
        lists[domain] = sorted(p for p in folder.iterdir() if is_image_file(p.name))
        if not lists[domain]:
            raise ValueError(f"no images in {folder}")
    out: List[tuple[str, Path]] = []
    for i in range(max(len(v) for v in lists.values())):
        out.extend((d, lists[d][i]) for d in "AB" if i < len(lists[d]))
    return out


def make_pair(path: Path, size: int, derive: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """One A|B image: the derived view next to the photo, both ``size`` x ``size``."""
    photo = load_image(str(path)).resize((size, size), Image.BICUBIC)  # upright 8-bit RGB, as the datasets read it
    pair = Image.new("RGB", (2 * size, size))
    pair.paste(derive(photo), (0, 0))
    pair.paste(photo, (size, 0))
    return pair


def make_paired_from_photos(src: Path | str, out: Path | str, mode: str = "gray", size: int = 128,
                            splits: Sequence[str] = ("train", "test"), limit: Optional[int] = None) -> Dict[str, int]:
    """Write ``<out>/<split>`` A|B files for each split; existing complete splits are kept. Returns counts."""
    if mode not in DERIVATIONS:
        raise ValueError(f"--mode '{mode}' is not valid; choose one of: {', '.join(DERIVATIONS)}")
    if size < 16:
        raise ValueError(f"--size must be >= 16, got {size}")
    src, out = Path(src), Path(out)
    counts: Dict[str, int] = {}
    for split in splits:
        items = interleaved(src, split)[:limit]
        folder = out / split
        done = folder / ".complete"
        marker = f"{mode} {size} {len(items)} {FORMAT}"
        if done.is_file() and done.read_text().strip() == marker:
            counts[split] = len(items)
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for k, (domain, path) in enumerate(items):
            target = folder / f"{k:05d}_{domain}_{path.stem}.jpg"
            make_pair(path, size, DERIVATIONS[mode]).save(target, quality=95, subsampling=0)
        done.write_text(marker + "\n")
        counts[split] = len(items)
        log.info("wrote %d %s pairs (%dx%d) to %s", len(items), mode, size, size, folder)
    return counts


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, int]:
    """Command line entry point."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", required=True, help="folder with trainA, trainB, testA, testB photos")
    p.add_argument("--out", required=True, help="output folder (gets train/ and test/)")
    p.add_argument("--mode", default="gray", choices=list(DERIVATIONS), help="how A is derived from the photo")
    p.add_argument("--size", type=int, default=128, help="side of each half (square, PIL bicubic)")
    p.add_argument("--limit", type=int, default=None, help="at most this many pairs per split")
    args = p.parse_args(argv)
    setup_logging()
    return make_paired_from_photos(args.src, args.out, args.mode, args.size, limit=args.limit)


if __name__ == "__main__":
    main()
