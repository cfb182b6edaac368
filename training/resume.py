"""Resuming: read the training state of the checkpoint being loaded and put it into the built model and loader.

``--continue_train`` restores the optimizers, LR schedulers, grad scaler, image pools, counters and (last) the RNG
states saved by training/checkpoints.py, and starts the interrupted epoch where it stopped. The learning rate of
the coming epochs follows the schedule of the current flags (``--lr``, ``--lr_policy``, ``--n_epochs``,
``--n_epochs_decay``, ``--lr_decay_iters``), so a finished run can be extended. Without a state file (official
checkpoints) training resumes the official way: weights only. See docs/resume.md.
"""
from __future__ import annotations

import argparse
import os
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional

from models.checkpoint_io import CheckpointError, check_regular_files, net_path
from models.optimizers import match_state_layout
from util.errors import UserError
from util.logger import get_logger
from util.seed import restore_rng_state

from training.checkpoints import file_crc32, load_prefix, read_state, state_path

log = get_logger(__name__)

# Options whose change on resume is worth a line: the restored state may override them.
WATCHED_OPTIONS = ("model", "netG", "netD", "norm", "lr", "beta1", "lr_policy", "lr_decay_iters", "gan_mode",
                   "batch_size", "pool_size", "dataroot", "dataset_mode", "direction", "preprocess", "load_size",
                   "crop_size", "serial_batches", "max_dataset_size", "accum_steps", "d_steps", "seed", "amp")
STATE_WINS = {"beta1": "the restored optimizer keeps the saved betas",
              "seed": "the saved RNG states and data order are restored"}


class NothingToTrainError(UserError, ValueError):
    """The checkpoint is at (or past) the last epoch the flags ask for."""


@dataclass
class ResumePoint:
    """Where the loop starts: first epoch, samples of it already done, total_iters so far."""

    epoch: int
    epoch_iter: int = 0
    total_iters: int = 0
    rng: Optional[Dict[str, Any]] = None  # the saved RNG states, put back last (restore_rng); the rest of the
    # training state is loaded into the model and not kept (it holds the optimizers' moments and the image pools)


def load_for_resume(opt: argparse.Namespace) -> Optional[Dict[str, Any]]:
    """With ``--continue_train``, read the training state of the prefix being loaded (None when absent).

    Call before the model is built: the LR schedule needs the original ``--epoch_count``, which is put back
    into ``opt``. Without a state file (official checkpoints) training resumes the official way.
    """
    if not opt.continue_train:
        return None
    save_dir = os.path.join(opt.checkpoints_dir, opt.name)
    check_regular_files(save_dir, load_prefix(opt))  # a FIFO or a link to /dev/zero: said, never opened
    path = state_path(save_dir, load_prefix(opt))
    if not os.path.isfile(path):
        log.info("no training state %s: resuming the official way (network weights only; optimizers, LR schedule, "
                 "image pools and counters start fresh at epoch %d = --epoch_count)", path, opt.epoch_count)
        return None
    state = read_state(path)
    saved = state.get("options", {})
    original = int(saved.get("epoch_count", opt.epoch_count))
    if "epoch_count" in opt.explicit_flags and opt.epoch_count != original:
        log.info("--epoch_count %d ignored: the training state %s says where to continue", opt.epoch_count, path)
    opt.epoch_count = original
    for key in WATCHED_OPTIONS:
        if key in saved and hasattr(opt, key) and saved[key] != getattr(opt, key):
            note = STATE_WINS.get(key, "this run uses the new value")
            log.warning("--%s %s differs from the checkpoint's %s: %s", key, getattr(opt, key), saved[key], note)
    return state


def first_epoch(opt: argparse.Namespace, state: Optional[Mapping[str, Any]]) -> int:
    """The epoch the run starts in: after the saved one when it was complete, else in it (``--epoch_count``
    without a training state)."""
    if state is None:
        return opt.epoch_count
    return int(state["epoch"]) + (1 if state.get("epoch_complete") else 0)


def check_something_left(opt: argparse.Namespace, state: Optional[Mapping[str, Any]]) -> None:
    """Raise ``NothingToTrainError`` when the run would start after its last epoch."""
    start, last = first_epoch(opt, state), opt.n_epochs + opt.n_epochs_decay
    if start > last:
        raise NothingToTrainError(f"nothing left to train: the run would start at epoch {start}, after the last "
                                  f"one (--n_epochs + --n_epochs_decay = {last}); raise them to train longer")


def verify_networks(state: Mapping[str, Any], save_dir: str, prefix: str, path: str) -> None:
    """Check that the network files are the ones written together with the state (CRC32)."""
    for name, info in (state.get("networks") or {}).items():
        file = net_path(save_dir, prefix, name)
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
        return ResumePoint(epoch=opt.epoch_count)
    prefix = load_prefix(opt)
    path = state_path(model.save_dir, prefix)
    verify_networks(state, model.save_dir, prefix, path)
    try:
        _load_list(model.optimizers, state["optimizers"], "optimizers")
        for optimizer in model.optimizers:  # they have stepped before: spare the scheduler's call-order warning
            match_state_layout(optimizer)
            if optimizer.state:
                optimizer._opt_called = True  # type: ignore[attr-defined]
        _check_count(model.schedulers, state["schedulers"], "LR schedulers")  # follow_schedule sets them
        for name, pool in sorted(getattr(model, "image_pools", {}).items()):
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
    point = ResumePoint(epoch=first_epoch(opt, state),
                        epoch_iter=0 if state.get("epoch_complete") else int(state["epoch_iter"]),
                        total_iters=int(state["total_iters"]), rng=state.get("rng"))
    log.info("resuming from %s: epoch %d, %d images into it, total_iters %d (optimizers, LR schedule, image pools "
             "and RNG states restored)", path, point.epoch, point.epoch_iter, point.total_iters)
    follow_schedule(model, opt, state, point.epoch)
    return point


def follow_schedule(model: Any, opt: argparse.Namespace, state: Mapping[str, Any], epoch: int) -> None:
    """Set the learning rates to what the current flags' schedule gives ``epoch`` (the Adam moments stay restored).

    linear, step and cosine: the model's schedulers, built from the current flags and not stepped yet, are
    stepped once per epoch already done (``epoch - --epoch_count``), exactly as a run with these flags from the
    start would have stepped them; unchanged flags give the saved rates bit for bit. plateau: its reductions
    depend on the metric's history, so the saved scheduler is kept (rescaled when ``--lr`` changed).
    """
    saved_options = state.get("options", {})
    saved_lr = float(saved_options.get("lr", opt.lr))
    before = model.optimizers[0].param_groups[0]["lr"] if model.optimizers else None
    for optimizer, scheduler, saved in zip(model.optimizers, model.schedulers, state["schedulers"]):
        if opt.lr_policy == "plateau":
            if saved_options.get("lr_policy", opt.lr_policy) == "plateau":
                scheduler.load_state_dict(saved)  # the reductions so far, from the metric's history
                if opt.lr != saved_lr:
                    for group in optimizer.param_groups:
                        group["lr"] *= opt.lr / saved_lr
            else:  # a new plateau schedule starts at --lr
                for group in optimizer.param_groups:
                    group["lr"] = opt.lr
            continue
        for group, lr, base in zip(optimizer.param_groups, scheduler.get_last_lr(), scheduler.base_lrs):
            group["lr"], group["initial_lr"] = lr, base
        with warnings.catch_warnings():  # stepping before optimizer.step() is what a replay does
            warnings.simplefilter("ignore", UserWarning)
            for _ in range(epoch - int(opt.epoch_count)):
                scheduler.step()
    if model.optimizers:
        now = model.optimizers[0].param_groups[0]["lr"]
        note = "" if now == before else "; the checkpoint's schedule was at %.7f" % before
        log.info("learning rate %.7f for epoch %d: the --lr_policy %s schedule of the current flags%s", now, epoch,
                 opt.lr_policy, note)


def _check_count(objects: List[Any], states: List[Any], what: str) -> None:
    """As many saved states as objects, or a ValueError saying so."""
    if len(objects) != len(states):
        raise ValueError(f"{len(states)} saved {what}, this model has {len(objects)}")


def _load_list(objects: List[Any], states: List[Any], what: str) -> None:
    """``load_state_dict`` pairwise; the counts must match."""
    _check_count(objects, states, what)
    for obj, sd in zip(objects, states):
        obj.load_state_dict(sd)


def restore_rng(point: ResumePoint, opt: argparse.Namespace) -> None:
    """Restore the saved RNG states (single process, or rank 0; other ranks keep their ``seed + rank`` streams)."""
    if point.rng is None:
        return
    if opt.world_size > 1 and opt.rank != 0:
        return
    restore_rng_state(point.rng)


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
