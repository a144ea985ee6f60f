"""Checked next steps for the LLM's deepen and broaden: the calls are found by execution, the
model chooses one and writes the request.

Asked to invent the new calls, the 1.5B model this project runs kept the parent's calls in 12
of 12 deepen replies and added nothing, or added calls with arguments from nowhere (2 of 16
deepen and broaden candidates were new, both invalid). Finding calls that run and consume an
earlier result is what :mod:`pipeline.evolve.extend` already does by execution over the tool
graph; wording a request for a chosen chain is what a small model does well. So each option
is a whole call chain that is known to run, and the model's part is the choice and the words.

- *deepen*: the parent's calls plus one step that takes a value one of them returned;
- *broaden*: the parent's first calls up to some point, then a step with a tool other than
  the parent's next one, taking a value those calls returned, or a read that shows what a
  kept write changed: another goal from the same start, which still needs the kept calls.

Where execution finds too few whole steps (their other arguments must come from an enum or
an earlier result too), an option may fix only the argument that takes the earlier result and
leave the tool's other required arguments to the model, which must then state them in the
request; validation judges those as any other stated value.

Options are drawn with a generator seeded by the parent's content, so a rerun offers the same ones
(the prompt, and with it the cache key, stays the same).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pipeline.dependencies import infer_dependencies
from pipeline.envs import ENVIRONMENTS, ToolKind
from pipeline.envs.base import ToolSpec
from pipeline.evolve.clauses import clause_openers
from pipeline.evolve.extend import (
    IDENTITY_TYPES,
    extensions,
    fits_schema,
    nothing_new,
    produced_values,
    session_values,
)
from pipeline.evolve.verbalise import Ref, Verbaliser, ordinal, shared_verbaliser
from pipeline.jsontree import scalars
from pipeline.models import Call, Task
from pipeline.replay import build_envs, replay, run_call, same_outcome_state, trace_calls
from pipeline.semantics import Sem
from pipeline.toolgraph import conversion_tools, generative_edge
from pipeline.validate.grounding import numbers_in

MAX_OPTIONS = 4
#: candidate steps tried per chain prefix: ``extensions`` runs each one, so this bounds the
#: work per parent
TRIES_PER_PREFIX = 200


@dataclass(frozen=True)
class Option:
    """A step the model may choose: the parent's first ``kept`` calls, then ``tool`` with the
    ``fixed`` arguments (one at least takes an earlier result) and the ``free`` required
    arguments the model fills and states. A checked option has no free argument and is known
    to run; ``result`` is what it returned."""

    kept: int
    tool: str  # qualified: ``env.tool``
    fixed: dict[str, Any]
    free: tuple[str, ...] = ()
    result: object = None

    @property
    def checked(self) -> bool:
        return not self.free

    @property
    def function(self) -> str:
        return self.tool.split(".", 1)[1]

    def calls(self, parent: Task, arguments: dict[str, Any]) -> list[Call]:
        """The chain this option makes with the model's ``arguments`` for the new step."""
        new = Call(id=f"s{self.kept + 1}", tool=self.tool, arguments=arguments)
        return [*parent.calls[: self.kept], new]

    def _bound_chain(
        self, parent: Task, arguments: dict[str, Any]
    ) -> tuple[list[Call], list[Any]] | None:
        """This option's chain with its bindings inferred, and what each call returned."""
        chain = self.calls(parent, arguments)
        run = replay(parent.model_copy(update={"calls": chain}))
        outputs = [outcome.result for outcome in run.outcomes]
        try:
            chain = infer_dependencies(parent.envs, parent.initial_config, chain, parent.question)
        except ValueError:
            return None
        return chain, outputs

    def words(self, parent: Task, arguments: dict[str, Any], verbaliser: Verbaliser) -> str | None:
        """How a request asks for this option's chain, written by code: for deepen the new
        step's phrase, for broaden the whole request (which of the parent's words asked for a
        dropped call is not known). ``None`` when the verbaliser cannot say it."""
        if self.kept == len(parent.calls):
            return self.step_words(parent, arguments, verbaliser)
        bound = self._bound_chain(parent, arguments)
        if bound is None:
            return None
        chain, outputs = bound
        try:
            return verbaliser.question(chain, outputs, by_content=True)
        except (KeyError, ValueError):
            return None

    def step_refs(
        self, parent: Task, arguments: dict[str, Any], verbaliser: Verbaliser
    ) -> tuple[Call, dict[str, Ref]] | None:
        """The new step with its bindings, and the earlier values it takes as references;
        ``None`` where the chain does not run."""
        bound = self._bound_chain(parent, arguments)
        if bound is None:
            return None
        chain, outputs = bound
        try:
            return chain[-1], verbaliser.refs(chain, len(chain) - 1, outputs, True)
        except ValueError:
            return None

    def step_words(
        self, parent: Task, arguments: dict[str, Any], verbaliser: Verbaliser
    ) -> str | None:
        """The new step's phrase alone, as code writes it ("list every credit card registered
        with my travel account"); ``None`` when the verbaliser cannot say it."""
        step = self.step_refs(parent, arguments, verbaliser)
        if step is None:
            return None
        try:
            return verbaliser.phrase(*step)
        except (KeyError, ValueError):
            return None

    def sources(
        self, parent: Task, arguments: dict[str, Any], verbaliser: Verbaliser
    ) -> set[tuple[str, ...]]:
        """Where the request must say the earlier values come from, each as the ways to say
        it: the step, as code's words name it ("the previous step", "the first step"), or the
        stated value that tells its entity apart ("'Replace mouse'" for that ticket). Deepen's
        new step's, and every call's for broaden, whose whole request is rewritten. A value
        no other step could have given ("the order") needs none."""
        bound = self._bound_chain(parent, arguments)
        if bound is None:
            return set()
        chain, outputs = bound
        positions = range(len(chain) - 1 if self.kept == len(parent.calls) else 0, len(chain))
        found: set[tuple[str, ...]] = set()
        for position in positions:
            try:
                refs = verbaliser.refs(chain, position, outputs, by_content=True)
            except ValueError:
                continue
            for ref in refs.values():
                if ref.unique and ref.self_named and ref.meaning is not None:
                    # the one product is "the product" or its step; "that quotient" over the
                    # product, or "the result of the first step" over the second's, is not
                    found.add((ref.meaning, ref.place.removeprefix("the ")))
                # a value only one step could have given needs no step named
                if ref.where:
                    place = ref.where.split(" ", 1)[1]
                    handle = () if ref.handle is None else (ref.handle[1].lower(),)
                    made = ("the new",) if ref.made else ()  # "the new ticket"
                    # what an earlier call took already: "the same ticket" (run llm109)
                    same = ("the same", "that same") if ref.again else ()
                    # "order 4410" names where "the symbol of order 4410" comes from
                    owner = (
                        ()
                        if ref.owner is None
                        else (
                            " ".join(filter(None, ref.owner))
                            .lower()
                            .removeprefix("for ")
                            .removeprefix("of "),
                        )
                    )
                    found.add((place, *handle, *made, *owner, *same))
                    if ref.element is not None and ref.handle is None:
                        # two entries of one list each need their own word: "the second date
                        # from the first step" said nothing of the third, the range's end
                        # (run llm97, both readers)
                        found.add((ordinal(ref.element[0] + 1),))
        # a reference code's words do not render (a source format the text's noun already
        # names) cannot be asked of the model's
        said = (self.words(parent, arguments, verbaliser) or "").lower()
        return {ways for ways in found if any(way in said for way in ways)}

    def draft(self, parent: Task, arguments: dict[str, Any], verbaliser: Verbaliser) -> str | None:
        """The whole request for this option's chain, written by code: deepen's is the
        parent's request (the user's words stay) and then the new step's phrase."""
        words = self.words(parent, arguments, verbaliser)
        if words is None or self.kept < len(parent.calls):
            return words
        request = parent.question.rstrip()
        if not request.endswith((".", "?", "!")):
            request += "."
        ending = "" if words.endswith((".", "?", "!")) else "."
        return f"{request} Then {words}{ending}"

    def tells_nothing(self, parent: Task, arguments: dict[str, Any]) -> bool:
        """Whether the step, with the model's values for its free arguments, is a read whose
        result holds only values already known: "an arithmetic sequence of 1 value starting at
        the first price, going up by 5" returns that price (run llm29, failed by both readers).
        A checked step was held to this when it was found."""
        env, name = self.tool.split(".", 1)
        if self.checked or ENVIRONMENTS[env].tool_specs()[name].kind is not ToolKind.READ:
            return False
        run = replay(parent.model_copy(update={"calls": self.calls(parent, arguments)}))
        if not run.ok:
            return False  # validation reports the failure
        outputs = [outcome.result for outcome in run.outcomes]
        return nothing_new(outputs[-1], arguments, outputs[:-1], parent.calls[: self.kept])

    def matches(self, function: str, arguments: dict[str, Any]) -> bool:
        return function == self.function and all(
            arguments.get(name) == value for name, value in self.fixed.items()
        )


def _rng(task: Task, operation: str) -> random.Random:
    # seeded by content, not id: the same task under two ids gets the same prompt (and so the
    # same cache entries)
    return random.Random(f"{operation}:{task.with_content_id().id}")


def _last_result(task: Task) -> object:
    outcomes = replay(task).outcomes
    return outcomes[-1].result if outcomes else None


def _bookkeeping_free(state: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """``state`` without the fields that are counters in both states (a message count, drawn
    ids, the generator's position): they only grow, so no step can take them back."""

    def counter(value: Any) -> bool:
        if isinstance(value, list):
            return all(isinstance(item, int) and not isinstance(item, bool) for item in value)
        return isinstance(value, int) and not isinstance(value, bool)

    return {
        key: value
        for key, value in state.items()
        if not (counter(value) and counter(other.get(key)))
    }


def _takes_back(chain: Task) -> bool:
    """Whether the chain's last call returns its environment to how it was before one of the
    chain's own writes, counters aside: deleting the message just sent (run llm28, failed by
    both readers) undoes the request. Extend's own test compares counters too, and a message
    count that a deletion leaves as it was hides the undo."""
    new = chain.calls[-1]
    envs = build_envs(chain.envs, chain.initial_config)

    def same(a: dict[str, Any], b: dict[str, Any]) -> bool:
        return same_outcome_state(
            {new.env: _bookkeeping_free(a, b)}, {new.env: _bookkeeping_free(b, a)}
        )

    befores = []
    for call in chain.calls[:-1]:
        before = envs[new.env].snapshot() if new.env in envs else None
        run_call(envs, call)
        if (
            call.env == new.env
            and before is not None
            and not same(before, envs[new.env].snapshot())
        ):
            befores.append(before)  # a write beyond its counters
    if new.env not in envs:
        return False
    last = envs[new.env].snapshot()
    run_call(envs, new)
    after = envs[new.env].snapshot()
    return not same(last, after) and any(same(before, after) for before in befores)


def _checked(task: Task, kept: int, exclude: set[str], rng: random.Random) -> list[Option]:
    """Whole steps after the first ``kept`` calls, found by running them; one per tool; none
    that takes back an earlier write."""
    prefix = task.model_copy(update={"calls": task.calls[:kept]})
    found: list[Option] = []
    for extended in extensions(prefix, rng, TRIES_PER_PREFIX, after_all=kept == len(task.calls)):
        added = extended.calls[-1]
        if added.tool in exclude or _takes_back(extended):
            continue
        exclude.add(added.tool)
        found.append(Option(kept, added.tool, dict(added.arguments), (), _last_result(extended)))
        if len(found) >= MAX_OPTIONS:
            break
    return found


def _partial(task: Task, kept: int, exclude: set[str], rng: random.Random) -> list[Option]:
    """Steps that take an earlier result in one argument and leave the tool's other required
    arguments free; one per tool, tools in an order ``rng`` draws."""
    prefix = task.model_copy(update={"calls": task.calls[:kept]})
    run = replay(prefix)
    if not run.ok:
        return []
    outputs = [outcome.result for outcome in run.outcomes]
    produced = produced_values(
        prefix, outputs, session_values(run.final_state), after_all=kept == len(task.calls)
    )
    tools = [(env, spec) for env in task.envs for spec in ENVIRONMENTS[env].tool_specs().values()]
    rng.shuffle(tools)
    conversions = conversion_tools()
    converted = any(call.tool in conversions for call in prefix.calls)
    found: list[Option] = []
    for env, spec in tools:
        qualified = f"{env}.{spec.name}"
        if qualified in exclude:
            continue
        if qualified in conversions and converted:
            continue  # converting a converted amount again is a round trip (a USD price to GBP
            # and back), and which of the kept values is the converted one is not known here
        required = list(spec.parameters.get("required", []))
        for name in required:
            schema = spec.parameters["properties"][name]
            wanted = spec.param_types.get(name)
            if wanted in IDENTITY_TYPES:
                continue  # acting on a user a result named is left to checked steps
            bound = [
                p.value
                for p in produced
                if generative_edge(p.sem, wanted, qualified)
                and fits_schema(schema, p)
                and not _stated(p.value, task.question)  # the user gave it: no result needed
            ]
            free = tuple(other for other in required if other != name)
            if any(spec.describes.get(other) == name for other in free):
                # "sell the first stock listed at $2840.34" (run llm79): a price of a stock
                # the user does not know yet, since a result picks it
                continue
            # without a free argument the step was a whole one, and running it failed or
            # showed it pointless (closing a closed ticket): not an option
            if bound and _draws(spec) and _other_draws(prefix, outputs, bound[0]):
                # "draw 4 random numbers between the sum and 500" after an unrelated random
                # pick waits for it only through the shared random stream: readers take that
                # for a wrong dependency (both llm107 readers)
                continue
            if bound and free:
                found.append(Option(kept, qualified, {name: bound[0]}, free))
                exclude.add(qualified)
                break
    return found


def _draws(spec: ToolSpec) -> bool:
    """Whether the tool draws from its environment's random stream (it reports the seed)."""
    return any(sem is Sem.SEED for _, sem in spec.result_types)


def _other_draws(prefix: Task, outputs: list[Any], value: Any) -> bool:
    """Whether a call of ``prefix`` drew at random and neither returned ``value`` nor led to
    the call that did."""
    key = json.dumps(value, sort_keys=True)
    source = next(
        (
            i
            for i, out in enumerate(outputs)
            if key in {json.dumps(v, sort_keys=True) for v in scalars(out)}
        ),
        None,
    )
    if source is None:
        return False
    position = {call.id: index for index, call in enumerate(prefix.calls)}
    ancestors = {source}
    for index in range(source, -1, -1):
        if index in ancestors:
            ancestors |= {
                position[dep] for dep in prefix.calls[index].depends_on if dep in position
            }
    return any(
        index not in ancestors and isinstance(out, dict) and "seed" in out
        for index, out in enumerate(outputs)
    )


#: what a read that filters a table's rows takes: (argument, its type)
_FILTER_SHAPE = (
    ("table", Sem.TABLE_NAME),
    ("where_column", Sem.COLUMN_NAME),
    ("where_value", Sem.FIELD_VALUE),
)
#: rows of an earlier result whose values a filter may take (the first ones: a person names
#: "the first row", not the ninth)
_FILTER_ROWS = 3


def _filter_tools(envs: list[str]) -> list[str]:
    """Reads of the task's environments that select a table's rows by a column's value."""
    found = []
    for env in envs:
        for spec in ENVIRONMENTS[env].tool_specs().values():
            if spec.kind is ToolKind.READ and all(
                spec.param_types.get(name) is sem for name, sem in _FILTER_SHAPE
            ):
                found.append(f"{env}.{spec.name}")
    return found


def _filters(task: Task, kept: int, exclude: set[str], rng: random.Random) -> list[Option]:
    """Rows that share a value with a row an earlier step found ("everyone in the department
    of the row from the first step"). A field value feeds no other tool, since what it means
    depends on its column; matched against the same column of the same table, it means the
    same thing. Checked by running it: the rows it selects must include one the earlier step
    did not return, or the step tells nothing new."""
    tools = [tool for tool in _filter_tools(task.envs) if tool not in exclude]
    if not tools:
        return []
    prefix = task.model_copy(update={"calls": task.calls[:kept]})
    run = replay(prefix)
    if not run.ok:
        return []
    candidates: list[tuple[str, Any, str, set[Any]]] = []
    for call, output in zip(prefix.calls, (outcome.result for outcome in run.outcomes)):
        table = call.arguments.get("table")
        rows = output.get("rows") if isinstance(output, dict) else None
        if not isinstance(table, str) or not isinstance(rows, list):
            continue
        seen = {row.get("id") for row in rows if isinstance(row, dict)}
        for row in rows[:_FILTER_ROWS]:
            for column, value in row.items() if isinstance(row, dict) else ():
                if column == "id" or column == call.arguments.get("where_column"):
                    continue  # the producer's own filter selects the same rows again
                if not (isinstance(value, str) and len(value.strip()) >= 3):
                    continue  # a number or flag shared by chance says nothing
                if not _stated(value, task.question):
                    candidates.append((table, value, column, seen))
    rng.shuffle(candidates)
    found: list[Option] = []
    for tool in tools:
        tried: set[tuple[str, str]] = set()
        for table, value, column, seen in candidates:
            if (table, column) in tried:
                continue
            tried.add((table, column))
            arguments = {"table": table, "where_column": column, "where_value": value}
            chain = [*prefix.calls, Call(id=f"s{kept + 1}", tool=tool, arguments=arguments)]
            extended = replay(task.model_copy(update={"calls": chain}))
            result = extended.outcomes[-1].result if extended.ok else None
            selected = result.get("rows") if isinstance(result, dict) else None
            if isinstance(selected, list) and any(
                isinstance(row, dict) and row.get("id") not in seen for row in selected
            ):
                found.append(Option(kept, tool, arguments, (), result))
                exclude.add(tool)
                break
    return found


def _observers(task: Task, kept: int, exclude: set[str], rng: random.Random) -> list[Option]:
    """Reads that take no argument and show what a kept write changed ("add Priya Nair to my
    contacts, then show me my contacts"): another goal from the same start that still needs
    the kept calls, by the state they leave rather than a value they return. Checked by
    running: without one of the kept writes the read returns something else (a read that only
    needs the session a log-in opened is not one), and it returns something not yet known."""
    prefix = task.model_copy(update={"calls": task.calls[:kept]})
    writes = [
        index
        for index, call in enumerate(prefix.calls)
        if _spec(call.tool).kind is ToolKind.WRITE and not _spec(call.tool).ends_session
    ]
    if not writes:
        return []
    tools = [
        f"{env}.{spec.name}"
        for env in task.envs
        for spec in ENVIRONMENTS[env].tool_specs().values()
        if spec.kind is ToolKind.READ and not spec.parameters.get("required")
    ]
    rng.shuffle(tools)
    found: list[Option] = []
    for tool in tools:
        if tool in exclude or any(call.tool == tool for call in prefix.calls):
            continue
        read = Call(id=f"s{kept + 1}", tool=tool, arguments={})
        run = replay(task.model_copy(update={"calls": [*prefix.calls, read]}))
        if not run.ok:
            continue
        outputs = [outcome.result for outcome in run.outcomes]
        if nothing_new(outputs[-1], {}, outputs[:-1], prefix.calls):
            continue
        if any(_observes(task, prefix.calls, index, read, outputs[-1]) for index in writes):
            found.append(Option(kept, tool, {}, (), outputs[-1]))
            exclude.add(tool)
    return found


def _spec(qualified: str) -> ToolSpec:
    env, name = qualified.split(".", 1)
    return ENVIRONMENTS[env].tool_specs()[name]


def _observes(task: Task, calls: list[Call], index: int, read: Call, seen: object) -> bool:
    """Whether ``read`` returns something else when call ``index`` is left out (and the rest
    still runs)."""
    without = [call for position, call in enumerate(calls) if position != index]
    run = replay(task.model_copy(update={"calls": [*without, read]}))
    return run.ok and run.outcomes[-1].result != seen


def _after_log_out(task: Task, option: Option) -> bool:
    """Whether the step would act in a service a kept call logged out of: "log me out. Then
    resolve the ticket" (run llm31) ran, since the ticket system needs no session, but no
    user asks for it."""
    env = option.tool.split(".", 1)[0]
    return any(
        call.env == env and _spec(call.tool).ends_session for call in task.calls[: option.kept]
    )


def deepen_options(task: Task, limit: int = MAX_OPTIONS) -> list[Option]:
    """One step after all the parent's calls, taking one of their results: checked steps
    first, one per tool (two steps with one tool differ only in an argument)."""
    rng = _rng(task, "deepen")
    exclude: set[str] = set()
    found = _checked(task, len(task.calls), exclude, rng)
    found += _filters(task, len(task.calls), exclude, rng)
    found += _partial(task, len(task.calls), exclude, rng)
    return [option for option in found if not _after_log_out(task, option)][:limit]


def broaden_options(task: Task, limit: int = MAX_OPTIONS) -> list[Option]:
    """Chains that keep the parent's first calls and then take another turn: a step with a
    tool the parent does not use next, taking a value the kept calls returned. Checked steps
    before partial ones, each longest prefix first (the nearest other goal)."""
    rng = _rng(task, "broaden")
    found: list[Option] = []
    for kept in range(len(task.calls) - 1, 0, -1):
        exclude = {task.calls[kept].tool}
        found += _checked(task, kept, exclude, rng)
        found += _filters(task, kept, exclude, rng)
        found += _observers(task, kept, exclude, rng)
        found += _partial(task, kept, exclude, rng)
    found = [option for option in found if not _after_log_out(task, option)]
    checked = [option for option in found if option.checked]
    return (checked + [option for option in found if not option.checked])[:limit]


def kept_read_unasked(parent: Task, question: str, option: Option) -> str | None:
    """Why broaden's words cannot be the model's: a kept read fed only calls the chain drops,
    and the new step takes nothing from it, so nothing but its own words asks for it, and the
    model's words drop those ("Open the config folder and list what is in it" kept the 'pwd'
    that had fed the dropped write of the path to a file; run llm109, both readers). Code's
    words name every kept call."""
    kept = option.kept
    if kept == len(parent.calls):
        return None
    fed_dropped = []
    for index, call in enumerate(parent.calls[:kept]):
        if _spec(call.tool).kind is not ToolKind.READ:
            continue
        takers = [
            later
            for later, other in enumerate(parent.calls)
            if any(source.split(".", 1)[0] == call.id for source in other.bindings.values())
        ]
        if takers and all(later >= kept for later in takers):
            fed_dropped.append(index)
    if not fed_dropped:
        return None
    outputs = [outcome.result for outcome in replay(parent).outcomes]
    taken = {json.dumps(value, sort_keys=True) for value in scalars(option.fixed)}
    for index in fed_dropped:
        if not taken & {json.dumps(value, sort_keys=True) for value in scalars(outputs[index])}:
            return (
                f"the request keeps {parent.calls[index].function}, which fed only dropped"
                " steps; code's words ask for it"
            )
    return None


def options_for(operation: str, task: Task) -> list[Option]:
    if operation == "deepen":
        return deepen_options(task)
    if operation == "broaden":
        return broaden_options(task)
    return []


def verbaliser() -> Verbaliser:
    """One verbaliser for the drafts (it caches its compiled templates)."""
    return shared_verbaliser()


def option_view(option: Option, parent: Task) -> dict[str, Any]:
    """An option as the prompt shows it: the step as the answer writes it, a free argument as a
    marked blank, what a checked step returned, and how a request asks for a checked step
    (``words``: deepen's new phrase, broaden's whole request). A small model copies what it
    sees, so showing right words is how it comes to write them: without them the 1.5B model
    left its request unchanged in 5 of 12 answers (run ``llm19``) or named the wrong value."""
    shown = ", ".join(
        [f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}" for k, v in option.fixed.items()]
        + [f'"{name}": <your value>' for name in option.free]
    )
    result = None
    if option.checked:
        result = json.dumps(option.result, ensure_ascii=False, separators=(",", ":"))[:400]
    words = option.words(parent, option.fixed, verbaliser()) if option.checked else None
    return {
        "call": f'{{"tool": "{option.function}", "arguments": {{{shown}}}}}',
        "kept": option.kept,
        "free": list(option.free),
        "result": result,
        "words": words,
    }


# --- does the request ask for the chosen step? -------------------------------------------------

_WORDS = re.compile(r"[a-z]+")
#: name parts that say nothing about what a tool does (``get_ticket``: "ticket" does)
GENERIC_NAME_WORDS = frozenset(
    {"get", "set", "list", "show", "data", "number", "numbers", "value", "values", "record"}
    | {"records", "info", "item", "items", "new", "all", "the", "for", "from", "with", "into"}
    | {"calculate", "compute", "find", "return", "give", "tell", "say", "turn", "make"}
)
_STEM = 5  # "percentage" and "percent", "convert" and "conversion" share their first 5 letters


def stems(text: str) -> Counter[str]:
    return Counter(_stem(word) for word in _WORDS.findall(text.lower()) if len(word) > 2)


def _stem(word: str) -> str:
    """A word's first letters, a plural's "s" dropped first ("every row" names ``select_rows``)."""
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    return word[:_STEM]


def tool_words(qualified: str) -> frozenset[str]:
    """Stems that name what a tool does: the parts of its name and the verb that opens its
    description ("Round a number ..."), generic parts left out."""
    env, name = qualified.split(".", 1)
    spec = ENVIRONMENTS[env].tool_specs()[name]
    words = [part for part in name.split("_") if part not in GENERIC_NAME_WORDS and len(part) > 2]
    opening = _WORDS.findall(spec.description.lower())[:1]
    words += [word for word in opening if word not in GENERIC_NAME_WORDS and len(word) > 2]
    return frozenset(_stem(word) for word in words)


def step_unasked(parent: Task, question: str, option: Option) -> str | None:
    """Why the new request does not ask for the option's step, or ``None``. The words deepen
    adds to the parent's (counted, so a second "round" is added), or broaden's whole request,
    must name the step's tool: "Then do one more thing with it" over a division asks for
    nothing a reader could map to it."""
    # broaden's request is new as a whole: the parent may name the tool for a dropped call
    # ("divide 1000 by that product"), and the new request must name it again for its step
    kept_words = parent.question if option.kept == len(parent.calls) else ""
    added = stems(question) - stems(kept_words)
    wanted = tool_words(option.tool)
    if not wanted or any(stem in wanted for stem in added):
        return None
    return (
        f"the request adds no words for the new step {option.function} "
        f"(expected one of: {', '.join(sorted(wanted))})"
    )


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def other_step_asked(
    parent: Task, question: str, option: Option, arguments: dict[str, Any]
) -> str | None:
    """A tool of the task's environments that no call of the chain makes, named by the words
    the request adds (deepen) or by the request (broaden), or ``None``: run llm23's model
    appended "then place an order to sell it" to a step that only shows a quote. Quoted
    values are the user's data, not a request, and are left out."""
    chain = {call.tool for call in option.calls(parent, arguments)}
    used = frozenset().union(*(tool_words(tool) for tool in chain))
    kept_words = parent.question if option.kept == len(parent.calls) else ""
    # words the parent already uses ("JSON") are not a new request, however often repeated
    added = set(stems(_QUOTED.sub(" ", question))) - set(stems(_QUOTED.sub(" ", kept_words)))
    for env in parent.envs:
        for name in ENVIRONMENTS[env].tool_specs():
            tool = f"{env}.{name}"
            named = (tool_words(tool) - used) & added if tool not in chain else set()
            if named:
                return (
                    f"the request asks for {name} ({', '.join(sorted(named))}), which no call makes"
                )
    return None


#: a clause that gives a step the purpose of checking something
_CHECKING_PURPOSE = re.compile(
    r"\b(?:in order to|so (?:that )?(?:i|we) can|to)\s+"
    r"(?:verify|check|confirm|ensure|make sure|double[- ]check|test|validate)\b"
)


def purpose_unserved(parent: Task, question: str, option: Option) -> str | None:
    """A purpose of checking the model's words give a step that changes state, or ``None``:
    "Then cancel the order to verify that everything was done correctly" (run llm26, failed by
    both readers as nonsensical): cancelling checks nothing. A read may have that purpose
    ("fetch the ticket so I can check that it is closed")."""
    env, name = option.tool.split(".", 1)
    if ENVIRONMENTS[env].tool_specs()[name].kind is not ToolKind.WRITE:
        return None
    kept_words = parent.question.lower() if option.kept == len(parent.calls) else ""
    lowered = question.lower()
    for match in _CHECKING_PURPOSE.finditer(lowered):
        if kept_words.count(match.group()) < lowered.count(match.group()):
            return (
                f"the request gives {option.function}, which changes state, the purpose"
                f" {match.group()!r}: it checks nothing"
            )
    return None


#: a label that opens a sentence by numbering its step ("First step:", "Step 2:", "The first
#: step was to ...", run llm31); "change the
#: ticket from the first step: set ..." is a reference, not a label
_STEP_LABEL = re.compile(
    r"(?:^|[.!?;]\s+)(?:the\s+)?"
    r"(?:(?:first|second|third|fourth|fifth|next|last|final|\d+(?:st|nd|rd|th)?)\s+step"
    r"(?:\s*:|\s+(?:was|is|will\s+be)\b)"
    r"|step\s*\d+\s*[:.)])"
)


def other_words_copied(
    parent: Task, question: str, option: Option, offered: Sequence[Option]
) -> str | None:
    """Why the request is the words the prompt showed for another offered step, or ``None``:
    run llm103 chose a card's balance and wrote "then list every credit card registered with
    my travel account", the words shown for ``get_all_credit_cards`` (both readers)."""
    lowered = question.lower()
    before = parent.question.lower()
    own = (option.step_words(parent, option.fixed, verbaliser()) or "").lower()
    for other in offered:
        if other == option or not other.checked:
            continue
        words = (other.step_words(parent, other.fixed, verbaliser()) or "").lower()
        if words and words not in own and lowered.count(words) > before.count(words):
            return f"the request asks for another offered step ({words!r}), not {option.function}"
    return None


def step_label_added(parent: Task, question: str, option: Option) -> str | None:
    """A step label the model's words add ("... 'staff'. First step: show me the rows ...",
    run llm27, over a step that runs last), or ``None``: the label contradicts the order the
    calls run in, and both readers failed it."""
    before, after = _step_labels(parent.question), _step_labels(question)
    added = sorted((after - before).elements())
    if not added:
        return None
    return f"the request labels a step ({added[0]!r}) that code did not place there"


def _step_labels(text: str) -> Counter[str]:
    return Counter(match.group().strip(" .!?;") for match in _STEP_LABEL.finditer(text.lower()))


#: verbs that hand a result over rather than ask for another call ("get it and show it to me")
_PRESENTING = frozenset({"show", "tell", "give", "display", "print", "return", "report", "let"})


def action_unserved(parent: Task, question: str, option: Option) -> str | None:
    """More actions in the words deepen adds than the one step it adds, or ``None``: "...
    get the user id of the third name from the previous step and use it in a new request"
    (run llm31, failed by both readers): no call uses it. Read only where the request opens
    with the parent's, so the added words are known."""
    head = parent.question.rstrip()
    if option.kept < len(parent.calls) or not question.startswith(head):
        return None
    verbs = [
        verb
        for verb in clause_openers(question[len(head) :], acting=True)
        if verb not in _PRESENTING
    ]
    if len(verbs) <= 1:
        return None
    return (
        f"the words added for {option.function} ask for {len(verbs)} actions"
        f" ({', '.join(verbs)}), and the request adds one step"
    )


#: words that pick the extreme of a list ("the highest price"), and which extreme
_SUPERLATIVES = {
    **dict.fromkeys(("highest", "largest", "biggest", "greatest", "maximum", "max"), max),
    **dict.fromkeys(("lowest", "smallest", "least", "minimum", "min", "cheapest"), min),
}
#: a verb asked to act a second time ("draw another 6 prices", "check it again")
_AGAIN = re.compile(r"\b([a-z]+)\s+(?:(?:it|them|that)\s+)?(?:another|again|a second)\b")


def extreme_unserved(
    parent: Task, question: str, option: Option, arguments: dict[str, Any]
) -> str | None:
    """An extreme the model's words pick ("starting from the highest price") that the step's
    values are not, or ``None``: run llm32 started at the first of six prices, 36.12, where
    the highest was 47.12; both readers failed it. Words the parent already had are its own."""
    bound = option._bound_chain(parent, arguments)
    if bound is None:
        return None
    chain, outputs = bound
    said = set(_WORDS.findall(question.lower())) - set(_WORDS.findall(parent.question.lower()))
    picks = {_SUPERLATIVES[word] for word in said if word in _SUPERLATIVES}
    if not picks:
        return None
    lists = [
        [float(item) for item in leaf] for output in outputs[:-1] for leaf in _number_lists(output)
    ]
    values = [v for v in _scalars(chain[-1].arguments) if isinstance(v, int | float)]
    for pick in picks:
        if not any(float(v) == pick(numbers) for numbers in lists for v in values):
            word = next(w for w in said if _SUPERLATIVES.get(w) is pick)
            return f"the request asks for the {word} value, and {option.function} is not given it"
    return None


def _number_lists(value: Any) -> list[list[float]]:
    """Every list of plain numbers inside ``value``."""
    if isinstance(value, dict):
        return [found for item in value.values() for found in _number_lists(item)]
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
        if value and len(numbers) == len(value):
            return [numbers]
        return [found for item in value for found in _number_lists(item)]
    return []


def repeat_unserved(parent: Task, question: str, option: Option) -> str | None:
    """A second time the model's words ask a step for ("then draw another 6 random prices",
    run llm32) where the chain makes that call once, or ``None``."""
    chain_tools = Counter(call.tool for call in option.calls(parent, dict(option.fixed)))
    before = Counter(m.group(1) for m in _AGAIN.finditer(parent.question.lower()))
    for match in _AGAIN.finditer(question.lower()):
        verb = match.group(1)
        if before[verb]:
            continue
        asked = [tool for tool in chain_tools if stems(verb).keys() & tool_words(tool)]
        if asked and all(chain_tools[tool] < 2 for tool in asked):
            return f"the request asks to {match.group()!r}, and the chain makes that call once"
    return None


def source_unnamed(
    parent: Task, question: str, option: Option, arguments: dict[str, Any]
) -> str | None:
    """Why the request does not say where the step's earlier values come from as code would,
    or ``None``. The 1.5B model wrote "that quotient" over the product and "the result of the
    previous step" over the first step's: a reader then passes the wrong value. Where the
    model's words fail this, code's take their place, so strictness costs fluency only."""
    lowered = question.lower()
    # deepen keeps the parent's words, which may name a step already (a parent made by extend)
    before = parent.question.lower() if option.kept == len(parent.calls) else ""
    missing = [
        " or ".join(ways)
        for ways in sorted(option.sources(parent, arguments, verbaliser()))
        if all(lowered.count(way) <= before.count(way) for way in ways)
    ]
    if not missing:
        return None
    return f"the request does not say where the step's input comes from ({'; '.join(missing)})"


def sources_swapped(
    parent: Task, question: str, option: Option, arguments: dict[str, Any]
) -> str | None:
    """Why the request names the new step's earlier values in another order than code's words
    do, or ``None``: "divide the result of the first step by the result of the previous step"
    over a division of the second step's result by the first's (run llm109, the model's
    words) passes the wrong operand first."""
    step = option.step_refs(parent, arguments, verbaliser())
    if step is None:
        return None
    refs = step[1]
    named = [
        (ref.place, ref.meaning if ref.self_named else None)
        for ref in refs.values()
        if ref.where or ref.self_named
    ]
    places = [place for place, _ in named]
    if len(places) < 2 or len(set(places)) < len(places):
        return None
    code = (option.step_words(parent, arguments, verbaliser()) or "").lower()
    said = question.lower()
    if option.kept == len(parent.calls) and said.startswith(parent.question.lower()):
        said = said[len(parent.question) :]  # deepen: the parent's words come first

    def at(text: str, place: str, meaning: str | None) -> int:
        found = [text.find(way) for way in (place, meaning) if way is not None]
        return min((spot for spot in found if spot >= 0), default=-1)

    at_code = [at(code, place, meaning) for place, meaning in named]
    at_said = [at(said, place, meaning) for place, meaning in named]
    if min(at_code) < 0 or min(at_said) < 0:
        return None
    by_code = sorted(range(len(named)), key=lambda index: at_code[index])
    if by_code != sorted(range(len(named)), key=lambda index: at_said[index]):
        return f"the request names the step's inputs in another order ({' and '.join(places)})"
    return None


def dropped_value_kept(
    parent: Task, question: str, option: Option, arguments: dict[str, Any] | None = None
) -> str | None:
    """A value the parent's request states for a call broaden drops, and that neither a kept
    call nor the new step (its ``arguments``) uses, still in the new request: it asks for a
    step the calls no longer take."""
    from pipeline.evolve.novelty import stated_literals  # novelty imports prompts, then this

    kept = [call.arguments for call in parent.calls[: option.kept]] + [arguments or {}]
    used = {_key(leaf) for values in kept for leaf in _scalars(values)}
    dropped = {
        _key(leaf) for call in parent.calls[option.kept :] for leaf in _scalars(call.arguments)
    }
    for text, number in stated_literals(parent):
        key = _key(text if number is None else number)
        if key in dropped and key not in used and _states(question, text, number):
            return f"the request still states {text!r}, which only the dropped calls used"
    return None


def kept_value_dropped(parent: Task, question: str, option: Option) -> str | None:
    """A value the parent's request states for a call the new request keeps, no longer
    stated: "Open a ticket ... at priority 2, then bump that ticket to priority 4 and show it"
    broadened as "Open a ticket ... at priority 2; then list my tickets" (run llm79) still
    raises the ticket to 4, unasked."""
    from pipeline.evolve.novelty import stated_literals  # novelty imports prompts, then this

    kept = parent.model_copy(update={"calls": parent.calls[: option.kept]})
    said = question.lower()
    # the new step's own words name kept results by their values ("add the 12.5 feet in meters
    # and the 10 feet in meters"), which is no request for the calls that made them (run
    # llm109b: "convert 10 feet to meters" dropped)
    step = option.step_words(parent, dict(option.fixed), verbaliser()) if option.checked else None
    if step:
        said = said.replace(step.lower(), " ")
    bound = option.step_refs(parent, dict(option.fixed), verbaliser()) if option.checked else None
    for ref in bound[1].values() if bound is not None else ():
        # code's words may name them together ("add the two results"), the model's apart
        if ref.self_named and ref.meaning:
            said = said.replace(ref.meaning.lower(), " ")
    for text, number in stated_literals(kept):
        # case aside: "place a buy order" still asks for the order type 'Buy'
        if not _states(said, text.lower(), number):
            callers = [
                call.function
                for call in kept.calls
                if _key(text if number is None else number)
                in {_key(leaf) for leaf in _scalars(call.arguments)}
            ]
            which = f" ({', '.join(callers)})" if callers else ""
            return f"the request no longer states {text!r}, which a call it keeps{which} passes"
    return None


def _key(value: Any) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    return repr(value)


def _stated(value: Any, question: str) -> bool:
    if isinstance(value, str):
        return value in question
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) in numbers_in(question)
    return False


def _states(question: str, text: str, number: float | None) -> bool:
    if number is not None:
        return number in numbers_in(question)
    return text in question


def _scalars(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _scalars(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _scalars(item)]
    return [value]


#: marks of a value left to be filled in: a slot, a word that says so (an ellipsis is not one:
#: "See you soon..." is a real message)
_PLACEHOLDER_MARK = re.compile(
    r"<[^<>]{1,40}>|\[[^\[\]]{0,40}\]|\{[^{}]{0,40}\}"
    r"|\b(?:placeholder|lorem ipsum|todo|tbd|xxx+|your (?:value|text) here)\b"
)
#: words that may open a stand-in named after its own field ("New title for ...")
_STAND_IN_OPENERS = frozenset(
    {"new", "updated", "some", "sample", "example", "my", "your", "a", "an", "the", "another"}
)


def placeholder_value(option: Option, arguments: dict[str, Any]) -> str | None:
    """Why a value the model filled in for a free argument is a stand-in rather than a value a
    person would give, or ``None``: a slot, a word that says so, or a text named
    after its own field ("New title for laptop battery swelling" as a ticket's title, run
    llm25: readers failed it as under-specified, since no user would ask for that title)."""
    for name in option.free:
        for field, text in _texts(name, arguments.get(name)):
            lowered = text.lower()
            mark = _PLACEHOLDER_MARK.search(lowered)
            if mark is not None:
                return f"the value for {field} is a placeholder ({mark.group()!r} in {text!r})"
            words = _WORDS.findall(lowered)
            named = _WORDS.findall(field.replace("_", " ").lower())
            start = 1 if words[:1] and words[0] in _STAND_IN_OPENERS else 0
            if named and words[start : start + len(named)] == named:
                return f"the value for {field} is named after its field ({text!r})"
    return None


#: words that ask to take back what was done ("cancel my flight", "get my refund")
_UNDO = re.compile(
    r"\b(?:cancel\w*|refund\w*|undo\w*|revert\w*|reverse\w*|take (?:it |them )?back"
    r"|delete\w*|remove\w*|unfollow\w*|unsubscribe\w*)\b"
)


def undoing_text(parent: Task, option: Option, arguments: dict[str, Any]) -> str | None:
    """A text the model wrote for a step that asks to take back a write the request makes,
    or ``None``: "I need to cancel my flight and get my refund." sent to support about the
    flight the request had just booked (run llm32, failed by both readers). A request that
    itself speaks of undoing may say so in its texts too."""
    kept = parent.calls[: option.kept]
    if not any(_spec(call.tool).kind is ToolKind.WRITE for call in kept):
        return None
    asked = {match.group() for match in _UNDO.finditer(parent.question.lower())}
    for name in option.free:
        for field, text in _texts(name, arguments.get(name)):
            for match in _UNDO.finditer(text.lower()):
                if match.group() not in asked and len(text.split()) > 2:
                    return (
                        f"the text for {field} asks to take back what the request does"
                        f" ({match.group()!r} in {text!r})"
                    )
    return None


def removes_what_was_made(parent: Task, option: Option, arguments: dict[str, Any]) -> str | None:
    """The step removes an entry a kept call of the request added, or ``None``: "book a
    flight, send support a message about it, then cancel that booking" (run llm109, both
    readers: nonsensical) takes back the request's own write, though the support message left
    the state changed."""
    chain = option.calls(parent, arguments)
    traces, _ = trace_calls(parent.envs, parent.initial_config, chain)
    added = {
        line[2:].split(":", 1)[0]
        for trace in traces[:-1]
        for line in trace.effect
        if line.startswith("+ ")
    }
    for line in traces[-1].effect:
        path = line[2:].split(":", 1)[0]
        if line.startswith("- ") and path in added:
            return f"{option.function} removes what the request itself made ({path})"
    return None


def _texts(field: str, value: Any) -> list[tuple[str, str]]:
    """Every text inside a free value, each with the name of the field that holds it (the
    key inside an ``updates`` object, the argument's own name otherwise)."""
    if isinstance(value, str):
        return [(field, value)]
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in _texts(str(key), item)]
    if isinstance(value, list):
        return [pair for item in value for pair in _texts(field, item)]
    return []
