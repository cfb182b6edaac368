"""The one error type for a user's mistake (bad data, flag, path, checkpoint, config).

Raise ``UserError`` (or a subclass) with a message that names the file or flag and says how to fix it. Each
entry point catches it once and prints only that message (exit status 2, no traceback); anything else is an
internal error and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; the message names the file or flag and the fix."""
