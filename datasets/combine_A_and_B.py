"""Combine paired images of two folders into A|B images for pix2pix (as the official script).

For every split sub-folder of ``--fold_A`` (e.g. train, val, test), each file is paired with the file of the same
name in ``--fold_B/<split>`` (or ``x_A.ext`` with ``x_B.ext`` when ``--use_AB``, written as ``x.ext``), and the two
are concatenated horizontally into ``--fold_AB/<split>/``. Uses PIL and numpy (no OpenCV) and a multiprocessing
pool unless ``--no_multiprocessing``.

    python datasets/combine_A_and_B.py --fold_A /path/A --fold_B /path/B --fold_AB /path/AB
"""
from __future__ import annotations

import argparse
import os
import sys
from multiprocessing import Pool
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from util.errors import InvalidInputError, MissingPathError, add_debug_flag, cli_main  # noqa: E402
from util.image_io import DEFAULT_MAX_PIXELS, add_max_pixels_flag, load_image  # noqa: E402
from util.logger import get_logger, setup_logging  # noqa: E402

log = get_logger(__name__)


def image_write(path_A: str, path_B: str, path_AB: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    """Read A and B as the datasets do (8-bit RGB, ``util.image_io.load_image``), concatenate them side by side and
    write ``path_AB``."""
    im_A = np.asarray(load_image(path_A, max_pixels))
    im_B = np.asarray(load_image(path_B, max_pixels))
    if im_A.shape[0] != im_B.shape[0]:
        raise InvalidInputError(f"cannot combine {path_A} (height {im_A.shape[0]}) with {path_B} "
                                f"(height {im_B.shape[0]}): the heights differ")
    im_AB = Image.fromarray(np.concatenate([im_A, im_B], 1))
    ext = os.path.splitext(path_AB)[1].lower()
    if ext in (".jpg", ".jpeg"):
        im_AB.save(path_AB, quality=95)  # OpenCV's default JPEG quality, as in the official script
    else:
        im_AB.save(path_AB)


def plan_pairs(fold_A: str, fold_B: str, fold_AB: str, num_imgs: int = 1000000,
               use_AB: bool = False) -> list[tuple[str, str, str]]:
    """List the (A, B, AB) path triples to write (nothing is created yet)."""
    if not os.path.isdir(fold_A):
        raise MissingPathError(f"--fold_A {fold_A} is not a folder; expected split sub-folders such as train/, test/")
    jobs: list[tuple[str, str, str]] = []
    for sp in sorted(os.listdir(fold_A)):
        img_fold_A = os.path.join(fold_A, sp)
        if not os.path.isdir(img_fold_A):
            continue
        img_fold_B = os.path.join(fold_B, sp)
        img_list = sorted(os.listdir(img_fold_A))
        if use_AB:
            img_list = [name for name in img_list if "_A." in name]
        n = min(num_imgs, len(img_list))
        log.info(f"split = {sp}, use {n}/{len(img_list)} images")
        img_fold_AB = os.path.join(fold_AB, sp)
        log.info(f"split = {sp}, number of images = {n}")
        for name_A in img_list[:n]:
            path_A = os.path.join(img_fold_A, name_A)
            name_B = name_A.replace("_A.", "_B.") if use_AB else name_A
            path_B = os.path.join(img_fold_B, name_B)
            if os.path.isfile(path_A) and os.path.isfile(path_B):
                name_AB = name_A.replace("_A.", ".") if use_AB else name_A
                jobs.append((path_A, path_B, os.path.join(img_fold_AB, name_AB)))
    return jobs


def combine(fold_A: str, fold_B: str, fold_AB: str, num_imgs: int = 1000000, use_AB: bool = False,
            no_multiprocessing: bool = False, max_pixels: int = DEFAULT_MAX_PIXELS, overwrite: bool = False) -> int:
    """Write every A|B pair; return how many files were written. Errors of any worker are raised. Existing A|B
    files are refused before anything is written (``InvalidInputError`` naming the first) unless ``overwrite``."""
    jobs = plan_pairs(fold_A, fold_B, fold_AB, num_imgs, use_AB)
    existing = [path_AB for _, _, path_AB in jobs if os.path.lexists(path_AB)]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more of the {len(jobs)} images to write)" if len(existing) > 1 else ""
        raise InvalidInputError(f"{existing[0]} exists{more}: pass --overwrite to replace the A|B images, or "
                                f"choose another --fold_AB")
    for folder in sorted({os.path.dirname(path_AB) for _, _, path_AB in jobs}):
        os.makedirs(folder, exist_ok=True)
    if no_multiprocessing:
        for job in jobs:
            image_write(*job, max_pixels)
    else:
        with Pool() as pool:
            pending = [pool.apply_async(image_write, args=(*job, max_pixels)) for job in jobs]
            for result in pending:
                result.get()
            pool.close()
            pool.join()
    return len(jobs)


def main(argv: Optional[list[str]] = None) -> int:
    """Command-line entry point (the official flags)."""
    parser = argparse.ArgumentParser("create image pairs")
    parser.add_argument("--fold_A", dest="fold_A", help="input directory for image A", type=str,
                        default="../dataset/50kshoes_edges")
    parser.add_argument("--fold_B", dest="fold_B", help="input directory for image B", type=str,
                        default="../dataset/50kshoes_jpg")
    parser.add_argument("--fold_AB", dest="fold_AB", help="output directory", type=str, default="../dataset/test_AB")
    parser.add_argument("--num_imgs", dest="num_imgs", help="number of images", type=int, default=1000000)
    parser.add_argument("--use_AB", dest="use_AB", help="if true: (0001_A, 0001_B) to (0001_AB)", action="store_true")
    parser.add_argument("--no_multiprocessing", dest="no_multiprocessing", action="store_true", default=False,
                        help="If used, chooses single CPU execution instead of parallel execution")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace A|B images that exist in --fold_AB (without it they are refused by name)")
    add_max_pixels_flag(parser, "pixel budget of one image as decoded; larger images are refused by name "
                                "(default 2^26)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    setup_logging()
    for arg in vars(args):
        log.info(f"[{arg}] =  {getattr(args, arg)}")
    written = combine(args.fold_A, args.fold_B, args.fold_AB, args.num_imgs, args.use_AB, args.no_multiprocessing,
                      args.max_pixels, args.overwrite)
    log.info(f"wrote {written} images to {args.fold_AB}")
    return 0


if __name__ == "__main__":
    sys.exit(cli_main(main))  # an error: one "<script>: error:" line, exit status 2
