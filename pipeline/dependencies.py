"""Infer a call sequence's dependency DAG by executing it, not by per-tool rules.

Two kinds of dependency are found:

* **Data** — an argument value (or an element of a list argument) equals a value in an
  earlier call's output and does not appear in the question: the later call needs that
  output. It is declared in ``depends_on`` and recorded in ``bindings`` as
  ``argument -> step_id.path`` (``argument.index`` for a list element; the first producer in
  order and the first path inside its output).
  Trivial values (booleans, ``None``, 0, ±1, strings under 3 characters) never bind: they
  coincide too easily.
* **State** — within one environment, call *j* depends on an earlier call *i* when replaying
  the sequence without *i* changes *j*'s result, its error, or the state change *j* makes. A
  ``cd`` before an action in that folder, a login before an authenticated call, and a
  ``touch`` before ``echo`` into that file are all found this way. The removed call's random
  draws are still consumed, so two independent calls that both draw ids (two messages sent)
  do not look dependent merely because the second id would shift.

The state relation is reduced transitively (an edge implied by a chain of other edges is
dropped): ordering is preserved, and schedulers keep the most parallelism.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pipeline.models import Call
from pipeline.replay import StepTrace, trace_calls

_MIN_STRING_BIND = 3


def bindable(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value not in (0, 1, -1)
    if isinstance(value, str):
        return len(value.strip()) >= _MIN_STRING_BIND
    return False


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar inside an output with its dotted path (list indices as numbers)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}.{index}" if path else str(index))
    else:
        yield path, value


def _value_key(value: Any) -> tuple[str, Any]:
    # 3 and 3.0 are the same value to a user; strings keep their type apart from numbers.
    if isinstance(value, int | float) and not isinstance(value, bool):
        return ("number", float(value))
    return (type(value).__name__, value)


def _mentioned(value: Any, question: str) -> bool:
    if isinstance(value, str):
        return value in question
    if isinstance(value, int | float):
        text = repr(value)
        return text in question or (float(value).is_integer() and str(int(value)) in question)
    return False


def data_bindings(
    calls: Sequence[Call], outputs: Sequence[Any], question: str
) -> list[dict[str, str]]:
    """For each call, ``argument -> step_id.path`` for values copied from an earlier output."""
    produced: dict[tuple[str, Any], str] = {}
    result: list[dict[str, str]] = []
    for call, output in zip(calls, outputs):
        bindings: dict[str, str] = {}
        for name, value in call.arguments.items():
            slots = (
                [(f"{name}.{index}", item) for index, item in enumerate(value)]
                if isinstance(value, list)
                else [(name, value)]
            )
            for slot, item in slots:
                if not bindable(item) or _mentioned(item, question):
                    continue
                source = produced.get(_value_key(item))
                if source is not None:
                    bindings[slot] = source
        result.append(bindings)
        for path, leaf in _leaves(output):
            if bindable(leaf):
                produced.setdefault(_value_key(leaf), f"{call.id}.{path}" if path else call.id)
    return result


def state_effects(
    env_names: Sequence[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    baseline: Sequence[StepTrace],
) -> list[set[int]]:
    """``affects[j]`` = indices of earlier same-environment calls whose removal changes call j."""
    affects: list[set[int]] = [set() for _ in calls]
    for i, producer in enumerate(calls):
        later = [j for j in range(i + 1, len(calls)) if calls[j].env == producer.env]
        if not later:
            continue
        without, _ = trace_calls(
            env_names, initial_config, calls, skip=i, skipped_rng_words=baseline[i].rng_words
        )
        for j in later:
            if not baseline[j].same_behaviour(without[j]):
                affects[j].add(i)
    return affects


def infer_dependencies(
    env_names: Sequence[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    question: str,
) -> list[Call]:
    """Return ``calls`` with ``depends_on`` and ``bindings`` inferred from execution."""
    baseline, _ = trace_calls(env_names, initial_config, calls)
    affects = state_effects(env_names, initial_config, calls, baseline)
    state_deps = _transitive_reduction(affects)
    bindings = data_bindings(calls, [step.result for step in baseline], question)
    inferred: list[Call] = []
    for j, call in enumerate(calls):
        sources = {calls[i].id for i in state_deps[j]}
        sources |= {source.split(".", 1)[0] for source in bindings[j].values()}
        ordered = [c.id for c in calls[:j] if c.id in sources]
        inferred.append(call.model_copy(update={"depends_on": ordered, "bindings": bindings[j]}))
    return inferred


def _transitive_reduction(direct: list[set[int]]) -> list[set[int]]:
    """Drop i -> j when j is reachable from i through other edges (indices are topological)."""
    reach: list[set[int]] = []  # reach[j] = every ancestor of j
    reduced: list[set[int]] = []
    for j, parents in enumerate(direct):
        implied: set[int] = set()
        for parent in parents:
            implied |= reach[parent]
        reduced.append({p for p in parents if p not in implied})
        reach.append(set(parents) | implied)
        assert j == len(reach) - 1
    return reduced
