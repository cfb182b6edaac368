"""Run a script with a simulated file-system fault, as a user's machine would produce it.

    python tests/faults.py KIND PATTERN SCRIPT [ARGS...]      (SCRIPT: a path, or -m MODULE)

KIND is ``enospc`` (disk full), ``erofs`` (read-only file system) or ``eio`` (an I/O error: not the user's
doing). Every attempt to create a folder or to open a file for writing whose path contains PATTERN fails with
that error; reading is untouched. KIND ``fsize`` sets a real file-size limit of PATTERN bytes instead
(``ulimit -f``, RLIMIT_FSIZE): a write past it fails with EFBIG. The script then runs as ``__main__``.
"""
from __future__ import annotations

import builtins
import errno
import io
import os
import runpy
import sys
from typing import Any

KINDS = {"enospc": errno.ENOSPC, "erofs": errno.EROFS, "eio": errno.EIO}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC


def install(code: int, pattern: str) -> None:
    """Patch os.open, os.mkdir and open() so that writes under ``pattern`` fail with ``code``."""
    def refuse(path: Any) -> None:
        if isinstance(path, int):
            return
        text = os.fsdecode(os.fspath(path))
        if pattern in os.path.abspath(text):
            raise OSError(code, os.strerror(code), text)

    real_os_open, real_mkdir, real_open = os.open, os.mkdir, io.open

    def os_open(path: Any, flags: int, mode: int = 0o777, *, dir_fd: Any = None) -> int:
        if flags & WRITE_FLAGS:
            refuse(path)
        return real_os_open(path, flags, mode, dir_fd=dir_fd)

    def mkdir(path: Any, mode: int = 0o777, *, dir_fd: Any = None) -> None:
        refuse(path)
        real_mkdir(path, mode, dir_fd=dir_fd)

    def open_(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    os.open, os.mkdir, builtins.open, io.open = os_open, mkdir, open_, open_  # type: ignore[assignment]


def main() -> None:
    """Install the fault, then run the script or module with the remaining arguments."""
    kind, pattern, target, *rest = sys.argv[1:]
    if kind == "fsize":
        import resource

        resource.setrlimit(resource.RLIMIT_FSIZE, (int(pattern), int(pattern)))
    else:
        install(KINDS[kind], pattern)
    if target == "-m":
        module, *args = rest
        sys.argv = [module, *args]
        sys.path[0] = os.getcwd()
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target, *rest]
        sys.path[0] = os.path.dirname(os.path.abspath(target))
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    main()
