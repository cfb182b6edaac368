"""A quality benchmark with a known answer: unpaired photos vs a fixed colour transformation of other photos.

bench/quality.py and bench/quality_cut.py score translations with distribution distances (SWD, a domain
classifier), which after minutes of CPU training cannot tell the models apart (docs/evaluation.md). Here the right
translation is known, so the score is a distance to it:

* Data (built once, cached under ``--out/data``): photos (``../shared/datasets``: monet2photo testB, apple2orange
  testA and testB; or ``--photos DIR``), centre-cropped square and resized to ``--size`` px, are split disjointly
  (seeded) into the held-out test photos x, domain A's training photos (as they are) and domain B's training
  photos, which are stored as T(p). No photo is in two splits, so the two training domains are unpaired.
* T (``ColourTransform``): ``T(p) = M p^gamma`` per pixel on [0, 1] RGB, with M a circulant 3x3 matrix with
  non-negative rows summing to 1 = a rotation of the hue by ``--hue`` degrees about the grey axis with the
  chroma scaled by ``--chroma``; grey stays grey (up to the gamma). The matrix maps the RGB cube into itself, so
  nothing is clipped and T is exactly invertible (``T^-1(q) = (M^-1 q)^(1/gamma)``). It is what an unpaired GAN
  can identify: pixelwise, so every photo pins it down by its colour statistics, and the simplest explanation
  of domain B given domain A (a global colour change; no geometry to invent), unlike e.g. horse -> zebra, whose
  "right" answer is ambiguous. Generators get the colours first and the photo's structure later, so short runs
  score worse than the identity baseline while still being ordered by how far they got.
* A run = one config and one seed: train.py in a subprocess on the built set, stopped by SIGTERM ``--budget``
  seconds after it announced its data set ("The number of training images = N", printed by ours and the official
  train.py after start-up; building the networks counts in the budget), which saves ``latest`` and exits with
  143. A run that did not exit so, or left no generator file, is reported as failed and never scored. Its
  generator is then loaded with the Python API (options/pretrained.py ``load_generator``; also with
  ``use_ema=True`` for runs with ``--ema``) and translates the test photos x (float [-1, 1] tensors of the
  stored 8-bit photos, no resizing; outputs converted to 8 bit as test.py saves them).
* Score: the mean over test photos of the per-image mean absolute difference between G(x) and T(x) in [0, 255]
  grey levels (lower is better), and the mean per-image PSNR (dB). CycleGAN's G_B is scored too, on T(x)
  against T^-1(T(x)) (B->A).
* Baselines: identity (x itself against T(x)), the best affine colour map (``T(x) ~ A [x, 1]`` fitted by least
  squares on the test pairs themselves: what a pixelwise-affine model could reach at best; with ``--gamma 1`` it
  is T up to rounding) and perfect (T(x) itself: L1 0, PSNR inf).
* Seeds: every config runs ``--seeds`` times (train.py ``--seed 0, 1, ...``), the runs alternating across configs
  (seed 0 of every config, then seed 1, ...) so that machine noise hits all of them alike. The table gives each
  config's mean, standard deviation (n-1) and range over its seeds, and a line per pair of configs says whether
  the difference of their mean L1 exceeds the sum of their standard deviations (with Welch's t).
* ``--official DIR``: the official train.py of that checkout (its cycle_gan, same sizes and budget) is one more
  config; it has no SIGTERM handling and no ``--seed`` (its runs are unseeded), so it runs under a small wrapper
  that saves ``latest`` after the step during which SIGTERM arrived and exits with 143 (its training loop and
  step are untouched). Its ``latest_net_G_A.pth`` is loaded with the API (``architecture=`` given) and scored
  alike.

Writes ``<out>/quality_known.json`` (after every run, so an interrupted benchmark keeps what it did) and
``<out>/quality_known.md``; per run a log (``<out>/logs``) and a strip of 8 test photos x / T(x) / G(x)
(``<out>/samples``). The networks' files are deleted after scoring unless ``--keep_checkpoints``.

Default run: 5 configs (6 with ``--official``) x 3 seeds x (120 s of training + about 15 s of start-up, saving
and scoring) = about 34 minutes (41 with ``--official``); ``--jobs 2 --threads 1`` halves it on two cores. Run it
on an otherwise idle machine.

Example:
    python bench/quality_known.py --official ../official --jobs 2 --threads 1
    python bench/quality_known.py --budget 30 --seeds 2 --config "cycle_gan: --model cycle_gan" \\
        --config "no idt: --model cycle_gan --lambda_identity 0"
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from util.logger import get_logger, setup_logging  # noqa: E402

log = get_logger("bench.quality_known")

SHARED = ROOT.parent / "shared" / "datasets"
DEFAULT_PHOTO_DIRS = (SHARED / "monet2photo" / "testB", SHARED / "apple2orange" / "testA",
                      SHARED / "apple2orange" / "testB")
DEFAULT_CONFIGS = (
    "cycle_gan: --model cycle_gan",
    "cut: --model cut --CUT_mode CUT",
    "fastcut: --model cut --CUT_mode FastCUT",
    "cycle_gan bf16: --model cycle_gan --amp bf16",
    "cycle_gan ema: --model cycle_gan --ema 0.995",  # a half-life of ~140 steps: runs of a few thousand steps
)
DEFAULT_NET_FLAGS = "--netG resnet_6blocks --ngf 16 --ndf 16 --lr 0.0005"  # CPU-sized; the same for every row
OFFICIAL_LABEL = "official cycle_gan"
OFFICIAL_FLAGS = "--model cycle_gan"
START_MARKER = "The number of training images"  # ours and the official train.py, after start-up, before the nets
STOP_LINE = re.compile(r"QUALITY_KNOWN_STOPPED total_iters (\d+)")
NEVER = str(10 ** 9)  # a frequency never reached: no saves, displays or pages during the run
CONTROLLED = ("--dataroot", "--name", "--checkpoints_dir", "--seed", "--continue_train")
EXIT_SIGTERM = 128 + signal.SIGTERM
N_SAMPLES = 8

# Runs the official train.py unchanged, except that SIGTERM (which would kill it without saving) is turned into
# "finish the current step, save latest, print the iterations, exit 143", as our train.py does.
OFFICIAL_WRAPPER = r"""
import os, runpy, signal, sys
sys.path.insert(0, os.getcwd())
stop = []
signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
import models
_create_model = models.create_model
def create_model(opt):
    model = _create_model(opt)
    step = model.optimize_parameters
    done = [0]
    def optimize_parameters():
        step()
        done[0] += 1
        if stop:
            model.save_networks("latest")
            print("QUALITY_KNOWN_STOPPED total_iters %d" % (done[0] * opt.batch_size), flush=True)
            sys.exit(128 + signal.SIGTERM)
    model.optimize_parameters = optimize_parameters
    return model
models.create_model = create_model
sys.argv = ["train.py"] + sys.argv[1:]
runpy.run_path("train.py", run_name="__main__")
"""


class BenchError(RuntimeError):
    """A problem that ends the benchmark with one line (exit status 2)."""


# ---------------------------------------------------------------------------------------------------- T
class ColourTransform:
    """``T(p) = M p^gamma`` per pixel on [0, 1] RGB (module doc); exactly invertible."""

    def __init__(self, hue: float = 100.0, chroma: float = 0.6, gamma: float = 1.2) -> None:
        """Hue rotation in degrees, chroma scale in (0, max_chroma(hue)], gamma > 0."""
        if not gamma > 0:
            raise BenchError(f"--gamma must be > 0, got {gamma}")
        top = self.max_chroma(hue)
        if not 0 < chroma <= top + 1e-12:
            raise BenchError(f"--chroma must be in (0, {top:.4f}] for --hue {hue:g} (a larger one would map "
                             f"colours outside the RGB cube, and clipping them is not invertible), got {chroma}")
        self.hue, self.chroma, self.gamma = float(hue), float(chroma), float(gamma)
        self.matrix = self.colour_matrix(hue, chroma)
        self.inverse = np.linalg.inv(self.matrix)

    @staticmethod
    def _weights(hue: float, chroma: float) -> np.ndarray:
        """(a, b, c) of the circulant matrix [[a, b, c], [c, a, b], [b, c, a]] with eigenvalue 1 on grey and
        ``chroma * exp(i hue)`` on the chroma plane."""
        theta = math.radians(hue)
        return np.array([(1.0 + 2.0 * chroma * math.cos(theta + k * 2.0 * math.pi / 3.0)) / 3.0
                         for k in (0, 1, -1)])

    @classmethod
    def max_chroma(cls, hue: float) -> float:
        """The largest chroma scale whose matrix has no negative entry (maps the RGB cube into itself)."""
        theta = math.radians(hue)
        lowest = min(math.cos(theta + k * 2.0 * math.pi / 3.0) for k in (0, 1, -1))
        return float("inf") if lowest >= 0 else -1.0 / (2.0 * lowest)

    @classmethod
    def colour_matrix(cls, hue: float, chroma: float) -> np.ndarray:
        """The 3x3 matrix M (rows sum to 1)."""
        a, b, c = cls._weights(hue, chroma)
        return np.array([[a, b, c], [c, a, b], [b, c, a]])

    def describe(self) -> Dict[str, Any]:
        """Its parameters and matrix (for the JSON and the report)."""
        return {"hue_deg": self.hue, "chroma": self.chroma, "gamma": self.gamma,
                "matrix": [[round(float(v), 6) for v in row] for row in self.matrix]}

    def forward(self, p: np.ndarray) -> np.ndarray:
        """T of float RGB values in [0, 1] (last axis = channels), float64 in [0, 1]."""
        lin = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0) ** self.gamma
        return np.clip(lin @ self.matrix.T, 0.0, 1.0)

    def backward(self, q: np.ndarray) -> np.ndarray:
        """T^-1 of float RGB values in [0, 1] (last axis = channels), float64 in [0, 1]."""
        lin = np.clip(np.asarray(q, dtype=np.float64) @ self.inverse.T, 0.0, 1.0)
        return lin ** (1.0 / self.gamma)

    def apply_uint8(self, images: np.ndarray, inverse: bool = False) -> np.ndarray:
        """T (or T^-1) of 8-bit RGB images (..., 3), rounded to 8 bit."""
        fn = self.backward if inverse else self.forward
        return np.rint(fn(np.asarray(images, dtype=np.float64) / 255.0) * 255.0).astype(np.uint8)


# ---------------------------------------------------------------------------------------------------- data
def photo_files(dirs: Sequence[Path]) -> List[Path]:
    """The image files under ``dirs`` (recursive, sorted per folder); BenchError for a folder that is not there."""
    from util.image_io import list_image_files

    files: List[Path] = []
    for folder in dirs:
        if not Path(folder).is_dir():
            raise BenchError(f"--photos {folder}: not a folder")
        found, _skipped = list_image_files(str(folder))
        files.extend(Path(f) for f in found)
    return files


def square(image: Any, size: int) -> np.ndarray:
    """A PIL image centre-cropped to a square and resized to ``size`` (bicubic) as HxWx3 uint8."""
    from PIL import Image

    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    image = image.crop((left, top, left + side, top + side))
    return np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.uint8)


def split_indices(n: int, test_num: int, seed: int) -> Dict[str, List[int]]:
    """Disjoint photo indices: ``test`` (test_num), then the rest alternately to ``A`` and ``B`` (seeded order)."""
    if n < test_num + 2:
        raise BenchError(f"{n} photos are too few: --test_num {test_num} plus at least one training photo per "
                         f"domain are needed (pass --photos with more, or a smaller --test_num)")
    order = np.random.default_rng(seed).permutation(n).tolist()
    rest = order[test_num:]
    return {"test": sorted(order[:test_num]), "A": sorted(rest[0::2]), "B": sorted(rest[1::2])}


def data_key(files: Sequence[Path], args: argparse.Namespace, transform: ColourTransform) -> str:
    """A hash of what the built set depends on (photo paths, sizes and times; size; split; T)."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f.resolve()}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    h.update(json.dumps({"size": args.size, "test_num": args.test_num, "data_seed": args.data_seed,
                         **transform.describe()}, sort_keys=True).encode())
    return h.hexdigest()[:12]


def build_data(files: Sequence[Path], out: Path, args: argparse.Namespace,
               transform: ColourTransform) -> Tuple[Path, Dict[str, Any]]:
    """The unaligned data set (trainA = photos, trainB = T(photos), testA = x, testB = T(x), same names in the
    test pair) under ``out/data/<key>``, built unless already complete; its folder and its meta.json."""
    from PIL import Image

    from util.image_io import load_image

    root = out / "data" / data_key(files, args, transform)
    meta_file = root / "meta.json"
    if meta_file.is_file():
        return root, json.loads(meta_file.read_text())
    if root.exists():
        shutil.rmtree(root)  # an incomplete earlier build
    parts = split_indices(len(files), args.test_num, args.data_seed)
    names = {i: f"{i:05d}_{files[i].stem}.png" for i in range(len(files))}
    for folder, which, mapped in (("trainA", "A", False), ("trainB", "B", True), ("testA", "test", False),
                                  ("testB", "test", True)):
        (root / folder).mkdir(parents=True)
        for i in parts[which]:
            photo = square(load_image(str(files[i])), args.size)
            Image.fromarray(transform.apply_uint8(photo) if mapped else photo).save(root / folder / names[i])
    meta = {"photos": len(files), "size": args.size, "test_num": args.test_num, "data_seed": args.data_seed,
            "transform": transform.describe(), "counts": {k: len(v) for k, v in parts.items()},
            "sources": {k: [str(files[i]) for i in v] for k, v in parts.items()},
            "names": {k: [names[i] for i in v] for k, v in parts.items()}}
    meta_file.write_text(json.dumps(meta, indent=1) + "\n")  # last: marks the set complete
    log.info("built the data set in %s: %d test photos, %d A and %d B training photos", root,
             *(meta["counts"][k] for k in ("test", "A", "B")))
    return root, meta


def read_folder(folder: Path, names: Sequence[str]) -> np.ndarray:
    """The named 8-bit images of a folder as N x H x W x 3."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(folder / n).convert("RGB"), dtype=np.uint8) for n in names])


# ---------------------------------------------------------------------------------------------------- scores
def scores(fake: np.ndarray, real: np.ndarray) -> Dict[str, Any]:
    """Mean per-image L1 in [0, 255] grey levels and mean per-image PSNR (dB; inf when identical) of N x H x W x 3
    uint8 sets, plus the per-image L1 values."""
    f = fake.astype(np.float64)
    r = real.astype(np.float64)
    if f.shape != r.shape:
        raise ValueError(f"fake {f.shape} and real {r.shape} differ in shape")
    l1 = np.abs(f - r).reshape(len(f), -1).mean(axis=1)
    mse = ((f - r) ** 2).reshape(len(f), -1).mean(axis=1)
    with np.errstate(divide="ignore"):
        psnr = np.where(mse > 0, 10.0 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-300)), np.inf)
    return {"l1": float(l1.mean()), "psnr": float(psnr.mean()), "l1_per_image": [round(float(v), 4) for v in l1]}


def affine_fit(x: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The best affine colour map ``target ~ [x, 1] A`` (least squares over all pixels) applied to x, 8 bit."""
    xs = np.concatenate([x.reshape(-1, 3).astype(np.float64), np.ones((x.size // 3, 1))], axis=1)
    coef, *_ = np.linalg.lstsq(xs, target.reshape(-1, 3).astype(np.float64), rcond=None)
    return np.clip(np.rint(xs @ coef), 0, 255).astype(np.uint8).reshape(x.shape)


def baselines(x: np.ndarray, tx: np.ndarray) -> Dict[str, Dict[str, Any]]:
    """identity (x vs T(x)), best affine colour map (fitted on the test pairs), perfect (T(x) vs T(x))."""
    return {"identity": scores(x, tx), "affine": scores(affine_fit(x, tx), tx), "perfect": scores(tx, tx)}


def translate(translator: Any, images: np.ndarray, batch: int = 32) -> np.ndarray:
    """G of N x H x W x 3 uint8 images as the data sets feed them ([-1, 1] floats), converted to 8 bit as test.py
    saves its outputs (clamp, (y + 1) / 2 * 255, truncate)."""
    import torch

    from util.metrics.images import from_model_range

    out = []
    for start in range(0, len(images), batch):
        x = torch.from_numpy(images[start:start + batch]).permute(0, 3, 1, 2).float().div(255.0)
        y = translator.forward((x - 0.5) / 0.5)
        out.append(from_model_range(y).permute(0, 2, 3, 1).numpy())
    return np.concatenate(out)


def save_strip(path: Path, rows: Sequence[np.ndarray]) -> None:
    """One PNG: each row of images side by side, rows stacked (x / T(x) / G(x))."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate([np.concatenate(list(r), axis=1) for r in rows], axis=0)).save(path)


# ---------------------------------------------------------------------------------------------------- configs
@dataclass
class Config:
    """One row of the table: a label and train.py flags (``official``: run by the official code)."""

    label: str
    flags: List[str]
    official: bool = False
    slug: str = field(default="")

    def __post_init__(self) -> None:
        self.slug = re.sub(r"[^A-Za-z0-9]+", "_", self.label).strip("_") or "config"

    @property
    def ema(self) -> bool:
        """Trained with ``--ema DECAY > 0`` (scored with use_ema too)."""
        return "--ema" in self.flags and float(self.flags[self.flags.index("--ema") + 1]) > 0


def parse_config(text: str) -> Config:
    """``"label: flags"`` (or just flags, then the label is the flags) -> Config; BenchError when unusable."""
    label, colon, rest = text.partition(":")
    if not colon:
        label, rest = text, text
    label = label.strip()
    try:
        flags = shlex.split(rest)
    except ValueError as exc:
        raise BenchError(f"--config {text!r}: {exc}") from None
    if not label:
        raise BenchError(f"--config {text!r}: the label before ':' is empty")
    taken = [f for f in flags if f in CONTROLLED]
    if taken:
        raise BenchError(f"--config {text!r}: {', '.join(taken)} is set by the benchmark; leave it out")
    if "--ema" in flags:
        i = flags.index("--ema")
        try:
            float(flags[i + 1])
        except (IndexError, ValueError):
            raise BenchError(f"--config {text!r}: --ema needs a number") from None
    return Config(label, flags)


def flag_value(flags: Sequence[str], name: str, default: str) -> str:
    """The last value of ``name`` in ``flags`` (``default`` if absent)."""
    value = default
    for i, f in enumerate(flags[:-1]):
        if f == name:
            value = flags[i + 1]
    return value


def official_architecture(net_flags: Sequence[str]) -> Dict[str, Any]:
    """The official cycle_gan generator's architecture for ``load_generator(architecture=)`` (it writes no
    config.json): our --net_flags on the official defaults (instance norm, no dropout for cycle_gan)."""
    return {"netG": flag_value(net_flags, "--netG", "resnet_9blocks"), "ngf": int(flag_value(net_flags, "--ngf", "64")),
            "norm": flag_value(net_flags, "--norm", "instance"), "input_nc": 3, "output_nc": 3, "no_dropout": True}


# ---------------------------------------------------------------------------------------------------- one run
def our_argv(config: Config, args: argparse.Namespace, dataroot: Path, checkpoints: Path, name: str,
             seed: int) -> List[str]:
    """train.py's command line of a run of ours: fixed sizes, constant LR, quiet, nothing saved until stopped."""
    return [sys.executable, str(ROOT / "train.py"), "--dataroot", str(dataroot), "--name", name, "--checkpoints_dir",
            str(checkpoints), "--seed", str(seed), "--load_size", str(args.size), "--crop_size", str(args.size),
            *shlex.split(args.net_flags), "--n_epochs", "100000", "--n_epochs_decay", "0", "--gpu_ids", args.gpu_ids,
            "--num_threads", "0", "--display_id", "0", "--no_html", "--display_freq", NEVER, "--update_html_freq",
            NEVER, "--print_freq", "100", "--save_latest_freq", NEVER, "--save_epoch_freq", NEVER, "--overwrite",
            *config.flags]


def official_argv(config: Config, args: argparse.Namespace, dataroot: Path, checkpoints: Path,
                  name: str) -> List[str]:
    """The official train.py's command line under the SIGTERM wrapper (run in its checkout)."""
    from bench.official import check_flags

    flags = ["--load_size", str(args.size), "--crop_size", str(args.size), *shlex.split(args.net_flags),
             "--n_epochs", "100000", "--n_epochs_decay", "0", "--num_threads", "0", "--display_freq", NEVER,
             "--update_html_freq", NEVER, "--no_html", "--print_freq", "100", "--save_latest_freq", NEVER,
             "--save_epoch_freq", NEVER, *config.flags]
    try:
        check_flags(Path(args.official), flags)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    return [sys.executable, "-c", OFFICIAL_WRAPPER, "--dataroot", str(dataroot), "--name", name,
            "--checkpoints_dir", str(checkpoints), *flags]


def train_for(cmd: List[str], cwd: Path, env: Dict[str, str], budget: float, log_file: Path,
              startup_timeout: float) -> Dict[str, Any]:
    """Run ``cmd``; ``budget`` s after its start marker send SIGTERM and wait for it to save and exit.

    Returns the exit status, the training wall time (marker -> exit), the start-up time (launch -> marker),
    the total, and the iterations the official wrapper printed (None for ours). A run that ends before its
    time, never prints the marker, or does not stop within ``startup_timeout`` after SIGTERM is killed and
    reported (``error``)."""
    seen = threading.Event()
    marks: Dict[str, Any] = {"start": None, "stopped_iters": None}
    launched = time.perf_counter()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w", encoding="utf-8") as sink:
        shown = ["python -c OFFICIAL_WRAPPER"] + cmd[3:] if cmd[1:3] == ["-c", OFFICIAL_WRAPPER] else cmd
        sink.write("$ " + " ".join(shlex.quote(c) for c in shown) + "\n")
        sink.flush()
        proc = subprocess.Popen(cmd, cwd=str(cwd), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, errors="replace")

        def reader() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                sink.write(line)
                if marks["start"] is None and START_MARKER in line:
                    marks["start"] = time.perf_counter()
                    seen.set()
                match = STOP_LINE.search(line)
                if match:
                    marks["stopped_iters"] = int(match.group(1))
            seen.set()  # ended without the marker: wake the waiter

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()
        error = None
        code: Optional[int] = None
        if not seen.wait(startup_timeout) or marks["start"] is None:
            error = "never started training" if proc.poll() is None else "ended during start-up"
        else:
            try:
                code = proc.wait(timeout=max(0.0, budget - (time.perf_counter() - marks["start"])))
                error = "ended before its time was up"
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)
                try:
                    code = proc.wait(timeout=startup_timeout)
                except subprocess.TimeoutExpired:
                    error = "did not stop within --startup_timeout after SIGTERM"
        if proc.poll() is None:
            proc.kill()
        code = proc.wait() if code is None else code
        thread.join(timeout=30)
    ended = time.perf_counter()
    if error is None and code != EXIT_SIGTERM:
        error = f"exited with status {code} instead of saving on SIGTERM ({EXIT_SIGTERM})"
    start = marks["start"]
    return {"exit_status": code, "error": f"{error}; see {log_file}" if error else None,
            "train_s": (ended - start) if start is not None else None,
            "startup_s": (start - launched) if start is not None else None, "total_s": ended - launched,
            "stopped_iters": marks["stopped_iters"]}


def our_iterations(exp: Path) -> Optional[int]:
    """total_iters of the training state the stop saved (None when unreadable)."""
    from training.checkpoints import read_state, state_path

    try:
        return int(read_state(state_path(str(exp), "latest"))["total_iters"])
    except Exception:  # noqa: BLE001 - a run that saved no state is reported, not scored
        return None


def score_run(config: Config, exp: Path, args: argparse.Namespace, data: Dict[str, np.ndarray],
              sample_file: Path) -> Dict[str, Dict[str, Any]]:
    """The run's scores: ``G`` (G_A or G; A -> B), ``G_ema`` with --ema, ``G_B`` (B -> A) when there is one."""
    from options.pretrained import load_generator

    arch = official_architecture(shlex.split(args.net_flags)) if config.official else None
    out: Dict[str, Dict[str, Any]] = {}
    forward = load_generator(str(exp), epoch="latest", architecture=arch)
    fake = translate(forward, data["x"])
    out["G"] = {"net": forward.info["net"], **scores(fake, data["tx"])}
    save_strip(sample_file, [data["x"][:N_SAMPLES], data["tx"][:N_SAMPLES], fake[:N_SAMPLES]])
    if config.ema:
        average = load_generator(str(exp), epoch="latest", use_ema=True)
        out["G_ema"] = {"net": average.info["net"], **scores(translate(average, data["x"]), data["tx"])}
    if (exp / "latest_net_G_B.pth").is_file():
        backward = load_generator(str(exp), epoch="latest", net="G_B", architecture=arch)
        out["G_B"] = {"net": "G_B", **scores(translate(backward, data["tx"]), data["x_back"])}
    return out


def one_run(config: Config, seed: int, args: argparse.Namespace, dataroot: Path, out: Path,
            data: Dict[str, np.ndarray]) -> Dict[str, Any]:
    """Train ``config`` with ``seed`` for the budget, check it saved, score it; the run's record."""
    checkpoints = out / "checkpoints"
    name = f"{config.slug}_seed{seed}"
    exp = checkpoints / name
    if exp.exists():
        shutil.rmtree(exp)  # a fresh folder: a file there can only come from this run
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if args.threads > 0:
        env.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    if config.official:
        cmd, cwd = official_argv(config, args, dataroot, checkpoints, name), Path(args.official)
        if args.gpu_ids.strip() == "-1":
            env["CUDA_VISIBLE_DEVICES"] = ""  # the official code takes a GPU whenever it sees one
    else:
        cmd, cwd = our_argv(config, args, dataroot, checkpoints, name, seed), ROOT
    log.info("[%s, seed %d] training for %g s", config.label, seed, args.budget)
    run = train_for(cmd, cwd, env, args.budget, out / "logs" / f"{name}.log", args.startup_timeout)
    record: Dict[str, Any] = {"config": config.label, "seed": seed, "official": config.official,
                              "argv": cmd[3:] if config.official else cmd[2:], **run}
    generator = exp / ("latest_net_G_A.pth" if (exp / "latest_net_G_A.pth").is_file() else "latest_net_G.pth")
    if record["error"] is None and not generator.is_file():
        record["error"] = f"no latest_net_G_A.pth or latest_net_G.pth in {exp} after the stop"
    iters = run["stopped_iters"] if config.official else our_iterations(exp)
    if record["error"] is None and iters is None:
        record["error"] = f"no iteration count: {'no stop line in the log' if config.official else 'no training state'}"
    record["iterations"] = iters
    if record["error"] is None:
        try:
            record["scores"] = score_run(config, exp, args, data, out / "samples" / f"{name}.png")
        except Exception as exc:  # noqa: BLE001 - one bad checkpoint must not end a 30-minute benchmark
            record["error"] = f"scoring failed: {type(exc).__name__}: {exc}"
    if not args.keep_checkpoints and exp.is_dir():
        for weights in exp.glob("*.pth"):
            weights.unlink()
    if record["error"]:
        log.warning("[%s, seed %d] FAILED: %s", config.label, seed, record["error"])
    else:
        g = record["scores"]["G"]
        log.info("[%s, seed %d] %d iterations in %.1f s: L1 %.3f, PSNR %.2f dB%s", config.label, seed, iters,
                 run["train_s"], g["l1"], g["psnr"], "".join(
                     f"; {k} L1 {v['l1']:.3f}" for k, v in record["scores"].items() if k != "G"))
    return record


# ---------------------------------------------------------------------------------------------------- summary
def stats(values: Sequence[float]) -> Dict[str, Any]:
    """n, mean, standard deviation (n - 1; None for one value), min, max."""
    v = [float(x) for x in values]
    n = len(v)
    mean = sum(v) / n if n else math.nan
    std = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else None
    return {"n": n, "mean": mean, "std": std, "min": min(v) if v else math.nan, "max": max(v) if v else math.nan}


def summarise(configs: Sequence[Config], runs: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """One row per config (and per config with --ema, a use_ema row) over its scored runs."""
    rows = []
    for config in configs:
        done = [r for r in runs if r["config"] == config.label and not r["error"]]
        variants = [("G", config.label)] + ([("G_ema", f"{config.label}, use_ema")] if config.ema else [])
        for key, label in variants:
            scored = [r for r in done if key in r.get("scores", {})]
            row: Dict[str, Any] = {"label": label, "flags": " ".join(config.flags) + (" (use_ema)" if key == "G_ema"
                                                                                      else ""),
                                   "official": config.official, "net": key,
                                   "seeds": [r["seed"] for r in scored],
                                   "failed": len([r for r in runs if r["config"] == config.label and r["error"]])}
            if scored:
                row["iterations"] = stats([r["iterations"] for r in scored])
                row["train_s"] = stats([r["train_s"] for r in scored])
                row["l1"] = stats([r["scores"][key]["l1"] for r in scored])
                row["psnr"] = stats([r["scores"][key]["psnr"] for r in scored])
                back = [r["scores"]["G_B"]["l1"] for r in scored if "G_B" in r["scores"]]
                if key == "G" and len(back) == len(scored):
                    row["l1_BtoA"] = stats(back)
            rows.append(row)
    return rows


def _pm(s: Optional[Dict[str, Any]], digits: int = 2, spread: bool = True, extent: bool = False) -> str:
    """``mean ± std (min-max)`` of a stats dict."""
    if not s:
        return "—"
    text = f"{s['mean']:.{digits}f}"
    if spread:
        text += f" ± {s['std']:.{digits}f}" if s["std"] is not None else " ± n/a"
    if extent and s["n"] > 1:
        text += f" ({s['min']:.{digits}f}–{s['max']:.{digits}f})"
    return text


def table(rows: Sequence[Dict[str, Any]], base: Dict[str, Dict[str, Any]]) -> str:
    """The markdown table: config rows, then the baseline rows."""
    head = ("| config | flags | seeds | iterations (mean) | wall-clock s (mean) | L1 A→B ↓ mean ± std (min–max) "
            "| PSNR A→B dB ↑ mean ± std | L1 B→A (G_B) ↓ |")
    lines = [head, "|" + "---|" * 8]
    for r in rows:
        seeds = ",".join(str(s) for s in r["seeds"]) or "none"
        if r["official"] and r["seeds"]:
            seeds = f"{len(r['seeds'])} unseeded"  # the official train.py has no --seed
        if r["failed"]:
            seeds += f" ({r['failed']} failed)"
        lines.append(f"| {r['label']} | `{r['flags']}` | {seeds} | {_pm(r.get('iterations'), 0, False)} | "
                     f"{_pm(r.get('train_s'), 1, False)} | {_pm(r.get('l1'), 2, True, True)} | "
                     f"{_pm(r.get('psnr'), 2)} | {_pm(r.get('l1_BtoA'), 2)} |")
    names = {"identity": "baseline: identity (x itself)",
             "affine": "baseline: best affine colour map (least squares on the test pairs)",
             "perfect": "baseline: perfect (T(x) itself)"}
    for key, label in names.items():
        s = base[key]
        psnr = "inf" if math.isinf(s["psnr"]) else f"{s['psnr']:.2f}"
        lines.append(f"| {label} | | | | | {s['l1']:.2f} | {psnr} | |")
    return "\n".join(lines)


def comparisons(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Every pair of rows with scores: difference of mean L1, sum of the standard deviations, Welch's t, and
    whether the difference exceeds the spread (|difference| > sum of the standard deviations)."""
    out = []
    for a, b in itertools.combinations([r for r in rows if r.get("l1")], 2):
        sa, sb = a["l1"], b["l1"]
        diff = sb["mean"] - sa["mean"]
        item: Dict[str, Any] = {"a": a["label"], "b": b["label"], "diff": diff,
                                "relative": diff / sa["mean"] if sa["mean"] else None}
        if sa["std"] is None or sb["std"] is None:
            item.update(spread=None, welch_t=None, exceeds=None)
        else:
            spread = sa["std"] + sb["std"]
            se = math.sqrt(sa["std"] ** 2 / sa["n"] + sb["std"] ** 2 / sb["n"])
            item.update(spread=spread, welch_t=diff / se if se > 0 else (math.inf if diff else 0.0),
                        exceeds=abs(diff) > spread)
        out.append(item)
    return out


def comparison_lines(items: Sequence[Dict[str, Any]]) -> List[str]:
    """One markdown line per pair: which has the lower L1, by how much, and whether that exceeds the spread."""
    lines = []
    for c in items:
        better, worse = (c["a"], c["b"]) if c["diff"] > 0 else (c["b"], c["a"])
        relative = f" = {abs(c['relative']):.1%} of {c['a']}'s" if c["relative"] is not None else ""
        head = f"- {better} < {worse}: L1 lower by {abs(c['diff']):.2f}{relative}; "
        if c["exceeds"] is None:
            lines.append(head + "spread unknown (one seed): no claim")
        else:
            verdict = "LARGER than the spread" if c["exceeds"] else "within the spread: no claim"
            lines.append(head + f"sum of the std {c['spread']:.2f}, Welch t {abs(c['welch_t']):.1f}: {verdict}")
    return lines


def _json_safe(value: Any) -> Any:
    """Non-finite floats as strings, recursively (strict JSON)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


# ---------------------------------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    """Flags of the benchmark (defaults = the documented run)."""
    p = argparse.ArgumentParser(
        description="A quality benchmark with a known answer: photos vs a fixed colour transformation T of other "
                    "photos, scored as the L1 distance of G(x) to T(x) over several seeds. Default run: 5 configs "
                    "x 3 seeds x (120 s of training + ~15 s) = about 34 minutes; 41 with --official; half with "
                    "--jobs 2 --threads 1 on two cores.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--photos", action="append", default=None, metavar="DIR",
                   help="a folder of photos (recursive; repeatable); default: ../shared/datasets monet2photo/testB, "
                        "apple2orange/testA and testB")
    p.add_argument("--out", default=str(ROOT / "bench" / "out" / "quality_known"), help="output folder")
    p.add_argument("--size", type=int, default=32, help="image size (photos centre-cropped square and resized)")
    p.add_argument("--test_num", type=int, default=200, help="held-out test photos")
    p.add_argument("--data_seed", type=int, default=0, help="seed of the split into test, A and B photos")
    p.add_argument("--hue", type=float, default=100.0, help="T: hue rotation about the grey axis, degrees")
    p.add_argument("--chroma", type=float, default=0.6,
                   help="T: chroma scale (at most 1 / (2 max(-cos(hue + k 120°))): 0.653 for 100°, 1 for 120°)")
    p.add_argument("--gamma", type=float, default=1.2, help="T: gamma applied before the matrix")
    p.add_argument("--config", action="append", default=None, metavar="'LABEL: FLAGS'",
                   help="a row: label and train.py flags (repeatable); default: " + "; ".join(DEFAULT_CONFIGS))
    p.add_argument("--net_flags", default=DEFAULT_NET_FLAGS, help="network sizes given to every config")
    p.add_argument("--official", default=None, metavar="DIR",
                   help=f"a checkout of the official code: adds the row '{OFFICIAL_LABEL}' ({OFFICIAL_FLAGS})")
    p.add_argument("--official_flags", default=OFFICIAL_FLAGS, help="the official row's train.py flags")
    p.add_argument("--seeds", type=int, default=3, help="runs per config (train.py --seed 0 .. N-1)")
    p.add_argument("--budget", type=float, default=120.0, help="training wall-clock seconds per run")
    p.add_argument("--threads", type=int, default=0,
                   help="OMP_NUM_THREADS of each training and of scoring (0: leave the default)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at once, in the alternating order (each needs its own cores for equal wall-clock: "
                        "--threads must be set and jobs x threads at most the cores this process may use)")
    p.add_argument("--gpu_ids", default="-1", help="train.py --gpu_ids (-1 = CPU; also hides GPUs from the "
                                                   "official code)")
    p.add_argument("--startup_timeout", type=float, default=300.0,
                   help="seconds to wait for a run to start training, and to save after SIGTERM")
    p.add_argument("--keep_checkpoints", action="store_true", help="keep each run's .pth files")
    return p


def resolve_photos(args: argparse.Namespace) -> List[Path]:
    """The photo files; BenchError (exit 2) when there are none."""
    if args.photos:
        files = photo_files([Path(d) for d in args.photos])
        if not files:
            raise BenchError(f"no image files under --photos {' '.join(args.photos)}")
        return files
    present = [d for d in DEFAULT_PHOTO_DIRS if d.is_dir()]
    if not present:
        raise BenchError(f"no photos: {SHARED} (apple2orange, monet2photo) is not here; pass --photos DIR "
                         f"(a folder of photos)")
    return photo_files(present)


def check_args(args: argparse.Namespace) -> None:
    """One-line errors for flags that cannot give a table."""
    if args.size < 16 or args.size % 4:
        raise BenchError(f"--size must be a multiple of 4 and >= 16, got {args.size}")
    if args.test_num < 1 or args.seeds < 1 or not args.budget > 0 or args.threads < 0:
        raise BenchError("--test_num and --seeds must be >= 1, --budget > 0 and --threads >= 0")
    if args.jobs < 1:
        raise BenchError(f"--jobs must be >= 1, got {args.jobs}")
    if args.jobs > 1:
        from util.threads import available_cores

        cores = available_cores()
        if args.threads < 1 or args.jobs * args.threads > cores:
            raise BenchError(f"--jobs {args.jobs} needs --threads T with jobs x T <= {cores} (the cores this process "
                             f"may use), so that every run has its own cores; got --threads {args.threads}")
    if args.official is not None:
        from bench.official import check_checkout

        problem = check_checkout(Path(args.official))
        if problem:
            raise BenchError(f"--official: {problem}")


def main(argv: Optional[Sequence[str]] = None) -> Dict[str, Any]:
    """Build the data, run every config for every seed (alternating), score, print and save the table."""
    args = build_parser().parse_args(argv)
    setup_logging()
    check_args(args)
    transform = ColourTransform(args.hue, args.chroma, args.gamma)
    configs = [parse_config(c) for c in (args.config or DEFAULT_CONFIGS)]
    if args.official is not None:
        configs.append(Config(OFFICIAL_LABEL, shlex.split(args.official_flags), official=True))
    labels = [c.label for c in configs]
    if len(set(labels)) != len(labels) or len({c.slug for c in configs}) != len(configs):
        raise BenchError(f"config labels must be distinct (also after replacing non-alphanumerics): {labels}")
    files = resolve_photos(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    dataroot, meta = build_data(files, out, args, transform)
    x = read_folder(dataroot / "testA", meta["names"]["test"])
    tx = read_folder(dataroot / "testB", meta["names"]["test"])
    data = {"x": x, "tx": tx, "x_back": transform.apply_uint8(tx, inverse=True)}
    base = baselines(x, tx)
    command = "python bench/quality_known.py " + " ".join(shlex.quote(a) for a in (
        argv if argv is not None else sys.argv[1:]))
    results: Dict[str, Any] = {
        "command": command.strip(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "dataroot": str(dataroot),
        "data": {k: meta[k] for k in ("photos", "size", "test_num", "data_seed", "counts")},
        "transform": transform.describe(), "budget_s": args.budget, "net_flags": args.net_flags,
        "threads": args.threads, "jobs": args.jobs, "gpu_ids": args.gpu_ids, "load_before": os.getloadavg()[0],
        "configs": [{"label": c.label, "flags": c.flags, "official": c.official} for c in configs],
        "baselines": base, "runs": []}
    log.info("T: hue %+g°, chroma x%g, gamma %g; baselines: identity L1 %.2f, best affine L1 %.2f", args.hue,
             args.chroma, args.gamma, base["identity"]["l1"], base["affine"]["l1"])
    started = time.time()
    plan = [(seed, config) for seed in range(args.seeds) for config in configs]  # seed 0 of every config, ...
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # --jobs: that many runs at once, in this order
        pending = [pool.submit(one_run, config, seed, args, dataroot, out, data) for seed, config in plan]
        for future in pending:
            results["runs"].append(future.result())
            (out / "quality_known.json").write_text(json.dumps(_json_safe(results), indent=1) + "\n")
    results["wall_s"] = time.time() - started
    results["load_after"] = os.getloadavg()[0]
    rows = summarise(configs, results["runs"])
    pairs = comparisons(rows)
    results["rows"], results["comparisons"] = rows, pairs
    text = table(rows, base)
    note = (f"T: hue rotation {args.hue:g}°, chroma x{args.chroma:g}, gamma {args.gamma:g}; {meta['counts']['test']} "
            f"test photos, {meta['counts']['A']} A / {meta['counts']['B']} B training photos at {args.size} px; "
            f"{args.budget:g} s of training per run, {args.net_flags}; threads "
            f"{args.threads or 'default'}, {args.jobs} run(s) at once; load average {results['load_before']:.2f} before, "
            f"{results['load_after']:.2f} after; total {results['wall_s'] / 60:.1f} min. L1 in grey levels "
            f"[0, 255] against the known answer T(x); spread = standard deviation over seeds.")
    lines = comparison_lines(pairs)
    results["table"] = text
    report = f"`{results['command']}`\n\n{text}\n\n{note}\n\n" + "\n".join(lines) + "\n"
    failed = [r for r in results["runs"] if r["error"]]
    if failed:
        report += "\nFailed runs (not scored):\n" + "\n".join(
            f"- {r['config']}, seed {r['seed']}: {r['error']}" for r in failed) + "\n"
    (out / "quality_known.json").write_text(json.dumps(_json_safe(results), indent=1) + "\n")
    (out / "quality_known.md").write_text(report)
    log.info("\n%s", report)
    log.info("written: %s and %s", out / "quality_known.md", out / "quality_known.json")
    return results


if __name__ == "__main__":
    try:
        res = main()
    except BenchError as exc:
        print(f"bench/quality_known.py: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    raise SystemExit(1 if any(r["error"] for r in res["runs"]) else 0)
