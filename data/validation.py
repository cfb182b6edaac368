"""Pre-flight checks of a dataset before anything trains: folder layout and every image file.

``check_layout(opt)`` runs before the dataset class is built and turns a missing folder into an error that says
what the dataset mode expects and what to do (e.g. ``testB`` missing for ``--model cycle_gan`` at test time).

``preflight(dataset, opt)`` opens every file of the dataset's ``*_paths`` lists once:

* rule: with at most ``FULL_DECODE_LIMIT`` files each image is decoded completely through the real loading
  path (``load_image``), so truncated and corrupt files are found; above it only headers are checked
  (``PIL verify``, plus the end marker of PNG/JPEG files, decoding the file when it is missing): empty,
  non-image, corrupt-PNG, cut-off PNG/JPEG and wrong-size files are found; corrupt JPEG data inside a complete
  file and cut-off BMP/TIFF files only when loaded (the error then names the file). Run
  ``python -m data.validation <folder> --full`` to decode a large set once.
* a bad file (not a regular file, e.g. a FIFO; empty, not an image, truncated/corrupt, too large for PIL; over
  the pixel budget ``--max_pixels`` as decoded or after any resizing step of ``--preprocess``, e.g. a 1x80000
  strip scaled to a width of ``--load_size``; smaller than ``--crop_size`` with ``--preprocess crop``; smaller,
  after preprocessing, than the chosen networks can take (``opt.min_input_side``, set by the options); too narrow
  for an A|B pair) is reported with its name and what to do;
  ``--bad_data error`` (default) stops before training, ``--bad_data skip`` leaves those files out with a
  summary line.
* an A|B file with an EXIF orientation other than 1 is refused: turned upright before the split, its halves
  would be swapped or mixed, so the user must strip or apply the tag.
* conversions done at load time (16-bit, grayscale, palette, alpha, CMYK, EXIF rotation, odd A|B width) are
  summarised in one line.

``check_single_root(opt)``, ``check_outputs_apart(...)`` and ``check_paired_sizes(...)`` refuse inputs that would
run but give wrong pictures: a CycleGAN root read as one folder, outputs written into the folders read as data,
and CUT's A and B images of different sizes fed through G as one batch.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

from PIL import Image, UnidentifiedImageError

from data.base_dataset import PREPROCESS_MODES, max_pixels, preprocess_sizes
from data.image_folder import make_dataset
from util.errors import InvalidInputError, MissingPathError, UserError, add_debug_flag, cli_main
from util.image_io import ImageReadError, add_max_pixels_flag, exif_orientation, has_alpha, load_image, special_kind
from util.logger import get_logger, setup_logging
from util.ranges import Choice

log = get_logger(__name__)

BAD_DATA_POLICIES = ("error", "skip")
FULL_DECODE_LIMIT = 5000
SIDE_BY_SIDE_MODES = ("aligned", "template")  # modes whose files hold A and B side by side
MAX_LISTED = 20  # bad files described in the error line (more are logged before it)
CONVERSIONS = {
    "16-bit": "16-bit (scaled to 8 bit)",
    "float": "floating point (scaled to 8 bit)",
    "grayscale": "grayscale (copied to R, G and B)",
    "palette": "palette (expanded to RGB)",
    "alpha": "with transparency (composited over white)",
    "CMYK": "CMYK (converted to RGB)",
    "exif": "EXIF-rotated (turned upright)",
    "odd-width": "odd-width A|B (last column dropped)",
}

ORIENTATIONS = {2: "mirrored", 3: "rotated 180 degrees", 4: "mirrored top to bottom", 5: "transposed",
                6: "rotated 90 degrees clockwise", 7: "transversed", 8: "rotated 90 degrees counter-clockwise"}


class BadDataError(UserError, RuntimeError):
    """Image files that cannot be used were found before training (names each file and what to do)."""


@dataclass
class ImageCheck:
    """Outcome of checking one file: its usable size, the conversions it needs, or what is wrong with it."""

    path: str
    size: Optional[Tuple[int, int]] = None  # (w, h) of the A (or only) image after the EXIF rotation
    kinds: List[str] = field(default_factory=list)
    problem: Optional[str] = None
    advice: str = ""


@dataclass
class ScanReport:
    """What ``preflight`` found."""

    checks: List[ImageCheck]
    full_decode: bool
    conversions: Dict[str, int]
    seconds: float

    @property
    def checked(self) -> int:
        """Number of distinct files checked."""
        return len(self.checks)

    @property
    def bad(self) -> List[ImageCheck]:
        """The files that cannot be used."""
        return [c for c in self.checks if c.problem]


# ---------------------------------------------------------------------------------------------------- layout
def check_layout(opt: argparse.Namespace) -> None:
    """Raise ``FileNotFoundError`` naming the flag and the expected folders when the layout cannot work."""
    root = opt.dataroot
    if not os.path.isdir(root):
        raise MissingPathError(f"--dataroot {root} does not exist (or is not a folder)")
    if opt.dataset_mode != "unaligned":
        return
    phase = opt.phase
    dir_A, dir_B = os.path.join(root, phase + "A"), os.path.join(root, phase + "B")
    if os.path.isdir(dir_A) and os.path.isdir(dir_B):
        return
    if os.path.isdir(dir_A) and not opt.isTrain:
        model = opt.model
        if not opt.translates_both_ways:  # one generator (the model's answer, options/): single-folder data feeds it
            raise MissingPathError(
                f"{dir_B} does not exist: --dataset_mode unaligned reads {phase}A and {phase}B; to translate only "
                f"the {phase}A images use --dataset_mode single --dataroot {dir_A}")
        raise MissingPathError(
            f"{dir_B} does not exist: --model {model} (--dataset_mode unaligned) tests both directions and needs "
            f"{phase}A and {phase}B; to translate only the {phase}A images use --model test --dataroot {dir_A} "
            f"--model_suffix _A (loads the <epoch>_net_G_A.pth generator)")
    missing = " and ".join(d for d in (dir_A, dir_B) if not os.path.isdir(d))
    hint = ""
    if any(name.lower().endswith((".png", ".jpg", ".jpeg")) for name in os.listdir(root)):
        hint = (f"; {root} holds images itself: for a single folder use --dataset_mode single "
                f"(--model test at test time)")
    raise MissingPathError(f"{missing} not found: --dataset_mode unaligned reads {dir_A} and {dir_B} "
                            f"(--dataroot with --phase {phase}){hint}")


def check_single_root(opt: argparse.Namespace) -> None:
    """``--dataset_mode single`` on a root of the unaligned layout (trainA, trainB, testA, testB) would push every
    folder through the generator: refuse, naming the folder to pass."""
    if opt.dataset_mode != "single" or not os.path.isdir(opt.dataroot):
        return
    names = {e.name for e in os.scandir(opt.dataroot) if e.is_dir()}
    phase = opt.phase
    paired = sorted(n for n in names if n.endswith("A") and n[:-1] + "B" in names)
    if not paired and phase + "A" not in names and phase + "B" not in names:
        return
    prefixes = {p[:-1] for p in paired} | {phase}
    found = sorted(n for n in names if n[-1:] in ("A", "B") and n[:-1] in prefixes)
    target = phase + "A" if phase + "A" in names else (paired[0] if paired else found[0])
    raise InvalidInputError(f"--dataroot {opt.dataroot} holds the folders of the unaligned layout "
                            f"({', '.join(found)}), and --dataset_mode single reads every image under it, so all of "
                            f"them would go through the generator; pass the folder to translate, e.g. --dataroot "
                            f"{os.path.join(opt.dataroot, target)}")


def _inside(child: str, parent: str) -> bool:
    """Whether folder ``child`` is ``parent`` or lies under it (real paths)."""
    return os.path.commonpath([child, parent]) == parent


def check_outputs_apart(dataroot: str, outputs: Dict[str, str], read_folders: Optional[Sequence[str]] = None) -> None:
    """Refuse an output folder inside a folder read as data (a later run would read its own outputs), or data
    inside an output folder. ``outputs`` maps the flag that sets each folder to it; ``read_folders`` are the
    folders the dataset lists (default: ``dataroot``)."""
    reads = [(f, os.path.realpath(f)) for f in (read_folders or [dataroot])]
    for flag, out in outputs.items():
        real_out = os.path.realpath(out)
        for folder, real_read in reads:
            if _inside(real_out, real_read):
                raise InvalidInputError(
                    f"{flag} puts this run's outputs in {out}, inside {folder}, which --dataroot {dataroot} makes "
                    f"the data: a later run would read them back as input images; choose a {flag} outside "
                    f"{folder}")
            if _inside(real_read, real_out):
                raise InvalidInputError(
                    f"--dataroot {dataroot} reads {folder}, inside {out} where this run writes its outputs "
                    f"({flag}): they would be read back as input images; copy the images elsewhere or choose "
                    f"another {flag}")


def output_folders(opt: argparse.Namespace) -> Dict[str, str]:
    """The folders a run writes images to, by flag: ``<checkpoints_dir>/<name>`` when training (page images),
    ``<results_dir>/<name>`` when testing."""
    if opt.isTrain:
        return {"--checkpoints_dir": os.path.join(opt.checkpoints_dir, opt.name)}
    results = getattr(opt, "results_dir", None)  # test.py's flag
    return {"--results_dir": os.path.join(results, opt.name)} if results else {}


def read_folders(dataset: Any, opt: argparse.Namespace) -> List[str]:
    """The folders a dataset lists images from: its ``dir*`` attributes (dir_A, dir_AB, ...), else --dataroot."""
    found = [v for k, v in vars(dataset).items() if k.startswith("dir") and isinstance(v, str)]
    return found or [opt.dataroot]


def check_paired_sizes(dataset: Any, report: "ScanReport", opt: argparse.Namespace) -> None:
    """A model that runs a network on real A and real B as one batch (the model's answer, ``opt.stacks_domains``,
    e.g. CUT's identity NCE) needs one preprocessed size for both."""
    if not opt.stacks_domains:
        return
    lists = path_lists(dataset)
    if "A_paths" not in lists or "B_paths" not in lists:
        return
    by_path = {c.path: c for c in report.checks if c.problem is None and c.size}
    sizes: Dict[str, Counter] = {}
    for name in ("A_paths", "B_paths"):
        counter: Counter = Counter()
        for p in lists[name]:
            if p in by_path:
                steps = preprocess_sizes(by_path[p].size, opt)
                counter[steps[-1][1] if steps else by_path[p].size] += 1
        sizes[name] = counter
    every = set(sizes["A_paths"]) | set(sizes["B_paths"])
    if len(every) <= 1:
        return
    listed = "; ".join(f"{name[0]}: " + ", ".join(f"{w}x{h} ({n} files)" for (w, h), n in c.most_common(3))
                       for name, c in sizes.items())
    raise BadDataError(f"--model cut with --nce_idt feeds A and B images through G as one batch, so they need one "
                       f"size after --preprocess {opt.preprocess}, but they have {len(every)} ({listed}); use a "
                       f"resizing --preprocess such as resize_and_crop, resize the images, or pass --nce_idt False")


# ---------------------------------------------------------------------------------------------------- one file
def header_orientation(img: Image.Image) -> int:
    """The EXIF orientation without decoding the pixels (PIL loads a PNG to look for an eXIf chunk after them)."""
    if img.format == "PNG" and "exif" not in img.info:
        return 1
    return exif_orientation(img)


def _header_kinds(img: Image.Image, orientation: int) -> List[str]:
    """The load-time conversions an opened (not decoded) image will need."""
    kinds = []
    rawmode = ""
    if img.tile:
        args = img.tile[0][3] if len(img.tile[0]) > 3 else None
        rawmode = args if isinstance(args, str) else (args[0] if isinstance(args, tuple) and args and
                                                      isinstance(args[0], str) else "")
    if img.mode.startswith("I;16") or img.mode == "I" or ";16" in rawmode:
        kinds.append("16-bit")
    elif img.mode == "F":
        kinds.append("float")
    if img.mode in ("L", "LA", "1", "I", "F") or img.mode.startswith("I;16"):
        kinds.append("grayscale")
    if img.mode in ("P", "PA"):
        kinds.append("palette")
    if has_alpha(img):
        kinds.append("alpha")
    if img.mode == "CMYK":
        kinds.append("CMYK")
    if orientation != 1:
        kinds.append("exif")
    return kinds


def check_image(path: str, opt: argparse.Namespace, full: bool, side_by_side: bool = False) -> ImageCheck:
    """Open ``path`` (decode it when ``full``) and check it against the preprocessing flags."""
    result = ImageCheck(path)
    kind = special_kind(path)  # before anything opens it: a FIFO would block
    if kind is not None:
        return _bad(result, f"{kind}, not an image file", "remove it from the folder")
    budget = max_pixels(opt)
    try:
        nbytes = os.path.getsize(path)
    except OSError as err:
        return _bad(result, f"cannot be opened ({err.strerror})", "check that it exists and is readable")
    if nbytes == 0:
        return _bad(result, "empty file (0 bytes)", "delete it or copy it again")
    try:
        with Image.open(path) as img:
            w, h = img.size
            fmt = img.format
            orientation = header_orientation(img)
            result.kinds = _header_kinds(img, orientation)
        if w * h > budget:  # judged from the header: the pixels are never decoded
            return _bad(result, f"{w}x{h} = {w * h:,} pixels is over the budget of --max_pixels {budget:,}",
                        "downscale it (or raise --max_pixels if the memory is there)")
        if not full:
            with Image.open(path) as img:
                img.verify()  # must come right after open
        if full or not ends_cleanly(path, fmt, nbytes):
            load_image(path, budget)  # decode: the only sure test (and a header-only scan's confirmation)
    except UnidentifiedImageError:
        ext = os.path.splitext(path)[1]
        return _bad(result, f"not an image PIL can read (named {ext} but holds something else)",
                    "delete it or convert it to PNG/JPEG")
    except Image.DecompressionBombError as err:
        return _bad(result, f"too large for PIL's safety limit ({err})", "downscale it")
    except (ImageReadError, OSError, ValueError, SyntaxError) as err:
        reason = str(err.__cause__ or err) if isinstance(err, ImageReadError) else str(err)
        return _bad(result, f"truncated or corrupt ({reason})", "re-export it or delete it")
    except Exception as err:  # noqa: BLE001 - a broken file must be reported, whatever PIL raises for it
        return _bad(result, f"cannot be read ({type(err).__name__}: {err})", "re-export it or delete it")
    if side_by_side and orientation != 1:
        return _bad(result, f"holds A and B side by side but has EXIF orientation {orientation} "
                            f"({ORIENTATIONS.get(orientation, 'unknown')}): turned upright before the split, its A "
                            f"and B halves would be swapped or mixed",
                    "if the file is stored A|B as it should be split, remove the tag (exiftool -Orientation= FILE, "
                    "or re-save it without EXIF); if it is A|B only once turned, apply it (mogrify -auto-orient "
                    "FILE) and re-save")
    if orientation in (5, 6, 7, 8):
        w, h = h, w
    if side_by_side:
        if w < 2:
            return _bad(result, f"{w}x{h} is too narrow to hold A and B side by side",
                        "combine A and B with datasets/combine_A_and_B.py or remove it")
        if w % 2:
            result.kinds.append("odd-width")
        w //= 2
    result.size = (w, h)
    what = "each half " if side_by_side else ""
    if opt.preprocess == "crop" and min(w, h) < opt.crop_size:
        return _bad(result, f"{what}{w}x{h} is smaller than --crop_size {opt.crop_size} and --preprocess crop does "
                            f"not resize", "use --preprocess resize_and_crop, a smaller --crop_size, or remove it")
    return check_sizes(result, opt, what, budget)


def check_sizes(result: ImageCheck, opt: argparse.Namespace, what: str, budget: int) -> ImageCheck:
    """The size after each preprocessing step: within the pixel budget, and at the end large enough for the
    networks (``opt.min_input_side``, with ``opt.min_input_side_by`` naming the flag that sets it)."""
    w, h = size = result.size
    for step, (sw, sh) in preprocess_sizes(size, opt):
        if sw * sh > budget:
            return _bad(result, f"{what}{w}x{h} would become {sw}x{sh} = {sw * sh:,} pixels in {step} (--preprocess "
                                f"{opt.preprocess} --load_size {opt.load_size}), over --max_pixels {budget:,}",
                        "crop or remove it, or use --preprocess resize_and_crop")
        w, h = sw, sh
    floor = int(opt.min_input_side)
    if min(w, h) < floor:
        became = f" (after --preprocess {opt.preprocess})" if (w, h) != size else ""
        by = opt.min_input_side_by
        return _bad(result, f"{what}{w}x{h}{became} is smaller than {by} can take ({floor}x{floor} at least)",
                    "use a resizing --preprocess (resize_and_crop, scale_width), other networks, or remove it")
    return result


def ends_cleanly(path: str, fmt: Optional[str], nbytes: int) -> bool:
    """Cheap truncation test: a PNG ends with its IEND chunk, a JPEG with the EOI marker (other formats: True)."""
    tail = {"PNG": 12, "JPEG": 2, "MPO": 2}.get(fmt or "")
    if tail is None or nbytes < tail:
        return tail is None
    with open(path, "rb") as handle:
        handle.seek(nbytes - tail)
        end = handle.read(tail)
    return end[4:8] == b"IEND" if fmt == "PNG" else end == b"\xff\xd9"


def _bad(result: ImageCheck, problem: str, advice: str) -> ImageCheck:
    """Mark ``result`` as unusable."""
    result.problem, result.advice = problem, advice
    return result


# ---------------------------------------------------------------------------------------------------- a dataset
def path_lists(dataset: Any) -> Dict[str, List[str]]:
    """The file lists of a dataset: every attribute named ``*_paths`` that is a list of strings."""
    out = {}
    for name, value in vars(dataset).items():
        if name.endswith("_paths") and isinstance(value, list) and all(isinstance(p, str) for p in value):
            out[name] = value
    return out


def is_side_by_side(dataset: Any, opt: argparse.Namespace) -> bool:
    """Whether the dataset's files hold A|B pairs (class attribute ``side_by_side`` or a known mode)."""
    flag = getattr(dataset, "side_by_side", None)
    return bool(flag) if flag is not None else opt.dataset_mode in SIDE_BY_SIDE_MODES


def exclude(dataset: Any, bad: Iterable[str]) -> None:
    """Drop ``bad`` files from every file list (``dataset.exclude_images`` when the class defines it)."""
    bad = set(bad)
    if hasattr(dataset, "exclude_images"):
        dataset.exclude_images(bad)
        return
    for name, paths in path_lists(dataset).items():
        kept = [p for p in paths if p not in bad]
        setattr(dataset, name, kept)
        size_name = name[: -len("_paths")] + "_size"
        if isinstance(getattr(dataset, size_name, None), int):
            setattr(dataset, size_name, len(kept))
        if paths and not kept:
            folder = os.path.dirname(paths[0])
            raise BadDataError(f"none of the {len(paths)} images in {folder} can be used (--bad_data skip left "
                               f"nothing); see the warnings above")


def scan(paths: Sequence[str], opt: argparse.Namespace, side_by_side: bool = False,
         full: Optional[bool] = None) -> ScanReport:
    """Check every file (threads; PIL releases the GIL while decoding)."""
    start = time.time()
    unique = sorted(set(paths))
    full = len(unique) <= FULL_DECODE_LIMIT if full is None else full
    workers = max(1, min(8, os.cpu_count() or 1, len(unique)))
    if workers > 1 and len(unique) > 16:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            checks = list(pool.map(lambda p: check_image(p, opt, full, side_by_side), unique))
    else:
        checks = [check_image(p, opt, full, side_by_side) for p in unique]
    conversions: Counter = Counter(k for c in checks if c.problem is None for k in c.kinds)
    return ScanReport(checks=checks, full_decode=full, conversions=dict(conversions), seconds=time.time() - start)


def check_one_size(dataset: Any, report: ScanReport, opt: argparse.Namespace) -> None:
    """``--preprocess none`` with ``--batch_size`` > 1: the images of one list must share a size (to be batched)."""
    if opt.preprocess != "none" or opt.batch_size <= 1:
        return
    checks_by_path = {c.path: c for c in report.checks if c.problem is None}
    for name, paths in path_lists(dataset).items():
        sizes = Counter(checks_by_path[p].size for p in paths if p in checks_by_path and checks_by_path[p].size)
        if len(sizes) > 1:
            listed = ", ".join(f"{w}x{h} ({n} files)" for (w, h), n in sizes.most_common(4))
            raise BadDataError(f"--preprocess none with --batch_size {opt.batch_size} needs images of one size, but "
                               f"{name} has {len(sizes)} sizes: {listed}; use --batch_size 1 or a resizing "
                               f"--preprocess")


def describe_bad(check: ImageCheck) -> str:
    """``path: problem; advice``."""
    return f"{check.path}: {check.problem}; {check.advice}"


def bad_on_one_line(bad: Sequence[ImageCheck], limit: int = MAX_LISTED) -> str:
    """The first ``limit`` bad files on one line (``describe_bad``, separated by `` | ``), then how many more."""
    text = " | ".join(describe_bad(c) for c in bad[:limit])
    return text + (f" | and {len(bad) - limit} more, listed above" if len(bad) > limit else "")


def preflight(dataset: Any, opt: argparse.Namespace) -> Optional[ScanReport]:
    """Scan the dataset's files before training; apply ``--bad_data``. Returns the report (None: no file list)."""
    lists = path_lists(dataset)
    if not lists:
        return None
    policy = opt.bad_data  # one of BAD_DATA_POLICIES: the flag's type=Choice checked it
    all_paths = [p for paths in lists.values() for p in paths]
    side = is_side_by_side(dataset, opt)
    report = scan(all_paths, opt, side_by_side=side)
    how = "decoded each one" if report.full_decode else \
        f"headers only: more than {FULL_DECODE_LIMIT} files (python -m data.validation DIR --full decodes all)"
    log.info("checked %d image files in %.1f s (%s): %d cannot be used", report.checked, report.seconds, how,
             len(report.bad))
    if report.conversions:
        log.info("converted when loaded: %s", ", ".join(f"{n} {CONVERSIONS[k]}" for k, n in
                                                         sorted(report.conversions.items())))
    if report.bad:
        # Each file once: in the error line (the first MAX_LISTED) or as a warning (skip, or the rest).
        for c in report.bad[MAX_LISTED if policy == "error" else 0:]:
            log.warning("bad image %s", describe_bad(c))
        if policy == "error":
            raise BadDataError(f"{len(report.bad)} of {report.checked} image files cannot be used (--bad_data "
                               f"error); fix or remove them, or pass --bad_data skip to leave them out: "
                               f"{bad_on_one_line(report.bad)}")
        exclude(dataset, (c.path for c in report.bad))
        log.info("--bad_data skip: left out %d of %d image files (listed above); %d remain", len(report.bad),
                 report.checked, report.checked - len(report.bad))
    check_one_size(dataset, report, opt)
    check_paired_sizes(dataset, report, opt)
    return report


# ---------------------------------------------------------------------------------------------------- CLI
def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m data.validation FOLDER [--full] [--preprocess M --load_size N --crop_size N ...]``: list bad files."""
    setup_logging()
    parser = argparse.ArgumentParser(description="check every image file under a folder (recursively)")
    parser.add_argument("folder")
    parser.add_argument("--full", action="store_true", help="decode every image (default: only up to "
                                                            f"{FULL_DECODE_LIMIT} files)")
    preprocess = Choice(PREPROCESS_MODES)
    parser.add_argument("--preprocess", type=preprocess, default="resize_and_crop",
                        help=f"scaling and cropping as in training {preprocess.listing()}")
    parser.add_argument("--crop_size", type=int, default=256)
    parser.add_argument("--load_size", type=int, default=286)
    add_max_pixels_flag(parser, "pixel budget of one image, as decoded and after each resizing step")
    parser.add_argument("--side_by_side", action="store_true", help="files hold A|B pairs (aligned datasets)")
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    args.min_input_side, args.min_input_side_by = 1, "the networks"  # no networks chosen: no floor
    paths = make_dataset(args.folder)
    report = scan(paths, args, side_by_side=args.side_by_side, full=True if args.full else None)
    for c in report.bad:
        log.info("%s", describe_bad(c))
    log.info("%d files checked (%s), %d cannot be used", report.checked,
             "decoded" if report.full_decode else "headers only", len(report.bad))
    return 1 if report.bad else 0


if __name__ == "__main__":
    sys.exit(cli_main(main))  # a missing folder: one "validation.py: error:" line, exit status 2
