"""Property-based tests: random and hostile input through parsing, validation, the model-answer
path and the harness ends in a clean error, a rejection or a score — never an unhandled
exception — and the stages write nothing outside the run folder they are given.

Examples are derandomized so the suite is repeatable; set ``ASYNCTOOL_EXPLORE=N`` to run N times
as many examples with fresh randomness (no example database is kept either way).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import keyword
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.calls import (
    MAX_DEPTH,
    MAX_INT_DIGITS,
    MAX_STRING_CHARS,
    CallParseError,
    ParsedCall,
    format_call,
    parse_call,
)
from pipeline.compose import ComposeSettings, compose
from pipeline.envs import ENVIRONMENTS, ToolError
from pipeline.evolve.candidate import Candidate
from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.evolve.llm_ops import EvolvedTask, ProposedCall, RepairAnswer, task_from_answer
from pipeline.harness.openai_agent import OpenAIAgent, OpenAIAgentSettings
from pipeline.harness.protocol import (
    FINISH,
    WAIT,
    ProtocolError,
    openai_name,
    parse_content_calls,
    parse_native_calls,
    parse_tool_call,
)
from pipeline.harness.runner import run_episode, run_many
from pipeline.harness.scoring import EpisodeScore
from pipeline.harness.sim import (
    Action,
    CallAction,
    Episode,
    EpisodeTrace,
    FinishAction,
    Mode,
    Observation,
    WaitAction,
)
from pipeline.llm.client import ChatResult, parse_output
from pipeline.models import Instance, Rejection, RejectionCode, Task
from pipeline.replay import build_envs
from pipeline.seeds import load_seeds
from pipeline.validate.chain import Verdict, validate_line, validate_task
from pipeline.validate.runner import validate_file

EXPLORE = int(os.environ.get("ASYNCTOOL_EXPLORE", "0") or 0)


def _settings(examples: int) -> settings:
    return settings(
        max_examples=examples * max(EXPLORE, 1),
        deadline=None,
        database=None,
        derandomize=not EXPLORE,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )


# --- shared data ---------------------------------------------------------------------------------


@cache
def _seeds() -> list[Task]:
    return load_seeds()


@cache
def _instances() -> list[Instance]:
    """A few multi-task instances composed from the validated seeds."""
    tasks = [verdict.task for verdict in map(validate_task, _seeds()) if verdict.task is not None]
    instances = compose(tasks, ComposeSettings(count=40, seed=11)).instances
    assert len(instances) >= 20
    return instances


def _pick(items: list[Any]) -> st.SearchStrategy[Any]:
    """Like ``sampled_from``, with a short repr for long lists of big objects."""
    return st.integers(0, len(items) - 1).map(lambda index: items[index])


TOOLS: dict[str, dict[str, Any]] = {
    f"{env}.{name}": spec.parameters
    for env, cls in ENVIRONMENTS.items()
    for name, spec in cls.tool_specs().items()
}
TOOL_NAMES = sorted({name.partition(".")[2] for name in TOOLS})


# --- hostile values ------------------------------------------------------------------------------

FRAGMENTS = [
    "", " ", "\x00", "\ud800", "\udfff", "\u202e", "\ufeff", "\u2028", "\x85", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ﬁ",
    "e\u0301", "\r\n", "\t", "'", '"', "\\", "\\u0000", "../../../../etc/passwd", "/tmp/x",
    "C:\\Windows", "${HOME}", "$(rm -rf /)", "{{ 7 * 7 }}", "{% raw %}", "%s%n%x", "<script>",
    "__import__('os').system('x')", "cd(folder='x')", "filesystem.ls", "get_stock_info",
    "startEngine", "`ls`", "sort(", "null", "NaN", "Infinity", "-0", "1e999", "0" * 5,
    "9" * 120, "{", "}", "[", "]", "```json\n", "\ud83d\ude00", "😀", "🏳️‍🌈",
]  # fmt: skip

SURROGATES = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)

hostile_text: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=30),
    st.sampled_from(FRAGMENTS),
    st.lists(
        st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6), SURROGATES), max_size=6
    ).map("".join),
    st.sampled_from(["a", "\x00", "é", "\ud800"]).map(lambda c: c * 150_000),
    st.sampled_from(["x", "9"]).map(lambda c: c * 3000),
)

EDGE_INTS = [0, -1, 2**31, 2**63, -(2**63) - 1, 10**18, 10**40, 10**400, -(10**400)]
EDGE_FLOATS = [math.inf, -math.inf, math.nan, 0.0, -0.0, 1e308, -1e308, 5e-324, 1e-300, 1e16]


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from(EDGE_INTS + EDGE_FLOATS),  # json.loads reads NaN, Infinity, 400 digits
    st.floats(),
    hostile_text,
)
json_values: st.SearchStrategy[Any] = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(hostile_text, inner, max_size=4)
    ),
    max_leaves=12,
)


def _nested(opening: str, closing: str, depth: int, core: str = "1") -> str:
    return opening * depth + core + closing * depth


deep_values = st.integers(min_value=1, max_value=300).flatmap(
    lambda n: st.sampled_from(
        [
            _nested("[", "]", n),
            _nested("(", ",)", n),
            _nested("{'a': ", "}", n),
            _nested("-", "", n),
            _nested("not ", "", n),
            _nested("f(", ")", n),
            _nested("(", ")", n),
            _nested("lambda: ", "", n),
        ]
    )
)


def _json_line(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True)  # what a file holds: escapes, never raw surrogates


# --- call strings from a small Python grammar ----------------------------------------------------

identifiers = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
    st.sampled_from(
        [
            "__import__", "__class__", "__builtins__", "eval", "exec", "open", "getattr", "os",
            "_", "λ", "ｆ", "ǅ", "lambda", "import", "class", "None", "True", "async", "await",
            "match", "print", *TOOL_NAMES[:40],
        ]
    ),
)  # fmt: skip

literal_sources = st.one_of(
    st.integers(min_value=-(10**6), max_value=10**6).map(str),
    st.integers(min_value=-(10**130), max_value=10**130).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    hostile_text.map(repr),
    st.sampled_from(
        [
            "9" * 99, "9" * 100, "9" * 101, "9" * 5000, "1e999", "-1e999", "1_000", "0x1F",
            "0o17", "0b101", "1j", "2+3j", "...", "None", "True", "False", "-True", "--1",
            "+-1", "-(1)", "nan", "inf", "'unterminated", '"""tri\nple"""', "b'bytes'",
            "f'{x}'", "rb'\\x00'", "'\\N{BULLET}'", "'\\ud800'", "'\\udfff\\ud800'", "u'x'",
            "'\\x00'", "'a' 'b'", "'\\q'", "0777", "1__0", "..." * 3,
        ]
    ),
    st.sampled_from([100_000, 100_001]).map(lambda n: "'" + "x" * n + "'"),
)  # fmt: skip


def _compound(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    items = st.lists(inner, max_size=4)
    return st.one_of(
        items.map(lambda xs: "[" + ", ".join(xs) + "]"),
        items.map(lambda xs: "(" + ", ".join(xs) + ",)"),
        items.filter(bool).map(lambda xs: "{" + ", ".join(xs) + "}"),
        st.lists(st.tuples(inner, inner), max_size=3).map(
            lambda kv: "{" + ", ".join(f"{k}: {v}" for k, v in kv) + "}"
        ),
        st.tuples(inner, identifiers).map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(identifiers, items).map(lambda t: f"{t[0]}({', '.join(t[1])})"),
        inner.map(lambda e: f"lambda x: {e}"),
        inner.map(lambda e: f"*{e}"),
        inner.map(lambda e: f"**{e}"),
        st.tuples(inner, inner).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(inner, st.sampled_from(["+", "-", "*", "**", "and", "if", "==", "@"]), inner).map(
            " ".join
        ),
        st.tuples(st.sampled_from(["-", "+", "~", "not "]), inner).map("".join),
        inner.map(lambda e: f"[x for x in {e}]"),
        inner.map(lambda e: f"(y := {e})"),
        inner.map(lambda e: f"(yield {e})"),
        inner.map(lambda e: f"({e})"),
    )


expressions: st.SearchStrategy[str] = st.recursive(
    st.one_of(literal_sources, identifiers), _compound, max_leaves=10
)
arguments = st.one_of(
    expressions,
    st.tuples(identifiers, expressions).map(lambda t: f"{t[0]}={t[1]}"),
    deep_values,
)
callees = st.one_of(
    identifiers,
    st.sampled_from(
        [
            "os.system", "f.__class__", "__import__('os').system", "(lambda: 0)", "f()", "(f)",
            "x[0]", "getattr(f, 'x')", "'str'.join", "type", "",
        ]
    ),
)  # fmt: skip
surroundings = st.sampled_from(
    ["", " ", "\n", "\t", "  # comment", "; import os", "\x00", "\\\n", "\n\n", "\ufeff", ")"]
)
call_strings: st.SearchStrategy[str] = st.one_of(
    st.tuples(surroundings, callees, st.lists(arguments, max_size=5), surroundings).map(
        lambda t: f"{t[0]}{t[1]}({', '.join(t[2])}){t[3]}"
    ),
    hostile_text,
    deep_values,
    st.text(alphabet="()[]{}'\",=:.*-+ \\abcx019\x00", max_size=40),
)


def _json_like(value: Any, depth: int = 0) -> None:
    """``value`` is a JSON value within the parser's bounds, and encodable as UTF-8."""
    assert depth <= MAX_DEPTH + 1
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, int):
        assert len(str(abs(value))) <= MAX_INT_DIGITS
    elif isinstance(value, str):
        assert len(value) <= MAX_STRING_CHARS
        value.encode("utf-8")
    elif isinstance(value, list):
        for item in value:
            _json_like(item, depth + 1)
    elif isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str)
            key.encode("utf-8")
            _json_like(item, depth + 1)
    else:
        raise AssertionError(f"not a JSON value: {type(value).__name__}")


def _check_parse(source: str) -> ParsedCall | None:
    try:
        parsed = parse_call(source)
    except CallParseError as error:
        assert str(error)
        return None
    assert isinstance(parsed, ParsedCall)
    assert parsed.name.isidentifier() and not parsed.name.startswith("__")
    assert isinstance(parsed.args, list) and isinstance(parsed.kwargs, dict)
    for value in [*parsed.args, *parsed.kwargs.values()]:
        _json_like(value)
    json.dumps([parsed.args, parsed.kwargs], ensure_ascii=False, allow_nan=False).encode("utf-8")
    return parsed


# --- (a) parse_call ------------------------------------------------------------------------------


@pytest.mark.slow
@_settings(600)
@given(call_strings)
@example("f('\\ud800')")  # a lone surrogate: no JSON line can hold it
@example("f(x=1e999, y=-1e999)")  # infinities: not JSON either
@example("f(x=" + "[" * 150 + "]" * 150 + ")")
@example("f(" + "-" * 5000 + "1)")
def test_parse_call_gives_a_call_or_a_clean_error(source: str) -> None:
    parsed = _check_parse(source)
    if parsed is not None:
        try:
            bound = parsed.bind(["a", "b", "c"])
        except CallParseError:
            return
        assert set(bound) >= set(parsed.kwargs)


@_settings(200)
@given(st.one_of(st.text(), st.binary().map(lambda b: b.decode("latin-1")), st.from_type(object)))
def test_parse_call_on_arbitrary_input(source: Any) -> None:
    _check_parse(source)


round_trip_values: st.SearchStrategy[Any] = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**99), max_value=10**99),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=20),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)


plain_names = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True).filter(
    lambda name: not keyword.iskeyword(name) and not keyword.issoftkeyword(name)
)


@pytest.mark.slow
@_settings(200)
@given(plain_names, st.dictionaries(plain_names, round_trip_values))
def test_format_call_round_trips(name: str, kwargs: dict[str, Any]) -> None:
    parsed = parse_call(format_call(name, kwargs))
    assert parsed.name == name and parsed.args == []
    assert parsed.kwargs == kwargs


# --- (b) validate_line ---------------------------------------------------------------------------


def _check_verdict(verdict: Verdict) -> Task | Rejection:
    """Exactly one of task or rejection, and it survives the JSON round trip the runner makes."""
    assert isinstance(verdict, Verdict)
    assert (verdict.task is None) != (verdict.rejection is None)
    if verdict.task is not None:
        assert verdict.task.expected is not None
        text = verdict.task.model_dump_json()
        assert Task.model_validate_json(text) == verdict.task
        return verdict.task
    assert verdict.rejection is not None
    rejection = verdict.rejection
    assert isinstance(rejection.code, RejectionCode)
    assert rejection.stage == rejection.code.stage and rejection.message
    text = rejection.model_dump_json()  # evidence may hold NaN, which JSON writes as null
    assert Rejection.model_validate_json(text).model_dump_json() == text
    return rejection


@pytest.mark.slow
@_settings(300)
@given(
    st.one_of(
        hostile_text,
        json_values.map(_json_line),
        st.dictionaries(
            st.sampled_from(
                ["id", "category", "envs", "question", "initial_config", "calls", "expected"]
            ),
            json_values,
        ).map(_json_line),
        st.lists(call_strings, max_size=4).map(
            lambda calls: _json_line(
                {"category": "maths", "envs": ["maths"], "question": "q", "calls": calls}
            )
        ),
    )
)
@example('{"envs": null, "calls": []}')  # envs that are not a list of names
@example('{"envs": [[1], {}], "calls": ["ls()"]}')
@example('{"question": "q\\ud800", "calls": ["f(\'\\\\ud800\')"]}')
@example("\ud800")
def test_validate_line_on_random_lines(line: str) -> None:
    _check_verdict(validate_line(line))


def _leaf_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaf_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaf_paths(item, (*path, index))


def _get_at(root: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        root = root[key]
    return root


def _replace_at(root: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    parent = root
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = new
    return root


def _mutate(data: st.DataObject, task: dict[str, Any]) -> dict[str, Any]:
    kind = data.draw(
        st.sampled_from(
            [
                "question", "calls_as_strings", "argument", "arguments_type", "tool", "links",
                "state_leaf", "state", "envs", "category", "drop_key", "extra_key", "reorder",
                "expected", "id", "any_leaf", "edge_number", "edge_number",
            ]
        ),
        label="mutation",
    )  # fmt: skip
    calls: list[dict[str, Any]] = task["calls"]
    pick = data.draw(st.integers(0, len(calls) - 1), label="call") if calls else 0
    if kind == "question":
        task["question"] = data.draw(
            st.one_of(
                hostile_text,
                st.sampled_from(TOOL_NAMES).map(lambda n: f"{task['question']} then {n}("),
                hostile_text.map(lambda s: task["question"] + s),
            )
        )
    elif kind == "calls_as_strings":
        real = [format_call(c["tool"].partition(".")[2], c["arguments"]) for c in calls]
        task["calls"] = data.draw(
            st.lists(st.one_of(st.sampled_from(real), call_strings), min_size=0, max_size=5)
            if real
            else st.lists(call_strings, max_size=3)
        )
    elif kind == "argument" and calls:
        arguments = calls[pick]["arguments"]
        key = data.draw(st.one_of(st.sampled_from(sorted(arguments) or ["x"]), hostile_text))
        arguments[key] = data.draw(json_values)
    elif kind == "arguments_type" and calls:
        calls[pick]["arguments"] = data.draw(json_values)
    elif kind == "tool" and calls:
        calls[pick]["tool"] = data.draw(
            st.one_of(
                st.sampled_from(sorted(TOOLS)),
                st.sampled_from(
                    ["filesystem.__init__", "filesystem._rng", "maths.invoke", "a.b.c", ".", ""]
                ),
                hostile_text,
            )
        )
    elif kind == "links" and calls:
        field_name = data.draw(st.sampled_from(["id", "depends_on", "bindings"]))
        calls[pick][field_name] = data.draw(
            st.one_of(
                json_values,
                st.lists(st.sampled_from([c["id"] for c in calls] + ["s0", "s99", ""])),
                st.dictionaries(
                    st.sampled_from(sorted(calls[pick]["arguments"]) or ["x"]),
                    st.sampled_from([f"{c['id']}.x" for c in calls] + ["s1", "s9.a.b", ""]),
                ),
            )
        )
    elif kind == "state_leaf" and task["initial_config"]:
        config = task["initial_config"]
        path = data.draw(st.sampled_from(list(_leaf_paths(config))[1:] or [()]))
        task["initial_config"] = _replace_at(config, path, data.draw(json_values))
    elif kind == "state":
        envs = [env for env in task["envs"] if isinstance(env, str)] or ["maths"]
        task["initial_config"] = data.draw(
            st.one_of(json_values, st.dictionaries(st.sampled_from(envs), json_values))
        )
    elif kind == "envs":
        task["envs"] = data.draw(
            st.one_of(
                json_values,
                st.lists(st.one_of(st.sampled_from(sorted(ENVIRONMENTS)), hostile_text)),
            )
        )
    elif kind == "category":
        task["category"] = data.draw(st.one_of(st.sampled_from(sorted(ENVIRONMENTS)), json_values))
    elif kind == "drop_key":
        task.pop(data.draw(st.sampled_from(sorted(task))), None)
    elif kind == "extra_key":
        task[data.draw(hostile_text)] = data.draw(json_values)
    elif kind == "reorder":
        task["calls"] = data.draw(
            st.one_of(
                st.permutations(calls),
                st.just(calls[:1]),
                st.just([]),
                st.just(calls + calls),
                st.just([c for c in calls for _ in range(2)]),
            )
        )
    elif kind == "expected":
        task["expected"] = data.draw(json_values)
    elif kind == "id":
        task["id"] = data.draw(hostile_text)
    elif kind == "edge_number":
        # a number at its limits where a number belongs, and said in the question so that it
        # is grounded and reaches the execution and dependency checks
        numeric = [
            path
            for path in _leaf_paths({"calls": calls, "initial_config": task["initial_config"]})
            if isinstance(_get_at(task, path), int | float)
            and not isinstance(_get_at(task, path), bool)
        ]
        if numeric:
            path = data.draw(st.sampled_from(numeric))
            value = data.draw(st.sampled_from(EDGE_INTS + EDGE_FLOATS))
            task = _replace_at(task, path, value)
            task["question"] = f"{task['question']} ({value})"
    elif kind == "any_leaf":
        path = data.draw(st.sampled_from(list(_leaf_paths(task))))
        task = _replace_at(task, path, data.draw(json_values))
    return task


def _still_a_task(task: Any) -> bool:
    return (
        isinstance(task, dict)
        and isinstance(task.get("question"), str)
        and isinstance(task.get("envs"), list)
        and isinstance(task.get("initial_config"), dict)
        and isinstance(task.get("calls"), list)
        and all(
            isinstance(call, dict)
            and isinstance(call.get("id"), str)
            and isinstance(call.get("tool"), str)
            and isinstance(call.get("arguments"), dict)
            for call in task["calls"]
        )
    )


@pytest.mark.slow
@_settings(400)
@given(st.data())
def test_validate_line_on_mutated_seeds(data: st.DataObject) -> None:
    seed = data.draw(_pick(_seeds()), label="seed")
    task: Any = json.loads(seed.model_dump_json())
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        if not _still_a_task(task):  # an earlier mutation broke the shape the next ones use
            break
        task = _mutate(data, task)
    line = _json_line(task)
    cut = data.draw(st.sampled_from([None, None, None, "truncate", "junk"]), label="line")
    if cut == "truncate":
        line = line[: data.draw(st.integers(0, len(line)))]
    elif cut == "junk":
        line += data.draw(st.sampled_from([" ", "}", "\x00", ", 1e99999", "9" * 5000]))
    _check_verdict(validate_line(line))


def test_seeds_still_pass_and_a_lone_surrogate_is_a_clean_rejection() -> None:
    seed = _seeds()[0]
    assert _check_verdict(validate_line(seed.model_dump_json())) == validate_task(seed).task
    call = seed.calls[0]
    raw = json.loads(seed.model_dump_json())
    raw["calls"][0] = format_call(call.tool.partition(".")[2], call.arguments).replace(
        ")", ", x='\\ud800')", 1
    )
    rejection = _check_verdict(validate_line(_json_line(raw)))
    assert isinstance(rejection, Rejection) and rejection.code is RejectionCode.PARSE_MALFORMED
    raw = json.loads(seed.model_dump_json())
    raw["calls"][0]["arguments"]["extra"] = "\ud800"
    rejection = _check_verdict(validate_line(_json_line(raw)))
    assert isinstance(rejection, Rejection) and rejection.code is RejectionCode.PARSE_MALFORMED


def test_a_far_generator_position_is_refused_at_once() -> None:
    """A state's ``rng_words`` is replayed word by word; a huge one must not stall validation."""
    seed = next(s for s in _seeds() if "rng_words" in s.initial_config.get(s.envs[0], {}))
    raw = json.loads(seed.model_dump_json())
    raw["initial_config"][seed.envs[0]]["rng_words"] = 10**15
    rejection = _check_verdict(validate_line(_json_line(raw)))
    # refused by the state's bound before any replay (bench/hostile_inputs.py times it)
    assert isinstance(rejection, Rejection)
    assert rejection.code is RejectionCode.STATIC_BAD_INITIAL_STATE
    assert "rng_words" in rejection.message


# --- (c) the model-answer path -------------------------------------------------------------------


def _check_candidate(candidate: Candidate, parent: Task, operator: str) -> None:
    assert isinstance(candidate, Candidate)
    assert (candidate.task is None) != (candidate.rejection is None)
    assert candidate.operator == operator and candidate.parent_id == parent.id
    if candidate.rejection is not None:
        text = candidate.rejection.model_dump_json()
        assert Rejection.model_validate_json(text) == candidate.rejection
        return
    assert candidate.task is not None
    assert Task.model_validate_json(candidate.task.model_dump_json()) == candidate.task
    lineage = candidate.task.lineage
    assert lineage.parents == [parent.id] and lineage.operator == operator
    assert lineage.round == parent.lineage.round + 1 and lineage.source == parent.lineage.source
    _check_verdict(validate_task(candidate.task))  # what the engine does next


def _real_calls(task: Task) -> list[ProposedCall]:
    return [ProposedCall(tool=call.function, arguments=call.arguments) for call in task.calls]


@pytest.mark.slow
@_settings(250)
@given(st.data())
def test_task_from_answer_gives_a_task_or_a_rejection(data: st.DataObject) -> None:
    parent = data.draw(_pick(_seeds()), label="parent")
    operator = data.draw(st.sampled_from(["deepen", "broaden", "repair"]), label="operator")
    question = data.draw(st.one_of(st.just(parent.question), hostile_text), label="question")
    real = _real_calls(parent)
    invented = st.builds(
        ProposedCall,
        tool=st.one_of(st.sampled_from(sorted(TOOLS)), call_strings, hostile_text),
        arguments=st.dictionaries(st.text(max_size=12), json_values, max_size=4),
    )
    calls = data.draw(
        st.one_of(
            st.just(real),
            st.lists(st.one_of(st.sampled_from(real), invented), max_size=6),
            st.permutations(real),
        ),
        label="calls",
    )
    raw = data.draw(st.one_of(st.none(), hostile_text), label="raw")
    candidate = task_from_answer(parent, operator, question, calls, raw, model="fake")
    _check_candidate(candidate, parent, operator)


proposed_calls = st.fixed_dictionaries(
    {
        "tool": st.one_of(st.sampled_from(sorted(TOOLS)), call_strings, hostile_text),
        "arguments": st.dictionaries(st.text(max_size=12), json_values, max_size=4),
    },
    optional={"extra": json_values},
)
model_replies = st.one_of(
    hostile_text,
    json_values.map(_json_line),
    st.fixed_dictionaries(
        {"question": hostile_text, "calls": st.lists(proposed_calls, max_size=4)},
        optional={"give_up": json_values, "reason": hostile_text, "extra": json_values},
    ).map(lambda answer: json.dumps(answer, ensure_ascii=False)),
    st.tuples(hostile_text, st.lists(proposed_calls, max_size=3), hostile_text).map(
        lambda t: f"{t[0]}\n```json\n{json.dumps({'question': 'q', 'calls': t[1]})}\n```{t[2]}"
    ),
)


@_settings(250)
@given(model_replies, _pick(_seeds()))
def test_model_text_to_candidate_never_crashes(raw: str, parent: Task) -> None:
    """The whole answer path: the model's text, its structured parse, then the candidate."""
    answers: list[tuple[str, list[ProposedCall]]] = []
    evolved, problem = parse_output(raw, EvolvedTask)
    if evolved is None:
        assert problem
    else:
        answers.append((evolved.question, evolved.calls))
    repaired, problem = parse_output(raw, RepairAnswer)
    if repaired is None:
        assert problem
    else:
        answers.append((repaired.question or "q", repaired.calls))
    for question, calls in answers:
        candidate = task_from_answer(parent, "deepen", question, calls, raw)
        _check_candidate(candidate, parent, "deepen")


OPENAI_NAMES = sorted(openai_name(name) for name in TOOLS)
function_names = st.one_of(
    st.sampled_from(OPENAI_NAMES),
    st.sampled_from(sorted(TOOLS)),
    st.sampled_from([WAIT, FINISH, " wait ", "filesystem__", "__", "a__b__c", "filesystem__x"]),
    hostile_text,
)
task_ids = st.one_of(st.sampled_from(["t1", "t2", "t3"]), hostile_text, json_values)
call_arguments: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    hostile_text,
    json_values,
    st.dictionaries(st.sampled_from(["task_id", "answer", "a", "b", "folder"]), json_values),
    st.fixed_dictionaries({"task_id": task_ids}, optional={"answer": json_values}).map(
        lambda args: json.dumps(args)
    ),
)


def _check_action(action: Action | ProtocolError, known: set[str] | None) -> None:
    if isinstance(action, ProtocolError):
        assert action.message
    elif isinstance(action, CallAction):
        assert action.tool in TOOLS
        assert isinstance(action.task_id, str) and action.task_id
        assert isinstance(action.arguments, dict) and "task_id" not in action.arguments
    elif isinstance(action, FinishAction):
        assert isinstance(action.answer, str)
        assert known is None or action.task_id in known
    else:
        assert isinstance(action, WaitAction)


@pytest.mark.slow
@_settings(400)
@given(function_names, call_arguments, st.one_of(st.none(), st.just({"t1", "t2"})))
def test_parse_tool_call_gives_an_action_or_a_protocol_error(
    name: str, arguments: Any, known: set[str] | None
) -> None:
    _check_action(parse_tool_call(name, arguments, known), known)


def _tool_call_dict(t: tuple[Any, Any, Any]) -> dict[str, Any]:
    call_id, name, arguments = t
    text = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": text}}


native_calls = st.lists(
    st.one_of(
        st.tuples(st.one_of(st.just(""), hostile_text), function_names, call_arguments).map(
            _tool_call_dict
        ),
        st.dictionaries(st.sampled_from(["id", "type", "function"]), json_values),
    ),
    max_size=5,
)
content_replies = st.one_of(
    hostile_text,
    json_values.map(json.dumps),
    st.lists(
        st.fixed_dictionaries(
            {"tool": function_names},
            optional={"task_id": task_ids, "arguments": call_arguments, "answer": json_values},
        ),
        max_size=4,
    ).map(lambda calls: json.dumps({"calls": calls})),
    st.tuples(hostile_text, st.lists(st.dictionaries(st.text(max_size=8), json_values))).map(
        lambda t: f"{t[0]} ```json\n{json.dumps(t[1])}\n``` {t[0]}"
    ),
)


@pytest.mark.slow
@_settings(250)
@given(native_calls, content_replies)
def test_reply_parsers_never_crash(calls: list[dict[str, Any]], content: str) -> None:
    known = {"t1", "t2"}
    for action in parse_native_calls(calls, known):
        _check_action(action, known)
    found = parse_content_calls(content, known)
    assert found is None or isinstance(found, list)
    for action in found or []:
        _check_action(action, known)


# --- (d) the harness -----------------------------------------------------------------------------


def _schema_strategy(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> Any:
    """Values of a tool parameter's JSON schema, leaning on edge cases; sometimes a wrong type."""
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rpartition("/")[2], {})
    wrong = json_values if depth < 2 else json_scalars
    if "enum" in schema:
        right: st.SearchStrategy[Any] = st.sampled_from(schema["enum"])
    elif "anyOf" in schema:
        right = st.one_of([_schema_strategy(part, defs, depth + 1) for part in schema["anyOf"]])
    else:
        kind = schema.get("type")
        if kind == "string":
            right = st.one_of(hostile_text, st.sampled_from(["a", "..", ".", "/", "ALL"]))
        elif kind == "integer":
            right = st.one_of(st.integers(-3, 20), st.sampled_from(EDGE_INTS))
        elif kind == "number":
            right = st.one_of(
                st.sampled_from(EDGE_FLOATS), st.floats(), st.integers(-(10**30), 10**30)
            )
        elif kind == "boolean":
            right = st.booleans()
        elif kind == "null":
            right = st.none()
        elif kind == "array":
            right = st.lists(_schema_strategy(schema.get("items", {}), defs, depth + 1), max_size=4)
        elif kind == "object" and "properties" in schema:
            right = _object_strategy(schema, defs, depth + 1)
        elif kind == "object":
            extra = schema.get("additionalProperties")
            values = _schema_strategy(extra, defs, depth + 1) if isinstance(extra, dict) else wrong
            right = st.dictionaries(hostile_text, values, max_size=3)
        else:
            right = json_values
    return st.one_of(right, right, right, wrong)


def _object_strategy(schema: dict[str, Any], defs: dict[str, Any], depth: int = 0) -> Any:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    return st.fixed_dictionaries(
        {k: _schema_strategy(v, defs, depth) for k, v in properties.items() if k in required},
        optional={
            k: _schema_strategy(v, defs, depth) for k, v in properties.items() if k not in required
        },
    )


@cache
def _tool_arguments(tool: str) -> st.SearchStrategy[dict[str, Any]]:
    schema = TOOLS[tool]
    return st.one_of(
        _object_strategy(schema, schema.get("$defs", {})),
        st.dictionaries(hostile_text, json_values, max_size=3),
    )


@cache
def _seed_states() -> dict[str, list[dict[str, Any]]]:
    states: dict[str, list[dict[str, Any]]] = {env: [{}] for env in ENVIRONMENTS}
    for seed in _seeds():
        for env, state in seed.initial_config.items():
            states[env].append(state)
    return states


def _state_text(envs: dict[str, Any]) -> str:
    return json.dumps({name: env.snapshot() for name, env in envs.items()}, sort_keys=True)


@pytest.mark.slow
@_settings(500)
@given(st.data())
def test_every_tool_answers_or_refuses_cleanly(data: st.DataObject) -> None:
    """What the harness runs for an agent's call: a JSON result, or a ``ToolError`` that leaves
    the state as it was — for typed arguments at their limits and for wrong ones."""
    tool = data.draw(st.sampled_from(sorted(TOOLS)), label="tool")
    env, _, function = tool.partition(".")
    state = data.draw(_pick(_seed_states()[env]), label="state")
    arguments = data.draw(_tool_arguments(tool), label="arguments")
    envs = build_envs([env], {env: state})
    before = _state_text(envs)
    try:
        result = envs[env].invoke(function, arguments)
    except ToolError as error:
        assert str(error)
        assert _state_text(envs) == before
        event("refused")
        return
    json.dumps(result)
    _state_text(envs)
    event("answered")


def _actions(instance: Instance) -> st.SearchStrategy[Action]:
    ids = [task.id for task in instance.tasks]
    own_tools = sorted({f"{env}.{name}" for t in instance.tasks for env in t.envs for name in
                        ENVIRONMENTS[env].tool_specs()})  # fmt: skip
    steps = [(task.id, call.tool, call.arguments) for task in instance.tasks for call in task.calls]
    task_id = st.one_of(st.sampled_from(ids), st.sampled_from(ids), hostile_text)
    typed = st.tuples(task_id, st.sampled_from(own_tools + sorted(TOOLS)[:20])).flatmap(
        lambda t: _tool_arguments(t[1]).map(lambda args: CallAction(t[0], t[1], args))
    )
    odd_tools = st.sampled_from(
        ["filesystem.__init__", "filesystem._rng", "maths.nope", "nope.ls", "", ".", "a.b.c"]
    )
    return st.one_of(
        st.sampled_from(steps).map(lambda s: CallAction(s[0], s[1], dict(s[2]))),
        st.tuples(task_id, st.sampled_from(steps)).map(
            lambda t: CallAction(t[0], t[1][1], dict(t[1][2]))
        ),
        typed,
        st.builds(
            CallAction, task_id, st.one_of(odd_tools, hostile_text), _tool_arguments(own_tools[0])
        ),  # fmt: skip
        st.builds(FinishAction, task_id, hostile_text),
        st.just(WaitAction()),
    )


@dataclass
class ScriptedAgent:
    """Plays a drawn script of steps, then only waits (so the episode runs out and ends)."""

    script: list[list[Action]]
    name: str = "random"
    seen: list[Observation] = field(default_factory=list)

    async def __call__(self, observation: Observation) -> list[Action]:
        self.seen.append(observation)
        return self.script.pop(0) if self.script else []


def _check_score(score: EpisodeScore, trace: EpisodeTrace, instance: Instance) -> None:
    assert trace.stop_reason
    event(f"stop: {trace.stop_reason.split(' ')[0]} {trace.stop_reason.split(' ')[-1]}")
    event(f"calls: {'none' if not trace.calls else 'some'}")
    assert set(score.subtask_success) == {task.id for task in instance.tasks}
    for value in (score.name_f1, score.argument_f1, score.overlap):
        assert 0.0 <= value <= 1.0
    for value in (score.makespan, score.efficiency, score.same_task_streak):
        assert math.isfinite(value) and value >= 0
    assert score.calls == len(trace.calls) and score.turns == len(trace.turns)
    json.dumps(score.row(), default=str)
    for record in trace.events:
        json.dumps(record, default=str)


@pytest.mark.slow
@_settings(150)
@given(st.data())
def test_random_agent_episodes_end_and_are_scored(data: st.DataObject) -> None:
    instance = data.draw(_pick(_instances()), label="instance")
    mode = data.draw(st.sampled_from(list(Mode)), label="mode")
    turn_cost = data.draw(st.sampled_from([None, 0.0, 0.25, 3.0]), label="turn_cost")
    script = data.draw(
        st.lists(st.lists(_actions(instance), max_size=4), max_size=12), label="script"
    )
    agent = ScriptedAgent(script)
    trace, score = asyncio.run(run_episode(instance, lambda _: agent, mode, turn_cost))
    _check_score(score, trace, instance)


@dataclass
class FakeClient:
    """Stands in for ``LLMClient``: answers each chat request with the next drawn result."""

    replies: list[ChatResult]
    model: str = "fake"

    async def chat(self, **_: Any) -> ChatResult:
        if self.replies:
            return self.replies.pop(0)
        return ChatResult("", [], None, None, False, 1)


def _chat_results(instance: Instance) -> st.SearchStrategy[ChatResult]:
    ids = [task.id for task in instance.tasks]
    names = sorted({openai_name(c.tool) for t in instance.tasks for c in t.calls})
    good_call = st.tuples(
        st.sampled_from(names + [WAIT, FINISH]),
        st.fixed_dictionaries(
            {"task_id": st.one_of(st.sampled_from(ids), task_ids)},
            optional={"answer": hostile_text, "folder": hostile_text, "a": json_values},
        ),
    ).map(lambda t: (t[0], json.dumps(t[1])))
    tool_calls = st.lists(
        st.tuples(st.one_of(st.just(""), hostile_text), st.one_of(good_call, st.tuples(
            function_names, hostile_text))).map(
            lambda t: _tool_call_dict((t[0], t[1][0], t[1][1]))
        ),
        max_size=4,
    )  # fmt: skip
    return st.builds(
        ChatResult,
        content=st.one_of(st.just(""), content_replies),
        tool_calls=st.one_of(st.just([]), tool_calls),
        raw=st.none(),
        error=st.one_of(st.none(), st.none(), st.none(), st.just("HTTP 500")),
        cached=st.booleans(),
        requests=st.just(1),
        status=st.sampled_from([None, 400, 422, 500]),
    )


@pytest.mark.slow
@_settings(100)
@given(st.data())
def test_openai_agent_on_random_model_replies(data: st.DataObject) -> None:
    instance = data.draw(_pick(_instances()), label="instance")
    mode = data.draw(st.sampled_from(list(Mode)), label="mode")
    replies = data.draw(st.lists(_chat_results(instance), max_size=10), label="replies")
    native = data.draw(st.booleans(), label="native")
    agent_settings = OpenAIAgentSettings(native_tools=native, max_turns=12)
    client: Any = FakeClient(replies)

    def make(episode: Episode) -> OpenAIAgent:
        return OpenAIAgent(episode, client, agent_settings)

    trace, score = asyncio.run(run_episode(instance, make, mode))
    _check_score(score, trace, instance)


# --- (e) nothing written outside the run folder --------------------------------------------------


@dataclass
class WriteLog:
    """Every path the process opens for writing, creates, renames or removes while active
    (from the interpreter's audit events, so no write can go around it)."""

    events: list[tuple[str, str]] = field(default_factory=list)
    active: bool = False
    hooked: bool = False

    def hook(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event == "open":
            path, _, flags = args
            written = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
            if path is not None and not isinstance(path, int) and flags & written:
                self.events.append((event, os.path.abspath(os.fsdecode(path))))
        elif event in ("os.rename", "os.replace", "os.link", "os.symlink"):
            self.events += [(event, os.path.abspath(os.fsdecode(p))) for p in args[:2]]
        elif event in (
            "os.mkdir", "os.remove", "os.rmdir", "os.truncate", "os.chmod", "os.chown",
            "os.utime", "shutil.rmtree", "os.mkfifo", "os.mknod",
        ) and not isinstance(args[0], int):  # fmt: skip
            self.events.append((event, os.path.abspath(os.fsdecode(args[0]))))

    def start(self) -> None:
        self.events.clear()
        self.active = True

    def outside(self, folder: Path) -> list[tuple[str, str]]:
        """Events outside ``folder``, except creating the folders that lead to it (and the
        interpreter caching bytecode of a module imported on first use)."""
        root = folder.resolve()
        ancestors = {str(parent) for parent in root.parents}
        return [
            (event, path)
            for event, path in self.events
            if not (path == str(root) or path.startswith(str(root) + os.sep))
            and not (event == "os.mkdir" and path in ancestors)
            and not (os.sep + "__pycache__" + os.sep in path and ".pyc" in path)
        ]


_WRITE_LOG = WriteLog()


@pytest.fixture(scope="module")
def write_log() -> Iterator[WriteLog]:
    if not _WRITE_LOG.hooked:
        sys.addaudithook(_WRITE_LOG.hook)  # hooks cannot be removed; an inactive one returns
        _WRITE_LOG.hooked = True
    yield _WRITE_LOG
    _WRITE_LOG.active = False


_RUN_NUMBERS = itertools.count(1)


def _fresh_run(root: Path) -> Path:
    """A new run folder under ``root/output/runs`` (hypothesis reuses one tmp_path)."""
    return root / "output" / "runs" / f"r{next(_RUN_NUMBERS):05d}"


@pytest.mark.slow
@_settings(40)
@given(
    st.lists(
        st.one_of(
            hostile_text.filter(lambda s: "\n" not in s and "\r" not in s),
            json_values.map(_json_line),
            _pick(_seeds()).map(lambda t: t.model_dump_json()),
            _pick(_seeds()).map(
                lambda t: _json_line(
                    {**json.loads(t.model_dump_json()), "id": "../../../../escape"}
                )
            ),
        ),
        min_size=1,
        max_size=12,
    ),
    st.integers(1, 5),
)
@example(lines=["\u2028", "\xa0"], shard_size=1)  # Unicode spaces: still one line each
def test_validate_writes_only_inside_its_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_log: WriteLog, lines: list[str],
    shard_size: int,
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    run_dir = _fresh_run(tmp_path)
    source = tmp_path / "input.jsonl"
    source.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass") + b"\n")
    before = sorted(p.name for p in tmp_path.parent.iterdir())
    write_log.start()
    try:
        section = validate_file(source, run_dir, shard_size)
    finally:
        write_log.active = False
    assert write_log.events and not write_log.outside(run_dir)
    assert sorted(p.name for p in tmp_path.parent.iterdir()) == before
    counts = section.counts
    assert counts.accepted + counts.rejected == counts.input


def _readable(text: str) -> str:
    """What survives a trip through a seed file: no lone surrogates."""
    return text.encode("utf-8", "replace").decode("utf-8")


@pytest.mark.slow
@_settings(30)
@given(
    st.lists(_pick(_seeds()), min_size=1, max_size=3, unique_by=lambda t: t.id),
    st.lists(
        st.sampled_from(["id", "question", "source", "category", "calls"]), min_size=1, max_size=3
    ),
    hostile_text.map(_readable),
)
@example(
    seeds=_seeds()[:2], changes=["id", "question"], text="\u2028\x85"
)  # splitlines() breaks there
def test_evolve_writes_only_inside_its_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write_log: WriteLog, seeds: list[Task],
    changes: list[str], text: str,
) -> None:  # fmt: skip
    """Seeds as a hostile seed file could hold them (path-like ids and sources, huge questions,
    a category the calls do not use, calls in the wrong order)."""
    monkeypatch.chdir(tmp_path)
    hostile: list[Task] = []
    for task in seeds:
        data = json.loads(task.model_dump_json())
        for change in changes:
            if change == "id":
                data["id"] = f"../../../{text}"
            elif change == "question":
                data["question"] = text or "?"
            elif change == "source":
                data["lineage"]["source"] = f"/etc/{text}"
            elif change == "category":
                data["category"] = "maths" if task.category != "maths" else "filesystem"
            elif change == "calls":
                data["calls"].reverse()
        try:
            hostile.append(Task.model_validate_json(json.dumps(data)))
        except ValidationError as refused:  # the contract refuses it: not a seed at all
            assert {e["loc"][0] for e in refused.errors()} <= {"id", "question"}, refused
    if not hostile:
        return
    run_dir = _fresh_run(tmp_path)
    write_log.start()
    try:
        section = evolve(hostile, run_dir, EvolveSettings(rounds=1, shard_size=2))
    finally:
        write_log.active = False
    assert write_log.events and not write_log.outside(run_dir)
    assert section.counts.seeds == len(hostile)


@_settings(25)
@given(st.data(), st.sampled_from(["../../../../escape", "a/b", "", ".", "..", "x" * 300]))
def test_eval_logs_stay_inside_their_folder(
    tmp_path: Path, write_log: WriteLog, data: st.DataObject, instance_id: str
) -> None:
    instance = data.draw(_pick(_instances()))
    instance = instance.model_copy(update={"id": instance_id})
    script = data.draw(st.lists(st.lists(_actions(instance), max_size=3), max_size=5))
    agent = ScriptedAgent(script)
    out_dir = _fresh_run(tmp_path) / "eval" / "random-clock"
    write_log.start()
    try:
        scores = asyncio.run(run_many([instance], lambda _: agent, "random", Mode.CLOCK, out_dir))
    finally:
        write_log.active = False
    assert len(scores) == 1
    assert write_log.events and not write_log.outside(out_dir / "episodes")
    assert len(list((out_dir / "episodes").glob("*.jsonl"))) == 1
