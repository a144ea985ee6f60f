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

Each relation is read through :class:`Replays`, by inference and by validation alike
(:mod:`pipeline.validate.execution`): inference collects every need into ``depends_on``;
validation asks for the needs its declared ancestors leave out (``dependency.undeclared``) and
for a reason behind each declared edge (``dependency.spurious``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import cached_property, lru_cache
from typing import Any

from pipeline.budget import check_time
from pipeline.conditions import control_edges, order_edges
from pipeline.drawn_ids import rename, renaming
from pipeline.envs import ToolError, ToolSpec, get_env_class, resolve_tool
from pipeline.jsontree import leaves, scalars
from pipeline.models import Call
from pipeline.quantities import Arithmetic
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
    coincidence, not a data flow. Among fitting fields the first in call order wins, except
    that a rounding's result comes before the value it restates. A list argument equal to a
    whole returned list (two or more bindable items, not all stated by the
    question) binds as one (``values -> s1.items``), not item by item."""
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
        # a rounding (or other restatement) that returns its operand unchanged is still what
        # the request asked for: "round the mean; then divide it by 4" takes the rounded value,
        # not the mean (one llm101 reader: "divide the result of the first step by 4")
        restates = spec is not None and spec.arithmetic is Arithmetic.KEEP
        for path, leaf in leaves(output):
            if leaf in passed and bindable(leaf):
                sem = spec.result_type(path) if spec is not None else None
                sources = produced.setdefault(_value_key(leaf), [])
                entry = (f"{call.id}.{path}" if path else call.id, sem)
                if restates:
                    sources.insert(0, entry)
                else:
                    sources.append(entry)
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
    """A list that may bind as one: two or more values that could each bind, not all of them
    stated by the question. Items too small to bind alone (0, 1) may sit among them: a
    returned Fibonacci list is passed on whole, its opening 0, 1, 1 included."""
    weighty = [item for item in value if bindable(item)]
    return (
        len(weighty) >= 2
        and all(_is_scalar(item) for item in value)
        and not all(_mentioned(item, question) for item in weighty)
    )


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


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


def ancestor_sets(edges: Sequence[set[int]]) -> list[set[int]]:
    """Every ancestor of each call, following ``edges`` (parents per call) transitively."""
    found: list[set[int]] = []
    for parents in edges:
        closure = set(parents)
        for parent in parents:
            closure |= found[parent]
        found.append(closure)
    return found


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


def same_value(a: Any, b: Any) -> bool:
    """Equal as a user reads them: 3 and 3.0 are one number, "3" is not."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool | str):
        try:
            return float(a) == float(b)
        except OverflowError:  # an int too large for a float: compare exactly
            return bool(a == b)
    return bool(a == b)


def passes_on(output: Any, arguments: Mapping[str, Any]) -> bool:
    """Whether some non-trivial value of ``output`` is passed (maybe rounded) as an argument:
    the loose data relation a declared edge may rest on (no type or question test)."""
    produced = [v for v in scalars(output) if bindable(v)]
    wanted = [v for v in scalars(dict(arguments)) if bindable(v)]
    return any(same_value(p, w) or rounds_to(p, w) for p in produced for w in wanted)


def declared_parents(calls: Sequence[Call]) -> list[set[int]]:
    """The indices each call's ``depends_on`` names."""
    position = {call.id: index for index, call in enumerate(calls)}
    return [{position[parent] for parent in call.depends_on} for call in calls]


Traced = tuple[list[StepTrace], dict[str, dict[str, Any]]]


class Replays:
    """One call sequence and the runs every relation above is read from: the baseline, the
    state before each call, each call left out; each computed once, when first asked for.

    Inference and validation read the relations through the same methods, so an edge means the
    same to both: inference collects the needs it finds into ``depends_on``; validation asks
    for the needs its declared ancestors ``known`` leave out, and for the reason of each
    declared edge (:meth:`reason`). Replays that leave a call out or move one follow the calls'
    ``bindings``, as an agent would: the declared ones in validation, the inferred ones in
    inference.
    """

    def __init__(
        self,
        env_names: Sequence[str],
        initial_config: Mapping[str, Mapping[str, Any]],
        calls: Sequence[Call],
        question: str,
        baseline: Traced | None = None,
    ) -> None:
        self.env_names = env_names
        self.initial_config = initial_config
        self.calls = calls
        self.question = question
        self._baseline = baseline
        self._without: dict[int, Traced] = {}
        self._hidden: dict[tuple[frozenset[int], ...], list[set[int]]] = {}

    @property
    def baseline(self) -> Traced:
        if self._baseline is None:
            self._baseline = trace_calls(self.env_names, self.initial_config, self.calls)
        return self._baseline

    @property
    def traces(self) -> list[StepTrace]:
        return self.baseline[0]

    @property
    def final(self) -> dict[str, dict[str, Any]]:
        return self.baseline[1]

    @cached_property
    def states(self) -> list[dict[str, dict[str, Any]]]:
        """The whole state before each call and after the last (for windowed replays)."""
        return states_before(self.env_names, self.initial_config, self.calls)

    @cached_property
    def flows(self) -> ValueFlows:
        return ValueFlows(self.calls, [step.result for step in self.traces], self.question)

    @cached_property
    def bindings(self) -> list[dict[str, str]]:
        """The data bindings execution shows (:func:`data_bindings`)."""
        return data_bindings(self.calls, [step.result for step in self.traces], self.question)

    @cached_property
    def control(self) -> frozenset[tuple[int, int]]:
        """``(read, step)`` edges the question's conditions make (:mod:`pipeline.conditions`)."""
        return frozenset(control_edges(self.question, self.calls))

    @cached_property
    def session_ends(self) -> frozenset[tuple[int, int]]:
        """``(i, logout)`` edges: a log-out comes after the earlier calls of its environment."""
        return frozenset(session_end_edges(self.calls))

    @cached_property
    def worded_order(self) -> frozenset[tuple[int, int]]:
        """``(i, j)`` edges the question's order words make ("lock the doors before starting
        the engine"; :func:`pipeline.conditions.order_edges`)."""
        return frozenset(order_edges(self.question, self.calls))

    def without(self, index: int) -> Traced:
        """Replay with call ``index`` left out (its random draws still consumed), bound
        arguments taking what their producers return in that run."""
        if index not in self._without and self.traces[index].pure:
            # a call that changed nothing and drew nothing: every other call behaves the same
            skipped = StepTrace(None, None, (), 0, skipped=True)
            traces = [*self.traces[:index], skipped, *self.traces[index + 1 :]]
            self._without[index] = (traces, self.final)
        if index not in self._without:
            self._without[index] = trace_calls(
                self.env_names,
                self.initial_config,
                self.calls,
                skip=index,
                skipped_rng_words=self.traces[index].rng_words,
                follow_bindings=True,
            )
        return self._without[index]

    def needs_state(self, i: int, j: int) -> bool:
        """State: call ``j`` behaves differently when call ``i`` is left out, in a way that
        makes ``j`` need ``i``: another result or error (drawn ids compared by the call that
        drew them, :mod:`pipeline.drawn_ids`), or another current directory. When only the ids
        it drew or the position of what it wrote differ (a second ticket gets the id after the
        first one's, a second message lands second in the inbox), ``j`` needs ``i`` only if
        running ``j`` first changes an outcome."""
        baseline, calls = self.traces, self.calls
        without, _ = self.without(i)
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
        # the same answer (up to drawn ids) and another state change: a message lands at
        # another place in the inbox, a counter moves from 1 to 2 instead of 0 to 1; that
        # orders the two calls only if the other order changes an outcome.
        # j moves before i together with the calls it takes values from
        position = {call.id: index for index, call in enumerate(calls)}
        feeding = {position[source.split(".", 1)[0]] for source in calls[j].bindings.values()}
        return self.reorder_matters(i, j, feeding - {i}, windowed=False)

    def reorder_matters(
        self, i: int, j: int, ancestors_of_j: set[int], windowed: bool = True
    ) -> bool:
        """Order: running call ``j`` (with its ancestors that sit after ``i``) before call
        ``i`` changes any call's result or error, or the final state.

        ``windowed``: first only the calls from ``i`` to ``j`` are replayed, from the state
        before ``i`` (:attr:`states`): when they give the same results and leave exactly the
        state the task had after ``j``, every later call runs as before and the answer is no.
        Anything else is settled by replaying the whole reordered task.
        """
        baseline, calls = self.traces, self.calls
        if all(step.pure for step in baseline[i : j + 1]):
            return False  # calls that change nothing see the same state in any order
        moved = [k for k in range(i + 1, j) if k in ancestors_of_j] + [j]
        window = [*moved, *(k for k in range(i, j) if k not in moved)]
        if windowed and self._window_keeps_outcome(window):
            return False
        order = [*range(i), *window, *range(j + 1, len(calls))]
        traces, reordered_final = trace_calls(
            self.env_names, self.initial_config, [calls[k] for k in order], follow_bindings=True
        )
        # ids the calls drew are compared by the call that drew them (pipeline.drawn_ids)
        mapping = renaming(
            (calls[k].tool, traces[spot].result, baseline[k].result) for spot, k in enumerate(order)
        )
        if mapping is None:
            return True
        if not same_outcome_state(rename(reordered_final, mapping), self.final):
            return True
        return any(
            (rename(traces[spot].result, mapping), traces[spot].error)
            != (baseline[k].result, baseline[k].error)
            for spot, k in enumerate(order)
        )

    def _window_keeps_outcome(self, window: Sequence[int]) -> bool:
        first, last = min(window), max(window)
        envs = build_envs(self.env_names, self.states[first])
        for k in window:
            outcome = run_call(envs, self.calls[k])
            if (outcome.result, outcome.error) != (self.traces[k].result, self.traces[k].error):
                return False
        check_time()
        return {name: env.snapshot() for name, env in envs.items()} == self.states[last + 1]

    def state_needs(self, known: Sequence[set[int]]) -> Iterator[tuple[int, int]]:
        """``(i, j)``, earlier call first, for every state dependency of ``j`` on ``i`` that
        ``known`` (ancestors per call) does not already order; lazily, so a caller that wants
        one need replays no more than it takes to find it."""
        for i, producer in enumerate(self.calls):
            later = [
                j
                for j in range(i + 1, len(self.calls))
                if self.calls[j].env == producer.env and i not in known[j]
            ]
            if not later or self.traces[i].pure:
                continue  # a call that changed nothing and drew nothing affects no other
            for j in later:
                if self.needs_state(i, j):
                    yield i, j

    def hidden(self, known: Sequence[set[int]]) -> list[set[int]]:
        """State dependencies ``known`` leaves open that show only on the perturbed initial
        state (:func:`perturbed_config`): ``du`` after ``cd Meadow`` when the parent folder
        happens to hold nothing but Meadow. No evidence when the extra content changes which
        calls fail (then the perturbed run is another task)."""
        key = tuple(frozenset(ancestors) for ancestors in known)
        if key not in self._hidden:
            self._hidden[key] = self._hidden_needs(known)
        return self._hidden[key]

    def _hidden_needs(self, known: Sequence[set[int]]) -> list[set[int]]:
        found: list[set[int]] = [set() for _ in self.calls]
        open_pairs = any(
            not self.traces[i].pure
            and any(
                self.calls[j].env == call.env and i not in known[j]
                for j in range(i + 1, len(self.calls))
            )
            for i, call in enumerate(self.calls)
        )
        config = perturbed_config(self.env_names, self.initial_config) if open_pairs else None
        if config is None:
            return found
        try:
            perturbed = trace_calls(self.env_names, config, self.calls)
        except ValueError:  # the extra content does not fit the environment's limits
            return found
        if any((a.error is None) != (b.error is None) for a, b in zip(perturbed[0], self.traces)):
            return found
        there = Replays(self.env_names, config, self.calls, self.question, baseline=perturbed)
        for i, j in there.state_needs(known):
            found[j].add(i)
        return found

    def order_needs(self, parents: Sequence[set[int]]) -> Iterator[tuple[int, int]]:
        """``(i, j)`` wherever two calls of one environment that ``parents`` (direct parents
        per call) leave unordered give other results or another final state when ``j`` runs
        first (a write after a read, two calls drawing random ids). For each ``j`` the nearest
        ``i`` is tried first, and a need found orders ``i``'s ancestors too before the next."""
        ancestors: list[set[int]] = []  # final for every call before j: edges only point back
        for j in range(len(self.calls)):
            mine = set(parents[j]).union(*(ancestors[p] for p in parents[j]))
            for i in range(j - 1, -1, -1):
                if self.calls[i].env != self.calls[j].env or i in mine:
                    continue
                if self.reorder_matters(i, j, mine):
                    yield i, j
                    mine |= {i} | ancestors[i]
            ancestors.append(mine)

    def reason(self, i: int, j: int, ancestors: Sequence[set[int]]) -> str | None:
        """Which relation makes call ``j`` depend on earlier call ``i`` — ``"data"``,
        ``"stated"`` (a condition, "then log me out", "before"), ``"hidden state"``,
        ``"state"`` or ``"order"`` — or ``None`` when none does. ``ancestors``: every call's
        ancestors as declared, which move with ``j`` when the order is tried the other way.
        The cheap relations are tried first."""
        bound = {source.split(".", 1)[0] for source in self.calls[j].bindings.values()}
        if self.calls[i].id in bound or passes_on(self.traces[i].result, self.calls[j].arguments):
            return "data"
        if (i, j) in self.control | self.session_ends | self.worded_order:
            return "stated"
        if i in self.hidden([set() for _ in self.calls])[j]:
            return "hidden state"
        if self.needs_state(i, j):
            return "state"
        between = {k for k in ancestors[j] if i < k < j and i not in ancestors[k]}
        return "order" if self.reorder_matters(i, j, between) else None


def infer_dependencies(
    env_names: Sequence[str],
    initial_config: Mapping[str, Mapping[str, Any]],
    calls: Sequence[Call],
    question: str,
) -> list[Call]:
    """Return ``calls`` with ``depends_on`` and ``bindings`` inferred from execution."""
    first = Replays(env_names, initial_config, calls, question)
    bindings = first.bindings
    # replays that leave a call out or move one follow the bindings, as an agent would
    calls = [call.model_copy(update={"bindings": bindings[j]}) for j, call in enumerate(calls)]
    run = Replays(env_names, initial_config, calls, question, baseline=first.baseline)
    edges: list[set[int]] = [set() for _ in calls]
    for i, j in run.state_needs([set() for _ in calls]):
        edges[j].add(i)
    position = {call.id: index for index, call in enumerate(calls)}
    rounded = run.flows.rounded_sources()
    producers = [
        {position[s.split(".", 1)[0]] for s in bindings[j].values()} | rounded[j]
        for j in range(len(calls))
    ]
    edges = [edges[j] | producers[j] for j in range(len(calls))]
    hidden = run.hidden(ancestor_sets(edges))
    edges = [edges[j] | hidden[j] for j in range(len(calls))]
    for read, conditioned in run.control | run.session_ends | run.worded_order:
        edges[conditioned].add(read)
    for i, j in list(run.order_needs(edges)):
        edges[j].add(i)
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
