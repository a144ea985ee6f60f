"""What every environment in ``ENVIRONMENTS`` must do; a new environment is covered by being listed.

Each environment's own file keeps what is particular to it: exact answers, upstream quirks and
the wording of its refusals. The checks here are the ones those files used to repeat: seeds that
replay, validate and resume; documented tools; read and write tools that behave as declared;
refusals that change nothing and echo nothing hostile; initial states that are checked.

Tool behaviour is observed with *probes*: each tool called in every state the seeds reach, with
arguments put together from the values the seeds pass (to that parameter, to a parameter of the
same name or of the same semantic type) and from its schema (enum members, defaults, one value per
JSON type). No randomness: the same probes every run.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from pydantic import JsonValue

from pipeline.envs import ENVIRONMENTS, Environment, SeededState, ToolError, ToolKind
from pipeline.envs.base import MAX_RNG_WORDS
from pipeline.jsonl import read_records
from pipeline.models import Task
from pipeline.replay import replay
from pipeline.seeds import SEED_DIR, seed_files
from pipeline.validate.chain import validate_task

NAMES = list(ENVIRONMENTS)
BFCL_NAMES = [name for name, cls in ENVIRONMENTS.items() if cls.bfcl_class is not None]
MIN_SEEDS = 12
CALLS_PER_SEED = (2, 5)
MIN_DISTINCT_START_STATES = 5  # for an environment that has state at all
VALUES_PER_PARAMETER = 4  # candidate values a probe tries for one parameter
HOSTILE_TEXT = "x" * 10_000_000  # ten times the largest text any environment keeps
HOSTILE_NUMBER = 10**100
HOSTILE_LENGTH = 200_000  # elements of a hostile list
CONTAINED = 100_000  # characters a hostile call may add to a result or a state at most
SHORT_MESSAGE = 500  # characters of a refusal of a hostile value at most: it is not echoed


def seeds_of(name: str) -> list[Task]:
    path = SEED_DIR / f"{name}.jsonl"
    return list(read_records(path, Task)) if path.exists() else []


SEEDS = [(name, task) for name in NAMES for task in seeds_of(name)]


def start_state(name: str, task: Task) -> dict[str, Any] | None:
    return task.initial_config.get(name)


def build(name: str, state: dict[str, Any] | None = None) -> Environment[Any]:
    return ENVIRONMENTS[name].from_state(copy.deepcopy(state))


def without_generator(state: dict[str, Any]) -> dict[str, Any]:
    """The state apart from the generator's position: a read may draw a random value."""
    return {key: value for key, value in state.items() if key != "rng_words"}


def json_size(value: Any) -> int:
    return len(json.dumps(value))


# ----- probes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One tool call in one state, as observed."""

    tool: str
    arguments: dict[str, JsonValue]
    state: dict[str, Any]
    changed: bool  # anything but the generator's position changed
    untouched: bool  # nothing changed at all, the generator included
    growth: int  # characters the state's JSON gained
    result: JsonValue = None
    error: str | None = None  # the ToolError's message
    crash: str | None = None  # any other exception: a bug

    @property
    def ok(self) -> bool:
        return self.error is None and self.crash is None

    def describe(self) -> str:
        return f"{self.tool}({json.dumps(self.arguments)[:200]})"


def call(name: str, state: dict[str, Any], tool: str, arguments: dict[str, Any]) -> Outcome:
    env = build(name, state)
    before = env.snapshot()
    result: JsonValue = None
    error = crash = None
    try:
        result = env.invoke(tool, arguments)
    except ToolError as refusal:
        error = str(refusal)
    except Exception as failure:  # noqa: BLE001 - reported by the test that sees it
        crash = f"{type(failure).__name__}: {str(failure)[:300]}"
    after = env.snapshot()
    return Outcome(
        tool,
        arguments,
        state,
        changed=without_generator(after) != without_generator(before),
        untouched=after == before,
        growth=json_size(after) - json_size(before),
        result=result,
        error=error,
        crash=crash,
    )


def reached_states(name: str) -> list[dict[str, Any]]:
    """Every distinct state the seeds pass through, start and end included."""
    states: dict[str, dict[str, Any]] = {}
    for task in seeds_of(name):
        env = build(name, start_state(name, task))
        states.setdefault(json.dumps(env.snapshot(), sort_keys=True), env.snapshot())
        for step in task.calls:
            with contextlib.suppress(ToolError):
                env.invoke(step.function, step.arguments)
            states.setdefault(json.dumps(env.snapshot(), sort_keys=True), env.snapshot())
    return list(states.values())


def schema_samples(schema: dict[str, Any]) -> list[JsonValue]:
    if "enum" in schema:
        return list(schema["enum"])
    samples: list[JsonValue] = [schema["default"]] if "default" in schema else []
    for option in schema.get("anyOf", []):
        samples += schema_samples(option)
    by_type: dict[str, list[JsonValue]] = {
        "integer": [1, 2],
        "number": [1.5],
        "boolean": [True, False],
        "string": ["x"],
        "array": [[]],
        "object": [{}],
    }
    return samples + by_type.get(schema.get("type", ""), [])


def argument_sets(name: str) -> dict[str, list[dict[str, JsonValue]]]:
    """For each tool, the argument sets its probes try (see the module's docstring)."""
    cls = ENVIRONMENTS[name]
    specs = cls.tool_specs()
    by_tool: dict[tuple[str, str], list[JsonValue]] = {}
    by_name: dict[str, list[JsonValue]] = {}
    by_type: dict[Any, list[JsonValue]] = {}
    for task in seeds_of(name):
        for step in task.calls:
            sem_types = specs[step.function].param_types
            for param, value in step.arguments.items():
                by_tool.setdefault((step.function, param), []).append(value)
                by_name.setdefault(param, []).append(value)
                if param in sem_types:
                    by_type.setdefault(sem_types[param], []).append(value)
    sets: dict[str, list[dict[str, JsonValue]]] = {}
    for tool, spec in specs.items():
        candidates: dict[str, list[JsonValue]] = {}
        for param, schema in spec.parameters["properties"].items():
            pool = by_tool.get((tool, param), []) + by_name.get(param, [])
            pool += by_type.get(spec.param_types.get(param), []) + schema_samples(schema)
            distinct: list[JsonValue] = []
            for value in pool:
                if value not in distinct:
                    distinct.append(value)
            candidates[param] = distinct[:VALUES_PER_PARAMETER] or [None]
        sets[tool] = _combinations(candidates, spec.parameters["required"])
    return sets


def _combinations(
    candidates: dict[str, list[JsonValue]], required: list[str]
) -> list[dict[str, JsonValue]]:
    """The i-th candidate of every parameter together, with and without the optional ones."""
    rounds = max((len(values) for values in candidates.values()), default=1)
    combos: list[dict[str, JsonValue]] = []
    for index in range(rounds):
        full = {param: values[index % len(values)] for param, values in candidates.items()}
        for arguments in (full, {param: full[param] for param in required}):
            if arguments not in combos:
                combos.append(arguments)
    return combos


@cache
def probes(name: str) -> tuple[Outcome, ...]:
    sets = argument_sets(name)
    return tuple(
        call(name, state, tool, arguments)
        for state in reached_states(name)
        for tool, combos in sets.items()
        for arguments in combos
    )


def first_success(name: str) -> dict[str, Outcome]:
    found: dict[str, Outcome] = {}
    for outcome in probes(name):
        if outcome.ok:
            found.setdefault(outcome.tool, outcome)
    return found


def hostile_versions(value: JsonValue) -> Iterator[tuple[str, JsonValue]]:
    yield "a 10 MB text", HOSTILE_TEXT
    yield "a 100-digit number", HOSTILE_NUMBER
    element = value[0] if isinstance(value, list) and value else value
    yield f"a list of {HOSTILE_LENGTH} elements", [element] * HOSTILE_LENGTH


# ----- seeds -----------------------------------------------------------------------------------


def test_every_seed_file_belongs_to_an_environment() -> None:
    assert {path.stem for path in seed_files()} == set(ENVIRONMENTS)


@pytest.mark.parametrize("name", NAMES)
def test_enough_seeds_of_the_right_shape(name: str) -> None:
    seeds = seeds_of(name)
    assert len(seeds) >= MIN_SEEDS, f"{name} has {len(seeds)} seeds"
    low, high = CALLS_PER_SEED
    for task in seeds:
        assert task.id == task.content_id(), task.id
        assert task.category == name and task.envs == [name], task.id
        assert low <= len(task.calls) <= high, (task.id, len(task.calls))
        assert any(step.depends_on for step in task.calls), f"{task.id} has no dependency"
    if ENVIRONMENTS[name].state_model.model_fields:
        starts = {json.dumps(start_state(name, task), sort_keys=True) for task in seeds}
        assert len(starts) >= MIN_DISTINCT_START_STATES, f"{name}: {len(starts)} start states"


@pytest.mark.parametrize(("name", "task"), SEEDS, ids=[f"{n}-{t.id}" for n, t in SEEDS])
def test_seed_replays_the_same_twice_and_validates(name: str, task: Task) -> None:
    first, second = replay(task), replay(task)
    assert first.ok, [f"{outcome.call_id}: {outcome.error}" for outcome in first.errors]
    assert first.final_state == second.final_state
    assert [o.result for o in first.outcomes] == [o.result for o in second.outcomes]
    json.dumps(first.final_state, allow_nan=False)
    verdict = validate_task(task)
    assert verdict.accepted, verdict.rejection


@pytest.mark.parametrize("name", NAMES)
def test_a_snapshot_taken_after_any_call_resumes_the_same(name: str) -> None:
    for task in seeds_of(name):
        straight = build(name, start_state(name, task))
        results = [straight.invoke(step.function, step.arguments) for step in task.calls]
        for cut in range(1, len(task.calls)):
            first = build(name, start_state(name, task))
            resumed_results = [first.invoke(s.function, s.arguments) for s in task.calls[:cut]]
            resumed = build(name, first.snapshot())
            resumed_results += [resumed.invoke(s.function, s.arguments) for s in task.calls[cut:]]
            assert resumed_results == results, (task.id, cut)
            assert resumed.snapshot() == straight.snapshot(), (task.id, cut)


def exercise(env: Environment[Any], name: str) -> None:
    """Every probe's call, one after another, on one environment (refusals skipped)."""
    for tool, combos in argument_sets(name).items():
        for arguments in combos:
            with contextlib.suppress(ToolError):
                env.invoke(tool, arguments)


@pytest.mark.parametrize("name", NAMES)
def test_environments_share_no_state(name: str) -> None:
    """Two environments built from one state object, that object and the defaults stay apart:
    exercising one leaves the others as they were."""
    cls = ENVIRONMENTS[name]
    default = cls.from_state().snapshot()
    changed = 0
    for start in [None] + [start_state(name, task) for task in seeds_of(name)]:
        kept = copy.deepcopy(start)
        used, other = cls.from_state(start), cls.from_state(start)
        untouched = other.snapshot()
        exercise(used, name)
        changed += used.snapshot() != untouched
        assert other.snapshot() == untouched
        assert start == kept
    assert cls.from_state().snapshot() == default
    has_writes = any(spec.kind is ToolKind.WRITE for spec in cls.tool_specs().values())
    assert changed or not has_writes, "no exercise changed anything: the check saw nothing"


# ----- tools -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_tool_is_described_with_documented_parameters(name: str) -> None:
    cls = ENVIRONMENTS[name]
    specs = cls.tool_specs()
    assert specs, f"{name} has no tools"
    for tool, spec in specs.items():
        assert spec.description, f"{name}.{tool} has no description"
        assert spec.latency > 0, f"{name}.{tool} has no latency"
        properties = spec.parameters["properties"]
        assert list(properties) == list(spec.param_names), f"{name}.{tool}"
        assert set(spec.parameters["required"]) <= set(properties), f"{name}.{tool}"
        for param, schema in properties.items():
            assert schema.get("description"), f"{name}.{tool}({param}) is undocumented"
    offered = [schema["function"]["name"] for schema in cls.openai_tools()]
    assert offered == [f"{name}.{tool}" for tool in specs]


def _upstream_docs(folder: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        for path in sorted(folder.glob("*.json"))
    }


@pytest.mark.parametrize("name", BFCL_NAMES)
def test_tools_match_the_upstream_signatures(name: str, bfcl_dir: Path) -> None:
    """The upstream class documents exactly our tools, with the same parameters in order."""
    specs = ENVIRONMENTS[name].tool_specs()
    docs = _upstream_docs(bfcl_dir / "multi_turn_func_doc")
    same = [file for file, entries in docs.items() if {e["name"] for e in entries} == set(specs)]
    assert len(same) == 1, f"no upstream tool list is exactly {name}'s tools: {sorted(specs)}"
    for entry in docs[same[0]]:
        spec = specs[entry["name"]]
        assert list(spec.param_names) == list(entry["parameters"]["properties"]), entry["name"]
        assert sorted(spec.parameters["required"]) == sorted(entry["parameters"]["required"])


@pytest.mark.parametrize("name", NAMES)
def test_every_tool_answers_some_probe(name: str) -> None:
    """So the behaviour checks below see every tool work at least once."""
    silent = sorted(set(ENVIRONMENTS[name].tool_specs()) - set(first_success(name)))
    assert not silent, f"no probe of {silent} succeeds"


@pytest.mark.parametrize("name", NAMES)
def test_tools_are_read_or_write_as_they_behave(name: str) -> None:
    """A read tool never changes the state (it may advance the generator); a write tool
    changes it in some probe."""
    specs = ENVIRONMENTS[name].tool_specs()
    writing = {o.tool for o in probes(name) if o.ok and o.changed}
    declared = {tool for tool, spec in specs.items() if spec.kind is ToolKind.WRITE}
    assert sorted(writing - declared) == [], "read tools that change the state"
    assert sorted(declared - writing) == [], "write tools no probe sees changing the state"


@pytest.mark.parametrize("name", NAMES)
def test_refusals_change_nothing_and_nothing_else_escapes(name: str) -> None:
    refused = [o for o in probes(name) if o.error is not None]
    assert refused, f"no probe of {name} was refused"
    assert [o.describe() for o in probes(name) if o.crash] == []
    assert [o.describe() for o in refused if not o.untouched] == []
    assert all(o.error for o in refused), "a refusal without a message"


@pytest.mark.parametrize("name", NAMES)
def test_huge_inputs_are_refused_or_contained(name: str) -> None:
    """Each parameter of a call that works, replaced by a huge value: refused with a short
    message and no change, or answered without the value ending up in the result or state."""
    problems: list[str] = []
    for tool, working in first_success(name).items():
        for param in working.arguments:
            for label, value in hostile_versions(working.arguments[param]):
                outcome = call(name, working.state, tool, {**working.arguments, param: value})
                where = f"{tool}({param}=<{label}>)"
                if outcome.crash:
                    problems.append(f"{where} crashed: {outcome.crash}")
                elif outcome.error is not None:
                    if len(outcome.error) > SHORT_MESSAGE:
                        problems.append(f"{where}: a refusal of {len(outcome.error)} characters")
                    if not outcome.untouched:
                        problems.append(f"{where} was refused but changed the state")
                elif json_size(outcome.result) > CONTAINED or outcome.growth > CONTAINED:
                    problems.append(f"{where} was kept or echoed")
    assert problems == []


# ----- initial states --------------------------------------------------------------------------


def _json_kind(value: Any) -> str:
    for kind, types in (("boolean", bool), ("integer", int), ("number", float), ("text", str)):
        if isinstance(value, types):
            return kind
    return {list: "list", dict: "object"}.get(type(value), "null")


WRONG_VALUES: dict[str, Any] = {
    "text": "not a valid value",
    "integer": 12345,
    "boolean": True,
    "list": [["nested"]],
    "object": {"\x00": [None]},
}


def _could_hold(default_kind: str, other: str) -> bool:
    """Whether a field whose default is of one kind may also take a value of another."""
    if default_kind == "null":  # optional: text and numbers are plausible values
        return other in ("text", "integer")
    return default_kind == other or (default_kind == "number" and other == "integer")


@pytest.mark.parametrize("name", NAMES)
def test_invalid_initial_states_are_refused(name: str) -> None:
    cls = ENVIRONMENTS[name]
    with pytest.raises(ValueError, match=f"invalid initial state for {name}"):
        cls.from_state({"no_such_field": 1})
    default = cls.from_state().snapshot()
    for field in cls.state_model.model_fields:
        kind = _json_kind(default[field])
        for other, wrong in WRONG_VALUES.items():
            if not _could_hold(kind, other):
                with pytest.raises(ValueError):
                    cls.from_state({field: wrong})
    if issubclass(cls.state_model, SeededState):
        for position in (-1, MAX_RNG_WORDS + 1):
            with pytest.raises(ValueError):
                cls.from_state({"rng_words": position})


@pytest.mark.parametrize("name", NAMES)
def test_states_round_trip_and_keep_internal_fields_out_of_the_bfcl_view(name: str) -> None:
    cls = ENVIRONMENTS[name]
    for state in reached_states(name):
        env = build(name, state)
        assert build(name, env.snapshot()).snapshot() == env.snapshot() == state
        assert not cls.internal_fields & set(env.bfcl_state())
