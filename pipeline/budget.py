"""A time budget for one piece of work, checked cooperatively by the replay loops.

Validating one candidate replays its calls many times (dependency, reordering and perturbation
checks); a hostile candidate must not hold a worker for minutes. The budget is a context
variable, so each thread (a Prefect worker) has its own.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_deadline: ContextVar[float | None] = ContextVar("asynctool_deadline", default=None)


class OverBudget(BaseException):  # noqa: N818 - not an error of the work, its time ran out
    """The work ran past its time budget.

    A ``BaseException`` so that no ``except Exception`` on the way (a tool's own guard)
    swallows it: only the owner of the budget handles it.
    """

    def __init__(self, seconds: float) -> None:
        super().__init__(f"took more than {seconds:g} s")
        self.seconds = seconds


_budget: ContextVar[float] = ContextVar("asynctool_budget", default=0.0)


@contextmanager
def time_budget(seconds: float | None) -> Iterator[None]:
    """Run the block under a budget of ``seconds`` (``None``: unbounded); nested budgets keep
    the earlier deadline."""
    if seconds is None:
        yield
        return
    deadline = time.monotonic() + seconds
    outer = _deadline.get()
    token = _deadline.set(deadline if outer is None else min(outer, deadline))
    budget_token = _budget.set(seconds)
    try:
        yield
    finally:
        _deadline.reset(token)
        _budget.reset(budget_token)


def check_time() -> None:
    """Raise :class:`OverBudget` when the current budget is spent."""
    deadline = _deadline.get()
    if deadline is not None and time.monotonic() > deadline:
        raise OverBudget(_budget.get())
