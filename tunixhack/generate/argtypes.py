"""Argument types shared by the command lines (generate.py's common flags, recipes' own flags, tools).

Each parses one flag's text and raises argparse.ArgumentTypeError with what is allowed, so argparse prints
one line naming the flag and exits 2.
"""

from __future__ import annotations

import argparse

AUTO = "auto"


def positive(kind=int):
    """A number > 0: `type=positive()` for counts, `type=positive(float)` for seconds."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return value
    return parse


def concurrency(text: str) -> int | None:
    """`auto` (None: start from what the server reports, then adapt) or a fixed number of requests > 0."""
    if text.strip().lower() == AUTO:
        return None
    try:
        return positive()(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"must be auto or a whole number > 0, got {text!r}") from None


def shard(text: str) -> tuple[int, int]:
    """K/N with 1 <= K <= N: this machine's share of the rows."""
    k, sep, n = text.partition("/")
    try:
        k_, n_ = int(k), int(n)
    except ValueError:
        k_ = n_ = 0
    if not sep or not 1 <= k_ <= n_:
        raise argparse.ArgumentTypeError(f"must be K/N with 1 <= K <= N (e.g. 1/2), got {text!r}")
    return k_, n_


def show_defaults(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """--help names each flag's default (the sampling, --lr, --batch, --max-len...), unless its help already
    says it or there is none (None, off, empty)."""
    for action in parser._actions:
        # `is`, not `in`: 0 == False, and a default of 0 (min-p) is worth showing
        default = action.default
        shown = not (default is None or default is False or default in ("", [], argparse.SUPPRESS))
        said = action.help == argparse.SUPPRESS or "default" in (action.help or "")
        if action.option_strings and shown and not said:
            action.help = f"{action.help or ''} (default: %(default)s)".lstrip()
    return parser
