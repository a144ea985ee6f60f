"""The ``extend`` operator: append a call that consumes an earlier call's output.

Candidates are found by execution, not by rules per tool: for each tool of the task's
environments, arguments are filled from values the earlier calls returned (matching each
parameter's JSON type), optional parameters are left out, and the call is run on the state the
task ends in. A candidate is kept when it runs without ``ToolError`` and takes at least one
argument from an earlier output (so the new step truly depends on the chain). The question
gains one sentence for the new step, rendered by the verbaliser with the consumed values
written as references to the earlier step, never as literals.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from pipeline.dependencies import bindable, infer_dependencies
from pipeline.envs import ENVIRONMENTS, ToolError, ToolKind, ToolSpec
from pipeline.evolve.verbalise import Verbaliser
from pipeline.models import Call, Lineage, Task
from pipeline.replay import build_envs, replay

MAX_TRIES = 40


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        yield value
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def _fits(schema: dict[str, Any], value: Any) -> bool:
    kind = schema.get("type")
    if "anyOf" in schema:
        return any(_fits(branch, value) for branch in schema["anyOf"])
    if "enum" in schema:
        return value in schema["enum"]
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "array":
        items = schema.get("items", {})
        return isinstance(value, list) and bool(value) and all(_fits(items, v) for v in value)
    return False


def _argument_options(spec: ToolSpec, produced: list[Any]) -> list[list[tuple[str, Any]]] | None:
    """For each required parameter, the (name, value) choices; None if one has no choice."""
    options: list[list[tuple[str, Any]]] = []
    for name in spec.parameters.get("required", []):
        schema = spec.parameters["properties"][name]
        choices = [value for value in produced if _fits(schema, value)]
        choices += [value for value in schema.get("enum", []) if value not in choices]
        if not choices:
            return None
        options.append([(name, value) for value in choices[:6]])
    return options


def extend(task: Task, rng: random.Random, verbaliser: Verbaliser) -> Task | None:
    """A copy of ``task`` with one more step that uses an earlier output, or ``None``."""
    parent = replay(task)
    if not parent.ok:
        return None
    produced: list[Any] = []
    for outcome in parent.outcomes:
        for leaf in _leaves(outcome.result):
            if (bindable(leaf) or isinstance(leaf, list)) and leaf not in produced:
                produced.append(leaf)
    tools = [
        (env_name, spec)
        for env_name in task.envs
        for spec in ENVIRONMENTS[env_name].tool_specs().values()
    ]
    rng.shuffle(tools)
    tries = 0
    for env_name, spec in tools:
        options = _argument_options(spec, produced)
        if not options:
            continue
        combos = list(itertools.islice(itertools.product(*options), 12))
        rng.shuffle(combos)
        for combo in combos[:3]:
            tries += 1
            if tries > MAX_TRIES:
                return None
            candidate = _try(
                task, parent.final_state, produced, env_name, spec, dict(combo), verbaliser
            )
            if candidate is not None:
                return candidate
    return None


def _nothing_new(result: Any, arguments: dict[str, Any], earlier: list[Any]) -> bool:
    """Whether every value a read returns was already known (an input or an earlier output)."""
    known = {repr(v) for v in _leaves(arguments)} | {repr(v) for v in earlier}
    known |= {repr(float(v)) for v in [*_leaves(arguments), *earlier] if _is_number(v)}
    values = [v for v in _leaves(result) if not isinstance(v, list)]
    return all(repr(v) in known or (_is_number(v) and repr(float(v)) in known) for v in values)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _try(
    task: Task,
    final_state: dict[str, dict[str, Any]],
    final_outputs: list[Any],
    env_name: str,
    spec: ToolSpec,
    arguments: dict[str, Any],
    verbaliser: Verbaliser,
) -> Task | None:
    last = task.calls[-1]
    if last.tool == f"{env_name}.{spec.name}" and last.arguments == arguments:
        return None  # the same call twice in a row is never a useful step
    envs = build_envs(task.envs, final_state)
    try:
        result = envs[env_name].invoke(spec.name, arguments)
    except ToolError:
        return None
    if spec.kind is ToolKind.READ and _nothing_new(result, arguments, final_outputs):
        return None  # e.g. converting USD to USD: a step that tells the user nothing
    if spec.kind is ToolKind.WRITE and envs[env_name].snapshot() == final_state[env_name]:
        return None  # a write that changes nothing would be redundant
    new = Call(id=f"s{len(task.calls) + 1}", tool=f"{env_name}.{spec.name}", arguments=arguments)
    inferred = infer_dependencies(task.envs, task.initial_config, [*task.calls, new], task.question)
    added = inferred[-1]
    if not added.bindings:
        return None  # it must consume an earlier output
    calls = [*task.calls, added]
    refs = verbaliser.refs(calls, len(calls) - 1)
    sentence = verbaliser.phrase(added, refs)
    question = f"{task.question.rstrip()} After that, {sentence}."
    extended = task.model_copy(
        update={
            "question": question,
            "calls": calls,
            "expected": None,
            "lineage": Lineage(
                parents=[task.id],
                operator="extend",
                round=task.lineage.round + 1,
                source=task.lineage.source,
            ),
        }
    )
    return extended.with_content_id()
