"""One run per experiment folder: the lock, the check for an earlier run's checkpoints, a clean failed start.

``ExperimentFolder`` wraps a training run (rank 0 holds the lock; the other processes only check):

1. lock: ``<checkpoints_dir>/<name>/train.lock`` records the holder's PID, host, start time and command, and
   is held with an OS file lock (``flock``) while the run lives. A second ``train.py`` with the same folder
   stops at once, naming the holder. The lock of a run that died on this host (the OS released its file lock)
   is taken over with a message. A lock written on another host is never taken over: file locks are not
   reliable across hosts on every shared file system, so that run may still be alive; the message says to
   delete the lock file once it is not.
2. check: a fresh run (no ``--continue_train``) over a folder that holds checkpoints stops, saying to pass
   ``--continue_train``, another ``--name`` or ``--overwrite``. A resume from a checkpoint older than others
   in the folder (``--continue_train --epoch 1`` beside ``2_net_*.pth``) stops too: it would overwrite them
   and ``latest``.
3. the run builds everything that can fail on the user's input (data, checkpoint, training state); then
   ``begin`` writes: ``--overwrite`` deletes the earlier run's checkpoints and loss logs, ``train_opt.txt`` is
   saved, leftovers of killed saves are removed (every other run of the folder is dead by then).

A start that fails before ``begin`` leaves the folder as it was: the lock file is removed, and so are the
folders this run created (only when empty). See docs/resume.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from types import TracebackType
from typing import List, Optional, Type

from models.checkpoint_io import NET_INFIX, NET_SUFFIX
from options.base_options import write_options_file
from util.errors import UserError, is_write_error, write_error
from util.logger import get_logger

from training.checkpoints import STATE_SUFFIX, load_prefix, read_counters, remove_stale_temp_files

try:  # POSIX; elsewhere the lock falls back to the holder's PID
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = get_logger(__name__)

LOCK_NAME = "train.lock"
CHECKPOINT_FILE = re.compile(r"^(?!\.).+(_net_.+\.pth|" + re.escape(STATE_SUFFIX) + r")$")
# What --overwrite deletes besides the checkpoint files: the earlier run's config, best-checkpoint record and
# loss logs (a new run's curves must not continue the old one's).
OLD_RUN_FILES = ("config.json", "best.json", "loss_log.txt", "loss_log.jsonl")


class ExperimentInUseError(UserError, RuntimeError):
    """Another run holds the experiment folder's lock."""


class EarlierRunError(UserError, RuntimeError):
    """A fresh run would overwrite the checkpoints of an earlier run."""


class LaterCheckpointsError(UserError, RuntimeError):
    """A resume from an older checkpoint would overwrite the later ones."""


@dataclass
class Holder:
    """Who holds (or held) a lock: PID, host, start time, command."""

    pid: int
    host: str
    started: str
    command: str = ""

    def describe(self) -> str:
        """``PID 1234 on host h, started 2025-01-01 12:00:00``."""
        return f"PID {self.pid} on host {self.host}, started {self.started}"

    @staticmethod
    def parse(text: str) -> Optional["Holder"]:
        """The holder recorded in a lock file's text (None when empty or unreadable)."""
        try:
            data = json.loads(text)
            return Holder(int(data["pid"]), str(data["host"]), str(data["started"]), str(data.get("command", "")))
        except (ValueError, KeyError, TypeError):
            return None


def this_holder() -> Holder:
    """This process as a lock holder."""
    return Holder(os.getpid(), socket.gethostname(), time.strftime("%Y-%m-%d %H:%M:%S"), " ".join(sys.argv))


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def make_dirs(path: str) -> List[str]:
    """``os.makedirs(path)``; return the folders it created, outermost first."""
    missing: List[str] = []
    head = os.path.abspath(path)
    while not os.path.isdir(head):
        missing.append(head)
        head = os.path.dirname(head)
    os.makedirs(path, exist_ok=True)
    return missing[::-1]


class ExperimentLock:
    """The lock file of an experiment folder, held with ``flock`` while the run lives (see module docstring)."""

    def __init__(self, save_dir: str) -> None:
        self.path = os.path.join(save_dir, LOCK_NAME)
        self.fd: Optional[int] = None

    def acquire(self) -> None:
        """Take the lock or raise ``ExperimentInUseError`` naming the holder."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            held_by_other = not self._try_flock(fd)
            previous = Holder.parse(self._read(fd))
            if held_by_other:
                os.close(fd)
                who = previous.describe() if previous else "another process"
                raise ExperimentInUseError(f"{os.path.dirname(self.path)} is in use by another training run "
                                           f"({who}): wait until it ends, or train under another --name")
            if self._same_file(fd):
                break
            os.close(fd)  # the holder removed the file between our open and our lock: start again
        self.fd = fd
        if previous is not None:
            self._check_takeover(previous)
        me = this_holder()
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(vars(me)) + "\n").encode("utf-8"))
        os.fsync(fd)

    def _try_flock(self, fd: int) -> bool:
        """Lock the open file without waiting; False when another process holds it."""
        if fcntl is None:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # a file system without locks: the recorded holder decides (_check_takeover)
            return True
        return True

    def _same_file(self, fd: int) -> bool:
        """Whether the locked file is still the one at ``self.path``."""
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    @staticmethod
    def _read(fd: int) -> str:
        """The lock file's text."""
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def _check_takeover(self, previous: Holder) -> None:
        """A lock file left by a run that did not remove it: take it over if that run is surely dead."""
        if previous.host != socket.gethostname():
            self.release(remove=False)
            raise ExperimentInUseError(
                f"{self.path} was written by {previous.describe()}, which cannot be checked from this host: if "
                f"that run has ended, delete {self.path}; else wait, or train under another --name")
        if fcntl is None and previous.pid != os.getpid() and pid_alive(previous.pid):
            self.release(remove=False)
            raise ExperimentInUseError(f"{os.path.dirname(self.path)} is in use by another training run "
                                       f"({previous.describe()}): wait until it ends, or train under another --name")
        log.warning("taking over the lock %s of %s, which is no longer running", self.path, previous.describe())

    def release(self, remove: bool = True) -> None:
        """Remove the lock file (first, so that no one locks a file about to disappear) and let go of it."""
        if self.fd is None:
            return
        if remove:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        os.close(self.fd)
        self.fd = None


def earlier_checkpoints(save_dir: str) -> List[str]:
    """The checkpoint files (network files, training states) in an experiment folder, sorted."""
    if not os.path.isdir(save_dir):
        return []
    return sorted(name for name in os.listdir(save_dir) if CHECKPOINT_FILE.match(name))


def check_fresh_start(opt: argparse.Namespace, save_dir: str) -> None:
    """A run without ``--continue_train`` must not overwrite an earlier run's checkpoints by accident."""
    if opt.continue_train or opt.overwrite:
        return
    found = earlier_checkpoints(save_dir)
    if found:
        shown = ", ".join(found[:3]) + (f" and {len(found) - 3} more" if len(found) > 3 else "")
        raise EarlierRunError(f"{save_dir} holds checkpoints of an earlier run ({shown}): pass --continue_train "
                              f"to go on with it, another --name to start a new experiment, or --overwrite to "
                              f"delete them and start again")


def checkpoint_prefixes(save_dir: str) -> List[str]:
    """The prefixes of the checkpoints in an experiment folder (network files or training states)."""
    prefixes = set()
    for name in earlier_checkpoints(save_dir):
        if name.endswith(STATE_SUFFIX):
            prefixes.add(name[: -len(STATE_SUFFIX)])
        elif NET_INFIX in name and name.endswith(NET_SUFFIX):
            prefixes.add(name.split(NET_INFIX, 1)[0])
    return sorted(prefixes)


def _iters(save_dir: str, prefix: str) -> Optional[int]:
    """``total_iters`` of checkpoint ``prefix``'s training state (None without a readable one)."""
    path = os.path.join(save_dir, prefix + STATE_SUFFIX)
    if not os.path.isfile(path):
        return None
    counters = read_counters(path)
    return None if counters is None else counters[1]


def later_checkpoints(save_dir: str, prefix: str) -> List[str]:
    """The checkpoints in ``save_dir`` taken after ``prefix`` (a resume from ``prefix`` would overwrite them).

    Later: an epoch number above ``prefix``'s; or a training state with more ``total_iters`` than ``prefix``'s
    (``latest``, ``iter_<N>``, epochs). ``best`` is not a point of the run and never counts.
    """
    own = _iters(save_dir, prefix)
    later = []
    for other in checkpoint_prefixes(save_dir):
        if other in (prefix, "best"):
            continue
        if prefix.isdigit() and other.isdigit():
            if int(other) > int(prefix):
                later.append(other)
            continue
        iters = _iters(save_dir, other)
        if own is not None and iters is not None and iters > own:
            later.append(other)
    return later


def check_resume_point(opt: argparse.Namespace, save_dir: str) -> None:
    """``--continue_train`` from a checkpoint older than others would overwrite them (and ``latest``): refuse,
    naming them and how to go on from the newest instead (``--overwrite``, where the options allow it, agrees)."""
    if not opt.continue_train or opt.overwrite:
        return
    prefix = load_prefix(opt)
    later = later_checkpoints(save_dir, prefix)
    if not later:
        return
    newest = "latest" if "latest" in later else later[-1]
    how = "--epoch latest" if newest == "latest" else (f"--epoch {newest}" if newest.isdigit() else
                                                          f"--load_iter {newest[5:]}")
    raise LaterCheckpointsError(
        f"{save_dir} holds checkpoints taken after {prefix} ({', '.join(later)}): resuming from {prefix} would "
        f"train those iterations again and overwrite them; resume from the newest with {how}, or move the later "
        f"checkpoint files (<prefix>_net_*.pth, <prefix>_train_state.pth) out of the folder to go back to {prefix} "
        f"on purpose")


def delete_earlier_run(save_dir: str) -> int:
    """``--overwrite``: delete the earlier run's checkpoints, config, best record and loss logs; return how many."""
    names = earlier_checkpoints(save_dir) + [n for n in OLD_RUN_FILES if os.path.isfile(os.path.join(save_dir, n))]
    for name in names:
        os.unlink(os.path.join(save_dir, name))
    if names:
        log.info("--overwrite: deleted %d file(s) of the earlier run in %s", len(names), save_dir)
    return len(names)


class ExperimentFolder:
    """The experiment folder of one training run: lock and checks on entry, ``begin`` to write, clean exit."""

    def __init__(self, opt: argparse.Namespace, options_table: str = "") -> None:
        self.opt = opt
        self.options_table = options_table
        self.save_dir = os.path.join(opt.checkpoints_dir, opt.name)
        self.main = opt.rank == 0
        self.lock = ExperimentLock(self.save_dir)
        self.created: List[str] = []
        self.begun = False

    def __enter__(self) -> "ExperimentFolder":
        if self.main:
            try:
                self.created = make_dirs(self.save_dir)
                self.lock.acquire()
            except OSError as exc:
                self._undo()
                if is_write_error(exc):
                    raise write_error(exc, f"the experiment folder {self.save_dir}",
                                      "choose a writable --checkpoints_dir") from exc
                raise
            except BaseException:
                self._undo()
                raise
        try:
            check_fresh_start(self.opt, self.save_dir)
            check_resume_point(self.opt, self.save_dir)
        except BaseException:
            self._undo()
            raise
        return self

    def begin(self) -> None:
        """Everything that can fail on the user's input has passed: start writing into the folder."""
        self.begun = True
        if not self.main:
            return
        try:
            if self.opt.overwrite and not self.opt.continue_train:
                delete_earlier_run(self.save_dir)
            if self.options_table:
                write_options_file(self.opt, self.options_table)
        except OSError as exc:
            if is_write_error(exc):
                raise write_error(exc, f"into {self.save_dir}", "") from exc
            raise
        remove_stale_temp_files(self.save_dir)

    def _undo(self) -> None:
        """A failed start: remove the lock file and the (empty) folders this run created."""
        self.lock.release()
        for folder in reversed(self.created):
            try:
                os.rmdir(folder)
            except OSError:
                break  # not empty (someone else wrote there) or gone: leave it
        self.created = []

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if exc_type is not None and not self.begun:
            self._undo()
        else:
            self.lock.release()
