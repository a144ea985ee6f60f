"""The tool framework: derived schemas, strict arguments, seeded randomness, readable diffs."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import JsonValue

from pipeline.envs import Environment, SeededState, ToolError, ToolKind, tool
from pipeline.envs.diff import state_diff


class CounterState(SeededState):
    random_seed: int = 7
    value: int = 0
    log: list[str] = []


class CounterEnv(Environment[CounterState]):
    name = "counter"
    state_model = CounterState

    @tool(ToolKind.WRITE, 0.5)
    def bump(
        self, by: int, mode: Literal["add", "sub"] = "add", note: str | None = None
    ) -> dict[str, JsonValue]:
        """Change the counter.

        Args:
            by: How much to change it by.
            mode: Whether to add or subtract.
            note: Optional text kept in the log.
        """
        if by <= 0:
            raise ToolError("by must be positive")
        self.state.value += by if mode == "add" else -by
        if note is not None:
            self.state.log.append(note)
        return {"value": self.state.value}

    @tool(ToolKind.READ, 0.1)
    def draw(self) -> dict[str, JsonValue]:
        """Draw a random ticket number."""
        return {"ticket": self.rng.randint(1000, 9999), "x": self.rng.uniform(0.0, 1.0)}


def test_schema_is_derived_from_signature_and_docstring() -> None:
    spec = CounterEnv.tool_specs()["bump"]
    assert spec.kind is ToolKind.WRITE and spec.latency == 0.5
    assert spec.param_names == ("by", "mode", "note")
    schema = CounterEnv.openai_tools()[0]
    assert schema["type"] == "function"
    function = schema["function"]
    assert function["name"] == "counter.bump"
    assert function["description"] == "Change the counter."
    params = function["parameters"]
    assert params["required"] == ["by"]
    assert params["properties"]["by"] == {
        "type": "integer",
        "description": "How much to change it by.",
    }
    assert params["properties"]["mode"]["enum"] == ["add", "sub"]
    assert params["properties"]["mode"]["default"] == "add"
    assert "title" not in params
    assert CounterEnv.tool_specs()["draw"].parameters["properties"] == {}


def test_strict_arguments_and_tool_errors_leave_state_unchanged() -> None:
    env = CounterEnv.from_state({})
    assert env.invoke("bump", {"by": 2, "note": "first"}) == {"value": 2}
    before = env.snapshot()
    for bad in ({"by": "2"}, {"by": 2, "mode": "mul"}, {"by": 2, "extra": 1}, {"by": -1}, {}):
        with pytest.raises(ToolError):
            env.invoke("bump", bad)
    with pytest.raises(ToolError, match="no tool named"):
        env.invoke("explode", {})
    assert env.snapshot() == before


def test_undocumented_or_untyped_tools_are_refused() -> None:
    with pytest.raises(TypeError, match="not documented"):

        class Bad(Environment[CounterState]):  # noqa: F841
            name = "bad"
            state_model = CounterState

            @tool(ToolKind.READ, 0.1)
            def peek(self, key: str) -> None:
                """Peek."""


def test_seeded_draws_resume_from_a_snapshot() -> None:
    straight = CounterEnv.from_state({})
    expected = [straight.invoke("draw", {}) for _ in range(6)]
    first = CounterEnv.from_state({})
    got = [first.invoke("draw", {}) for _ in range(3)]
    resumed = CounterEnv.from_state(first.snapshot())
    got += [resumed.invoke("draw", {}) for _ in range(3)]
    assert got == expected
    assert resumed.snapshot()["rng_words"] > 0
    other_seed = CounterEnv.from_state({"random_seed": 8})
    assert other_seed.invoke("draw", {}) != expected[0]


def test_seeded_draws_match_plain_python_random() -> None:
    import random

    plain = random.Random(7)
    env = CounterEnv.from_state({})
    assert env.invoke("draw", {}) == {
        "ticket": plain.randint(1000, 9999),
        "x": plain.uniform(0.0, 1.0),
    }


def test_state_diff_is_readable() -> None:
    before = {"a": 1, "tree": {"x": {"content": "old"}}, "items": [1, 2], "gone": True}
    after = {"a": 2, "tree": {"x": {"content": "new"}}, "items": [1], "added": "yes"}
    assert state_diff(before, after) == [
        "a: 1 -> 2",
        'tree.x.content: "old" -> "new"',
        "- items[1]: 2",
        "- gone: true",
        '+ added: "yes"',
    ]
    assert state_diff(before, before) == []
