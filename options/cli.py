"""The command-line parser of the entry scripts: argparse plus argument files and "did you mean" for flags.

* Argument files: ``python train.py @maps.args`` reads arguments from ``maps.args`` (argparse's
  ``fromfile_prefix_chars``), one option per line: ``--flag value``, ``--flag`` alone, or a lone value; blank
  lines and lines starting with ``#`` are skipped; more arguments may follow on the command line (the last
  value of a flag wins). A file may name another with ``@other.args``; a file that includes itself (directly or
  through others) or is not a regular file (a FIFO would block) is refused with one line naming it.
* A misspelled flag gets the closest known ones in argparse's one-line error:
  ``error: unrecognized arguments: --lamda_A 5 (did you mean --lambda_A?)``. Abbreviations are refused
  (``--n_epochs_dec`` is such a misspelling, not ``--n_epochs_decay``).
* Every error is one line, ``prog: error: <message>``, exit status 2: no usage block before it.
* One argument file can serve train.py and test.py: a flag that only the other script has (``ignorable``), read
  from a file, is left out with one note naming it (``notes``); given on the command line it is still an error.
* ``section(title)``: the flags added meanwhile without a group of their own go to the ``--help`` group ``title``.
"""
from __future__ import annotations

import argparse
import difflib
import os
import contextlib
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set

from util.errors import InvalidInputError
from util.image_io import file_kind

_UNSET = object()


def is_flag(token: str) -> bool:
    """True for ``--name``/``-n`` tokens (not for negative numbers such as ``-1``)."""
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)
    except ValueError:
        return True
    return False


class OptionParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` reading ``@file`` arguments and suggesting flags for unknown ones."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """As ArgumentParser; ``fromfile_prefix_chars`` defaults to ``@``, abbreviated flags are refused."""
        self.recorded: List[argparse.Action] = []  # before super().__init__, which adds -h
        self.relaxed: List[argparse.Action] = []  # required flags that ``peek`` does not require
        self.current: Any = None  # the group of ``section``
        self.sections: Dict[str, Any] = {}  # title -> its group
        self.ignorable: Dict[str, str] = {}  # flag -> where it belongs, left out when read from a file
        self.notes: Dict[str, str] = {}  # flag -> the file it was left out of
        kwargs.setdefault("fromfile_prefix_chars", "@")
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        """Add a flag (argparse) and remember it for suggestions and ``given``; inside ``section`` it joins
        that section's group."""
        if self.current is not None:
            return self.current.add_argument(*args, **kwargs)
        action = super().add_argument(*args, **kwargs)
        self.recorded.append(action)
        return action

    def add_sections(self, titles: Sequence[str]) -> None:
        """Make the ``--help`` groups ``titles`` in this order (for ``section``; an empty group is not shown)."""
        for title in titles:
            if title not in self.sections:
                self.sections[title] = self.add_argument_group(title)

    @contextlib.contextmanager
    def section(self, title: str, description: Optional[str] = None) -> Iterator[Any]:
        """Flags added meanwhile through ``add_argument`` go to the ``--help`` group ``title`` (yielded; made by
        the first ``section`` of that title)."""
        if title not in self.sections:
            self.sections[title] = self.add_argument_group(title, description)
        outer, self.current = self.current, self.sections[title]
        try:
            yield self.current
        finally:
            self.current = outer

    def add_argument_group(self, *args: Any, **kwargs: Any) -> Any:
        """A group of flags (argparse) whose flags are remembered too."""
        group = super().add_argument_group(*args, **kwargs)
        add = group.add_argument

        def add_and_record(*a: Any, **k: Any) -> argparse.Action:
            action = add(*a, **k)
            self.recorded.append(action)
            return action

        group.add_argument = add_and_record  # type: ignore[method-assign]
        return group

    def add_help_flag(self) -> None:
        """Add ``-h/--help`` (for parsers built with ``add_help=False`` until all their flags are known)."""
        self.add_argument("-h", "--help", action="help", default=argparse.SUPPRESS,
                          help="show this help message and exit")

    def flags(self) -> List[str]:
        """Every option string of the parser (``--lambda_A``, ``-h``, ...)."""
        return [s for action in self.recorded for s in action.option_strings]

    def convert_arg_line_to_args(self, arg_line: str) -> List[str]:
        """One line of an argument file: ``--flag value`` (the value may contain spaces), ``--flag``, a value;
        blank lines and ``#`` comments give nothing."""
        line = arg_line.strip()
        if not line or line.startswith("#"):
            return []
        if is_flag(line) and "=" not in line.split(maxsplit=1)[0]:
            return line.split(maxsplit=1)
        return [line]

    def _read_args_from_files(self, arg_strings: List[str]) -> List[str]:  # type: ignore[override]
        """argparse's ``@file`` expansion, refusing a file that includes itself and one that is not a file."""
        return self.expand_files(arg_strings, [])

    def expand_files(self, arg_strings: Sequence[str], chain: List[str]) -> List[str]:
        """``arg_strings`` with every ``@file`` replaced by its arguments; ``chain``: the files being read."""
        out: List[str] = []
        for arg in arg_strings:
            if not arg or arg[0] not in (self.fromfile_prefix_chars or ""):
                out.append(arg)
                continue
            path = arg[1:]
            key = os.path.realpath(path)
            if key in chain:
                via = " -> ".join(chain[chain.index(key):] + [key])
                raise InvalidInputError(f"argument file {path} includes itself ({via}): remove the line @{path} "
                                        f"from it")
            kind = file_kind(path)
            if kind not in (None, "missing"):
                raise InvalidInputError(f"argument file {path} is {kind}, not a regular file; name a text file "
                                        f"of arguments after @")
            try:
                with open(path, encoding="utf-8") as handle:
                    lines = handle.read().splitlines()
            except (OSError, UnicodeDecodeError) as err:
                self.error(str(err))
            inner = self.drop_ignorable([self.convert_arg_line_to_args(line) for line in lines], path)
            out.extend(self.expand_files(inner, chain + [key]))
        return out

    def drop_ignorable(self, lines: Sequence[List[str]], path: str) -> List[str]:
        """The arguments of a file's lines without the ``ignorable`` flags and the lone values after them;
        each flag left out is noted (``notes``)."""
        out: List[str] = []
        dropping = False
        for args in lines:
            if args and is_flag(args[0]):
                name = args[0].split("=", 1)[0]
                dropping = name in self.ignorable
                if dropping:
                    self.notes.setdefault(name, path)
            if not dropping:
                out.extend(args)
        return out

    def ignored_note(self, prog: str) -> Optional[str]:
        """One note naming the flags left out of argument files (None if none)."""
        if not self.notes:
            return None
        groups: Dict[tuple, List[str]] = {}
        for flag, path in self.notes.items():
            groups.setdefault((path, self.ignorable[flag]), []).append(flag)
        return f"{prog} ignores " + "; ".join(f"{' '.join(flags)} from {path} (flag{'s' * (len(flags) > 1)} of "
                                              f"{owner})" for (path, owner), flags in groups.items())

    def peek(self, args: Sequence[str]) -> argparse.Namespace:
        """The values ``args`` sets so far: unknown flags, ``--help`` and missing required flags are no error yet
        (the model's and dataset's flags are added after this)."""
        self.relaxed = [a for a in self.recorded if a.required]
        for action in self.relaxed:
            action.required = False
        try:
            return self.parse_known_args(list(args))[0]
        finally:
            self.restore_required()

    def restore_required(self) -> None:
        """Make the flags that ``peek`` relaxed required again."""
        for action in self.relaxed:
            action.required = True
        self.relaxed = []

    def error(self, message: str) -> None:  # type: ignore[override]
        """One line, ``prog: error: message``, exit status 2 (no usage block: ``--help`` has it)."""
        self.restore_required()
        self.exit(2, f"{self.prog}: error: {message}\n")

    def given(self, args: Sequence[str]) -> Set[str]:
        """The destinations that ``args`` sets (also through ``@file`` or an abbreviated flag), not defaults; a
        missing required flag is no error here."""
        probe = argparse.Namespace(**{a.dest: _UNSET for a in self.recorded if a.dest != argparse.SUPPRESS})
        self.relaxed = [a for a in self.recorded if a.required]
        for action in self.relaxed:
            action.required = False
        try:
            self.parse_known_args(list(args), namespace=probe)  # an attribute already set keeps it from the default
        finally:
            self.restore_required()
        return {dest for dest, value in vars(probe).items() if value is not _UNSET}

    def unrecognized(self, extras: Sequence[str], elsewhere: Optional[Mapping[str, Sequence[str]]] = None) -> str:
        """argparse's message for unknown arguments, with the closest known flag for each misspelled one.

        ``elsewhere`` maps flags this parser lacks to where they belong (e.g. ``--lambda_A``: ``--model
        cycle_gan``), for a flag that is right but meant for another setting.
        """
        known = self.flags()
        hints: Dict[str, str] = {}
        for token in extras:
            if not is_flag(token):
                continue
            name = token.split("=", 1)[0]
            if elsewhere and name in elsewhere:
                hints[name] = f"{name} is a flag of {' and of '.join(elsewhere[name])}"
                continue
            if name in self.ignorable:
                hints[name] = f"{name} is a flag of {self.ignorable[name]}"
                continue
            close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
            if close:
                hints[name] = f"did you mean {close[0]}?"
        message = "unrecognized arguments: " + " ".join(extras)
        return message + (f" ({'; '.join(hints.values())})" if hints else "")

    def parse_args(self, args: Optional[Sequence[str]] = None,  # type: ignore[override]
                   namespace: Optional[argparse.Namespace] = None) -> argparse.Namespace:
        """argparse's ``parse_args``, with suggestions for unknown flags in its one-line error (exit status 2)."""
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self.unrecognized(extras))
        return parsed
