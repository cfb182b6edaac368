"""A dependency-free progress display with iterations, rate and ETA.

On a terminal it redraws one line in place (``\\r``). When the output is not a terminal (CI logs, files, pipes) it
writes a plain line at most every ``min_interval`` seconds (30 s by default) and one at the end, so logs stay short.
Without an explicit ``stream`` those plain lines go through the framework logger.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Callable, Dict, Optional, TextIO

from util.logger import get_logger

log = get_logger(__name__)

TTY_INTERVAL = 0.1
PLAIN_INTERVAL = 30.0
BAR_WIDTH = 20


def format_duration(seconds: float) -> str:
    """Format seconds as MM:SS or H:MM:SS."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:d}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def _is_tty(stream: Any) -> bool:
    """Return True when ``stream`` is an interactive terminal."""
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class Progress:
    """Progress of a loop of ``total`` steps: ``update(n, **postfix)`` after each step, ``close()`` at the end."""

    def __init__(self, total: Optional[int], desc: str = "", stream: Optional[TextIO] = None,
                 min_interval: Optional[float] = None, disable: bool = False, unit: str = "it",
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Start the clock; ``total`` None means unknown length (no percentage / ETA); ``disable`` silences it."""
        self.total = int(total) if total is not None else None
        self.desc = desc
        self.unit = unit
        self.disable = disable
        self._explicit_stream = stream is not None
        self.stream = stream if stream is not None else sys.stderr
        self.tty = _is_tty(self.stream)
        self.min_interval = float(min_interval) if min_interval is not None else (TTY_INTERVAL if self.tty else PLAIN_INTERVAL)
        self._clock = clock
        self.start = clock()
        self.n = 0
        self.postfix: Dict[str, Any] = {}
        self._last_emit = self.start
        self._last_emitted_n = -1
        self._line_len = 0
        self.closed = False

    def __enter__(self) -> "Progress":
        """Use as a context manager; the display is closed on exit."""
        return self

    def __exit__(self, *exc: Any) -> None:
        """Close the display."""
        self.close()

    def rate(self) -> float:
        """Average steps per second since the start."""
        elapsed = self._clock() - self.start
        return self.n / elapsed if elapsed > 0 else 0.0

    def eta(self) -> Optional[float]:
        """Seconds left at the average rate, or None when unknown."""
        rate = self.rate()
        if self.total is None or rate <= 0:
            return None
        return max(self.total - self.n, 0) / rate

    def update(self, n: int = 1, **postfix: Any) -> None:
        """Advance by ``n`` steps; keyword arguments are shown after the counters (e.g. losses)."""
        if self.closed:
            return
        self.n += n
        if postfix:
            self.postfix.update(postfix)
        if self.disable:
            return
        now = self._clock()
        finished = self.total is not None and self.n >= self.total
        if finished or now - self._last_emit >= self.min_interval:
            self._emit(now)

    def _rate_text(self) -> str:
        """Return 'x it/s' or 's/it' for slow loops."""
        rate = self.rate()
        if 0 < rate < 1:
            return f"{1.0 / rate:.2f} s/{self.unit}"
        return f"{rate:.2f} {self.unit}/s"

    def _postfix_text(self) -> str:
        """Return 'k=v' pairs, floats with 3 decimals."""
        parts = [f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in self.postfix.items()]
        return ", ".join(parts)

    def format_line(self) -> str:
        """Return the current status text (without line control characters)."""
        elapsed = self._clock() - self.start
        eta = self.eta()
        prefix = f"{self.desc}: " if self.desc else ""
        if self.total:
            fraction = min(self.n / self.total, 1.0)
            counts = f"{self.n}/{self.total}"
            if self.tty:
                filled = int(round(fraction * BAR_WIDTH))
                head = f"{prefix}{fraction * 100:3.0f}%|{'#' * filled}{'.' * (BAR_WIDTH - filled)}| {counts}"
            else:
                head = f"{prefix}{counts} ({fraction * 100:.0f}%)"
        else:
            head = f"{prefix}{self.n}"
        timing = f"{self._rate_text()}, elapsed {format_duration(elapsed)}"
        if eta is not None:
            timing += f", ETA {format_duration(eta)}"
        extra = self._postfix_text()
        return f"{head} [{timing}]" + (f" {extra}" if extra else "")

    def _emit(self, now: float) -> None:
        """Write the status: redraw in place on a TTY, one plain line otherwise."""
        self._last_emit = now
        self._last_emitted_n = self.n
        line = self.format_line()
        if self.tty:
            pad = max(self._line_len - len(line), 0)
            self.stream.write("\r" + line + " " * pad)
            self.stream.flush()
            self._line_len = len(line)
        elif self._explicit_stream:
            self.stream.write(line + "\n")
            self.stream.flush()
        else:
            log.info(line)

    def clear(self) -> None:
        """On a TTY, erase the bar so a log line can be printed cleanly; the next update redraws it."""
        if self.tty and not self.disable and self._line_len:
            self.stream.write("\r" + " " * self._line_len + "\r")
            self.stream.flush()
            self._line_len = 0

    def close(self) -> None:
        """Write the final status (once) and end the line on a TTY."""
        if self.closed:
            return
        self.closed = True
        if self.disable:
            return
        if self._last_emitted_n != self.n or (self.tty and self._line_len == 0):
            self._emit(self._clock())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
