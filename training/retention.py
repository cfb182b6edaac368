"""``--keep_last N``: remove the checkpoint sets of older epochs (and of older ``iter_<N>`` saves) as training goes.

A 200-epoch CycleGAN saves four 45 MB network files every 5 epochs. With ``--keep_last N`` only the N most recent
numbered sets of each kind (epochs; ``iter_<N>`` saves) stay, besides what is never removed: ``latest``, ``best``,
the set this run resumed from, and the epochs named by ``--keep_epochs``. A set is removed whole (network files
and training state), the state first, so that a half-removed set is never taken for a resumable one. A file that
another process is reading (test.py, export.py and resuming take a shared lock while they read, see
``models.checkpoint_io.read_weights``) is left for the next save. Each removal is one log line with the space it
gave back.
"""
from __future__ import annotations

import os
import re
from typing import Dict, Iterable, List, Optional, Set, Tuple

from util.logger import get_logger

from training.checkpoints import STATE_SUFFIX

try:  # POSIX file locks; elsewhere nothing is locked (as training/experiment.py)
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX
    fcntl = None  # type: ignore[assignment]

log = get_logger(__name__)

NUMBERED = re.compile(r"^(?P<prefix>(?:iter_)?\d+)_(?:net_.+\.pth|train_state\.pth)$")


def numbered_sets(save_dir: str) -> Dict[str, List[str]]:
    """The numbered checkpoint sets in ``save_dir``: prefix -> its file names (regular files only)."""
    sets: Dict[str, List[str]] = {}
    try:
        names = os.listdir(save_dir)
    except OSError:
        return sets
    for name in names:
        match = NUMBERED.match(name)
        if match and os.path.isfile(os.path.join(save_dir, name)) and not os.path.islink(os.path.join(save_dir, name)):
            sets.setdefault(match.group("prefix"), []).append(name)
    return sets


def _order(prefix: str) -> Tuple[int, int]:
    """Sort key: epochs and iter saves apart, each by number."""
    return (1, int(prefix[5:])) if prefix.startswith("iter_") else (0, int(prefix))


def to_remove(prefixes: Iterable[str], keep_last: int, protected: Set[str]) -> List[str]:
    """The prefixes beyond the ``keep_last`` most recent of each kind, except the protected ones."""
    removable: List[str] = []
    for kind in (0, 1):
        ordered = sorted((p for p in prefixes if _order(p)[0] == kind), key=_order)
        recent = set(ordered[-keep_last:]) if keep_last > 0 else set(ordered)
        removable += [p for p in ordered if p not in recent and p not in protected]
    return removable


def _remove_locked(path: str) -> Optional[int]:
    """Delete ``path`` unless another process holds a lock on it; its size, or None when it was left."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return None  # being read: left for the next save
        size = os.fstat(fd).st_size
        os.unlink(path)
        return size
    finally:
        os.close(fd)


class Retention:
    """Applies ``--keep_last`` after each save of a numbered set (rank 0 only)."""

    def __init__(self, save_dir: str, keep_last: int, keep: Set[str], resumed_from: Optional[str] = None) -> None:
        self.save_dir = save_dir
        self.keep_last = keep_last
        self.protected = set(keep) | ({resumed_from} if resumed_from else set())

    def after_save(self) -> Tuple[List[str], int]:
        """Remove the sets beyond ``--keep_last``; return the prefixes removed and the bytes given back."""
        if self.keep_last <= 0:
            return [], 0
        sets = numbered_sets(self.save_dir)
        removed, freed = [], 0
        for prefix in to_remove(sets, self.keep_last, self.protected):
            names = sorted(sets[prefix], key=lambda n: not n.endswith(STATE_SUFFIX))  # the state first
            gone = [_remove_locked(os.path.join(self.save_dir, n)) for n in names]
            freed += sum(g for g in gone if g)
            if all(g is not None for g in gone):
                removed.append(prefix)
            else:
                log.info("--keep_last: checkpoint %s is being read by another process; removing it later", prefix)
        if removed:
            log.info("--keep_last %d: removed checkpoint%s %s (%.1f MB given back); kept the %d most recent, latest, "
                     "best%s", self.keep_last, "s" if len(removed) > 1 else "", ", ".join(removed), freed / 2**20,
                     self.keep_last, "".join(f", {p}" for p in sorted(self.protected, key=_order)))
        return removed, freed
