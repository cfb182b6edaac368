"""The valid range of a numeric flag or setting, declared where the flag is added.

``Range`` does two jobs: as an argparse ``type`` (``parser.add_argument("--lambda_A", type=Range(float, 0))``)
it converts the text and refuses values outside the range at parse time with argparse's one error line; and
``Range.check(name, value)`` tests a value that did not come through argparse (a default, a value read from a
checkpoint's config.json). NaN never passes; infinity only where ``allow_inf`` says so.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any, Optional

from util.errors import UserError


class RangeError(UserError, ValueError):
    """A number outside its valid range (the message names the flag or key and the range)."""


@dataclass(frozen=True)
class Range:
    """Numbers of ``kind`` (int or float) in [low, high]; ``open_low``: low itself excluded (e.g. > 0)."""

    kind: type = float
    low: Optional[float] = None
    high: Optional[float] = None
    open_low: bool = False
    open_high: bool = False
    allow_inf: bool = False  # +inf accepted (e.g. --max_dataset_size inf = no cap)
    note: str = ""  # what a special value means, shown with the range ("-1: not seeded")

    @property
    def __name__(self) -> str:  # argparse names the type in its messages
        """The kind's name (argparse uses it in 'invalid int value')."""
        return self.kind.__name__

    def describe(self) -> str:
        """The range in words: '>= 1', '> 0', 'in [0, 1)', 'an integer in 1..1024', with the note."""
        text = self._bounds()
        return f"{text} ({self.note})" if self.note else text

    def _bounds(self) -> str:
        """The bounds in words."""
        lo = None if self.low is None else _fmt(self.low, self.kind)
        hi = None if self.high is None else _fmt(self.high, self.kind)
        if self.kind is int and lo is not None and hi is not None and not (self.open_low or self.open_high):
            return f"an integer in {lo}..{hi}"
        if lo is not None and hi is not None:
            return f"in {'(' if self.open_low else '['}{lo}, {hi}{')' if self.open_high else ']'}"
        if lo is not None:
            return f"{'>' if self.open_low else '>='} {lo}"
        if hi is not None:
            return f"{'<' if self.open_high else '<='} {hi}"
        return "an integer" if self.kind is int else "a finite number"

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a number of the right kind inside the range."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if isinstance(value, float) and math.isinf(value) and value > 0 and self.allow_inf:
            return True
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.kind is int and not isinstance(value, int):  # 8.0 from a JSON file is not a channel count
            return False
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        if self.high is not None and (value > self.high or (self.open_high and value == self.high)):
            return False
        return True

    def requirement(self, value: Any) -> str:
        """What a valid value is, in words ('must be > 0'); 'a finite number' is said for NaN and infinity."""
        what = self.describe()
        if self.kind is float and isinstance(value, float) and not math.isfinite(value) \
                and not what.startswith("a finite number"):
            what = "a finite number " + what
        return f"must be {what}"

    def problem(self, name: str, value: Any) -> Optional[str]:
        """None when ``value`` is valid, else the one-line message naming ``name``."""
        return None if self.contains(value) else f"{name} {self.requirement(value)}, got {value!r}"

    def check(self, name: str, value: Any) -> None:
        """Raise ``RangeError`` naming ``name`` when ``value`` is outside the range."""
        message = self.problem(name, value)
        if message is not None:
            raise RangeError(message)

    def __call__(self, text: str) -> Any:
        """argparse ``type``: convert ``text`` and check it (``ArgumentTypeError`` -> one error line)."""
        try:
            value = self.kind(text) if self.kind is int else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {'an integer' if self.kind is int else 'a number'}") \
                from None
        if not self.contains(value):
            raise argparse.ArgumentTypeError(f"{self.requirement(value)}, got {text}")
        return value


def _fmt(number: float, kind: type) -> str:
    """A bound as text: integers without '.0', floats as given (0.01, 1e-08)."""
    return str(int(number)) if kind is int or float(number).is_integer() else f"{number:g}"
