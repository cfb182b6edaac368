"""The valid range of a numeric flag and the valid names of a named one, declared where the flag is added.

``Range`` does two jobs: as an argparse ``type`` (``parser.add_argument("--lambda_A", type=Range(float, 0))``)
it converts the text and refuses values outside the range at parse time with argparse's one error line; and
``Range.check(name, value)`` tests a value that did not come through argparse (a default, a value read from a
checkpoint's config.json). NaN never passes; infinity only where ``allow_inf`` says so.

``Choice`` does the same for a flag that names an entry of a registry (``--netG``, ``--norm``, ``--amp``): built
from the registry itself (``Choice(networks.GENERATORS)``), it lists the names for the help text (``listing()``),
refuses any other value with argparse's one error line listing them (and the closest one: "did you mean"), and
``check(name, value)`` tests a value that did not come through argparse.
"""
from __future__ import annotations

import argparse
import difflib
import math
from dataclasses import dataclass
from typing import Any, Iterable, List, Optional, Tuple

from util.errors import UserError


class RangeError(UserError, ValueError):
    """A number outside its valid range (the message names the flag or key and the range)."""


class ChoiceError(RangeError):
    """A name that is not in its registry (the message names the flag or key and lists the valid names)."""


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


def closest(name: str, names: Iterable[str], cutoff: float = 0.6) -> Optional[str]:
    """The known name most like ``name`` (difflib), or None when none is close: the "did you mean" hint."""
    found = difflib.get_close_matches(name, list(names), n=1, cutoff=cutoff)
    return found[0] if found else None


class Choice:
    """One of the names of a registry (a dict or a sequence of names), read live from it; ``ignore_case``: any
    case is accepted and the registry's spelling returned (``--CUT_mode fastcut`` -> FastCUT)."""

    def __init__(self, names: Iterable[str], ignore_case: bool = False, empty: bool = False) -> None:
        self.registry = names  # kept, not copied: a name registered later is valid too
        self.ignore_case = ignore_case
        self.empty = empty  # '' is valid too: the flag's "not set, use the default rule" (--eval_best)

    @property
    def names(self) -> Tuple[str, ...]:
        """The valid names, in the registry's order."""
        return tuple(self.registry)

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        """'name' (argparse's messages say 'invalid name value')."""
        return "name"

    def __repr__(self) -> str:
        return f"Choice({list(self.names)!r})"

    def listing(self) -> str:
        """The names for a help text: '[resnet_9blocks | resnet_6blocks | unet_128 | unet_256]'."""
        return "[" + " | ".join(self.names) + "]"

    def canonical(self, value: Any) -> Optional[str]:
        """The registry's spelling of ``value``, or None when it is not a valid name."""
        if not isinstance(value, str):
            return None
        if value in self.names or (self.empty and value == ""):
            return value
        if self.ignore_case:
            return next((n for n in self.names if n.lower() == value.lower()), None)
        return None

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of the names."""
        return self.canonical(value) is not None

    def requirement(self, value: Any) -> str:
        """'is not valid; choose one of: a, b, c' with the closest name, if any, as 'did you mean'."""
        also = " (any case)" if self.ignore_case else " (or empty)" if self.empty else ""
        hints: List[str] = [f"choose one of: {', '.join(self.names)}{also}"]
        near = closest(str(value), self.names)
        if near is not None:
            hints.append(f"did you mean {near}?")
        return "is not valid; " + "; ".join(hints)

    def problem(self, name: str, value: Any) -> Optional[str]:
        """None when ``value`` is valid, else the one-line message naming ``name``."""
        return None if self.contains(value) else f"{name} '{value}' {self.requirement(value)}"

    def check(self, name: str, value: Any) -> None:
        """Raise ``ChoiceError`` naming ``name`` when ``value`` is not one of the names."""
        message = self.problem(name, value)
        if message is not None:
            raise ChoiceError(message)

    def __call__(self, text: str) -> str:
        """argparse ``type``: the name itself (``ArgumentTypeError`` -> one error line naming the flag)."""
        name = self.canonical(text)
        if name is None:
            raise argparse.ArgumentTypeError(f"'{text}' {self.requirement(text)}")
        return name
