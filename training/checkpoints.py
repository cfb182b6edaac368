"""Saving a checkpoint set: the network files, config.json and the training-state file beside them.

``<prefix>_train_state.pth`` (``latest``, ``<epoch>``, ``iter_<N>``, the prefixes of the network files) holds
what the plain ``<prefix>_net_<name>.pth`` files do not: optimizers, LR schedulers, the AMP grad scaler, the
image pools, every RNG state, the data seed, the counters (epoch, epoch_iter, total_iters, micro_step), the
options, and a CRC32 of each network file written with it (a set mixed by an interrupted save is detected).
It holds only tensors and plain Python values and is read with ``torch.load(weights_only=True)``. A set
(networks, config, state) is written into a staging folder and moved into place by renames, the state last
(``Checkpointer``). Resuming from it: training/resume.py. See docs/resume.md.
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
from typing import Any, Dict, Mapping, Optional, Tuple

import torch

from models import checkpoint_io
from models.checkpoint_io import CheckpointError
from util.errors import is_write_error, write_error, write_fix
from util.image_io import file_kind
from util.logger import get_logger
from util.seed import capture_rng_state
from util.util import atomic_write_bytes, fsync_dir

from training.nonfinite import assert_finite_networks

log = get_logger(__name__)

STATE_FORMAT = "img2img-train-state"
STATE_VERSION = 1
STATE_SUFFIX = "_train_state.pth"
TEMP_FILE = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")  # util.util.atomic_write_bytes' temporary names
STAGING_PREFIX = ".staging-"  # Checkpointer's folder for a set being written


def load_prefix(opt: argparse.Namespace) -> str:
    """The checkpoint prefix ``--continue_train`` / test load: ``iter_<load_iter>`` or ``--epoch``."""
    return checkpoint_io.load_prefix(opt.load_iter, opt.epoch)


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


def file_crc32(path: str) -> int:
    """CRC32 of a file's bytes."""
    crc = 0
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            crc = zlib.crc32(block, crc)
    return crc & 0xFFFFFFFF


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
        "image_pools": {name: pool.state_dict() for name, pool in sorted(getattr(model, "image_pools", {}).items())},
        "rng": capture_rng_state(),
        "data": {"seed": int(getattr(sampler, "seed", 0)), "size": int(dataset_size)},
        "networks": {name: {"file": checkpoint_io.net_filename(prefix, name),
                            "crc32": file_crc32(checkpoint_io.net_path(model.save_dir, prefix, name))}
                     for name in model.model_names},
        "options": plain_options(opt),
    }


def write_state(state: Mapping[str, Any], path: str) -> None:
    """Serialise the state with torch.save and write it atomically."""
    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    atomic_write_bytes(path, buffer.getvalue())


def read_state(path: str) -> Dict[str, Any]:
    """Read a training-state file with ``weights_only=True``; raise ``CheckpointError`` naming the file."""
    kind = file_kind(path)
    if kind == "missing":
        raise CheckpointError(f"training state file not found: {path}")
    if kind is not None:
        raise CheckpointError(checkpoint_io.not_regular_message(path, kind))
    try:
        obj = checkpoint_io.load_shared(path, map_location="cpu", weights_only=True)
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


def read_counters(path: str) -> Optional[Tuple[int, int]]:
    """``(epoch, total_iters)`` of a training-state file, read without loading its tensors (memory-mapped);
    None when it is not a readable state file."""
    if file_kind(path) is not None:
        return None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        if isinstance(obj, dict) and obj.get("format") == STATE_FORMAT:
            return int(obj["epoch"]), int(obj["total_iters"])
    except Exception:  # noqa: BLE001 - any unreadable file: no counters (the resume itself reports it)
        pass
    return None


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
        if self.opt.rank != 0:
            return
        assert_finite_networks(self.model)
        try:
            self._save(prefix, epoch, epoch_iter, total_iters, epoch_complete)
        except OSError as exc:  # a full disk or a read-only folder: one line, the earlier set is untouched
            if is_write_error(exc):
                raise write_error(exc, f"checkpoint {prefix} into {self.model.save_dir}",
                                  f"{write_fix(exc)} (--checkpoints_dir); the checkpoint files already there are "
                                  f"unchanged") from exc
            raise

    def _save(self, prefix: str | int, epoch: int, epoch_iter: int, total_iters: int, epoch_complete: bool) -> None:
        """Write the set into a staging folder, then move it into place (see the class docstring)."""
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
