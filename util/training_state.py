"""The training-state file beside the network files, and resuming from it.

``<prefix>_train_state.pth`` (``latest``, ``<epoch>``, ``iter_<N>``, the prefixes of the network files) holds
what the plain ``<prefix>_net_<name>.pth`` files do not: optimizers, LR schedulers, the AMP grad scaler, the
image pools, every RNG state, the data seed, the counters (epoch, epoch_iter, total_iters, micro_step), the
options, and a CRC32 of each network file written with it (a set mixed by an interrupted save is detected).
It holds only tensors and plain Python values and is read with ``torch.load(weights_only=True)``. A set
(networks, config, state) is written into a staging folder and moved into place by renames, the state last
(``Checkpointer``). See docs/resume.md.
"""
from __future__ import annotations

import argparse
import io
import os
import pickle
import re
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

import torch

from models.legacy import CheckpointError
from util.image_pool import ImagePool
from util.logger import get_logger
from util.nonfinite import assert_finite_networks
from util.seed import capture_rng_state, restore_rng_state
from util.util import fsync_dir

log = get_logger(__name__)

STATE_FORMAT = "img2img-train-state"
STATE_VERSION = 1
STATE_SUFFIX = "_train_state.pth"
TEMP_FILE = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")  # util.util.atomic_write_bytes' temporary names
STAGING_PREFIX = ".staging-"  # Checkpointer's folder for a set being written
# Options whose change on resume is worth a line: the restored state may override them.
WATCHED_OPTIONS = ("model", "netG", "netD", "norm", "lr", "beta1", "lr_policy", "lr_decay_iters", "gan_mode",
                   "batch_size", "pool_size", "dataroot", "dataset_mode", "direction", "preprocess", "load_size",
                   "crop_size", "serial_batches", "max_dataset_size", "accum_steps", "d_steps", "seed", "amp")
STATE_WINS = {"lr": "the restored optimizer and LR schedule keep the saved learning rate",
              "beta1": "the restored optimizer keeps the saved betas",
              "seed": "the saved RNG states and data order are restored"}


def load_prefix(opt: argparse.Namespace) -> str:
    """The checkpoint prefix ``--continue_train`` / test load: ``iter_<load_iter>`` or ``--epoch``."""
    return "iter_%d" % opt.load_iter if getattr(opt, "load_iter", 0) > 0 else str(opt.epoch)


def state_path(save_dir: str, prefix: str | int) -> str:
    """``<save_dir>/<prefix>_train_state.pth``."""
    return os.path.join(save_dir, f"{prefix}{STATE_SUFFIX}")


def plain_options(opt: argparse.Namespace) -> Dict[str, Any]:
    """The options as plain values (what ``weights_only`` loading accepts); devices and objects are left out."""
    plain = (str, int, float, bool, type(None))
    out: Dict[str, Any] = {}
    for key, value in vars(opt).items():
        if isinstance(value, plain):
            out[key] = value
        elif isinstance(value, (list, tuple)) and all(isinstance(v, plain) for v in value):
            out[key] = list(value)
    return out


def image_pools(model: Any) -> Dict[str, ImagePool]:
    """Every ImagePool attribute of the model, by attribute name."""
    return {name: value for name, value in sorted(vars(model).items()) if isinstance(value, ImagePool)}


def file_crc32(path: str) -> int:
    """CRC32 of a file's bytes."""
    crc = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc & 0xFFFFFFFF


def net_file(save_dir: str, prefix: str | int, name: str) -> str:
    """``<save_dir>/<prefix>_net_<name>.pth``."""
    return os.path.join(save_dir, "%s_net_%s.pth" % (prefix, name))


def build_state(model: Any, sampler: Any, opt: argparse.Namespace, prefix: str | int, epoch: int, epoch_iter: int,
                total_iters: int, epoch_complete: bool, dataset_size: int) -> Dict[str, Any]:
    """The training state at this moment (call right after the networks were saved under ``prefix``)."""
    scaler = getattr(model, "grad_scaler", None)
    return {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "saved_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "epoch": int(epoch),
        "epoch_iter": int(epoch_iter),
        "epoch_complete": bool(epoch_complete),
        "total_iters": int(total_iters),
        "micro_step": int(getattr(model, "micro_step", 0)),
        "metric": float(getattr(model, "metric", 0.0)),
        "optimizers": [o.state_dict() for o in model.optimizers],
        "schedulers": [s.state_dict() for s in model.schedulers],
        "grad_scaler": scaler.state_dict() if scaler is not None else None,
        "image_pools": {name: pool.state_dict() for name, pool in image_pools(model).items()},
        "rng": capture_rng_state(),
        "data": {"seed": int(getattr(sampler, "seed", 0)), "size": int(dataset_size)},
        "networks": {name: {"file": os.path.basename(net_file(model.save_dir, prefix, name)),
                            "crc32": file_crc32(net_file(model.save_dir, prefix, name))}
                     for name in model.model_names},
        "options": plain_options(opt),
    }


def write_state(state: Mapping[str, Any], path: str) -> None:
    """Serialise the state with torch.save and write it atomically."""
    from util.util import atomic_write_bytes

    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_state(path: str) -> Dict[str, Any]:
    """Read a training-state file with ``weights_only=True``; raise ``CheckpointError`` naming the file."""
    if not os.path.isfile(path):
        raise CheckpointError(f"training state file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refusing to load {path}: it is not a plain training-state file (loading it would "
                              f"need to run arbitrary code; weights_only=True refused it): {exc}") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"cannot read training state {path} (truncated or not a PyTorch file?): {exc}") from None
    if not isinstance(obj, dict) or obj.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path} is not a training-state file of this project (no '{STATE_FORMAT}' marker)")
    if int(obj.get("version", 0)) > STATE_VERSION:
        raise CheckpointError(f"{path} was written by a newer version (state version {obj.get('version')}); "
                              f"update the code or resume without it")
    return obj


def remove_stale_temp_files(save_dir: str) -> int:
    """Delete what a killed save left (``.<name>.<hex>.tmp`` files, ``.staging-*`` folders); return how many."""
    if not os.path.isdir(save_dir):
        return 0
    removed = 0
    for name in os.listdir(save_dir):
        path = os.path.join(save_dir, name)
        if TEMP_FILE.match(name) or (name.startswith(STAGING_PREFIX) and os.path.isdir(path)):
            try:
                shutil.rmtree(path) if os.path.isdir(path) else os.unlink(path)
                removed += 1
            except OSError:
                pass
    if removed:
        log.info("removed %d temporary file(s) left by an interrupted save in %s", removed, save_dir)
    return removed


# ---------------------------------------------------------------------------------------------------- saving
class Checkpointer:
    """Saves the networks and the training state as one set (rank 0 only; weights checked finite first).

    Everything is first written (and flushed to disk) into a staging folder inside the experiment folder, then
    moved into place by renames, the state last. A crash while writing leaves the previous set untouched (the
    staging folder is removed at the next start); only a crash during the renames, a window of microseconds,
    can mix two sets, and the state's CRC32s detect that.
    """

    def __init__(self, model: Any, dataset: Any, opt: argparse.Namespace) -> None:
        self.model = model
        self.dataset = dataset
        self.opt = opt

    def save(self, prefix: str | int, epoch: int, epoch_iter: int, total_iters: int,
             epoch_complete: bool = False) -> None:
        """``<prefix>_net_*.pth`` (via ``model.save_networks``), config and ``<prefix>_train_state.pth``."""
        if getattr(self.opt, "rank", 0) != 0:
            return
        assert_finite_networks(self.model)
        final_dir = self.model.save_dir
        os.makedirs(final_dir, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=final_dir)
        try:
            self.model.save_dir = staging
            try:
                self.model.save_networks(prefix)
                state = build_state(self.model, getattr(self.dataset, "sampler", None), self.opt, prefix, epoch,
                                    epoch_iter, total_iters, epoch_complete, len(self.dataset))
            finally:
                self.model.save_dir = final_dir
            write_state(state, state_path(staging, prefix))
            names = sorted(os.listdir(staging), key=lambda n: n.endswith(STATE_SUFFIX))  # the state goes last
            for name in names:
                os.replace(os.path.join(staging, name), os.path.join(final_dir, name))
            fsync_dir(final_dir)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


# ---------------------------------------------------------------------------------------------------- resuming
@dataclass
class ResumePoint:
    """Where the loop starts: first epoch, samples of it already done, total_iters so far."""

    epoch: int
    epoch_iter: int = 0
    total_iters: int = 0
    state: Optional[Dict[str, Any]] = None


def load_for_resume(opt: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """With ``--continue_train``, read the training state of the prefix being loaded (None when absent).

    Call before the model is built: the LR schedule needs the original ``--epoch_count``, which is put back
    into ``opt``. Without a state file (official checkpoints) training resumes the official way.
    """
    if not getattr(opt, "continue_train", False):
        return None
    save_dir = os.path.join(opt.checkpoints_dir, opt.name)
    path = state_path(save_dir, load_prefix(opt))
    if not os.path.isfile(path):
        log.info("no training state %s: resuming the official way (network weights only; optimizers, LR schedule, "
                 "image pools and counters start fresh at epoch %d = --epoch_count)", path, opt.epoch_count)
        return None
    state = read_state(path)
    saved = state.get("options", {})
    original = int(saved.get("epoch_count", opt.epoch_count))
    if "epoch_count" in set(getattr(opt, "explicit_flags", []) or []) and opt.epoch_count != original:
        log.info("--epoch_count %d ignored: the training state %s says where to continue", opt.epoch_count, path)
    opt.epoch_count = original
    for key in WATCHED_OPTIONS:
        if key in saved and hasattr(opt, key) and saved[key] != getattr(opt, key):
            note = STATE_WINS.get(key, "this run uses the new value")
            log.warning("--%s %s differs from the checkpoint's %s: %s", key, getattr(opt, key), saved[key], note)
    return state


def verify_networks(state: Mapping[str, Any], save_dir: str, prefix: str, path: str) -> None:
    """Check that the network files are the ones written together with the state (CRC32)."""
    for name, info in (state.get("networks") or {}).items():
        file = net_file(save_dir, prefix, name)
        if os.path.isfile(file) and file_crc32(file) != int(info["crc32"]):
            raise CheckpointError(f"{file} was not written together with {path} (an interrupted save?): resume "
                                  f"from an epoch checkpoint with --epoch N, or delete {path} to resume the "
                                  f"official way (weights only)")


def restore(model: Any, dataset: Any, opt: argparse.Namespace, state: Optional[Mapping[str, Any]]) -> ResumePoint:
    """Put the saved optimizers, schedulers, scaler, pools and counters into a set-up model; return the start.

    RNG states are restored separately (``restore_rng``) right before the loop, after everything that draws
    random numbers while being built.
    """
    if state is None:
        return ResumePoint(epoch=int(getattr(opt, "epoch_count", 1)))
    prefix = load_prefix(opt)
    path = state_path(model.save_dir, prefix)
    verify_networks(state, model.save_dir, prefix, path)
    try:
        _load_list(model.optimizers, state["optimizers"], "optimizers")
        for optimizer in model.optimizers:  # they have stepped before: spare the scheduler's call-order warning
            if optimizer.state:
                optimizer._opt_called = True  # type: ignore[attr-defined]
        _load_list(model.schedulers, state["schedulers"], "LR schedulers")
        for name, pool in image_pools(model).items():
            if name not in state["image_pools"]:
                raise ValueError(f"no saved image pool '{name}' (was it trained with another --model?)")
            pool.load_state_dict(state["image_pools"][name], device=getattr(model, "device", None))
    except (ValueError, KeyError, RuntimeError) as exc:
        raise CheckpointError(f"cannot restore {path} into this model: {exc}") from None
    scaler = getattr(model, "grad_scaler", None)
    if scaler is not None and state.get("grad_scaler") is not None:
        scaler.load_state_dict(state["grad_scaler"])
    elif scaler is not None or state.get("grad_scaler") is not None:
        log.warning("the AMP setting changed since %s: the grad scaler starts fresh", path)
    model.micro_step = int(state.get("micro_step", 0))
    model.metric = float(state.get("metric", 0.0))
    sampler = getattr(dataset, "sampler", None)
    data = state.get("data", {})
    if sampler is not None and hasattr(sampler, "set_seed"):
        sampler.set_seed(int(data.get("seed", 0)))
    if int(data.get("size", len(dataset))) != len(dataset):
        log.warning("the dataset has %d images now, %d when %s was saved: the rest of the interrupted epoch "
                    "follows a different order", len(dataset), int(data["size"]), path)
    if state.get("epoch_complete"):
        point = ResumePoint(epoch=int(state["epoch"]) + 1, epoch_iter=0, total_iters=int(state["total_iters"]),
                            state=dict(state))
    else:
        point = ResumePoint(epoch=int(state["epoch"]), epoch_iter=int(state["epoch_iter"]),
                            total_iters=int(state["total_iters"]), state=dict(state))
    log.info("resuming from %s: epoch %d, %d images into it, total_iters %d (optimizers, LR schedule, image pools "
             "and RNG states restored)", path, point.epoch, point.epoch_iter, point.total_iters)
    return point


def _load_list(objects: List[Any], states: List[Any], what: str) -> None:
    """``load_state_dict`` pairwise; the counts must match."""
    if len(objects) != len(states):
        raise ValueError(f"{len(states)} saved {what}, this model has {len(objects)}")
    for obj, sd in zip(objects, states):
        obj.load_state_dict(sd)


def restore_rng(point: ResumePoint, opt: argparse.Namespace) -> None:
    """Restore the saved RNG states (single process, or rank 0; other ranks keep their ``seed + rank`` streams)."""
    if point.state is None:
        return
    if getattr(opt, "world_size", 1) > 1 and getattr(opt, "rank", 0) != 0:
        return
    restore_rng_state(point.state["rng"])


def start_epoch(dataset: Any, epoch: int, point: ResumePoint) -> int:
    """Select ``epoch``'s data order; in the resumed epoch skip the samples already trained on. Returns epoch_iter."""
    dataset.set_epoch(epoch)
    sampler = getattr(dataset, "sampler", None)
    if epoch == point.epoch and point.epoch_iter > 0:
        if sampler is None or not hasattr(sampler, "resume_at"):
            log.warning("this data loader cannot start part-way: epoch %d restarts from its first batch", epoch)
            return 0
        sampler.resume_at(point.epoch_iter)
        return point.epoch_iter
    return 0
