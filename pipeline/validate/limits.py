"""Documented bounds on one candidate (docs/validation.md, "Limits").

Real tasks stay far inside them (the seeds and every BFCL turn: at most a few dozen calls and
a few thousand characters); they exist so that one hostile or runaway record costs bounded time
and memory, and is rejected with its own code instead of stalling a shard.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pipeline.models import Evidence, RejectionCode, Task
from pipeline.validate.context import Reject, ValidationContext


@dataclass(frozen=True)
class Limits:
    #: calls in one task; the dependency checks replay pairs of calls, so cost grows ~ n^3
    max_calls: int = 100
    #: characters of the question (the question checks scan it once per tool name and value)
    max_question_chars: int = 20_000
    #: characters of all call results together, as JSON (every replay holds them in memory)
    max_output_chars: int = 2_000_000
    #: seconds of checking for one candidate, replays included
    seconds_per_candidate: float = 60.0


DEFAULT_LIMITS = Limits()


def check_size(task: Task, limits: Limits) -> None:
    """Calls and question length: judged before anything runs."""
    if len(task.calls) > limits.max_calls:
        raise Reject(
            RejectionCode.LIMIT_CALLS,
            f"the task has {len(task.calls)} calls; at most {limits.max_calls} are checked",
            Evidence(output={"calls": len(task.calls), "limit": limits.max_calls}),
        )
    if len(task.question) > limits.max_question_chars:
        raise Reject(
            RejectionCode.LIMIT_QUESTION,
            f"the question has {len(task.question)} characters; at most "
            f"{limits.max_question_chars} are checked",
            Evidence(output={"characters": len(task.question), "limit": limits.max_question_chars}),
        )


def check_output_size(ctx: ValidationContext, limits: Limits) -> None:
    """The results of one replay, measured once it has run."""
    total = 0
    for call, step in zip(ctx.task.calls, ctx.traces, strict=True):
        total += len(json.dumps(step.result, ensure_ascii=False, default=str))
        if total > limits.max_output_chars:
            raise Reject(
                RejectionCode.LIMIT_OUTPUT,
                f"the calls' results reach {total} characters by step {call.id}; at most "
                f"{limits.max_output_chars} are checked",
                Evidence(step_id=call.id, output={"limit": limits.max_output_chars}),
            )
