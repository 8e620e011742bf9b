"""Command-line arguments, checked in one place: every bad value is one line and exit status 2.

Every ``handrgbd`` command (and ``python -m experiments.pose_c1_c2``) builds its parser with
:class:`CommandParser` and types its numeric options with :func:`integer` and :func:`number`,
so that a bad value never reaches the code as a traceback::

    handrgbd synth: error: --size: must be an integer in [32, 4096] (got 5)

Problems found after parsing (a recording folder that does not load, an output that exists)
go through :meth:`CommandParser.fail`, which prints the same ``PROG: error: ...`` line and
returns 2. Each command module has ``build_parser()``, so tests can walk every option.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable

__all__ = ["CommandParser", "integer", "number", "existing_file", "out_path", "frame_range", "SEED_MAX", "MAX_WORKERS"]

#: Seeds feed numpy's generators, which take 32-bit unsigned seeds.
SEED_MAX = 2**32 - 1
#: Most worker processes a command starts (each holds its own model or renderer).
MAX_WORKERS = 256

_ARGUMENT = re.compile(r"^argument (\S+): (.*)$", re.S)
_CHOICE = re.compile(r"^invalid choice: (.*) \(choose from (.*)\)$", re.S)
_BAD_VALUE = re.compile(r"^invalid (\w+) value: (.*)$", re.S)


class CommandParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose errors read ``PROG: error: --option: why (got X)``.

    argparse's own messages (``argument --x: invalid choice: ...``) are rephrased into that form;
    a hint to ``--help`` follows (instead of argparse's whole usage block); the exit status is 2.
    """

    def error(self, message: str):  # noqa: D401 - argparse's hook
        self.exit(2, f"{self.prog}: error: {rephrase(message)}\n({self.prog} --help lists the options)\n")

    def fail(self, message: str | BaseException) -> int:
        """Report a problem found after parsing (``PROG: error: MESSAGE``); returns 2, the exit status."""
        print(f"{self.prog}: error: {message}", file=sys.stderr, flush=True)
        return 2


def rephrase(message: str) -> str:
    """argparse's ``argument -x/--xx: ...`` as ``--xx: ...``, choices and bad literals as
    ``must be ... (got X)``; other messages unchanged."""
    m = _ARGUMENT.match(message)
    if not m:
        return message
    name = max(m.group(1).split("/"), key=len)
    why = m.group(2)
    if c := _CHOICE.match(why):
        options = ", ".join(s.strip().strip("'") for s in c.group(2).split(","))
        why = f"must be one of {options} (got {c.group(1)})"
    elif b := _BAD_VALUE.match(why):
        why = f"must be {'an integer' if b.group(1) == 'int' else 'a ' + b.group(1)} (got {b.group(2)})"
    return f"{name}: {why}"


def _bounds(kind: str, lo, hi, lo_open: bool = False, hi_open: bool = False) -> str:
    def fmt(v) -> str:
        return str(v) if isinstance(v, int) else f"{v:.6g}"

    if lo is not None and hi is not None:
        return f"{kind} in {'(' if lo_open else '['}{fmt(lo)}, {fmt(hi)}{')' if hi_open else ']'}"
    if lo is not None:
        return f"{kind} {'>' if lo_open else '>='} {fmt(lo)}"
    if hi is not None:
        return f"{kind} {'<' if hi_open else '<='} {fmt(hi)}"
    return kind


def integer(lo: int | None = None, hi: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: a base-10 integer in ``[lo, hi]`` (either bound may be None)."""
    what = _bounds("an integer", lo, hi)

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {what} (got {text!r})") from None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be {what} (got {value})")
        return value

    parse.__name__ = "integer"
    parse.lo, parse.hi = lo, hi  # type: ignore[attr-defined]  # read by tests/test_bad_inputs.py
    return parse


def number(lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite real number within the bounds (open or closed)."""
    what = _bounds("a number", lo, hi, lo_open, hi_open)

    def parse(text: str) -> float:
        try:
            value = float(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"must be {what} (got {text!r})") from None
        if not math.isfinite(value) \
                or (lo is not None and (value <= lo if lo_open else value < lo)) \
                or (hi is not None and (value >= hi if hi_open else value > hi)):
            raise argparse.ArgumentTypeError(f"must be {what} (got {text})")
        return value

    parse.__name__ = "number"
    parse.lo, parse.hi = lo, hi  # type: ignore[attr-defined]
    return parse


def out_path(text: str) -> str:
    """An argparse ``type``: an output path, which must not be empty (``--out ""`` would write into
    the current folder, or nowhere)."""
    if not text.strip():
        raise argparse.ArgumentTypeError(f"must be a path, not empty (got {text!r})")
    return text


def existing_file(text: str) -> str:
    """An argparse ``type``: the path of an existing regular file (weights, intrinsics, video)."""
    from pathlib import Path

    path = Path(text)
    if not path.exists():
        raise argparse.ArgumentTypeError(f"no such file (got {text!r})")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"not a file (got {text!r})")
    return text


def frame_range(text: str) -> slice:
    """An argparse ``type`` for ``--frames``: ``N`` (the first N frames), ``A:B`` (frames A to
    B - 1, counted from 0 in the recording's order), ``A:`` (from A to the end) or ``:B``; a
    ``slice`` for ``Recording.select``."""
    what = "N (the first N frames) or A:B (frames A to B-1, from 0), A: or :B"
    parts = text.strip().split(":")
    try:
        if len(parts) == 1:
            n = int(parts[0], 10)
            if n < 1:
                raise ValueError
            return slice(0, n)
        if len(parts) == 2:
            a, b = (int(x, 10) if x.strip() else None for x in parts)
            if (a is not None and a < 0) or (b is not None and b < 1) or (a is not None and b is not None and b <= a):
                raise ValueError
            return slice(a, b)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"must be {what} (got {text!r})")
