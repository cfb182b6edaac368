"""Training-time evaluation (``--eval_freq``): metrics on a fixed test subset and the best checkpoint.

Protocol (docs/evaluation.md):

* The fixed test subset is the first ``--eval_num`` sorted files of ``<dataroot>/testA`` and ``testB``
  (unaligned data, e.g. cycle_gan) or of ``<dataroot>/test`` (paired data: pix2pix, colorization, template);
  ``val`` is used when there is no ``test`` split. It is loaded once, with test.py's transform for the default
  preprocessing: a bicubic resize to ``--crop_size`` x ``--crop_size`` (square), no crop, no flip.
* Unaligned data: ``AtoB`` = the generator that maps dataset domain A to B, as the model names it in
  ``eval_generators()`` (cycle_gan: G_A, or G_B with ``--direction BtoA``), applied to testA and compared with
  testB; ``BtoA`` the other way, when the model translates that way too. Each metric key gets the suffix
  (``swd_AtoB``, ``domain_score_BtoA``...); ``domain_acc_real`` (the classifier's accuracy on the real test
  subset of both domains, a sanity figure) is computed once. Paired data: the model's ``forward()`` on the
  subset, and ``eval_pair()`` says what it compares (``G(A)`` vs ``B`` by default).
* Generators run as test.py runs them by default (training mode, no ``--eval``; BatchNorm networks one image
  at a time), under ``torch.no_grad`` and the ``--amp`` autocast, unwrapped from DDP/compile. Dropout draws
  from a fixed seed; every global RNG state, BatchNorm buffer and module mode is restored afterwards, so
  evaluating does not change training.
* Real-set statistics (Inception features, the domain classifier) are computed once and reused.
* Results go to ``visualizer.log_metrics`` (console, loss_log.jsonl, metrics plot, W&B/TensorBoard); when the
  ``--eval_best`` metric improves strictly, ``best_net_*.pth`` (+ config.json) and ``best.json`` are written.
  Only rank 0 evaluates.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn

from torch.utils.data import default_collate

from data import find_dataset_using_name
from data.base_dataset import direction_nc, get_transform, list_images, load_image, max_pixels
from models.wrappers import unwrap
from options.evaluation import is_unpaired, resolve_best, resolve_metrics
from util import amp
from util.distributed import barrier
from util.errors import UserError
from util.image_io import file_kind
from util.logger import get_logger
from util.metrics import compute_metrics, higher_is_better, needing
from util.metrics.classifier import get_domain_classifier
from util.metrics.images import from_model_range
from util.metrics.inception import get_extractor
from util.seed import capture_rng_state, restore_rng_state
from util.util import DIRECTIONS, atomic_write_text

log = get_logger(__name__)

SPLITS = ("test", "val")  # the first that exists holds the fixed test subset
EVAL_BATCH = 16
EVAL_SEED = 0
BEST_PREFIX = "best"
BEST_FILE = "best.json"
FIXED = {"crop_pos": (0, 0), "flip": False}  # get_transform params: no crop offset, no flip


def best_value(results: Mapping[str, float], key: str) -> float:
    """The value of ``key``: itself, or the mean of ``key_AtoB`` and ``key_BtoA`` over the directions scored."""
    if key in results:
        return float(results[key])
    scored = [results[k] for k in (f"{key}_{d}" for d in DIRECTIONS) if k in results]
    if scored:
        return float(sum(scored) / len(scored))
    raise KeyError(f"metric '{key}' is not among the results ({', '.join(results)})")


# ---------------------------------------------------------------------------------------------------- data
def find_split(dataroot: str, folders: Callable[[str], Sequence[str]]) -> str:
    """The first of test/val whose folders all exist under ``dataroot``; a clear error otherwise."""
    for split in SPLITS:
        if all(os.path.isdir(os.path.join(dataroot, f)) for f in folders(split)):
            return split
    wanted = " or ".join(", ".join(os.path.join(dataroot, f) for f in folders(s)) for s in SPLITS)
    raise FileNotFoundError(f"--eval_freq needs a test split for its fixed test subset: {wanted} not found")


def eval_options(opt: argparse.Namespace, phase: str) -> argparse.Namespace:
    """A copy of ``opt`` with test.py's deterministic transform: resize to crop_size, no crop, no flip."""
    out = argparse.Namespace(**vars(opt))
    out.phase = phase
    out.preprocess = "resize_and_crop"
    out.load_size = opt.crop_size
    out.no_flip = True
    out.serial_batches = True
    out.max_dataset_size = float("inf")
    out.isTrain = False
    return out



def load_folder(folder: str, opt: argparse.Namespace, count: int,
                grayscale: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """First ``count`` sorted images of ``folder``: (network inputs in [-1, 1], uint8 RGB for the metrics)."""
    paths = list_images(folder, opt, f"the fixed test subset of --eval_freq reads the images of {folder}")[:count]
    transform = get_transform(opt, FIXED, grayscale=grayscale, convert=False)
    inputs, rgb = [], []
    for path in paths:
        arr = np.array(transform(load_image(path, max_pixels(opt))), dtype=np.uint8)
        chw = torch.from_numpy(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1).copy())
        inputs.append(chw.float() / 127.5 - 1.0)
        rgb.append(chw.expand(3, -1, -1) if chw.shape[0] == 1 else chw)
    return torch.stack(inputs), torch.stack(rgb).contiguous()


# ---------------------------------------------------------------------------------------------------- running G
@contextlib.contextmanager
def preserved_state(nets: Sequence[nn.Module]) -> Iterator[None]:
    """Restore every global RNG state, the networks' buffers and module modes on exit; seed dropout."""
    rng = capture_rng_state()
    buffers = [[b.detach().clone() for b in net.buffers()] for net in nets]
    modes = [[m.training for m in net.modules()] for net in nets]
    try:
        torch.manual_seed(EVAL_SEED)
        yield
    finally:
        with torch.no_grad():
            for net, saved in zip(nets, buffers):
                for b, old in zip(net.buffers(), saved):
                    b.copy_(old)
        for net, saved_modes in zip(nets, modes):
            for m, mode in zip(net.modules(), saved_modes):
                m.training = mode
        restore_rng_state(rng)


def prepare_for_eval(nets: Sequence[nn.Module]) -> int:
    """Set modes as test.py would (training mode; SyncBatchNorm in eval mode under a process group, since only
    rank 0 runs) and return the batch size (1 when BatchNorm uses per-batch statistics, as test.py's batches)."""
    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    per_batch_stats = False
    for net in nets:
        for m in net.modules():
            if isinstance(m, nn.SyncBatchNorm) and distributed:
                m.eval()
            elif isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training:
                per_batch_stats = True
    return 1 if per_batch_stats else EVAL_BATCH


@contextlib.contextmanager
def bare_networks(model: Any) -> Iterator[List[nn.Module]]:
    """Temporarily replace the model's generators by their bare modules (no DDP/compile wrapper), or by their
    moving averages with ``--use_ema``."""
    names = [n for n in model.model_names if n.startswith("G")]
    wrapped = {n: getattr(model, "net" + n) for n in names}
    try:
        for n in names:
            use = f"{n}_ema" if model.opt.use_ema and f"{n}_ema" in wrapped else n
            setattr(model, "net" + n, unwrap(wrapped[use]))
        yield [getattr(model, "net" + n) for n in names]
    finally:
        for n, net in wrapped.items():
            setattr(model, "net" + n, net)


def translate(model: Any, net: nn.Module, inputs: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Run ``net`` on ``inputs`` in batches (no_grad, --amp autocast); uint8 RGB outputs as saved by test.py."""
    out = []
    with torch.no_grad():
        for start in range(0, inputs.shape[0], batch_size):
            with amp.autocast(model.amp_mode, model.device):
                fake = net(inputs[start:start + batch_size].to(model.device))
            out.append(from_model_range(fake.float().cpu()))
    return torch.cat(out)


# ---------------------------------------------------------------------------------------------------- suites
def _clean(results: Mapping[str, float]) -> Dict[str, float]:
    """Drop the per-level SWD values (``swd_64``...); keep the headline numbers."""
    return {k: float(v) for k, v in results.items() if not (k.startswith("swd_") and k[4:].isdigit())}


class UnpairedSuite:
    """Fixed testA/testB subsets and their real-set statistics; scores G_A/G_B translations in both directions."""

    def __init__(self, opt: argparse.Namespace, metrics: Sequence[str], device: torch.device) -> None:
        """Load the subsets; train/load the domain classifier and Inception features when asked for."""
        self.metrics = list(metrics)
        self.device = device
        self.split = find_split(opt.dataroot, lambda s: (s + "A", s + "B"))
        eopt = eval_options(opt, self.split)
        nc_A, nc_B = direction_nc(opt)
        self.folders = {d: os.path.join(opt.dataroot, self.split + d) for d in "AB"}
        self.inputs: Dict[str, torch.Tensor] = {}
        self.real: Dict[str, torch.Tensor] = {}
        for d, nc in (("A", nc_A), ("B", nc_B)):
            self.inputs[d], self.real[d] = load_folder(self.folders[d], eopt, opt.eval_num, grayscale=nc == 1)
        self.kw: Dict[str, Any] = {"device": device, "seed": EVAL_SEED}
        self.real_features: Dict[str, Any] = {}
        if needing(self.metrics, "inception"):
            self.kw["inception"] = get_extractor(None, opt.inception_weights or None, device)
            self.real_features = {d: self.kw["inception"](self.real[d]) for d in "AB"}
        self.classifier = None
        self.domain_acc_real: Optional[float] = None
        if "classifier" in self.metrics:
            train = [os.path.join(opt.dataroot, opt.phase + d) for d in "AB"]
            self.classifier = get_domain_classifier(train[0], train[1], device=device)
            self.domain_acc_real = self.classifier.accuracy(self.real["A"], self.real["B"])
        log.info("evaluation subset: %d images of %s, %d of %s at %dx%d", len(self.real["A"]), self.folders["A"],
                 len(self.real["B"]), self.folders["B"], opt.crop_size, opt.crop_size)

    def score(self, fake_B: Optional[torch.Tensor], fake_A: Optional[torch.Tensor] = None) -> Dict[str, float]:
        """Metrics of uint8 translations of testA (``fake_B``) and testB (``fake_A``, None for a model that
        translates one way) against the real subsets."""
        out: Dict[str, float] = {}
        others = [m for m in self.metrics if m != "classifier"]
        for direction, fake, target in (("AtoB", fake_B, "B"), ("BtoA", fake_A, "A")):
            if fake is None:
                continue
            res: Dict[str, float] = {}
            if others:
                kw = dict(self.kw)
                if self.real_features:
                    kw["real_features"] = self.real_features[target]
                res.update(compute_metrics(others, fake, self.real[target], **kw))
            if self.classifier is not None:
                res.update(compute_metrics(["classifier"], fake, None, classifier=self.classifier, target=target))
            out.update({f"{k}_{direction}": v for k, v in _clean(res).items()})
        if self.domain_acc_real is not None:
            out["domain_acc_real"] = self.domain_acc_real
        return out

    def evaluate(self, model: Any) -> Dict[str, float]:
        """Translate the subsets with the generators the model names per direction and score them."""
        names = model.eval_generators()
        fakes: Dict[str, Optional[torch.Tensor]] = {"AtoB": None, "BtoA": None}
        with bare_networks(model) as nets, preserved_state(nets):
            batch = prepare_for_eval(nets)
            for direction, source in (("AtoB", "A"), ("BtoA", "B")):
                if direction in names:
                    net = getattr(model, "net" + names[direction])
                    fakes[direction] = translate(model, net, self.inputs[source], batch)
        return self.score(fakes["AtoB"], fakes["BtoA"])


class PairedSuite:
    """Fixed aligned test subset; scores G(A) against the ground truth B through the model's own forward."""

    def __init__(self, opt: argparse.Namespace, metrics: Sequence[str], device: torch.device) -> None:
        """Load the first ``--eval_num`` items of the test split with the dataset class of ``--dataset_mode``."""
        self.metrics = list(metrics)
        self.split = find_split(opt.dataroot, lambda s: (s,))
        dataset = find_dataset_using_name(opt.dataset_mode)(eval_options(opt, self.split))
        n = min(opt.eval_num, len(dataset))
        self.items = [dataset[i] for i in range(n)]
        self.kw: Dict[str, Any] = {"device": device, "seed": EVAL_SEED}
        self.inception_weights = opt.inception_weights or None
        self.real: Optional[torch.Tensor] = None
        log.info("evaluation subset: %d images of %s at %dx%d", n, os.path.join(opt.dataroot, self.split),
                 opt.crop_size, opt.crop_size)

    def score(self, fake: torch.Tensor, real: torch.Tensor) -> Dict[str, float]:
        """Metrics of uint8 outputs against the uint8 ground truth (real-set Inception features cached)."""
        if needing(self.metrics, "inception") and "real_features" not in self.kw:
            self.kw["inception"] = get_extractor(None, self.inception_weights, self.kw["device"])
            self.kw["real_features"] = self.kw["inception"](real)
        return _clean(compute_metrics(self.metrics, fake, real, **self.kw))

    def evaluate(self, model: Any) -> Dict[str, float]:
        """Run the model's forward on the subset (as test.py) and score what its ``eval_pair()`` compares."""
        fakes, reals = [], []
        with bare_networks(model) as nets, preserved_state(nets):
            batch = prepare_for_eval(nets)
            for start in range(0, len(self.items), batch):
                model.set_input(default_collate(self.items[start:start + batch]))
                with torch.no_grad(), amp.autocast(model.amp_mode, model.device):
                    model.forward()
                fake, real = model.eval_pair()
                fakes.append(fake)
                reals.append(real)
        if self.real is None:
            self.real = torch.cat(reals)
        return self.score(torch.cat(fakes), self.real)


def make_suite(opt: argparse.Namespace, device: torch.device) -> UnpairedSuite | PairedSuite:
    """The suite for the data: unaligned -> both directions, otherwise paired against ground truth."""
    metrics = resolve_metrics(opt)
    return (UnpairedSuite if is_unpaired(opt) else PairedSuite)(opt, metrics, device)


# ---------------------------------------------------------------------------------------------------- best
class BestRecordError(UserError, ValueError):
    """``best.json`` cannot be used by a resumed run: damaged, or of another ``--eval_best`` metric."""


def read_best_record(path: Path) -> Dict[str, Any]:
    """``best.json`` checked: ``metric`` a known metric name, ``value`` a number (``"inf"``/``"-inf"`` as written
    for an infinite one; never NaN); ``BestRecordError`` naming the file and the key otherwise."""
    fix = f"fix it, or move {path.name} and best_net_*.pth out of {path.parent} to start a new best"
    kind = file_kind(str(path))
    if kind is not None:
        raise BestRecordError(f"{path} is {kind}, not a regular file; {fix}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BestRecordError(f"cannot read {path} ({exc}); {fix}") from None
    if not isinstance(record, dict):
        raise BestRecordError(f"{path} must hold a JSON object, got {type(record).__name__}; {fix}")
    for key in ("metric", "value"):
        if key not in record:
            raise BestRecordError(f"{path}: the key '{key}' is missing; {fix}")
    metric = record["metric"]
    if not isinstance(metric, str) or not metric:
        raise BestRecordError(f"{path}: metric must be a metric name, got {metric!r}; {fix}")
    value = record["value"]
    if isinstance(value, str) and value in ("inf", "-inf"):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise BestRecordError(f"{path}: value must be a number (or \"inf\"/\"-inf\"), got {value!r}; {fix}")
    return {**record, "metric": metric, "value": float(value)}


def _json_number(value: float) -> float | str:
    """A float for strict JSON ('inf'/'nan' as strings)."""
    return value if math.isfinite(value) else str(value)


@dataclass
class BestTracker:
    """The best value so far of one metric (direction known) and its record ``best.json``."""

    path: Path
    metric: str
    higher: bool
    value: Optional[float] = None

    def load(self, may_replace: bool = False) -> None:
        """Continue from an earlier ``best.json`` (resumed runs); a damaged record, or one of another metric
        (whose ``best_net_*.pth`` the first evaluation would replace), is refused by name (``BestRecordError``)
        unless ``may_replace``."""
        if not os.path.lexists(self.path):
            return
        record = read_best_record(self.path)
        if record["metric"] != self.metric:
            if may_replace:
                log.warning("%s records the best checkpoint by %s; this run ranks by %s and replaces it at its first "
                            "evaluation", self.path, record["metric"], self.metric)
                return
            raise BestRecordError(
                f"{self.path} records the best checkpoint (best_net_*.pth) by {record['metric']}, this run ranks by "
                f"--eval_best {self.metric} and would replace it: pass --eval_best {record['metric']} to go on "
                f"ranking by it, or move best.json and best_net_*.pth out of {self.path.parent} to keep them and "
                f"start a new best")
        self.value = record["value"]
        log.info("best %s so far: %.4f (%s)", self.metric, self.value, self.path)

    def improves(self, value: float) -> bool:
        """True when ``value`` is strictly better than the best so far (NaN never is)."""
        if math.isnan(value):
            return False
        if self.value is None:
            return True
        return value > self.value if self.higher else value < self.value

    def record(self, value: float, epoch: int, total_iters: int) -> None:
        """Remember ``value`` and write ``best.json`` (metric, value, direction, epoch, total_iters) atomically."""
        self.value = value
        payload = {"metric": self.metric, "value": _json_number(value),
                   "direction": "higher" if self.higher else "lower", "epoch": int(epoch),
                   "total_iters": int(total_iters), "checkpoint": f"{BEST_PREFIX}_net_*.pth"}
        atomic_write_text(self.path, json.dumps(payload, indent=2) + "\n")


# ---------------------------------------------------------------------------------------------------- evaluator
class Evaluator:
    """``--eval_freq``: evaluate every N training images, log the metrics and keep the best checkpoint."""

    def __init__(self, opt: argparse.Namespace, model: Any, visualizer: Any = None, suite: Any = None) -> None:
        """Load the fixed test subset and real-set statistics once (rank 0, only when ``--eval_freq`` > 0).

        ``suite`` (anything with ``metrics`` and ``evaluate(model)``) replaces the one built from the options.
        """
        self.opt = opt
        self.model = model
        self.visualizer = visualizer
        self.freq = opt.eval_freq
        self.enabled = self.freq > 0 and opt.rank == 0
        self.suite = suite
        self.best: Optional[BestTracker] = None
        if self.enabled:
            if self.suite is None:
                rng = capture_rng_state()  # building draws no random numbers, but make sure training sees none
                try:
                    self.suite = make_suite(opt, model.device)
                finally:
                    restore_rng_state(rng)
            if isinstance(self.suite, UnpairedSuite) and not model.eval_generators():
                raise ValueError(f"--eval_freq on unaligned data translates testA and testB with a generator per "
                                 f"direction, as cycle_gan's G_A and G_B; --model {opt.model} has no G_A, G_B or "
                                 f"other generator named by its eval_generators()")
            key = resolve_best(opt, self.suite.metrics)
            self.best = BestTracker(Path(model.save_dir) / BEST_FILE, key, higher_is_better(key))
            if opt.continue_train:
                self.best.load(may_replace=opt.overwrite)
        if self.freq > 0:
            barrier()  # the other ranks wait while rank 0 prepares (classifier training)

    def maybe_evaluate(self, epoch: int, total_iters: int, counter_ratio: float = 0.0) -> Optional[Dict[str, float]]:
        """Evaluate when ``total_iters`` is a multiple of ``--eval_freq`` (rank 0); return the metrics or None.

        ``counter_ratio``: the fraction of the epoch done, so the metrics plot shares the loss plot's x axis.
        """
        if not self.enabled or total_iters % self.freq != 0:
            return None
        return self.evaluate(epoch, total_iters, counter_ratio)

    def evaluate(self, epoch: int, total_iters: int, counter_ratio: float = 0.0) -> Dict[str, float]:
        """Compute the metrics now, log them, and save the best checkpoint when the chosen metric improves."""
        assert self.suite is not None and self.best is not None
        start = time.time()
        metrics = self.suite.evaluate(self.model)
        if self.visualizer is not None:
            self.visualizer.log_metrics(epoch, total_iters, metrics, counter_ratio)
        value = best_value(metrics, self.best.metric)
        previous = self.best.value
        if self.best.improves(value):
            self.model.save_networks(BEST_PREFIX)
            self.best.record(value, epoch, total_iters)
            log.info("saving the best model (%s %.4f, before %s) at epoch %d, total_iters %d", self.best.metric,
                     value, "none" if previous is None else "%.4f" % previous, epoch, total_iters)
        log.info("evaluation took %.1f sec", time.time() - start)
        return metrics
