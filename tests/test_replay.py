from __future__ import annotations

import pytest

from pipeline.models import Call, Task
from pipeline.replay import build_envs, replay


def _task(calls: list[Call]) -> Task:
    return Task(id="t", category="maths", envs=["maths"], question="q", calls=calls)


def test_replay_returns_results_errors_and_final_state() -> None:
    result = replay(
        _task(
            [
                Call(id="s1", tool="maths.add", arguments={"a": 1, "b": 2}),
                Call(id="s2", tool="maths.divide", arguments={"a": 1, "b": 0}),
                Call(id="s3", tool="maths.multiply", arguments={"a": 3, "b": 2}),
                Call(id="s4", tool="vehicle.startEngine", arguments={}),
                Call(id="s5", tool="nowhere.nothing", arguments={}),
            ]
        )
    )
    assert [o.result for o in result.outcomes[:3]] == [{"result": 3.0}, None, {"result": 6.0}]
    assert result.outcomes[1].error == "cannot divide by zero"
    assert "not part of this task" in (result.outcomes[3].error or "")
    assert "unknown environment" in (result.outcomes[4].error or "")
    assert [o.call_id for o in result.errors] == ["s2", "s4", "s5"]
    assert not result.ok
    assert result.final_state == {"maths": {}}
    assert len(result.state_digest()) == 32


def test_build_envs_rejects_config_for_unused_or_invalid_envs() -> None:
    with pytest.raises(ValueError, match="does not use"):
        build_envs(["maths"], {"vehicle": {}})
    with pytest.raises(ValueError, match="invalid initial state"):
        build_envs(["maths"], {"maths": {"bogus": 1}})
    with pytest.raises(KeyError, match="unknown environment"):
        build_envs(["nowhere"], {})


def test_a_tool_that_breaks_on_hostile_arguments_fails_its_call_not_the_run() -> None:
    from pipeline.models import Call, Task
    from pipeline.replay import replay
    from pipeline.validate.chain import validate_task

    huge = Call(
        id="s1",
        tool="string_manipulation.regex_replace",
        arguments={"text": "aaa", "pattern": "a", "replacement": "b", "count": 2**63},
    )
    outcome = replay(
        Task(id="x", category="string_manipulation", envs=["string_manipulation"],
             question="q", initial_config={}, calls=[huge])
    ).outcomes[0]  # fmt: skip
    assert outcome.ok and outcome.result is not None  # an absurd count means "all of them"
    from pipeline.envs.string_manipulation import StringManipulation

    def broken(self: object, **_: object) -> None:
        raise OverflowError("simulated bug")

    original = StringManipulation.regex_replace
    try:
        StringManipulation.regex_replace = broken  # type: ignore[method-assign,assignment]
        task = Task(
            id="pending", category="string_manipulation", envs=["string_manipulation"],
            question="Replace every a with b in 'aaa', twice.", initial_config={},
            calls=[huge, Call(id="s2", tool=huge.tool, arguments={**huge.arguments, "text": "ab"})],
        ).with_content_id()  # fmt: skip
        verdict = validate_task(task)
    finally:
        StringManipulation.regex_replace = original  # type: ignore[method-assign]
    assert verdict.rejection is not None
    assert "failed unexpectedly (OverflowError: simulated bug)" in verdict.rejection.message
