"""Argument types of the command line: what a run id and each number may be, checked at the
door so that a bad value is one clear line (argparse's usage error, exit 2), never a deadlock, a
run that grows without bound or a folder written outside ``output/``."""

from __future__ import annotations

import argparse
import math
import re

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


def positive_int(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give 1 to {MAX_COUNT:,}")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= MAX_COUNT:
        raise argparse.ArgumentTypeError(f"{value} is out of range: give 0 to {MAX_COUNT:,}")
    return value


def port(text: str) -> int:
    value = _integer(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a TCP port (1 to 65535)")
    return value


def _finite(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def seconds(text: str) -> float:
    """A duration: finite and not negative (a turn that takes -1 s would score as perfect)."""
    value = _finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} s is negative")
    return value


def positive_rate(text: str) -> float:
    value = _finite(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive rate")
    return value


def share(text: str) -> float:
    """A fraction from 0 to 1."""
    value = _finite(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{value} is not a share between 0 and 1")
    return value
