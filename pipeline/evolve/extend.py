"""The ``extend`` operator: append a call that consumes an earlier call's output.

Bindings follow the tool graph (:mod:`pipeline.toolgraph`): a parameter takes an earlier
output only when the output field means the same thing (same semantic type, or a documented
widening between specific types) — never by JSON type alone, so a percent change is never
deposited as money and a ticket status never becomes a password. Every other required
parameter takes a value the tool itself offers (an enum choice); a tool whose parameters cannot
all be filled that way is not a candidate. The call is run on the state the task ends in and
kept when it succeeds, changes something or tells something new, and truly consumes the
earlier output (the inferred bindings, which are type-aware too, say so).

What the call may do with the value follows from the state and the types, never from tool
names: a choice the tool offers (a format) is narrowed to what earlier steps showed, and a
qualifier (a text's format) is the one the step that produced the text reported; the call acts
on the entity its value names and never creates a namesake (a new file or ticket named after
an existing one); it never makes a user from an earlier step the session's user (a login);
and the session's own user (a post's author, a ticket's opener, when that is who is acting)
is not a user to act on.

The question is then written anew from the whole chain by the verbaliser, so the added step
refers to the value it consumes by its meaning and its step ("the zip code from the second
step") in a request whose steps are spelled out in order — an appended fixed sentence read
badly and left the reader to map steps to a free-form question.
"""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from pipeline.dependencies import bindable, infer_dependencies
from pipeline.envs import ENVIRONMENTS, ToolError, ToolKind, ToolSpec, resolve_tool
from pipeline.evolve.verbalise import Verbaliser
from pipeline.jsontree import leaves, scalars
from pipeline.models import Call, Task
from pipeline.quantities import Arithmetic
from pipeline.replay import build_envs, replay, run_call, same_outcome_state
from pipeline.semantics import RENAMEABLE_TYPES, Sem
from pipeline.toolgraph import NOT_GENERATED, QUALIFIERS, conversion_tools, generative_edge
from pipeline.validate.grounding import schema_offers

MAX_TRIES = 40


@dataclass(frozen=True)
class Produced:
    """One value an earlier call returned, with its meaning."""

    value: Any
    sem: Sem | None


#: types that name a user: a value of one of these that is the session's own user (a field at
#: the top of its environment's state, see :func:`session_values`) is never acted on as if it
#: were someone else, and a call never makes a user from an earlier step the session's user
IDENTITY_TYPES: frozenset[Sem] = frozenset({Sem.USER_NAME, Sem.USER_ID, Sem.PERSON_NAME, Sem.EMAIL})

#: types whose sameness says nothing about meaning (a door and a mode are both an option), so
#: an observed value of one does not narrow a parameter's choices
_UNSPECIFIC_TYPES: frozenset[Sem] = NOT_GENERATED | {Sem.NUMBER, Sem.FIELD_VALUE}


_NAMED_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _leaves(value: Any, path: str = "", named: bool = True) -> Iterator[tuple[str, Any]]:
    """Scalars with their paths; with ``named``, only those reached through named keys: a
    value under a data key ("2301877", "Alice") has no name a sentence could use."""
    return leaves(value, path, _NAMED_KEY.fullmatch if named else None)


def session_values(state: dict[str, dict[str, Any]]) -> frozenset[str]:
    """The session's own settings: the text fields at the top of each environment's state.

    Entities (files, tickets, posts, users) live in collections; what sits at the top of a
    state describes the session itself — who is logged in or acting (``current_user``, the
    account's ``username``), its password. A result that names one of these names the acting
    user (a post's author is the user who posted it, a ticket's ``created_by`` its opener)."""
    return frozenset(
        value
        for env_state in state.values()
        for value in env_state.values()
        if isinstance(value, str) and bindable(value)
    )


def produced_values(
    task: Task,
    outputs: list[Any],
    session: frozenset[str] = frozenset(),
    *,
    after_all: bool = False,
) -> list[Produced]:
    """Every bindable value the task's calls return, typed by its result field; a value that
    names the session's own user (see :func:`session_values`) is left out: following,
    messaging or looking up "the author of my own post" acts on oneself, not on a user.

    So is an entry of a list a write returns that the state held before the task (the watch
    list ``add_to_watchlist`` echoes back, run llm83): the request asked for the write, not to
    see that list, and "the first stock listed in the previous step" points at something the
    user never saw asked for. The entries a write makes (``generate_ids``) stay.

    So is a value a later call of the task changed in the state (see :func:`_outdated`), and,
    for a step ``after_all`` the task's calls (deepen, whose request keeps the user's words), a
    plain number a call of the task already took: "Add 3.5 and 4.25, then multiply that sum
    by 2. Then subtract 16 from the sum" goes back to a step the request had moved on from
    (run llm113, one reader: which number?)."""
    found: list[Produced] = []
    seen: set[tuple[str, Any]] = set()
    held = {repr(value) for value in scalars(task.initial_config)}
    restated = _restated(task)
    outdated = _outdated(task)
    taken = _numbers_taken(task) if after_all else set()
    for index, (call, output) in enumerate(zip(task.calls, outputs)):
        spec = resolve_tool(call.tool)[1]
        for path, leaf in _leaves(output):
            if not bindable(leaf) or (index, repr(leaf)) in outdated:
                continue
            if spec.kind is ToolKind.WRITE and _in_list(path) and repr(leaf) in held:
                continue
            if repr(leaf) in restated and spec.arithmetic is not Arithmetic.KEEP:
                continue
            sem = spec.result_type(path)
            if sem in IDENTITY_TYPES and leaf in session:
                continue
            if sem is Sem.NUMBER and (f"{call.id}.{path}" if path else call.id) in taken:
                continue
            if sem in (Sem.NUMBER, Sem.DATE) and _arbitrary_pick(call, spec, output, path):
                continue
            key = (repr(leaf), sem.value if sem else "")
            if key not in seen:
                seen.add(key)
                found.append(Produced(leaf, sem))
    return found


def _arbitrary_pick(call: Call, spec: ToolSpec, output: Any, path: str) -> bool:
    """Whether ``path`` picks a number or date a random draw returned by its position alone:
    "the first value" of 12 random scores is one more random number, and a later step that
    takes it ("draw 12 decimals between the first value from the previous step and 100", "a
    geometric sequence starting at the first value") has no purpose (run llm131, both
    readers). The ends of a list the call was asked to sort are its least and greatest; an id
    drawn to be handed out, or the first of a shuffled list, is picked for a purpose."""
    if not any(sem is Sem.SEED for _, sem in spec.result_types):
        return False
    tokens = path.split(".")
    position = next((i for i, token in enumerate(tokens) if token.isdigit()), None)
    if position is None:
        return False
    if call.arguments.get("sort") is not True or position != len(tokens) - 1:
        return True
    listed: Any = output
    for token in tokens[:position]:
        listed = listed.get(token) if isinstance(listed, dict) else None
    index = int(tokens[position])
    return not (isinstance(listed, list) and index in (0, len(listed) - 1))


def _numbers_taken(task: Task) -> set[str]:
    """The sources (``s1.result``) of each plain number a call of the task took."""
    found: set[str] = set()
    for call in task.calls:
        types = resolve_tool(call.tool)[1].param_types
        found.update(
            source
            for slot, source in call.bindings.items()
            if types.get(slot.partition(".")[0]) is Sem.NUMBER
        )
    return found


def _outdated(task: Task) -> set[tuple[int, str]]:
    """``(call index, repr(value))`` for each value the state held right after that call and
    no longer holds after the last: a later write changed it. A step that takes it works on
    what was there before the change ("convert the JSON text to CSV" with the text from
    before the request set '2.stock' to 0; both llm107 readers)."""
    envs = build_envs(task.envs, task.initial_config)
    held_after: list[set[str]] = []
    for call in task.calls:
        run_call(envs, call)
        state = {name: env.snapshot() for name, env in envs.items()}
        held_after.append({repr(value) for value in scalars(state)})
    if not held_after:
        return set()
    final = held_after[-1]
    return {(index, value) for index, held in enumerate(held_after) for value in held - final}


def _restated(task: Task) -> set[str]:
    """Values a call of the task rounded or otherwise restated (a tool whose result keeps its
    one operand's dimension): the request wanted the restatement, so a step that takes the
    value as it was ("round the mean to 1 decimal place; then divide the mean by 4", one
    llm101 reader) makes the rounding pointless."""
    found: set[str] = set()
    for call in task.calls:
        spec = resolve_tool(call.tool)[1]
        if spec.arithmetic is not Arithmetic.KEEP:
            continue
        found.update(
            repr(value)
            for name, value in call.arguments.items()
            if spec.param_types.get(name) is Sem.NUMBER
        )
    return found


def _in_list(path: str) -> bool:
    return any(token.isdigit() for token in path.split("."))


def _enum_choices(schema: dict[str, Any]) -> list[Any]:
    choices = list(schema.get("enum", []))
    for branch in schema.get("anyOf", []):
        if isinstance(branch, dict):
            choices += branch.get("enum", [])
    return choices


def _argument_options(
    qualified: str, spec: ToolSpec, produced: list[Produced]
) -> list[list[tuple[str, Any]]]:
    """For each required parameter, its (name, value) choices; empty if one has none or no
    parameter takes an earlier output.

    A parameter with a fixed set of choices (an enum), for which an earlier step returned
    values of its very type that the set allows, chooses among those observed values only: the
    format of a document is the format it was loaded with, never another of the formats the
    tool offers. Types whose sameness says nothing (any option, flag or status) do not narrow.
    """
    options: list[list[tuple[str, Any]]] = []
    consumes = False
    for name in spec.parameters.get("required", []):
        schema = spec.parameters["properties"][name]
        wanted = spec.param_types.get(name)
        bound = [
            p.value
            for p in produced
            if generative_edge(p.sem, wanted, qualified) and fits_schema(schema, p)
        ]
        consumes = consumes or bool(bound)
        offered = [v for v in _enum_choices(schema) if schema_offers(schema, v)]
        observed = [
            p.value
            for p in produced
            if wanted is not None
            and p.sem is wanted
            and wanted not in _UNSPECIFIC_TYPES
            and p.value in offered
        ]
        if observed:  # the tool's other choices would be guesses
            offered = [v for v in offered if v in observed]
        choices = bound[:6] + [v for v in offered if v not in bound]
        if not choices:
            return []
        options.append([(name, value) for value in choices[:8]])
    return options if consumes else []


def fits_schema(schema: dict[str, Any], produced: Produced) -> bool:
    value = produced.value
    kind = schema.get("type")
    if "anyOf" in schema:
        return any(fits_schema(branch, produced) for branch in schema["anyOf"])
    if "enum" in schema:
        return value in schema["enum"]
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return False


def extend(task: Task, rng: random.Random, verbaliser: Verbaliser) -> Task | None:
    """A copy of ``task`` with one more step that uses an earlier output, or ``None``."""
    for extended in extensions(task, rng):
        return _reworded(extended, task, verbaliser)
    return None


def extensions(
    task: Task, rng: random.Random, max_tries: int = MAX_TRIES, *, after_all: bool = True
) -> Iterator[Task]:
    """``task`` with one more step that uses an earlier output, one candidate step after
    another (in an order ``rng`` draws), each run and checked; the question is the parent's."""
    parent = replay(task)
    if not parent.ok:
        return
    outputs = [outcome.result for outcome in parent.outcomes]
    produced = produced_values(
        task, outputs, session_values(parent.final_state), after_all=after_all
    )
    tools = [
        (env_name, spec)
        for env_name in task.envs
        for spec in ENVIRONMENTS[env_name].tool_specs().values()
    ]
    rng.shuffle(tools)
    tries = 0
    for env_name, spec in tools:
        options = _argument_options(f"{env_name}.{spec.name}", spec, produced)
        if not options:
            continue
        combos = list(itertools.islice(itertools.product(*options), 12))
        rng.shuffle(combos)
        for combo in combos[:3]:
            tries += 1
            if tries > max_tries:
                return
            candidate = _try(task, parent.final_state, outputs, env_name, spec, dict(combo))
            if candidate is not None:
                yield candidate


def nothing_new(
    result: Any, arguments: dict[str, Any], earlier: list[Any], stated: list[Call]
) -> bool:
    """Whether every value a read returns was already known: an input of this or an earlier
    call, or an earlier output. JSON texts count by content, so flattening what step 1 had
    unflattened (the user's own text back) or re-flattening with the keys sorted is no news.
    An empty text or list is none either: JSON text parsed as CSV comes back as ``[]`` (run
    llm31, failed by both readers)."""
    known = [v for _, v in _leaves(arguments, named=False)]
    known += [v for call in stated for _, v in _leaves(call.arguments, named=False)]
    known += [v for out in earlier for _, v in _leaves(out, named=False)]
    # the entries of a JSON text already seen are no news either: parsing the document just
    # shown into structured data (run llm107b, one reader: "tacked on")
    known += [leaf for v in list(known) for _, leaf in _leaves(_parsed(v), named=False)]
    keys = {_content_key(v) for v in known} | _EMPTY_KEYS
    return all(_content_key(v) in keys for _, v in _leaves(result, named=False))


#: content keys of an empty text, list or object (as a value or as JSON text)
_EMPTY_KEYS = frozenset({repr(""), "[]", "{}", repr([]), repr({})})


def _parsed(value: Any) -> Any:
    """A JSON object or array written as text, parsed; ``None`` for anything else."""
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return None


def _content_key(value: Any) -> str:
    if _is_number(value):
        return repr(float(value))
    if isinstance(value, str) and value.lstrip()[:1] in ("{", "["):
        try:
            return json.dumps(json.loads(value), sort_keys=True)
        except ValueError:
            pass
    return repr(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _try(
    task: Task,
    final_state: dict[str, dict[str, Any]],
    outputs: list[Any],
    env_name: str,
    spec: ToolSpec,
    arguments: dict[str, Any],
) -> Task | None:
    last = task.calls[-1]
    if last.tool == f"{env_name}.{spec.name}" and last.arguments == arguments:
        return None  # the same call twice in a row is never a useful step
    if any(call.env == env_name and resolve_tool(call.tool)[1].ends_session for call in task.calls):
        return None  # acting in a service the user logged out of is no one's request
    envs = build_envs(task.envs, final_state)
    try:
        result = envs[env_name].invoke(spec.name, arguments)
    except ToolError:
        return None
    if spec.kind is ToolKind.READ and nothing_new(result, arguments, outputs, task.calls):
        return None  # e.g. converting USD to USD: a step that tells the user nothing
    before, after = final_state[env_name], envs[env_name].snapshot()
    if spec.kind is ToolKind.WRITE and after == before:
        return None  # a write that changes nothing would be redundant
    new = Call(id=f"s{len(task.calls) + 1}", tool=f"{env_name}.{spec.name}", arguments=arguments)
    inferred = infer_dependencies(task.envs, task.initial_config, [*task.calls, new], task.question)
    added = inferred[-1]
    if not added.bindings:
        return None  # it must consume an earlier output
    taken = [(slot, _slot_value(arguments, slot)) for slot in added.bindings]
    names = [v for slot, v in taken if spec.param_types.get(slot.split(".")[0]) in RENAMEABLE_TYPES]
    if _creates_named(before, after, names):
        return None  # a new file or ticket named after an existing one acts on nothing
    users = [v for slot, v in taken if spec.param_types.get(slot.split(".")[0]) in IDENTITY_TYPES]
    if _becomes_session_user(before, after, users):
        return None  # logging in as a user from an earlier step is not acting on that user
    if not _qualified_by_source(spec, arguments, added.bindings, task.calls, outputs):
        return None  # a document's format is the one it came with, never a guess
    if len(set(added.bindings.values())) < len(added.bindings):
        return None  # one value passed twice ("add x and x") is not a request a user makes
    if _mixes_file_kinds(spec, arguments):
        return None  # comparing a text file with a JPEG line by line is no one's request
    if _combines_with_its_own_source(inferred, added):
        return None  # adding a total to a value it already holds counts that value twice
    if spec.kind is ToolKind.WRITE and any(
        _picked_by_position(source) for source in added.bindings.values()
    ):
        return None  # overwriting or deleting "the second file listed" is no one's request
    if spec.kind is ToolKind.WRITE and _undoes_a_step(task, env_name, after):
        return None  # adding a stock and taking it off again leaves nothing done
    tools = {call.id: call.tool for call in task.calls}
    if added.tool in conversion_tools() and any(
        tools.get(source.split(".")[0]) in conversion_tools() for source in added.bindings.values()
    ):
        return None  # converting a converted value back is a round trip, not a request
    return task.model_copy(update={"calls": [*task.calls, added]})


def _mixes_file_kinds(spec: ToolSpec, arguments: dict[str, Any]) -> bool:
    """Whether two file names the call takes have different extensions (``notes.txt`` and
    ``photo.jpg``): tools that take two files compare or join them, which needs one kind."""
    kinds = {
        PurePosixPath(value).suffix.lower()
        for name, value in arguments.items()
        if spec.param_types.get(name) is Sem.FILE_NAME and isinstance(value, str)
    }
    return len(kinds) > 1


def _combines_with_its_own_source(calls: list[Call], added: Call) -> bool:
    """Whether ``added`` takes two values where one was computed from the other's step: adding
    a rounded quotient to the quotient, or a weight to a total that already includes it."""
    position = {call.id: index for index, call in enumerate(calls)}
    ancestors: list[set[str]] = []
    for call in calls:
        found = set(call.depends_on)
        for parent in call.depends_on:
            found |= ancestors[position[parent]]
        ancestors.append(found)
    producers = {source.split(".", 1)[0] for source in added.bindings.values()}
    return any(p in ancestors[position[q]] for p in producers for q in producers if p != q)


def _picked_by_position(source: str) -> bool:
    """Whether a binding's source is an element of a returned list (``s1.names.1``)."""
    return any(part.isdigit() for part in source.split(".")[1:])


def _undoes_a_step(task: Task, env_name: str, after: dict[str, Any]) -> bool:
    """Whether the environment ends as it was before one of the task's own writes to it: the
    new step takes back what an earlier one did."""
    envs = build_envs(task.envs, task.initial_config)
    for call in task.calls:
        if call.env != env_name:
            run_call(envs, call)
            continue
        before = envs[env_name].snapshot()
        run_call(envs, call)
        changed = envs[env_name].snapshot() != before
        if changed and same_outcome_state({env_name: before}, {env_name: after}):
            return True
    return False


def _slot_value(arguments: dict[str, Any], slot: str) -> Any:
    """The value in an argument slot: ``name`` or ``name.index`` for a list element."""
    name, _, index = slot.partition(".")
    value = arguments.get(name)
    if index and isinstance(value, list) and index.isdigit() and int(index) < len(value):
        return value[int(index)]
    return value


def _added_entities(before: Any, after: Any) -> Iterator[tuple[str | None, Any]]:
    """What a state change added: each new mapping key with its value, and each new record (a
    mapping) in a list; an entity that was there before and changed is walked into."""
    if isinstance(before, dict) and isinstance(after, dict):
        for key, value in after.items():
            if key not in before:
                yield key, value
            else:
                yield from _added_entities(before[key], value)
    elif isinstance(before, list) and isinstance(after, list):
        if len(before) == len(after):
            for old, new in zip(before, after):
                yield from _added_entities(old, new)
            return
        remaining = list(before)
        for item in after:
            if item in remaining:
                remaining.remove(item)
            elif isinstance(item, dict):
                yield None, item


def _creates_named(before: Any, after: Any, names: list[Any]) -> bool:
    """Whether the change adds an entity keyed by, or holding, one of ``names``: a new file
    named after an entry of a listing, a new ticket titled like an existing one. An extension
    acts on the entity its value names; it does not make a namesake."""
    wanted = {name for name in names if isinstance(name, str)}
    if not wanted:
        return False
    for key, entity in _added_entities(before, after):
        if key in wanted:
            return True
        if any(leaf in wanted for _, leaf in _leaves(entity, named=False)):
            return True
    return False


def _becomes_session_user(before: dict[str, Any], after: dict[str, Any], users: list[Any]) -> bool:
    """Whether the change makes a user taken from an earlier step the session's own user: a
    field at the top of the state (where the session lives, see :func:`session_values`) now
    holds it. That is logging in as someone else, never something done *to* that user."""
    return any(
        not isinstance(value, dict | list) and value in users and before.get(key) != value
        for key, value in after.items()
    )


def _qualified_by_source(
    spec: ToolSpec,
    arguments: dict[str, Any],
    bindings: dict[str, str],
    calls: list[Call],
    outputs: list[Any],
) -> bool:
    """Whether each qualifier the call passes (a format, a currency) is the one the step that
    produced the qualified value (the text, the amount) reported with it. A step that reports
    none leaves the qualifier unknown, and the call is not made: parsing a loaded Markdown
    table as CSV, or JSON text as key/value, reads garbage."""
    steps = {call.id: position for position, call in enumerate(calls)}
    for slot, source in bindings.items():
        sem = spec.param_types.get(slot.split(".")[0])
        qualifier = QUALIFIERS.get(sem) if sem is not None else None
        producer = steps.get(source.split(".")[0])
        if qualifier is None or producer is None:
            continue
        producer_spec = resolve_tool(calls[producer].tool)[1]
        reported = [
            leaf
            for path, leaf in _leaves(outputs[producer], named=False)
            if producer_spec.result_type(path) is qualifier
        ]
        for name, param_sem in spec.param_types.items():
            if param_sem is qualifier and name in arguments and arguments[name] not in reported:
                return False
    return True


def _reworded(extended: Task, parent: Task, verbaliser: Verbaliser) -> Task | None:
    calls = extended.calls
    # the outputs let a list taken whole from an earlier step read as that list
    outputs = [outcome.result for outcome in replay(extended).outcomes]
    # the verbaliser states every literal; the dependencies are re-inferred against the new
    # question, whose wording no longer mentions the values the steps pass along
    try:
        question = verbaliser.question(calls, outputs)
    except (KeyError, ValueError):
        return None
    calls = infer_dependencies(extended.envs, extended.initial_config, calls, question)
    question = verbaliser.question(calls, outputs)
    return parent.derive("extend", question=question, calls=calls)
