"""Where a loaded checkpoint comes from, and whether the run's record shows that training went on past it.

test.py says which epoch and iteration the checkpoint it loads was saved at (from the training-state file
beside it; official checkpoints have none, and it says so), and warns when ``latest_train_state.pth`` or the
last line of ``loss_log.jsonl`` is further along: the results would then show an older model than the run's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple

from models.checkpoint_io import CheckpointError

from util.visualizer import LOSS_LOG_JSONL, read_history, record_order

from training.checkpoints import read_state, state_path

@dataclass(frozen=True)
class Progress:
    """How far a run had got by some record: epoch and total_iters, and which file says so."""

    epoch: int
    total_iters: int
    source: str


def describe_state(prefix: str, state: Mapping[str, Any]) -> str:
    """``checkpoint latest: epoch 3 (complete), total_iters 1200, saved 2025-01-01 12:00:00``."""
    where = "complete" if state.get("epoch_complete") else f"{int(state.get('epoch_iter', 0))} images into it"
    return (f"checkpoint {prefix}: epoch {int(state['epoch'])} ({where}), total_iters {int(state['total_iters'])}, "
            f"saved {state.get('saved_at', '?')}")


def last_logged(save_dir: str) -> Optional[Progress]:
    """The last record of the run's history in ``loss_log.jsonl`` (None when there is none; damaged lines and
    records of a session that a resume replaced are left out, as in the loss plot)."""
    history = read_history(os.path.join(save_dir, LOSS_LOG_JSONL))
    if not history:
        return None
    epoch, total_iters = record_order(history[-1])
    return Progress(epoch, total_iters, LOSS_LOG_JSONL)


def latest_saved(save_dir: str) -> Optional[Progress]:
    """The counters of ``latest_train_state.pth`` (None when absent or unreadable)."""
    path = state_path(save_dir, "latest")
    if not os.path.isfile(path):
        return None
    try:
        state = read_state(path)
    except CheckpointError:
        return None
    return Progress(int(state["epoch"]), int(state["total_iters"]), os.path.basename(path))


def checkpoint_origin(save_dir: str, prefix: str) -> Tuple[str, Optional[str]]:
    """A line saying where checkpoint ``prefix`` comes from, and a warning when the run went on past it (or None)."""
    path = state_path(save_dir, prefix)
    if not os.path.isfile(path):
        return (f"checkpoint {prefix}: no training state beside it ({os.path.basename(path)}), e.g. an official "
                f"checkpoint: the epoch and iteration it was saved at are unknown", None)
    try:
        state = read_state(path)
    except CheckpointError as exc:
        return f"checkpoint {prefix}: its epoch and iteration are unknown ({exc})", None
    line = describe_state(prefix, state)
    loaded = int(state["total_iters"])
    saved = latest_saved(save_dir) if prefix != "latest" else None
    if saved is not None and saved.total_iters > loaded:
        return line, (f"training went on after checkpoint {prefix}: {saved.source} is at epoch {saved.epoch}, "
                      f"total_iters {saved.total_iters} (pass --epoch latest to test it)")
    logged = last_logged(save_dir)
    if logged is not None and logged.total_iters > loaded:
        return line, (f"training went on after checkpoint {prefix}: {logged.source} records epoch {logged.epoch}, "
                      f"total_iters {logged.total_iters}, but no later checkpoint was saved (the run was killed or "
                      f"crashed?): these results show the model of total_iters {loaded}")
    return line, None
