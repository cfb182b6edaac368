"""One logger for all console output of the framework.

Every module gets its logger with ``get_logger(__name__)``; the entry points (train.py, test.py, scripts)
call ``setup_logging()`` once so that messages reach stdout as plain lines, exactly like the official
``print`` output. Libraries importing our modules keep control: nothing is printed until set-up.
"""
from __future__ import annotations

import logging
import sys

ROOT_NAME = "img2img"


def get_logger(name: str) -> logging.Logger:
    """Return the framework logger for a module (a child of the ``img2img`` logger)."""
    short = name.split(".")[-1] if name else ""
    return logging.getLogger(f"{ROOT_NAME}.{short}" if short else ROOT_NAME)


def setup_logging(level: int = logging.INFO, stream=None) -> logging.Logger:
    """Send framework messages to stdout (or ``stream``) as bare lines; safe to call more than once."""
    root = logging.getLogger(ROOT_NAME)
    root.setLevel(level)
    target = stream if stream is not None else sys.stdout
    for handler in list(root.handlers):
        if getattr(handler, "_img2img", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(target)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._img2img = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.propagate = False
    return root
