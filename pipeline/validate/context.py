"""What the checks of one candidate share: its replays, computed once and only when needed."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pipeline.dependencies import Replays, ancestor_sets, declared_parents
from pipeline.models import Evidence, Rejection, RejectionCode, Task
from pipeline.replay import StepTrace


class Reject(Exception):  # noqa: N818 - it is a verdict, not an error
    """Raised by a check to reject the candidate; carries the code, message and evidence."""

    def __init__(self, code: RejectionCode, message: str, evidence: Evidence | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.evidence = evidence or Evidence()

    def to_rejection(self, sample_id: str, raw: str | None = None) -> Rejection:
        return Rejection(
            sample_id=sample_id,
            stage=self.code.stage,
            code=self.code,
            message=self.message,
            evidence=self.evidence,
            raw=raw,
        )


@dataclass
class ValidationContext:
    """One candidate and its replays. The dependency relations are read through ``run``
    (:class:`pipeline.dependencies.Replays`), the same methods inference uses, on the calls as
    declared."""

    task: Task

    @cached_property
    def run(self) -> Replays:
        task = self.task
        return Replays(task.envs, task.initial_config, task.calls, task.question)

    @property
    def baseline(self) -> tuple[list[StepTrace], dict[str, dict[str, Any]]]:
        return self.run.baseline

    @property
    def traces(self) -> list[StepTrace]:
        return self.run.traces

    @property
    def final_state(self) -> dict[str, dict[str, Any]]:
        return self.run.final

    @property
    def outputs(self) -> list[Any]:
        return [step.result for step in self.traces]

    def without(self, index: int) -> tuple[list[StepTrace], dict[str, dict[str, Any]]]:
        """Replay with call ``index`` left out (:meth:`pipeline.dependencies.Replays.without`)."""
        return self.run.without(index)

    def ancestors(self) -> list[set[int]]:
        """Declared ancestors of every call (indices), following ``depends_on`` transitively."""
        return self._ancestors

    @cached_property
    def _ancestors(self) -> list[set[int]]:
        return ancestor_sets(declared_parents(self.task.calls))
