"""Evaluate translated images against a target-domain folder: FID, KID, SWD, domain-classifier score, PSNR/SSIM/L1.

Examples:
  python evaluate.py --fake_dir results/horse2zebra/test_latest/images --fake_suffix _fake_B \\
      --real_dir datasets/horse2zebra/testB --metrics fid,kid,swd \\
      --inception_weights weights-inception-2015-12-05-6726825d.pth
  python evaluate.py --fake_dir results/facades/test_latest/images --fake_suffix _fake_B \\
      --real_dir results/facades/test_latest/images --real_suffix _real_B --paired --metrics psnr,ssim,l1
  python evaluate.py --fake_dir ... --real_dir datasets/apple2orange/testB --metrics classifier \\
      --train_A datasets/apple2orange/trainA --train_B datasets/apple2orange/trainB --target B
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Sequence

from options.cli import OptionParser
from util.errors import InvalidInputError, add_debug_flag, cli_main
from util.image_io import DEFAULT_MAX_PIXELS, MAX_PIXELS_LIMIT
from util.logger import get_logger, setup_logging
from util.metrics import compute_metrics, list_metrics, needing, parse_metric_names
from util.metrics.images import list_images, load_images, strip_suffix, visuals_folder_problem
from util.metrics.inception import ENV_VAR as INCEPTION_ENV_VAR
from util.metrics.paired import SSIM_WINDOW
from util.metrics.swd import MIN_RESOLUTION as SWD_MIN_SIDE
from util.ranges import Range, RangeError

log = get_logger(__name__)

# The valid range of each numeric flag (None, the default, is always accepted).
FLAG_RANGES = {"size": Range(int, 1, 16384), "max_images": Range(int, 1), "kid_subsets": Range(int, 1, 100000),
               "kid_subset_size": Range(int, 2), "seed": Range(int, 0, 2 ** 32 - 1),
               "max_pixels": Range(int, 1, MAX_PIXELS_LIMIT)}


def build_parser() -> OptionParser:
    """Command-line flags of evaluate.py (``@file`` arguments and "did you mean" from options/cli.py)."""
    p = OptionParser(description="Evaluate translated images against real target-domain images.",
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--fake_dir", required=True, help="folder of translated images (searched recursively)")
    p.add_argument("--real_dir", help="folder of real target-domain images (ground truth with --paired)")
    p.add_argument("--metrics", default=None,
                   help=f"comma-separated, from: {','.join(list_metrics())}; default: those that need no download "
                        f"and fit the flags given: psnr,ssim,l1 with --paired, else swd, plus classifier with "
                        f"--train_A/--train_B and fid,kid with Inception weights (--inception_weights or "
                        f"${INCEPTION_ENV_VAR})")
    p.add_argument("--fake_suffix", default=None,
                   help="keep only fake files whose stem ends with this (e.g. _fake_B) and strip it for --paired")
    p.add_argument("--real_suffix", default=None, help="the same for --real_dir (e.g. _real_B)")
    p.add_argument("--paired", action="store_true",
                   help="pair fake and real images by file stem (needed by psnr, ssim, l1)")
    p.add_argument("--size", type=int, default=None,
                   help="resize every image to size x size (PIL bicubic); default: keep the native size")
    p.add_argument("--max_images", type=int, default=None, help="use at most this many images of each folder")
    p.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,  # checked with FLAG_RANGES
                   help="pixel budget of one image, as read and after --size; larger images are refused by name")
    p.add_argument("--inception_weights", default=None,
                   help="TF-Inception weights file for fid/kid (else $IMG2IMG_INCEPTION_WEIGHTS)")
    p.add_argument("--kid_subsets", type=int, default=100, help="number of KID subsets")
    p.add_argument("--kid_subset_size", type=int, default=1000, help="KID subset size (clipped to the set sizes)")
    p.add_argument("--train_A", default=None, help="real training images of domain A (classifier metric)")
    p.add_argument("--train_B", default=None, help="real training images of domain B (classifier metric)")
    p.add_argument("--target", choices=["A", "B"], default="B", help="domain the fakes should belong to")
    p.add_argument("--source_dir", default=None,
                   help="real test images of the source domain (adds them to the classifier's real accuracy)")
    p.add_argument("--cache_dir", default=None,
                   help="cache folder for the trained classifier (else $IMG2IMG_CACHE_DIR or ~/.cache/img2img)")
    p.add_argument("--seed", type=int, default=0, help="seed of KID subsets and SWD sampling")
    p.add_argument("--device", default="cpu", help="torch device for Inception and the classifier")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    add_debug_flag(p)
    return p


def _paired_lists(opt: argparse.Namespace) -> tuple[list[Path], list[Path]]:
    """Fake and real files matched by stem (suffixes stripped); every fake must have its ground truth."""
    fakes = {strip_suffix(p, opt.fake_suffix): p for p in list_images(opt.fake_dir, opt.fake_suffix)}
    reals = {strip_suffix(p, opt.real_suffix): p for p in list_images(opt.real_dir, opt.real_suffix)}
    missing = sorted(set(fakes) - set(reals))
    if missing:
        raise InvalidInputError(f"{len(missing)} fake image(s) have no ground truth in {opt.real_dir} "
                         f"(e.g. {', '.join(missing[:5])}); check --fake_suffix/--real_suffix")
    stems = sorted(fakes)
    if opt.max_images is not None:
        stems = stems[:opt.max_images]
    if len(reals) > len(fakes):
        log.warning(f"{len(reals) - len(fakes)} real image(s) in {opt.real_dir} have no fake and are ignored")
    return [fakes[s] for s in stems], [reals[s] for s in stems]


def default_metrics(opt: argparse.Namespace) -> tuple[list[str], str]:
    """The metrics to compute without ``--metrics``, and a line saying what the others need ('' if none)."""
    if opt.paired:
        return ["psnr", "ssim", "l1"], ""
    names, others = [], []
    if opt.real_dir:
        names.append("swd")
    if opt.train_A and opt.train_B:
        names.append("classifier")
    else:
        others.append("classifier (pass --train_A and --train_B: real training images of both domains)")
    if opt.inception_weights or os.environ.get(INCEPTION_ENV_VAR):
        if opt.real_dir:
            names += ["fid", "kid"]
    else:
        others.append(f"fid, kid (pass --inception_weights FILE or set {INCEPTION_ENV_VAR}: the TF-Inception "
                      f"weights, never downloaded; see docs/evaluation.md)")
    return names, ("also available: " + "; ".join(others)) if others else ""


def _format(value: float) -> str:
    """A metric value for the table."""
    return f"{value:.4f}" if math.isfinite(value) else str(value)


def _json_safe(results: dict[str, float]) -> dict[str, float | str]:
    """Non-finite values (PSNR of identical images) as the strings 'inf' / 'nan' so the file is strict JSON."""
    return {k: (v if math.isfinite(v) else str(v)) for k, v in results.items()}


def check_flags(opt: argparse.Namespace) -> None:
    """One-line errors for numeric flags out of range, and a --size over the pixel budget."""
    for dest, valid in FLAG_RANGES.items():
        value = getattr(opt, dest)  # every dest of FLAG_RANGES is a flag of this parser; None: not given
        if value is not None:
            valid.check(f"--{dest}", value)
    if opt.size is not None and opt.size * opt.size > opt.max_pixels:
        raise RangeError(f"--size {opt.size} asks for {opt.size * opt.size:,} pixels per image, over --max_pixels "
                         f"{opt.max_pixels:,}; use a smaller --size")


MIN_SIDE = {"swd": SWD_MIN_SIDE, "ssim": SSIM_WINDOW}  # the smallest image side each metric can take
SAME_SIZE = ("swd", "psnr", "ssim", "l1")  # metrics that compare fake and real images of one size
MIN_IMAGES = {"fid": 2, "kid": 2}  # a covariance needs two samples


def check_folders(opt: argparse.Namespace) -> None:
    """Refuse a folder of test.py visuals read without a suffix (real, fake, reconstructed ... scored as one set)."""
    for flag, folder, suffix, kind in (("--fake_dir", opt.fake_dir, opt.fake_suffix, "fake"),
                                       ("--real_dir", opt.real_dir, opt.real_suffix, "real")):
        problem = visuals_folder_problem(folder, suffix, flag, kind) if folder else None
        if problem:
            raise InvalidInputError(problem)


def check_loaded(names: Sequence[str], fake, real, opt: argparse.Namespace) -> None:
    """One-line errors for image sets the metrics cannot compare: sizes that differ, too small, too few."""
    sets = [("fake", fake, opt.fake_dir)] + ([("real", real, opt.real_dir)] if real is not None else [])
    how = f"--size {opt.size}" if opt.size is not None else "their native size"
    for name in names:
        side = MIN_SIDE.get(name, 1)
        for what, images, folder in sets:
            h, w = images.shape[-2:]
            if min(h, w) < side:
                raise InvalidInputError(f"{name} needs images of at least {side}x{side}, but the {what} images "
                                        f"({folder}) are {w}x{h} at {how}; pass --size {side} or more")
            if images.shape[0] < MIN_IMAGES.get(name, 1):
                raise InvalidInputError(f"{name} needs at least {MIN_IMAGES[name]} images per set, but {folder} "
                                        f"gives {images.shape[0]}")
    compared = [n for n in names if n in SAME_SIZE]
    if compared and real is not None and fake.shape[-2:] != real.shape[-2:]:
        (fh, fw), (rh, rw) = fake.shape[-2:], real.shape[-2:]
        raise InvalidInputError(f"{', '.join(compared)} need fake and real images of one size, but the fake images "
                                f"({opt.fake_dir}) are {fw}x{fh} and the real images ({opt.real_dir}) {rw}x{rh}; "
                                f"pass --size N to resize both")


def evaluate(opt: argparse.Namespace) -> dict[str, float]:
    """Load the folders given by ``opt``, compute the metrics, print a table and optionally write JSON."""
    check_flags(opt)
    if opt.metrics:
        names = parse_metric_names(opt.metrics)
    else:
        names, others = default_metrics(opt)
        if not names:
            raise InvalidInputError("nothing to compute: pass --real_dir (or --train_A and --train_B for the classifier)")
        log.info(f"metrics: {','.join(names)} (choose with --metrics)")
        if others:
            log.info(others)
    paired_wanted = needing(names, "paired")
    if paired_wanted and not opt.paired:
        raise InvalidInputError(f"{', '.join(sorted(paired_wanted))} compare with ground truth: add --paired")
    if opt.real_dir is None and (opt.paired or set(names) - {"classifier"}):
        raise InvalidInputError("--real_dir is required for " + ", ".join(n for n in names if n != "classifier"))
    check_folders(opt)
    if opt.paired:
        fake_files, real_files = _paired_lists(opt)
        fake = load_images(fake_files, opt.size, max_pixels=opt.max_pixels)
        real = load_images(real_files, opt.size, max_pixels=opt.max_pixels)
    else:
        fake = load_images(opt.fake_dir, opt.size, opt.fake_suffix, opt.max_images, opt.max_pixels)
        real = load_images(opt.real_dir, opt.size, opt.real_suffix, opt.max_images, opt.max_pixels) \
            if opt.real_dir else None
    kw: dict = {"device": opt.device, "seed": opt.seed}
    if needing(names, "inception"):
        kw.update(inception_weights=opt.inception_weights, kid_subsets=opt.kid_subsets,
                  kid_subset_size=opt.kid_subset_size)
    if "classifier" in names:
        if not (opt.train_A and opt.train_B):
            raise InvalidInputError("the classifier metric needs --train_A and --train_B (real training images)")
        kw.update(target=opt.target, train_A=opt.train_A, train_B=opt.train_B, cache_dir=opt.cache_dir)
        if opt.source_dir:
            kw["real_source"] = load_images(opt.source_dir, opt.size, None, opt.max_images, opt.max_pixels)
    check_loaded(names, fake, real, opt)
    n_real = 0 if real is None else real.shape[0]
    log.info(f"evaluating {fake.shape[0]} fake images ({opt.fake_dir}) against {n_real} real images "
             f"({opt.real_dir}), image size {tuple(fake.shape[-2:])}")
    results = compute_metrics(names, fake, real, **kw)
    width = max(len(k) for k in results)
    log.info(f"{'metric'.ljust(width)}  value")
    for key, value in results.items():
        log.info(f"{key.ljust(width)}  {_format(value)}")
    if opt.json:
        payload = {"results": _json_safe(results), "fake_dir": str(opt.fake_dir), "real_dir": opt.real_dir,
                   "num_fake": int(fake.shape[0]), "num_real": n_real, "size": list(fake.shape[-2:]),
                   "metrics": names, "paired": bool(opt.paired)}
        Path(opt.json).parent.mkdir(parents=True, exist_ok=True)
        Path(opt.json).write_text(json.dumps(payload, indent=2) + "\n")
        log.info(f"results written to {opt.json}")
    return results


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    """Entry point: parse flags, set up console logging, evaluate (user errors raise ``UserError``)."""
    opt = build_parser().parse_args(argv)
    setup_logging()
    return evaluate(opt)


if __name__ == "__main__":
    sys.exit(cli_main(main))  # a user error: one "evaluate.py: error:" line, exit status 2
