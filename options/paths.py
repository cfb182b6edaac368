"""Paths the user names must stay where the user said: the experiment name, the checkpoint name, the folders.

* ``--name`` is a folder inside ``--checkpoints_dir`` (and ``--results_dir``): a relative path with no ``..``
  part, not empty and not only dots and slashes (``sweep/run1`` is fine; ``../x``, ``/tmp/x``, ``.`` are not).
* ``--epoch`` names a checkpoint this project saves: ``latest``, ``best``, an epoch number, or ``iter_<N>``
  (also chosen with ``--load_iter N``); never a path (``../../other/run/2`` would load another experiment).
* ``--checkpoints_dir``, ``--results_dir`` (test.py) and export.py's ``--out`` are folders: an existing file
  there, or above them, is refused by name.
* The files of the experiment folder that the scripts read or append to (``config.json``, ``loss_log.jsonl``...)
  must be regular files when they exist: reading a FIFO blocks, a link to a device never ends.

Each check raises ``InvalidInputError``: one ``<script>: error:`` line naming the flag or file, exit status 2.
"""
from __future__ import annotations

import argparse
import os
import re
from typing import Optional

from models.checkpoint_io import load_prefix
from util.errors import InvalidInputError
from util.image_io import file_kind

CHECKPOINT_NAME = re.compile(r"^(latest|best|[0-9]+|iter_[0-9]+)$")
# The files of an experiment folder that the scripts open (read, append to) by name.
EXPERIMENT_FILES = ("config.json", "best.json", "loss_log.txt", "loss_log.jsonl", "train_opt.txt", "test_opt.txt",
                    "train.lock", "wandb_run_id.txt")


def check_name(name: str, flag: str = "--name") -> None:
    """``--name`` must be a relative folder inside ``--checkpoints_dir``: no ``..`` part, not absolute, not empty."""
    text = str(name)
    parts = [p for p in re.split(r"[\\/]+", text) if p not in ("", ".")]
    if os.path.isabs(text) or text.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", text):
        problem = "is an absolute path"
    elif any(p == ".." for p in parts):
        problem = "has a '..' part"
    elif not parts:
        problem = "is empty" if not text else "names no folder"
    elif "\0" in text:
        problem = "contains a NUL character"
    else:
        return
    raise InvalidInputError(f"{flag} '{text}' {problem}: the experiment name is a folder inside --checkpoints_dir "
                            f"(e.g. {flag} maps_cyclegan, or sweep/run1); choose the location with "
                            f"--checkpoints_dir instead")


def check_epoch(epoch: str, flag: str = "--epoch") -> None:
    """``--epoch`` must name a checkpoint this project saves (latest, best, N, iter_N), never a path."""
    text = str(epoch)
    if CHECKPOINT_NAME.match(text):
        return
    raise InvalidInputError(f"{flag} '{text}' is not a checkpoint name: use latest, best, an epoch number (e.g. "
                            f"{flag} 5) or iter_<N> (or --load_iter N); another experiment's checkpoint is "
                            f"loaded with its own --name (and --checkpoints_dir)")


def check_folder(path: str, flag: str) -> None:
    """``path`` (a folder to write into, created when missing) must not be, or lie under, an existing file."""
    head = os.path.abspath(os.fspath(path))
    while not os.path.lexists(head):
        parent = os.path.dirname(head)
        if parent == head:
            return
        head = parent
    if os.path.isdir(head):
        return
    kind = file_kind(head) or "a file"
    kind = "a file" if kind in ("missing", "not a regular file") else kind
    where = "" if head == os.path.abspath(path) else f" (in the path {path})"
    raise InvalidInputError(f"{flag} {path}: {head} is {kind}, not a folder{where}; choose a folder (it is created "
                            f"when missing)")


def check_experiment_files(save_dir: str) -> None:
    """The files the scripts open in an experiment folder must be regular files when they exist."""
    if not os.path.isdir(save_dir):
        return
    for name in EXPERIMENT_FILES:
        path = os.path.join(save_dir, name)
        kind = file_kind(path)
        if kind not in (None, "missing"):
            if os.path.islink(path) and kind != "a broken symbolic link":
                kind = f"a symbolic link to {os.path.realpath(path)}, {kind}"
            raise InvalidInputError(f"{path} is {kind}, not a regular file: it is not read (reading it could block "
                                    f"or never end); delete it, or replace it with the file it should be")


def check_paths(opt: argparse.Namespace) -> None:
    """The checks above for the options of train.py and test.py (call before anything reads the folder)."""
    check_name(opt.name)
    if getattr(opt, "pretrained_name", None):  # training: another experiment of --checkpoints_dir
        check_name(opt.pretrained_name, "--pretrained_name")
    check_epoch(opt.epoch)
    check_folder(opt.checkpoints_dir, "--checkpoints_dir")
    results: Optional[str] = getattr(opt, "results_dir", None)
    if results is not None:
        check_folder(results, "--results_dir")
    save_dir = os.path.join(opt.checkpoints_dir, opt.name)
    check_folder(save_dir, "--name")
    check_experiment_files(save_dir)


def check_pretrained(opt: argparse.Namespace) -> None:
    """``--pretrained_name``: used with --continue_train, an existing folder, and no resumable run under --name."""
    if opt.pretrained_name is None:
        return
    folder = os.path.join(opt.checkpoints_dir, opt.pretrained_name)
    if not opt.continue_train:
        raise ValueError(f"--pretrained_name {opt.pretrained_name} loads that experiment's weights for "
                         f"--continue_train; add --continue_train (or drop --pretrained_name)")
    if not os.path.isdir(folder):
        raise ValueError(f"--pretrained_name {opt.pretrained_name}: {folder} does not exist (check "
                         f"--checkpoints_dir)")
    prefix = load_prefix(opt.load_iter, opt.epoch)
    own_state = os.path.join(opt.checkpoints_dir, opt.name, f"{prefix}_train_state.pth")  # the training state
    if os.path.isfile(own_state):
        raise ValueError(f"--pretrained_name {opt.pretrained_name}: {own_state} is a resumable run of --name "
                         f"{opt.name}; drop --pretrained_name to resume it, or pick a new --name to fine-tune")


def parse_epochs(text: str) -> Set[str]:
    """``--keep_epochs '50,100'`` as a set of prefixes (ValueError naming the flag otherwise)."""
    parts = [p.strip() for p in str(text or "").split(",") if p.strip()]
    if not all(p.isdigit() or re.fullmatch(r"iter_\d+", p) for p in parts):
        raise ValueError(f"--keep_epochs '{text}': give epoch numbers (or iter_<N>) separated by commas, e.g. 50,100")
    return {str(int(p)) if p.isdigit() else p for p in parts}
