"""Progress display: a tqdm bar on a terminal, plain periodic lines elsewhere, log lines never glued onto a bar.

``Progress(total, desc=..., unit=...)`` shows counts, rate, elapsed<remaining. On a terminal it is a tqdm bar, and
while it is open the framework logger writes through ``tqdm.write`` (tqdm's logging redirect), so a log line is
printed on its own line and the bar is redrawn under it. When the stream (stderr by default) is not a terminal
(CI logs, files, pipes), there is no bar and no carriage return: a plain line at most every ``PLAIN_INTERVAL``
seconds and one at the end, through the framework logger unless a ``file`` is given. ``later`` adds the whole
run's ETA: the units still to come after this bar (e.g. the epochs after this one) at this bar's rate.
"""
from __future__ import annotations

import logging
import shutil
import sys
import time
from contextlib import ExitStack
from typing import Any, Callable, Dict, Iterable, Iterator, Optional, TextIO, TypeVar

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from util.logger import ROOT_NAME, get_logger

log = get_logger(__name__)

T = TypeVar("T")
TTY_INTERVAL = 0.1  # seconds between redraws on a terminal
PLAIN_INTERVAL = 30.0  # seconds between plain lines in logs
PLAIN_FORMAT = "{desc}: {n_fmt}/{total_fmt} ({percentage:.0f}%) [{elapsed}<{remaining}, {rate_fmt}{postfix}]"
PLAIN_FORMAT_NO_TOTAL = "{desc}: {n_fmt}{unit} [{elapsed}, {rate_fmt}{postfix}]"


def is_terminal(stream: Any) -> bool:
    """True when ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


def writes_to_console(logger: logging.Logger) -> bool:
    """Whether ``logger`` has a handler writing to stdout or stderr (the redirect replaces those; a library user
    who never set up the framework's logging gets no handler added)."""
    return any(isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.stderr) for h in logger.handlers)


def format_duration(seconds: float) -> str:
    """Seconds as [H:]MM:SS (tqdm's format, as on the bars)."""
    return tqdm.format_interval(seconds)


def run_eta(remaining: float, later: float, rate: Optional[float]) -> Optional[float]:
    """Seconds until the whole run ends: this bar's ``remaining`` units plus ``later`` ones at ``rate`` units/s."""
    if not rate or rate <= 0:
        return None
    return (max(remaining, 0.0) + max(later, 0.0)) / rate


class _Bar(tqdm):
    """tqdm with the whole run's ETA in its postfix; no monitor thread (forked data-loader workers inherit none)."""

    monitor_interval = 0

    def __init__(self, *args: Any, later: Optional[int] = None, **kwargs: Any) -> None:
        self.later = later
        super().__init__(*args, **kwargs)

    def run_eta_text(self, stats: Dict[str, Any]) -> str:
        """'run ETA H:MM:SS' from tqdm's stats (``format_dict``), '?' before the rate is known."""
        rate = stats.get("rate")
        if not rate and stats.get("elapsed"):
            rate = (stats["n"] - stats.get("initial", 0)) / stats["elapsed"]
        eta = run_eta((stats["total"] or 0) - stats["n"], self.later or 0, rate)
        return "run ETA " + ("?" if eta is None else self.format_interval(eta))

    def display(self, msg: Optional[str] = None, pos: Optional[int] = None) -> bool:
        """Draw the bar (tqdm), with the run's ETA when ``later`` is given."""
        if msg is None and self.later is not None:
            self.set_postfix_str(self.run_eta_text(self.format_dict), refresh=False)
        return super().display(msg, pos)


class _PlainLines(_Bar):
    """No bar and no carriage return: a plain line now and then, through a logger or written to ``file``."""

    def __init__(self, *args: Any, logger: Optional[logging.Logger], interval: float, clock: Callable[[], float],
                 delay: float = 0.0, **kwargs: Any) -> None:
        self._logger = logger
        self._interval = interval
        self._delay = delay
        self._clock = clock
        self._started = self._last_line = clock()
        self._shown = kwargs.get("initial", 0)  # no line at the start
        self._closing = False
        super().__init__(*args, **kwargs)

    def plain_line(self) -> str:
        """The status as one line: counts, percentage, elapsed<remaining, average rate, postfix."""
        stats = dict(self.format_dict, elapsed=self._clock() - self._started, rate=None,
                     bar_format=PLAIN_FORMAT if self.total else PLAIN_FORMAT_NO_TOTAL)
        if self.later is not None:
            stats["postfix"] = self.run_eta_text(stats)
        return self.format_meter(**stats)

    def display(self, msg: Optional[str] = None, pos: Optional[int] = None) -> bool:
        """Write a line when the interval has passed (or at the end) and the count moved; nothing to erase."""
        if msg is not None:  # tqdm erasing the bar before a write or on close: nothing was drawn in place
            return False
        now = self._clock()
        if self.n == self._shown or now - self._started < self._delay:
            return True
        if not (self._closing or now - self._last_line >= self._interval):
            return True
        self._shown, self._last_line = self.n, now
        line = self.plain_line()
        if self._logger is not None:
            self._logger.info(line)
        else:
            self.fp.write(line + "\n")
            self.fp.flush()
        return True

    def clear(self, nolock: bool = False) -> None:
        """Nothing is drawn in place, so nothing to clear."""

    def close(self) -> None:
        """Write the final line (unless the last one already showed this count), then close."""
        if not getattr(self, "disable", True):
            self._closing = True
            self.refresh()
        super().close()


class Progress:
    """Progress of ``total`` units: ``update(n)`` after each step, ``close()`` (or ``iterate``/``with``) at the end.

    ``initial`` starts the count part-way (a resumed epoch shows its position in the whole epoch); ``later`` adds
    the whole run's ETA; ``disable`` shows nothing (e.g. ranks other than 0); ``delay`` shows nothing for a loop
    that ends within that many seconds. ``file``, ``interval`` and ``clock`` choose the stream (default stderr), the
    seconds between plain lines and their clock (tests).
    """

    def __init__(self, total: Optional[int], desc: str = "", unit: str = "it", initial: int = 0,
                 later: Optional[int] = None, disable: bool = False, delay: float = 0.0,
                 file: Optional[TextIO] = None, interval: Optional[float] = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Open the bar (a terminal) or the plain-line display (anything else)."""
        stream = file if file is not None else sys.stderr
        self.total = int(total) if total is not None else None
        initial = min(int(initial), self.total) if self.total is not None else int(initial)
        common: Dict[str, Any] = dict(total=self.total, desc=desc, unit=unit, initial=initial, disable=disable,
                                      file=stream, later=later)
        self._redirect = ExitStack()
        if is_terminal(stream):
            # the size from shutil, which falls back to 80x24 where a terminal reports none (tqdm would then draw
            # nothing); a nested bar vanishes when done
            columns, rows = shutil.get_terminal_size()
            self.bar: tqdm = _Bar(mininterval=TTY_INTERVAL if interval is None else interval, ncols=columns,
                                  nrows=rows, leave=None, delay=delay, **common)
            framework = logging.getLogger(ROOT_NAME)
            if not disable and writes_to_console(framework):  # log lines go above the bar while it is open
                self._redirect.enter_context(logging_redirect_tqdm([framework], _Bar))
        else:
            self.bar = _PlainLines(logger=None if file is not None else log, mininterval=0, miniters=1, leave=False,
                                   interval=PLAIN_INTERVAL if interval is None else interval, clock=clock,
                                   delay=delay, **common)

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` units (never past ``total``: a padded last batch does not overshoot)."""
        if self.total is not None:
            n = max(min(n, self.total - self.bar.n), 0)
        self.bar.update(n)

    def close(self) -> None:
        """Show the final count and end the display (idempotent); logging goes back to its stream."""
        try:
            self.bar.close()
        finally:
            self._redirect.close()

    def iterate(self, iterable: Iterable[T]) -> Iterator[T]:
        """Yield the items of ``iterable``; the display is closed however the loop ends (break, error, stop)."""
        try:
            yield from iterable
        finally:
            self.close()

    def __enter__(self) -> "Progress":
        """Use as a context manager; the display is closed on exit."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Close the display."""
        self.close()
