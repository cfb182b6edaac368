"""Turn an unaligned dataset with paired files into the aligned pix2pix layout (as the official script).

Reads ``<dataset-path>/{trainA,trainB,testA,testB}`` (top level only, .png/.jpg, sorted, paired by index) and
writes A|B images to ``<dataset-path>/train/%04d.jpg`` and ``<dataset-path>/test/%04d.jpg``.

    python datasets/make_dataset_aligned.py --dataset-path datasets/demo
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


def get_file_paths(folder: str) -> list[str]:
    """Sorted absolute paths of the .png/.jpg files directly inside ``folder``."""
    if not os.path.isdir(folder):
        raise MissingPathError(f"{folder} is not a folder; --dataset-path needs testA, testB, trainA and trainB")
    names = sorted(f for f in os.listdir(folder) if f.endswith(".png") or f.endswith(".jpg"))
    base = os.path.abspath(folder)
    return [os.path.join(base, f) for f in names if os.path.isfile(os.path.join(base, f))]


def align_images(a_file_paths: list[str], b_file_paths: list[str], target_path: str,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Paste A[i] and B[i] side by side and save them as ``target_path/%04d.jpg``."""
    if len(a_file_paths) != len(b_file_paths):
        raise InvalidInputError(f"cannot pair {len(a_file_paths)} A images with {len(b_file_paths)} B images for "
                                f"{target_path}")
    os.makedirs(target_path, exist_ok=True)
    for i, (path_a, path_b) in enumerate(zip(a_file_paths, b_file_paths)):
        # 8-bit RGB, as the datasets read them
        img_a, img_b = load_image(path_a, max_pixels), load_image(path_b, max_pixels)
        if img_a.size != img_b.size:
            raise InvalidInputError(f"{path_a} is {img_a.size} but {path_b} is {img_b.size}: paired images "
                                    f"must match")
        aligned = Image.new("RGB", (img_a.size[0] * 2, img_a.size[1]))
        aligned.paste(img_a, (0, 0))
        aligned.paste(img_b, (img_a.size[0], 0))
        aligned.save(os.path.join(target_path, f"{i:04d}.jpg"), quality=95)


def make_aligned(dataset_folder: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> dict[str, int]:
    """Build ``test/`` and ``train/`` from the four unaligned folders; return the counts written."""
    counts: dict[str, int] = {}
    paths = {sub: get_file_paths(os.path.join(dataset_folder, sub)) for sub in ("testA", "testB", "trainA", "trainB")}
    for split in ("test", "train"):
        if len(paths[split + "A"]) != len(paths[split + "B"]):
            raise InvalidInputError(f"{split}A has {len(paths[split + 'A'])} images but {split}B has "
                                    f"{len(paths[split + 'B'])} in {dataset_folder}: they must pair up one to one")
    for split in ("test", "train"):
        align_images(paths[split + "A"], paths[split + "B"], os.path.join(dataset_folder, split), max_pixels)
        counts[split] = len(paths[split + "A"])
    return counts


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point (the official flag ``--dataset-path``)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset-path", dest="dataset_path", required=True,
                        help="Which folder to process (it should have subfolders testA, testB, trainA and trainB")
    add_max_pixels_flag(parser, "pixel budget of one image as decoded; larger images are refused by name "
                                "(default 2^26)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()
    log.info(args.dataset_path)
    counts = make_aligned(args.dataset_path, args.max_pixels)
    log.info(f"wrote {counts['train']} train and {counts['test']} test pairs under {args.dataset_path}")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))  # an error: one "<script>: error:" line, exit status 2
