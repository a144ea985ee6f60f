"""Defect injection: broken variants of valid seeds must be rejected with the expected code.

Each generator takes a seed and returns a broken variant, or ``None`` when the seed offers no
place for that defect (e.g. no call whose removal breaks a later one). Where a defect could
surface at several stages, the generator picks a variant that slips past the earlier ones, so
the check under test is the one that must catch it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import JsonValue

from pipeline.envs import ENVIRONMENTS, Environment, EnvState, ToolKind, resolve_tool, tool
from pipeline.models import Call, RejectionCode, Task
from pipeline.replay import replay, trace_calls
from pipeline.seeds import load_seeds
from pipeline.validate.chain import validate_task
from pipeline.validate.context import Reject, ValidationContext
from pipeline.validate.execution import check_declared_dependencies

SEEDS = load_seeds()
Defect = Callable[[Task], Task | None]


def _with_calls(task: Task, calls: list[Call], question: str | None = None) -> Task:
    update: dict[str, Any] = {"calls": calls}
    if question is not None:
        update["question"] = question
    return task.model_copy(update=update).with_content_id()


def _without_step(calls: list[Call], index: int) -> list[Call]:
    removed = calls[index].id
    kept = []
    for call in calls[:index] + calls[index + 1 :]:
        bindings = {k: v for k, v in call.bindings.items() if v.split(".", 1)[0] != removed}
        depends = [d for d in call.depends_on if d != removed]
        kept.append(call.model_copy(update={"depends_on": depends, "bindings": bindings}))
    return kept


def unknown_tool(task: Task) -> Task | None:
    calls = list(task.calls)
    calls[-1] = calls[-1].model_copy(update={"tool": f"{calls[-1].env}.teleport_everything"})
    return _with_calls(task, calls)


def wrong_argument_type(task: Task) -> Task | None:
    for index, call in enumerate(task.calls):
        for name, value in call.arguments.items():
            if isinstance(value, list):
                wrong: JsonValue = "not a list"
            elif isinstance(value, str | int | float):
                wrong = {"unexpected": "object"}  # no scalar type accepts an object
            else:
                continue
            calls = list(task.calls)
            calls[index] = call.model_copy(
                update={"arguments": {**call.arguments, name: wrong}, "bindings": {}}
            )
            return _with_calls(task, calls)
    return None


def missing_prerequisite(task: Task) -> Task | None:
    """Drop a call (a login, a cd, a create) that a later call needs to run at all."""
    for index in range(len(task.calls) - 1):
        calls = _without_step(list(task.calls), index)
        if len(calls) >= 2 and not replay(_with_calls(task, calls)).ok:
            return _with_calls(task, calls)
    return None


def swapped_order(task: Task) -> Task | None:
    for index in range(1, len(task.calls)):
        if task.calls[index - 1].id in task.calls[index].depends_on:
            calls = list(task.calls)
            calls[index - 1], calls[index] = calls[index], calls[index - 1]
            return _with_calls(task, calls)
    return None


def invented_value(task: Task) -> Task | None:
    """Replace a literal string with an invented one, choosing a call that still runs."""
    for index, call in enumerate(task.calls):
        for name, value in call.arguments.items():
            if not isinstance(value, str) or name in call.bindings:
                continue
            _, spec = resolve_tool(call.tool)
            if "enum" in spec.parameters["properties"].get(name, {}):
                continue
            calls = list(task.calls)
            arguments = {**call.arguments, name: "Zorblax Invented 4821"}
            calls[index] = call.model_copy(update={"arguments": arguments})
            variant = _with_calls(task, calls)
            if replay(variant).ok and _dependencies_still_real(variant):
                return variant
    return None


def _dependencies_still_real(task: Task) -> bool:
    """Whether an edit kept every declared dependency meaningful (so grounding is what fails)."""
    try:
        check_declared_dependencies(ValidationContext(task))
    except Reject:
        return False
    return True


def redundant_extra_call(task: Task) -> Task | None:
    """Repeat an earlier read where it returns the same answer again."""
    for index, call in enumerate(task.calls):
        _, spec = resolve_tool(call.tool)
        if spec.kind is not ToolKind.READ:
            continue
        for position in range(index + 2, len(task.calls) + 1):
            extra = call.model_copy(update={"id": "extra"})
            calls = list(task.calls[:position]) + [extra] + list(task.calls[position:])
            if position < len(calls) - 1 and calls[position + 1].arguments == extra.arguments:
                continue
            traces, _ = trace_calls(task.envs, task.initial_config, calls)
            if traces[position].result == traces[index].result and not traces[position].error:
                return _with_calls(task, calls)
    return None


def api_name_in_question(task: Task) -> Task | None:
    name = task.calls[-1].function
    hint = f" Use {name} for it." if "_" in name or name != name.lower() else f" Run `{name}`."
    return _with_calls(task, list(task.calls), question=task.question + hint)


def single_call(task: Task) -> Task | None:
    first = task.calls[0].model_copy(update={"depends_on": [], "bindings": {}})
    return _with_calls(task, [first])


def spurious_dependency(task: Task) -> Task | None:
    """Declare a dependency on an earlier call that does not influence this one."""
    traces, _ = trace_calls(task.envs, task.initial_config, task.calls)
    ancestors = ValidationContext(task).ancestors()
    for j in range(1, len(task.calls)):
        for i in range(j):
            if i in ancestors[j]:
                continue  # already ordered before j: declaring it again is redundant, not wrong
            without, _ = trace_calls(
                task.envs, task.initial_config, task.calls, skip=i,
                skipped_rng_words=traces[i].rng_words,
            )  # fmt: skip
            if traces[j].same_behaviour(without[j]) and traces[j].result != traces[i].result:
                calls = list(task.calls)
                depends = [c.id for c in calls[:j] if c.id in {*calls[j].depends_on, calls[i].id}]
                calls[j] = calls[j].model_copy(update={"depends_on": depends})
                return _with_calls(task, calls)
    return None


def identical_consecutive(task: Task) -> Task | None:
    calls = list(task.calls)
    calls.insert(1, calls[0].model_copy(update={"id": "again"}))
    return _with_calls(task, calls)


DEFECTS: dict[str, tuple[Defect, RejectionCode]] = {
    "unknown tool": (unknown_tool, RejectionCode.STATIC_UNKNOWN_TOOL),
    "wrong argument type": (wrong_argument_type, RejectionCode.STATIC_BAD_ARGUMENTS),
    "missing prerequisite": (missing_prerequisite, RejectionCode.EXECUTE_TOOL_ERROR),
    "swapped order": (swapped_order, RejectionCode.STATIC_BAD_DEPENDENCY),
    "invented value": (invented_value, RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT),
    "redundant extra call": (redundant_extra_call, RejectionCode.MINIMALITY_REDUNDANT_CALL),
    "api name in question": (api_name_in_question, RejectionCode.STATIC_API_NAME_IN_QUESTION),
    "single call": (single_call, RejectionCode.STATIC_TOO_FEW_CALLS),
    "spurious depends_on": (spurious_dependency, RejectionCode.DEPENDENCY_SPURIOUS),
    "identical consecutive": (identical_consecutive, RejectionCode.STATIC_IDENTICAL_CONSECUTIVE),
}


def test_every_seed_is_accepted() -> None:
    rejected = {t.id: validate_task(t).rejection for t in SEEDS if not validate_task(t).accepted}
    assert not rejected, {k: (v.code, v.message) for k, v in rejected.items() if v}
    accepted = validate_task(SEEDS[0]).task
    assert accepted is not None and accepted.expected is not None
    assert len(accepted.expected.state_digest) == 32


def test_injected_defects_are_rejected_with_their_code() -> None:
    report: dict[str, Counter[str]] = {}
    misses: list[str] = []
    for label, (make, expected) in DEFECTS.items():
        counts: Counter[str] = Counter()
        for seed in SEEDS:
            variant = make(seed)
            if variant is None:
                continue
            counts["generated"] += 1
            verdict = validate_task(variant)
            got = verdict.rejection.code if verdict.rejection else None
            if got is expected:
                counts["detected"] += 1
            else:
                misses.append(f"{label} on {seed.category}/{seed.id}: got {got}")
        report[label] = counts
    print("\ndetection rate per defect class:")
    for label, counts in report.items():
        rate = counts["detected"] / counts["generated"] if counts["generated"] else 0.0
        print(f"  {label:22s} {counts['detected']:3d}/{counts['generated']:3d}  {rate:.0%}")
    for label, counts in report.items():
        assert counts["generated"] >= 10, f"too few variants for {label}"
    assert not misses, "\n".join(misses)


class FlakyState(EnvState):
    pass


class Flaky(Environment[FlakyState]):
    """A deliberately broken environment whose answers depend on the wall clock."""

    name = "flaky"
    state_model = FlakyState

    @tool(ToolKind.READ, 0.1)
    def sample(self) -> dict[str, JsonValue]:
        """Read a sensor."""
        return {"reading": time.perf_counter_ns()}

    @tool(ToolKind.READ, 0.1)
    def report(self, reading: int) -> dict[str, JsonValue]:
        """Report a reading.

        Args:
            reading: The value to report.
        """
        return {"reported": reading}


def test_nondeterministic_tool_result_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(ENVIRONMENTS, "flaky", Flaky)
    first = Flaky.from_state({}).invoke("sample", {})
    assert isinstance(first, dict)
    task = Task(
        id="x", category="flaky", envs=["flaky"], question="Read the sensor and report it.",
        calls=[
            Call(id="s1", tool="flaky.sample"),
            Call(id="s2", tool="flaky.report", arguments={"reading": first["reading"]},
                 depends_on=["s1"], bindings={"reading": "s1.reading"}),
        ],
    )  # fmt: skip
    verdict = validate_task(task)
    assert verdict.rejection is not None
    assert verdict.rejection.code is RejectionCode.EXECUTE_NONDETERMINISTIC
    assert verdict.rejection.evidence.step_id == "s1"
