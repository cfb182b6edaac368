"""The names of test.py's result files: one per input, stable, and within the file system's name limit.

The official results are ``images/<stem>_<label>.png`` with ``<stem>`` the input's file name without extension;
that stays so for every input whose stem is unique. Two inputs with one stem (``a/x.png`` and ``b/x.png``,
``x.png`` and ``x.jpg``) would overwrite each other's results, so the later one (in the dataset's sorted order)
gets the folders, or the extension, that tell them apart: ``x__b``, ``x__jpg``. A stem too long for the file
system once ``_<label>.png`` is added is cut and given a hash of the whole stem (``<start>~<10 hex>``), so
long names that differ only at their end stay apart.
"""
from __future__ import annotations

import hashlib
import os
from typing import Dict

from util.util import NAME_MAX, PathLike


def _digest(text: str, n: int = 10) -> str:
    """A short stable hash of ``text`` (its bytes, so undecodable names hash too)."""
    return hashlib.sha1(os.fsencode(text)).hexdigest()[:n]


def fit_stem(stem: str, longest_suffix: str) -> str:
    """``stem``, cut and hashed when ``stem + longest_suffix`` is longer than ``NAME_MAX`` bytes."""
    raw = os.fsencode(stem)
    if len(raw) + len(os.fsencode(longest_suffix)) <= NAME_MAX:
        return stem
    digest = _digest(stem)
    room = NAME_MAX - len(os.fsencode(longest_suffix)) - len(digest) - 1
    return os.fsdecode(raw[:max(room, 1)]) + "~" + digest


def file_stem(path: PathLike) -> str:
    """The file name of ``path`` without its extension."""
    return os.path.splitext(os.path.basename(os.fspath(path)))[0]


class ResultNames:
    """Gives each input path its result stem; the same path always gets the same stem."""

    def __init__(self) -> None:
        """No name given yet."""
        self._stem_of: Dict[str, str] = {}  # input path -> result stem
        self._owner: Dict[str, str] = {}  # result stem -> input path

    def stem_for(self, path: PathLike) -> str:
        """The input's file stem, or, when an earlier input has it, the stem with what tells them apart."""
        path = os.fspath(path)
        if path in self._stem_of:
            return self._stem_of[path]
        stem = file_stem(path)
        if stem in self._owner:
            stem = self._distinct(stem, path, self._owner[stem])
        self._stem_of[path] = stem
        self._owner[stem] = path
        return stem

    def _distinct(self, stem: str, path: str, other: str) -> str:
        """``<stem>__<folders>`` (the folders of ``path`` below the one it shares with ``other``), or
        ``<stem>__<extension>`` for two files of one folder; a hash of the path if that is taken too."""
        folder, other_folder = os.path.dirname(os.path.abspath(path)), os.path.dirname(os.path.abspath(other))
        try:
            tag = os.path.relpath(folder, os.path.commonpath([folder, other_folder]))
        except ValueError:  # different drives (Windows)
            tag = folder
        if tag == ".":
            tag = os.path.splitext(path)[1].lstrip(".")
        candidate = f"{stem}__{tag.replace(os.sep, '_').replace('/', '_').replace(':', '')}"
        if candidate in self._owner:
            candidate = f"{stem}~{_digest(path)}"
        while candidate in self._owner:
            candidate += "_"
        return candidate
