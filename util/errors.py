"""The one error type for a user's mistake (bad data, flag, path, checkpoint, config), and how scripts report it.

Raise ``UserError`` (or a subclass) with a message that names the file or flag and says how to fix it. Each
entry point catches it once (``cli_main``) and prints only that message as ``<prog>: error: <message>`` on
stderr, exit status 2, no traceback; ``--debug`` or ``IMG2IMG_DEBUG=1`` shows the traceback. Anything else is an
internal error and keeps its traceback. The subclasses keep a built-in base too (``except FileNotFoundError``
and the like still catch them).
"""
from __future__ import annotations

import errno
import os
import sys
from typing import Any, Callable, Optional, Sequence

DEBUG_ENV = "IMG2IMG_DEBUG"
DEBUG_FLAG = "--debug"
# A write that fails with one of these is the machine's or the user's business (full disk, quota, read-only
# mount, permissions, a file-size limit such as ``ulimit -f``), not a bug: one line, not a traceback.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG})


class UserError(Exception):
    """A mistake the user can fix; the message names the file or flag and the fix."""


class MissingPathError(UserError, FileNotFoundError):
    """A file or folder the user named (by a flag or a layout) does not exist."""


class InvalidInputError(UserError, ValueError):
    """A value, a combination of flags, or a file's content that cannot be used."""


class WriteError(UserError, OSError):
    """A file cannot be written: full disk, quota, read-only file system or no permission."""

    def __init__(self, message: str, code: Optional[int] = None) -> None:
        super().__init__(message)
        self.errno = code


def is_write_error(exc: BaseException) -> bool:
    """True for an ``OSError`` of a full disk, a quota, a read-only file system or missing permissions."""
    return isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS


def write_fix(exc: OSError) -> str:
    """What to do about a refused write: free space, or write somewhere else."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return "free some space or choose a folder on another disk"
    if exc.errno == errno.EFBIG:
        return ("raise the file-size limit (ulimit -f) or choose a folder on a file system that takes larger "
                "files")
    return "choose a folder you can write to, or fix its permissions"


def write_error(exc: OSError, what: str, fix: str = "") -> WriteError:
    """A ``WriteError`` for ``exc``: ``cannot write <what>: <reason> (<file>); <fix>``."""
    where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
    return WriteError(f"cannot write {what}: {exc.strerror or exc}{where}; {fix or write_fix(exc)}", exc.errno)


def one_line(message: str) -> str:
    """The message on one line (line breaks of a listing become spaces)."""
    return " ".join(part.strip() for part in str(message).splitlines() if part.strip())


def add_debug_flag(parser: Any, help: str = "") -> None:
    """Declare ``--debug`` on an argparse ``parser`` (``cli_main`` reads it from the arguments themselves)."""
    parser.add_argument(DEBUG_FLAG, action="store_true", help=help or (
        f"show the traceback of a user error instead of its one-line message (or {DEBUG_ENV}=1)"))


def debug_requested(argv: Optional[Sequence[str]] = None) -> bool:
    """``--debug`` among the arguments, or ``IMG2IMG_DEBUG`` set to something other than ``0``/empty."""
    args = sys.argv[1:] if argv is None else argv
    return DEBUG_FLAG in args or os.environ.get(DEBUG_ENV, "") not in ("", "0")


def cli_main(main: Callable[[], Any], prog: Optional[str] = None, argv: Optional[Sequence[str]] = None) -> int:
    """Run a script's ``main``; a user error (or a write refused by the disk) is one line and exit status 2.

    ``prog`` defaults to the script's file name (as argparse's); returns ``main``'s status when it returns an
    int, else 0. Use as ``sys.exit(cli_main(main))`` under ``if __name__ == "__main__"``.
    """
    try:
        result = main()
    except (UserError, OSError) as exc:
        if debug_requested(argv) or not (isinstance(exc, UserError) or is_write_error(exc)):
            raise
        message = str(exc) if isinstance(exc, UserError) else \
            f"{exc.strerror or exc}: {exc.filename or ''}; {write_fix(exc)}"
        print(f"{prog or os.path.basename(sys.argv[0])}: error: {one_line(message)}", file=sys.stderr)
        return 2
    return result if isinstance(result, int) else 0
