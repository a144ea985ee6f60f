"""Argument types of the command line: what a run id and each number may be, checked at the
door so that a bad value is one clear line (argparse's usage error, exit 2), never a deadlock, a
run that grows without bound or a folder written outside ``output/``."""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable

from pipeline.names import check_repo_id

#: a run id is a folder name under output/runs, never a path
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: more would be no run a machine like this finishes; a typo, not a wish
MAX_COUNT = 10_000_000


def run_id(text: str) -> str:
    if not _RUN_ID.fullmatch(text) or ".." in text:
        raise argparse.ArgumentTypeError(
            f"{text[:80]!r} is not a run id: use a name of letters, digits, '.', '_' and '-' "
            "(at most 64 characters, no path)"
        )
    return text


def repo_id(text: str) -> str:
    """A Hub repository id ``user/name`` (what ``push`` accepts, ``publish`` accepts too)."""
    try:
        return check_repo_id(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None


def _within(value: int, low: int, high: int, message: str) -> int:
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(message.format(value=value, low=low, high=high))
    return value


def positive_int(text: str) -> int:
    return _within(_integer(text), 1, MAX_COUNT, "{value} is out of range: give {low} to {high:,}")


def non_negative_int(text: str) -> int:
    return _within(_integer(text), 0, MAX_COUNT, "{value} is out of range: give {low} to {high:,}")


def port(text: str) -> int:
    return _within(_integer(text), 1, 65535, "{value} is not a TCP port ({low} to {high})")


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _checked(text: str, fits: Callable[[float], bool], message: str) -> float:
    value = _finite(text)
    if not fits(value):
        raise argparse.ArgumentTypeError(message.format(value=value))
    return value


def seconds(text: str) -> float:
    """A duration: finite and not negative (a turn that takes -1 s would score as perfect)."""
    return _checked(text, lambda value: value >= 0, "{value} s is negative")


def positive_rate(text: str) -> float:
    return _checked(text, lambda value: value > 0, "{value} is not a positive rate")


def positive_seconds(text: str) -> float:
    """A timeout: finite and above 0."""
    return _checked(text, lambda value: value > 0, "{value} s is not a positive duration")


def share(text: str) -> float:
    """A fraction from 0 to 1."""
    return _checked(text, lambda value: 0 <= value <= 1, "{value} is not a share between 0 and 1")
