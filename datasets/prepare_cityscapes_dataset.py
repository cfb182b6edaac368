"""Build the Cityscapes photo <-> label dataset from the official archives (as the official script).

Cityscapes cannot be redistributed: register at https://cityscapes-dataset.com, download
``gtFine_trainvaltest.zip`` and ``leftImg8bit_trainvaltest.zip``, unzip both, then

    python datasets/prepare_cityscapes_dataset.py --gtFine_dir ./gtFine --leftImg8bit_dir ./leftImg8bit \\
        --output_dir ./datasets/cityscapes

Every photo ``leftImg8bit/<split>/<city>/<id>_leftImg8bit.png`` is paired with its colour label map
``gtFine/<split>/<city>/<id>_gtFine_color.png``; both are resized to 256x256 (PIL bicubic, as the official
script does, so the paper's numbers reproduce) and written three ways into ``<output_dir>``:

* ``train/`` and ``test/``: ``<i>.jpg``, photo | label side by side (pix2pix, ``--dataset_mode aligned``;
  AtoB is photo -> label, ``--direction BtoA`` label -> photo);
* ``trainA/`` ``testA/``: ``<i>_A.jpg`` photos; ``trainB/`` ``testB/``: ``<i>_B.jpg`` label maps (CycleGAN).

Cityscapes' ``train`` split becomes ``train``, its ``val`` split becomes ``test`` (the test split has no public
labels). Official differences: a file without its partner, or a count other than Cityscapes' 2975/500, is
reported by name instead of failing an assert (a subset is fine and says so).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Optional

from PIL import Image

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from util.errors import InvalidInputError, MissingPathError, add_debug_flag, cli_main  # noqa: E402
from util.image_io import DEFAULT_MAX_PIXELS, add_max_pixels_flag, load_image  # noqa: E402
from util.logger import get_logger, setup_logging  # noqa: E402

log = get_logger(__name__)

SPLITS = {"train": "train", "val": "test"}  # Cityscapes split -> our phase
FULL_COUNTS = {"train": 2975, "val": 500}
PHOTO_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_color.png"
SIZE = 256


def find_by_id(root: str, split: str, suffix: str, flag: str) -> dict[str, str]:
    """Map ``<city>/<id>`` to the path of every ``<root>/<split>/<city>/<id><suffix>``; error naming ``flag``."""
    folder = os.path.join(root, split)
    if not os.path.isdir(folder):
        raise MissingPathError(f"{folder} does not exist: {flag} must point at the unzipped folder that holds "
                                f"train/ and val/ (one sub-folder per city)")
    found: dict[str, str] = {}
    for city in sorted(os.listdir(folder)):
        city_dir = os.path.join(folder, city)
        if not os.path.isdir(city_dir):
            continue
        for name in sorted(os.listdir(city_dir)):
            if name.endswith(suffix):
                found[f"{city}/{name[: -len(suffix)]}"] = os.path.join(city_dir, name)
    return found


def pair_split(gtfine_dir: str, leftimg_dir: str, split: str) -> list[tuple[str, str]]:
    """(photo, label) paths of one split, sorted by city and id; error listing unpaired files."""
    photos = find_by_id(leftimg_dir, split, PHOTO_SUFFIX, "--leftImg8bit_dir")
    labels = find_by_id(gtfine_dir, split, LABEL_SUFFIX, "--gtFine_dir")
    only_photo = sorted(set(photos) - set(labels))
    only_label = sorted(set(labels) - set(photos))
    if only_photo or only_label:
        lines = [f"  photo without label: {photos[k]}" for k in only_photo[:5]]
        lines += [f"  label without photo: {labels[k]}" for k in only_label[:5]]
        more = len(only_photo) + len(only_label) - len(lines)
        raise InvalidInputError(f"the {split} split does not pair up ({len(only_photo)} photos without a "
                                f"*{LABEL_SUFFIX}, {len(only_label)} labels without a *{PHOTO_SUFFIX}):\n"
                                + "\n".join(lines) + (f"\n  ... and {more} more" if more > 0 else ""))
    if not photos:
        raise MissingPathError(f"no *{PHOTO_SUFFIX} files under {os.path.join(leftimg_dir, split)}")
    return [(photos[k], labels[k]) for k in sorted(photos)]


def load_resized(path: str, size: int = SIZE, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """The image at ``path`` as 8-bit RGB (``util.image_io.load_image``), resized to ``size`` x ``size`` (bicubic)."""
    return load_image(path, max_pixels).resize((size, size), Image.Resampling.BICUBIC)


def save_jpeg(img: Image.Image, path: str) -> None:
    """Save at the highest JPEG quality without chroma subsampling (label colours stay crisp)."""
    img.save(path, format="JPEG", quality=100, subsampling=0)


def prepare(gtfine_dir: str, leftimg_dir: str, output_dir: str, size: int = SIZE,
            max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, int]:
    """Write the aligned and the unaligned layouts for the train and val splits; return images written per phase."""
    written: dict[str, int] = {}
    pairs_by_split = {split: pair_split(gtfine_dir, leftimg_dir, split) for split in SPLITS}  # check all first
    for split, phase in SPLITS.items():
        pairs = pairs_by_split[split]
        if len(pairs) != FULL_COUNTS[split]:
            log.warning("the %s split has %d pairs (the full Cityscapes %s split has %d): writing a subset",
                        split, len(pairs), split, FULL_COUNTS[split])
        dirs = {k: os.path.join(output_dir, phase + k) for k in ("", "A", "B")}
        for d in dirs.values():
            os.makedirs(d, exist_ok=True)
        for i, (photo_path, label_path) in enumerate(pairs):
            photo, label = load_resized(photo_path, size, max_pixels), load_resized(label_path, size, max_pixels)
            side_by_side = Image.new("RGB", (2 * size, size))
            side_by_side.paste(photo, (0, 0))
            side_by_side.paste(label, (size, 0))
            save_jpeg(side_by_side, os.path.join(dirs[""], f"{i}.jpg"))
            save_jpeg(photo, os.path.join(dirs["A"], f"{i}_A.jpg"))
            save_jpeg(label, os.path.join(dirs["B"], f"{i}_B.jpg"))
            if (i + 1) % 500 == 0:
                log.info("%s: %d / %d", split, i + 1, len(pairs))
        written[phase] = len(pairs)
        log.info("%s -> %s: %d pairs in %s, %s and %s", split, phase, len(pairs), dirs[""], dirs["A"], dirs["B"])
    return written


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--gtFine_dir", type=str, required=True, help="the unzipped gtFine folder (train/, val/)")
    parser.add_argument("--leftImg8bit_dir", type=str, required=True,
                        help="the unzipped leftImg8bit folder (train/, val/)")
    parser.add_argument("--output_dir", type=str, default="./datasets/cityscapes", help="where to write the dataset")
    parser.add_argument("--size", type=int, default=SIZE, help="side of the square images written")
    add_max_pixels_flag(parser, "pixel budget of one image as decoded; larger images are refused by name "
                                "(default 2^26)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()
    if args.size < 1:
        parser.error(f"--size must be positive, got {args.size}")
    prepare(args.gtFine_dir, args.leftImg8bit_dir, args.output_dir, args.size, args.max_pixels)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))  # an error: one "<script>: error:" line, exit status 2
