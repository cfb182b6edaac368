"""Lay out one image pair for single-image translation (``--model sincut``, ``--dataset_mode singleimage``).

Copies the A image (the one to translate) to ``<out>/trainA/`` and the B image (the target's look) to
``<out>/trainB/``, after checking that each one can be read:

    python datasets/make_single_image_dataset.py --A photo.jpg --B painting.jpg --out datasets/photo2painting
    python train.py --model sincut --name photo2painting --dataroot datasets/photo2painting

The CUT repository ships such a pair (``datasets/single_image_monet_etretat``: a photo of the Etretat cliffs and a
Monet painting of them); any two images of your own work the same way (docs/sincut.md).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path
from typing import Dict, Optional

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from util.errors import InvalidInputError, MissingPathError, add_debug_flag, cli_main  # noqa: E402
from util.image_io import DEFAULT_MAX_PIXELS, add_max_pixels_flag, is_image_file, load_image  # noqa: E402
from util.logger import get_logger, setup_logging  # noqa: E402

log = get_logger(__name__)


def make_single_image_dataset(image_A: str, image_B: str, out: str,
                              max_pixels: int = DEFAULT_MAX_PIXELS) -> Dict[str, str]:
    """Copy the two images to ``out/trainA`` and ``out/trainB`` (each folder must end up holding only that image);
    return the paths written."""
    written: Dict[str, str] = {}
    for domain, source in (("A", image_A), ("B", image_B)):
        if not os.path.isfile(source):
            raise MissingPathError(f"--{domain} {source}: file not found")
        if not is_image_file(source):
            raise InvalidInputError(f"--{domain} {source}: not an image file name (.jpg, .png, ...)")
        load_image(source, max_pixels)  # readable, within the pixel budget (the error names the file)
        folder = os.path.join(out, f"train{domain}")
        others = [f for f in os.listdir(folder) if is_image_file(f) and f != os.path.basename(source)] \
            if os.path.isdir(folder) else []
        if others:
            raise InvalidInputError(f"{folder} already holds {', '.join(sorted(others)[:3])}: --dataset_mode "
                                    f"singleimage reads one image per folder; choose another --out or empty it")
        os.makedirs(folder, exist_ok=True)
        written[domain] = shutil.copy2(source, os.path.join(folder, os.path.basename(source)))
    return written


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description="Lay out one image pair for --model sincut.")
    parser.add_argument("--A", required=True, help="the image to translate (goes to <out>/trainA)")
    parser.add_argument("--B", required=True, help="the image whose look to translate to (goes to <out>/trainB)")
    parser.add_argument("--out", required=True, help="the dataset folder to write (--dataroot of train.py)")
    add_max_pixels_flag(parser, "pixel budget of one image as decoded; larger images are refused by name")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()
    written = make_single_image_dataset(args.A, args.B, args.out, args.max_pixels)
    log.info("wrote %s and %s; train with: python train.py --model sincut --name %s --dataroot %s", written["A"],
             written["B"], os.path.basename(os.path.normpath(args.out)), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))  # an error: one "<script>: error:" line, exit status 2
