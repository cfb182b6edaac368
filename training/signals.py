"""Ctrl-C, SIGTERM and SIGHUP during training: finish the current step, save a resumable checkpoint, stop.

``GracefulStop`` is a context manager installed around the training loop (main thread only). The first SIGINT,
SIGTERM or SIGHUP (the terminal or the ssh session closed) only sets ``requested``; the loop checks it after each iteration, saves ``latest`` (networks and
training state) and raises ``TrainingInterrupted``. A second Ctrl-C restores the default handler and raises
``KeyboardInterrupt`` at once; checkpoint writes are atomic, so whatever was on disk stays loadable.
"""
from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any, Dict, Optional, Type

from util.distributed import all_reduce_max
from util.logger import get_logger

log = get_logger(__name__)

HANDLED = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None),
                            getattr(signal, "SIGHUP", None)) if s is not None)


class TrainingInterrupted(RuntimeError):
    """Training stopped on a signal after saving a resumable checkpoint."""

    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = int(signum)

    @property
    def exit_code(self) -> int:
        """The shell convention for a process ended by a signal: 128 + the signal number."""
        return 128 + self.signum


def signal_name(signum: int) -> str:
    """``SIGINT``, ``SIGTERM``, ... for a signal number."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class GracefulStop:
    """Turn SIGINT/SIGTERM/SIGHUP into a stop request checked by the training loop; a second Ctrl-C exits at once."""

    def __init__(self, enabled: bool = True,
                 action: str = "saving a resumable checkpoint after the current iteration, then stopping",
                 at_once: str = "stopping at once without saving (the last checkpoint on disk is intact)") -> None:
        """``action``: what the first signal makes the program do; ``at_once``: what a second Ctrl-C does."""
        self.enabled = enabled
        self.action = action
        self.at_once = at_once
        self.signum: Optional[int] = None
        self._previous: Dict[int, Any] = {}
        self._installed = False

    @property
    def requested(self) -> bool:
        """True once a stop signal arrived."""
        return self.signum is not None

    def agreed(self) -> bool:
        """``requested`` in this or any other process (one all-reduce under torch.distributed, else free).

        All processes then stop after the same iteration, so none waits forever for the others.
        """
        agreed = int(all_reduce_max(float(self.signum or 0)))
        if self.signum is None and agreed > 0:
            self.signum = agreed
        return self.signum is not None

    def _handle(self, signum: int, frame: Optional[FrameType]) -> None:
        """First signal: request a stop. Second SIGINT: default handling (KeyboardInterrupt) right now."""
        if self.signum is not None and signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            log.warning("second Ctrl-C: %s", self.at_once)
            raise KeyboardInterrupt
        if self.signum is None:
            self.signum = signum
            hint = " (press Ctrl-C again to stop at once)" if signum == signal.SIGINT else ""
            log.warning("received %s: %s%s", signal_name(signum), self.action, hint)

    def __enter__(self) -> "GracefulStop":
        if self.enabled and threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.getsignal(signum)
                signal.signal(signum, self._handle)
            self._installed = True
        return self

    def __exit__(self, exc_type: Optional[Type[BaseException]], exc: Optional[BaseException],
                 tb: Optional[TracebackType]) -> None:
        if self._installed:
            for signum, handler in self._previous.items():
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            self._installed = False
