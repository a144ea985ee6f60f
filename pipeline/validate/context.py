"""What the checks of one candidate share: its replays, computed once and only when needed."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from pipeline.conditions import control_edges, order_edges
from pipeline.dependencies import ValueFlows, hidden_state_effects, session_end_edges
from pipeline.models import Evidence, Rejection, RejectionCode, Task
from pipeline.replay import StepTrace, states_before, trace_calls


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
    task: Task
    _without: dict[int, tuple[list[StepTrace], dict[str, dict[str, Any]]]] = field(
        default_factory=dict
    )
    _hidden: dict[bool, list[set[int]]] = field(default_factory=dict)

    @cached_property
    def baseline(self) -> tuple[list[StepTrace], dict[str, dict[str, Any]]]:
        return trace_calls(self.task.envs, self.task.initial_config, self.task.calls)

    @cached_property
    def states(self) -> list[dict[str, dict[str, Any]]]:
        """The whole state before each call and after the last (for windowed replays)."""
        return states_before(self.task.envs, self.task.initial_config, self.task.calls)

    @property
    def traces(self) -> list[StepTrace]:
        return self.baseline[0]

    @property
    def final_state(self) -> dict[str, dict[str, Any]]:
        return self.baseline[1]

    @property
    def outputs(self) -> list[Any]:
        return [step.result for step in self.traces]

    def without(self, index: int) -> tuple[list[StepTrace], dict[str, dict[str, Any]]]:
        """Replay with call ``index`` left out (its random draws still consumed), bound
        arguments taking what their producers return in that run."""
        if index not in self._without and self.traces[index].pure:
            # a call that changed nothing and drew nothing: every other call behaves the same
            skipped = StepTrace(None, None, (), 0, skipped=True)
            traces = [*self.traces[:index], skipped, *self.traces[index + 1 :]]
            self._without[index] = (traces, self.final_state)
        if index not in self._without:
            self._without[index] = trace_calls(
                self.task.envs,
                self.task.initial_config,
                self.task.calls,
                skip=index,
                skipped_rng_words=self.traces[index].rng_words,
                follow_bindings=True,
            )
        return self._without[index]

    @cached_property
    def control(self) -> frozenset[tuple[int, int]]:
        """``(read, step)`` edges the question's conditions make (:mod:`pipeline.conditions`)."""
        return frozenset(control_edges(self.task.question, self.task.calls))

    @cached_property
    def session_ends(self) -> frozenset[tuple[int, int]]:
        """``(i, logout)`` edges: a log-out comes after the earlier calls of its environment."""
        return frozenset(session_end_edges(self.task.calls))

    @cached_property
    def worded_order(self) -> frozenset[tuple[int, int]]:
        """``(i, j)`` edges the question's order words make ("lock the doors before starting
        the engine"; :func:`pipeline.conditions.order_edges`)."""
        return frozenset(order_edges(self.task.question, self.task.calls))

    @cached_property
    def flows(self) -> ValueFlows:
        return ValueFlows(self.task.calls, self.outputs, self.task.question)

    def hidden_effects(self, every_pair: bool = False) -> list[set[int]]:
        """State dependencies that only the perturbed initial state shows: for the pairs that
        ``depends_on`` leaves unordered, or for ``every_pair``."""
        if every_pair not in self._hidden:
            known = [set() for _ in self.task.calls] if every_pair else self.ancestors()
            self._hidden[every_pair] = hidden_state_effects(
                self.task.envs, self.task.initial_config, self.task.calls, self.traces, known
            )
        return self._hidden[every_pair]

    def ancestors(self) -> list[set[int]]:
        """Declared ancestors of every call (indices), following ``depends_on`` transitively."""
        return self._ancestors

    @cached_property
    def _ancestors(self) -> list[set[int]]:
        position = {call.id: index for index, call in enumerate(self.task.calls)}
        result: list[set[int]] = []
        for call in self.task.calls:
            found: set[int] = set()
            for parent in call.depends_on:
                index = position[parent]
                found.add(index)
                found |= result[index]
            result.append(found)
        return result
