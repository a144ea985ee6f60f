"""The validation chain: cheap checks first, each failure a ``Rejection`` with its evidence.

Order (DESIGN §5): parse -> static -> execute -> dependency -> question -> grounding ->
minimality. The
first failure is the verdict; when it is a static one, the remaining static checks still run
(they are cheap) and what they find is added to the evidence as ``also_failed``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pipeline.budget import OverBudget, check_time, time_budget
from pipeline.models import Expected, Rejection, RejectionCode, Task
from pipeline.replay import state_digest
from pipeline.validate.context import Reject, ValidationContext
from pipeline.validate.dimensions import check_dimensions
from pipeline.validate.execution import (
    check_binding_types,
    check_conditional_dependencies,
    check_declared_dependencies,
    check_execution,
    check_minimality,
    check_undeclared_dependencies,
    check_unordered_calls,
    requested_outputs,
)
from pipeline.validate.grounding import check_grounding
from pipeline.validate.limits import DEFAULT_LIMITS, Limits, check_output_size, check_size
from pipeline.validate.question import check_question, check_unused_value
from pipeline.validate.static import STATIC_CHECKS, parse_candidate, raw_sample_id

Check = Callable[[ValidationContext], None]

EXECUTION_CHECKS: tuple[Check, ...] = (
    check_execution,
    check_binding_types,
    check_dimensions,
    check_declared_dependencies,
    check_undeclared_dependencies,
    check_unordered_calls,
    check_conditional_dependencies,
    check_question,
    check_grounding,
    check_unused_value,
    check_minimality,
)


@dataclass(frozen=True)
class Verdict:
    task: Task | None
    rejection: Rejection | None

    @property
    def accepted(self) -> bool:
        return self.rejection is None


def validate_task(task: Task, raw: str | None = None, limits: Limits = DEFAULT_LIMITS) -> Verdict:
    try:
        check_size(task, limits)
        with time_budget(limits.seconds_per_candidate):
            return _checked(task, raw, limits)
    except Reject as verdict:
        return Verdict(None, verdict.to_rejection(task.id, raw))
    except OverBudget as spent:
        message = f"checking the candidate {spent}; the limit per candidate is {spent.seconds:g} s"
        rejection = Reject(RejectionCode.LIMIT_TIME, message).to_rejection(task.id, raw)
        return Verdict(None, rejection)


def _checked(task: Task, raw: str | None, limits: Limits) -> Verdict:
    ctx = ValidationContext(task)
    for position, check in enumerate(STATIC_CHECKS):
        try:
            check(ctx)
        except Reject as verdict:
            for remaining in STATIC_CHECKS[position + 1 :]:
                try:
                    remaining(ctx)
                except Reject as extra:
                    verdict.evidence.also_failed.setdefault(extra.code.value, extra.message)
            return Verdict(None, verdict.to_rejection(task.id, raw))
    for check in EXECUTION_CHECKS:
        if check is check_execution:  # before the second replay doubles what it holds
            check_output_size(ctx, limits)
        check(ctx)
        check_time()  # the replay loops check too; this catches a slow check without replays
    expected = Expected(state_digest=state_digest(ctx.final_state), outputs=requested_outputs(ctx))
    return Verdict(task.model_copy(update={"expected": expected}), None)


def validate_line(raw: str | bytes) -> Verdict:
    """Validate one JSON line as it comes from a file or a model; never raises on bad input."""
    if isinstance(raw, bytes):
        data = raw
        try:
            raw = data.decode("utf-8")
        except UnicodeDecodeError as error:
            text = data.decode("utf-8", errors="replace")
            bad = data[error.start : error.start + 4].hex(" ")
            verdict = Reject(
                RejectionCode.PARSE_MALFORMED,
                f"not valid UTF-8: bytes {bad} at offset {error.start} (nothing was replaced)",
            )
            return Verdict(None, verdict.to_rejection(raw_sample_id(text), text[:100_000]))
    try:
        task = parse_candidate(raw)
    except Reject as verdict:
        return Verdict(None, verdict.to_rejection(raw_sample_id(raw), raw[:100_000]))
    return validate_task(task)
