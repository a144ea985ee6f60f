"""Infer a call sequence's dependency DAG by executing it, not by per-tool rules.

Two kinds of dependency are found:

* **Data** — an argument value (or an element of a list argument) equals a value in an
  earlier call's output and does not appear in the question: the later call needs that
  output. It is declared in ``depends_on`` and recorded in ``bindings`` as
  ``argument -> step_id.path`` (``argument.index`` for a list element; the first producer in
  order and the first path inside its output).
  Trivial values (booleans, ``None``, 0, ±1, strings under 3 characters) never bind: they
  coincide too easily. A number passed on *rounded* (10.04 from 10.0357, when the question asks
  for two decimals) is a data dependency too, declared in ``depends_on`` without a binding.
  Values are matched in the question as whole numbers: 5 is not mentioned by "15 L".
* **State** — within one environment, call *j* depends on an earlier call *i* when replaying
  the sequence without *i* changes *j*'s result, its error, or the state change *j* makes. A
  ``cd`` before an action in that folder, a login before an authenticated call, and a
  ``touch`` before ``echo`` into that file are all found this way. The removed call's random
  draws are still consumed, so two independent calls that both draw ids (two messages sent)
  do not look dependent merely because the second id would shift. The same test also runs on a
  *perturbed* copy of the initial state (each environment may add unrelated content, such as
  one more file in every folder), so a coincidence of the real state cannot hide a dependency.

* **Control** — a step the question makes conditional ("if any tyre is below 40 PSI, find a
  shop") depends on the read that produced the tested value (:mod:`pipeline.conditions`).

* **Order** — two calls of one environment that neither relation orders are tried the other way
  round; if that changes any result or the final state (a write after a read of the same
  thing, two calls drawing random ids), the later call depends on the earlier. So any order
  that respects the dependencies reproduces the ground truth's results and final state.

The relation is reduced transitively (an edge implied by a chain of other edges is dropped):
ordering is preserved, and schedulers keep the most parallelism.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from pipeline.budget import check_time
from pipeline.conditions import control_edges, order_edges
from pipeline.drawn_ids import rename, renaming
from pipeline.envs import ToolError, ToolSpec, get_env_class, resolve_tool
from pipeline.jsontree import leaves
from pipeline.models import Call
from pipeline.replay import (
    StepTrace,
    build_envs,
    run_call,
    same_outcome_state,
    states_before,
    trace_calls,
)
from pipeline.semantics import Sem, feeds

_MIN_STRING_BIND = 3


def bindable(value: Any) -> bool:
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, int | float):
        return value not in (0, 1, -1)
    if isinstance(value, str):
        return len(value.strip()) >= _MIN_STRING_BIND
    return False


def _value_key(value: Any) -> tuple[str, Any]:
    # 3 and 3.0 are the same value to a user; strings keep their type apart from numbers.
    if isinstance(value, int | float) and not isinstance(value, bool):
        # an int too large for a float stays an int (it can equal no float anyway)
        return ("number", float(value) if abs(value) < 2**1023 else value)
    return (type(value).__name__, value)


_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?![\d])")


@lru_cache(maxsize=4096)
def _question_numbers(question: str) -> frozenset[str]:
    """The numbers a question states, as written and as Python prints them: "15 L" states 15,
    not 5; "2.50" states 2.5."""
    found: set[str] = set()
    for token in _NUMBER.findall(question):
        found.add(token)
        value = float(token)
        found.add(repr(value))
        if value.is_integer() and value < 2**63:
            found.add(str(int(value)))
    return frozenset(found)


def _mentioned(value: Any, question: str) -> bool:
    if isinstance(value, str):
        return value in question
    if isinstance(value, int | float):
        numbers = _question_numbers(question)
        whole = isinstance(value, int) or value.is_integer()  # no float(): ints may be huge
        return repr(value) in numbers or (whole and str(int(value)) in numbers)
    return False


def _decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".", 1)[1]) if "." in text and "e" not in text else 0


def rounds_to(produced: Any, value: Any) -> bool:
    """Whether ``value`` is ``produced`` rounded to the decimals ``value`` shows ("round the
    gallons to 2 decimals": 10.04 from 10.0357). Only non-whole values count: a whole number
    matches too many readings by chance."""
    numbers = (int, float)
    if not (isinstance(produced, float) and isinstance(value, numbers)):
        return False
    if isinstance(value, bool) or not isinstance(value, float) or value.is_integer():
        return False
    places = _decimals(value)
    if not 1 <= places <= 4 or _decimals(produced) <= places:
        return False
    return round(produced, places) == value


def _spec(call: Call) -> ToolSpec | None:
    try:
        return resolve_tool(call.tool)[1]
    except ToolError:
        return None


def _passed_values(calls: Sequence[Call]) -> set[Any]:
    """Every bindable value the calls pass (list items one by one)."""
    return {
        item
        for call in calls
        for value in call.arguments.values()
        for item in (value if isinstance(value, list) else [value])
        if bindable(item)
    }


def data_bindings(
    calls: Sequence[Call], outputs: Sequence[Any], question: str
) -> list[dict[str, str]]:
    """For each call, ``argument -> step_id.path`` for values copied from an earlier output.

    A value binds only to an output field whose semantic type may fill the parameter
    (:func:`pipeline.semantics.feeds`): a tyre pressure of 30 that equals a count of 30 is a
    coincidence, not a data flow. Among fitting fields the first in call order wins. A list
    argument equal to a whole returned list (two or more items, not all stated by the question)
    binds as one (``values -> s1.items``), not item by item."""
    produced: dict[tuple[str, Any], list[tuple[str, Sem | None]]] = {}
    whole_lists: dict[str, list[tuple[str, Sem | None]]] = {}
    result: list[dict[str, str]] = []
    # only output leaves equal to some argument can bind: a set lookup (3 == 3.0 hash alike)
    # skips keying the thousands of leaves of a long listing
    passed = _passed_values(calls)
    # a returned list binds whole only to a list argument of its length
    list_lengths = {
        len(value)
        for call in calls
        for value in call.arguments.values()
        if isinstance(value, list) and len(value) >= 2
    }
    for call, output in zip(calls, outputs):
        spec = _spec(call)
        bindings: dict[str, str] = {}
        for name, value in call.arguments.items():
            wanted = spec.param_types.get(name) if spec is not None else None
            if isinstance(value, list) and _whole_list(value, question):
                source = next(
                    (
                        src
                        for src, sem in whole_lists.get(_list_key(value), ())
                        if feeds(sem, wanted)
                    ),
                    None,
                )
                if source is not None:
                    bindings[name] = source
                    continue
            slots = (
                [(f"{name}.{index}", item) for index, item in enumerate(value)]
                if isinstance(value, list)
                else [(name, value)]
            )
            for slot, item in slots:
                if not bindable(item) or _mentioned(item, question):
                    continue
                for source, sem in produced.get(_value_key(item), ()):
                    if feeds(sem, wanted):
                        bindings[slot] = source
                        break
        result.append(bindings)
        for path, leaf in leaves(output):
            if leaf in passed and bindable(leaf):
                sem = spec.result_type(path) if spec is not None else None
                produced.setdefault(_value_key(leaf), []).append(
                    (f"{call.id}.{path}" if path else call.id, sem)
                )
        for path, items in _list_nodes(output) if list_lengths else ():
            if len(items) in list_lengths:
                sem = spec.result_type(f"{path}.0" if path else "0") if spec is not None else None
                whole_lists.setdefault(_list_key(items), []).append(
                    (f"{call.id}.{path}" if path else call.id, sem)
                )
    return result


def _list_nodes(value: Any, path: str = "") -> Iterator[tuple[str, list[Any]]]:
    """Every list inside an output with its dotted path."""
    if isinstance(value, list):
        yield path, value
        items: Iterable[tuple[str, Any]] = ((str(i), item) for i, item in enumerate(value))
    elif isinstance(value, dict):
        items = ((str(key), item) for key, item in value.items())
    else:
        return
    for key, item in items:
        yield from _list_nodes(item, f"{path}.{key}" if path else key)


def _list_key(items: list[Any]) -> str:
    return json.dumps([_value_key(item) for item in items], sort_keys=True, default=str)


def _whole_list(value: list[Any], question: str) -> bool:
    return (
        len(value) >= 2
        and all(bindable(item) for item in value)
        and not all(_mentioned(item, question) for item in value)
    )


class _Leaves:
    """One output's bindable leaves, indexed for the two questions asked of them: which leaves
    equal a value, and which non-whole numbers might round to it."""

    def __init__(self, typed: list[tuple[str, Any, Sem | None]], passed: set[Any]) -> None:
        #: only leaves equal to a value some call passes are ever looked up
        self.by_key: dict[tuple[str, Any], list[tuple[str, Sem | None]]] = {}
        #: only a float with decimals can be rounded to another value (see ``rounds_to``)
        self.fractional: list[tuple[str, float, Sem | None]] = []
        for path, leaf, sem in typed:
            if leaf in passed:
                self.by_key.setdefault(_value_key(leaf), []).append((path, sem))
            if isinstance(leaf, float) and not leaf.is_integer():
                self.fractional.append((path, leaf, sem))
        self._rounded: dict[int, dict[float, list[tuple[str, Sem | None]]]] = {}

    def rounding_to(self, item: Any) -> list[tuple[str, Sem | None]]:
        """(path, type) of every leaf that ``item`` is a rounding of (:func:`rounds_to`),
        looked up in an index built once per number of decimals."""
        if not isinstance(item, float) or item.is_integer():
            return []
        places = _decimals(item)
        if not 1 <= places <= 4:
            return []
        index = self._rounded.get(places)
        if index is None:
            index = {}
            for path, leaf, sem in self.fractional:
                if _decimals(leaf) > places:
                    index.setdefault(round(leaf, places), []).append((path, sem))
            self._rounded[places] = index
        return index.get(item, [])

    def sources(self, item: Any) -> Iterator[tuple[str, Sem | None]]:
        """(path, type) of every leaf equal to ``item`` or rounding to it, equal ones first."""
        yield from self.by_key.get(_value_key(item), ())
        yield from self.rounding_to(item)


class ValueFlows:
    """Where the values a sequence passes come from, beyond exact bindings: values passed on
    rounded, and values only an output of another meaning provides. Every output leaf is typed
    and indexed once, so each check looks up an argument instead of scanning every leaf."""

    def __init__(self, calls: Sequence[Call], outputs: Sequence[Any], question: str) -> None:
        self.calls = calls
        self.question = question
        self.leaves: list[_Leaves] = []
        passed = _passed_values(calls)
        for call, output in zip(calls, outputs):
            spec = _spec(call)
            typed = [
                (path, leaf, spec.result_type(path) if spec is not None else None)
                for path, leaf in leaves(output)
                if bindable(leaf) and (leaf in passed or isinstance(leaf, float))
            ]
            self.leaves.append(_Leaves(typed, passed))

    def _passed(self, j: int) -> Iterator[tuple[str, Any, Sem | None]]:
        """(argument, value, parameter type) for the values call ``j`` passes that the
        question does not state."""
        spec = _spec(self.calls[j])
        for name, value in self.calls[j].arguments.items():
            wanted = spec.param_types.get(name) if spec is not None else None
            for item in value if isinstance(value, list) else [value]:
                if bindable(item) and not _mentioned(item, self.question):
                    yield name, item, wanted

    def rounded_sources(self) -> list[set[int]]:
        """For each call, the earlier calls whose output it passes on rounded (not equal: those
        are bindings) — a data dependency without a binding, since the value was transformed."""
        found: list[set[int]] = []
        for j in range(len(self.calls)):
            sources: set[int] = set()
            for _, item, wanted in self._passed(j):
                if not isinstance(item, float):
                    continue
                for i in range(j):
                    if any(feeds(sem, wanted) for _, sem in self.leaves[i].rounding_to(item)):
                        sources.add(i)
            found.append(sources)
        return found

    def crossed_types(self, j: int) -> tuple[str, str, Sem | None, Sem | None] | None:
        """A value call ``j`` passes that only an earlier output of another meaning provides (a
        distance in km passed as miles): ``(argument, source path, source type, parameter
        type)``. Values the question states, and values a fitting output provides, are not
        reported."""
        for name, item, wanted in self._passed(j):
            crossing: tuple[str, str, Sem | None, Sem | None] | None = None
            fitting = False
            for i in range(j):
                for path, sem in self.leaves[i].sources(item):
                    if sem is None or wanted is None or feeds(sem, wanted):
                        fitting = True
                    elif crossing is None:
                        source = f"{self.calls[i].id}.{path}" if path else self.calls[i].id
                        crossing = (name, source, sem, wanted)
            if crossing is not None and not fitting:
                return crossing
        return None


def state_effects(
    env_names: Sequence[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    baseline: Sequence[StepTrace],
    final: Mapping[str, Any],
    only: Sequence[int] | None = None,
) -> list[set[int]]:
    """``affects[j]`` = indices of earlier same-environment calls whose removal changes call j
    in a way that matters (:func:`changed_without`), looking only at the calls ``only`` lists,
    when given. ``final`` is the state ``baseline`` ends in."""
    affects: list[set[int]] = [set() for _ in calls]
    for i, producer in enumerate(calls):
        later = [j for j in range(i + 1, len(calls)) if calls[j].env == producer.env]
        if not later or baseline[i].pure or (only is not None and i not in only):
            continue
        without, _ = trace_calls(
            env_names,
            initial_config,
            calls,
            skip=i,
            skipped_rng_words=baseline[i].rng_words,
            follow_bindings=True,
        )
        for j in later:
            if changed_without(env_names, initial_config, calls, baseline, final, i, j, without):
                affects[j].add(i)
    return affects


def changed_without(
    env_names: Sequence[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    baseline: Sequence[StepTrace],
    final: Mapping[str, Any],
    i: int,
    j: int,
    without: Sequence[StepTrace],
) -> bool:
    """Whether call ``j`` behaves differently when call ``i`` is left out, in a way that makes
    ``j`` need ``i``: another result or error (drawn ids compared by the call that drew them,
    :mod:`pipeline.drawn_ids`), or another current directory. When only the ids it drew or the
    position of what it wrote differ (a second ticket gets the id after the first one's, a
    second message lands second in the inbox), ``j`` needs ``i`` only if running ``j`` first
    changes an outcome."""
    if baseline[j].same_behaviour(without[j]):
        return False
    # the ids every call up to j drew, left out ``i`` aside (a close of "the second ticket")
    mapping = renaming(
        (calls[k].tool, without[k].result, baseline[k].result) for k in range(j + 1) if k != i
    )
    if mapping is None or without[j].error != baseline[j].error:
        return True
    if without[j].ambient != baseline[j].ambient:
        return True  # it ran in another directory: same answer by coincidence
    if rename(without[j].result, mapping) != baseline[j].result:
        return True
    # the same answer (up to drawn ids) and another state change: a message lands at another
    # place in the inbox, a counter moves from 1 to 2 instead of 0 to 1; that orders the two
    # calls only if the other order changes an outcome
    # j moves before i together with the calls it takes values from
    position = {call.id: index for index, call in enumerate(calls)}
    feeding = {position[source.split(".", 1)[0]] for source in calls[j].bindings.values()}
    return reorder_changes_outcome(
        env_names, initial_config, calls, baseline, final, i, j, feeding - {i}
    )


def perturbed_config(
    env_names: Sequence[str], initial_config: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]] | None:
    """The initial state with each environment's unrelated extra content, or ``None`` when no
    environment of the task has any (:meth:`pipeline.envs.Environment.perturbed`)."""
    config = {name: dict(state) for name, state in initial_config.items()}
    changed = False
    for name in env_names:
        try:
            extra = get_env_class(name).perturbed(initial_config.get(name))
        except (KeyError, ValueError):
            continue
        if extra is not None:
            config[name] = extra
            changed = True
    return config if changed else None


def hidden_state_effects(
    env_names: Sequence[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    baseline: Sequence[StepTrace],
    known: Sequence[set[int]],
) -> list[set[int]]:
    """State dependencies that show only on the perturbed initial state: ``du`` after
    ``cd Meadow`` when the parent folder happens to hold nothing but Meadow. No evidence when
    the extra content changes which calls fail (then the perturbed run is another task).
    ``known[j]``: calls already known to precede ``j``, which need no second look."""
    none: list[set[int]] = [set() for _ in calls]
    open_pairs = [
        i
        for i, call in enumerate(calls)
        if not baseline[i].pure
        and any(calls[j].env == call.env and i not in known[j] for j in range(i + 1, len(calls)))
    ]
    config = perturbed_config(env_names, initial_config) if open_pairs else None
    if config is None:
        return none
    try:
        traces, final = trace_calls(env_names, config, calls)
    except ValueError:  # the extra content does not fit the environment's limits
        return none
    if any((a.error is None) != (b.error is None) for a, b in zip(traces, baseline)):
        return none
    return state_effects(env_names, config, calls, traces, final, only=open_pairs)


def ancestor_sets(edges: Sequence[set[int]]) -> list[set[int]]:
    """Every ancestor of each call, following ``edges`` (parents per call) transitively."""
    found: list[set[int]] = []
    for parents in edges:
        closure = set(parents)
        for parent in parents:
            closure |= found[parent]
        found.append(closure)
    return found


def reorder_changes_outcome(
    env_names: Sequence[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    baseline: Sequence[StepTrace],
    final: Mapping[str, Any],
    i: int,
    j: int,
    ancestors_of_j: set[int],
    states: Sequence[Mapping[str, Mapping[str, Any]]] | None = None,
) -> bool:
    """Whether running call ``j`` (with its ancestors that sit after ``i``) before call ``i``
    changes any call's result or error, or the final state.

    With ``states`` (:func:`pipeline.replay.states_before`) only the calls from ``i`` to ``j``
    are replayed first, from the state before ``i``: when they give the same results and leave
    exactly the state the task had after ``j``, every later call runs as before and the answer
    is no. Anything else is settled by replaying the whole reordered task.
    """
    if all(step.pure for step in baseline[i : j + 1]):
        return False  # calls that change nothing see the same state in any order
    moved = [k for k in range(i + 1, j) if k in ancestors_of_j] + [j]
    window = [*moved, *(k for k in range(i, j) if k not in moved)]
    if states is not None and _window_keeps_outcome(env_names, calls, baseline, states, window):
        return False
    order = [*range(i), *window, *range(j + 1, len(calls))]
    traces, reordered_final = trace_calls(
        env_names, initial_config, [calls[k] for k in order], follow_bindings=True
    )
    # ids the calls drew are compared by the call that drew them (pipeline.drawn_ids)
    mapping = renaming(
        (calls[k].tool, traces[spot].result, baseline[k].result) for spot, k in enumerate(order)
    )
    if mapping is None:
        return True
    if not same_outcome_state(rename(reordered_final, mapping), final):
        return True
    return any(
        (rename(traces[spot].result, mapping), traces[spot].error)
        != (baseline[k].result, baseline[k].error)
        for spot, k in enumerate(order)
    )


def _window_keeps_outcome(
    env_names: Sequence[str],
    calls: Sequence[Call],
    baseline: Sequence[StepTrace],
    states: Sequence[Mapping[str, Mapping[str, Any]]],
    window: Sequence[int],
) -> bool:
    first, last = min(window), max(window)
    envs = build_envs(env_names, states[first])
    for k in window:
        outcome = run_call(envs, calls[k])
        if (outcome.result, outcome.error) != (baseline[k].result, baseline[k].error):
            return False
    check_time()
    return {name: env.snapshot() for name, env in envs.items()} == states[last + 1]


def ordering_edges(
    env_names: Sequence[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    baseline: Sequence[StepTrace],
    final: Mapping[str, Any],
    edges: Sequence[set[int]],
) -> list[set[int]]:
    """Add ``i -> j`` wherever two calls of one environment left unordered by ``edges`` give
    other results when ``j`` runs first (a write after a read, two calls drawing random ids):
    then every order a scheduler may pick reproduces the same results and final state."""
    result = [set(parents) for parents in edges]
    states = states_before(env_names, initial_config, calls)
    ancestors: list[set[int]] = []  # final for every call before j: edges only point back
    for j in range(len(calls)):
        mine = set(result[j]).union(*(ancestors[p] for p in result[j]))
        for i in range(j - 1, -1, -1):
            if calls[i].env != calls[j].env or i in mine:
                continue
            if reorder_changes_outcome(
                env_names, initial_config, calls, baseline, final, i, j, mine, states
            ):
                result[j].add(i)
                mine |= {i} | ancestors[i]
        ancestors.append(mine)
    return result


def session_end_edges(calls: Sequence[Call]) -> set[tuple[int, int]]:
    """``(i, j)`` for every log-out ``j`` and each earlier call ``i`` of its environment: "…,
    then log me out" orders the log-out last even where the other steps do not need the
    session (upstream's ticket system edits tickets without one)."""
    edges: set[tuple[int, int]] = set()
    for j, call in enumerate(calls):
        try:
            ends = resolve_tool(call.tool)[1].ends_session
        except ToolError:
            continue
        if ends:
            edges |= {(i, j) for i in range(j) if calls[i].env == call.env}
    return edges


def infer_dependencies(
    env_names: Sequence[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    question: str,
) -> list[Call]:
    """Return ``calls`` with ``depends_on`` and ``bindings`` inferred from execution."""
    baseline, final = trace_calls(env_names, initial_config, calls)
    bindings = data_bindings(calls, [step.result for step in baseline], question)
    # replays that leave a call out or move one follow the bindings, as an agent would
    calls = [call.model_copy(update={"bindings": bindings[j]}) for j, call in enumerate(calls)]
    affects = state_effects(env_names, initial_config, calls, baseline, final)
    position = {call.id: index for index, call in enumerate(calls)}
    rounded = ValueFlows(calls, [step.result for step in baseline], question).rounded_sources()
    producers = [
        {position[s.split(".", 1)[0]] for s in bindings[j].values()} | rounded[j]
        for j in range(len(calls))
    ]
    edges = [affects[j] | producers[j] for j in range(len(calls))]
    hidden = hidden_state_effects(env_names, initial_config, calls, baseline, ancestor_sets(edges))
    edges = [edges[j] | hidden[j] for j in range(len(calls))]
    stated = [
        *control_edges(question, calls),
        *session_end_edges(calls),
        *order_edges(question, calls),
    ]
    for read, conditioned in stated:
        edges[conditioned].add(read)
    edges = ordering_edges(env_names, initial_config, calls, baseline, final, edges)
    reduced = _transitive_reduction(edges)
    inferred: list[Call] = []
    for j, call in enumerate(calls):
        sources = {calls[i].id for i in reduced[j] | producers[j]}
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
