"""The project's seed tasks: enough per environment, each replays cleanly with real dependencies."""

from __future__ import annotations

from collections import Counter

import pytest

from pipeline.envs import ENVIRONMENTS
from pipeline.models import Task
from pipeline.replay import replay
from pipeline.seeds import load_seeds

SEEDS = load_seeds()


def test_at_least_ten_seeds_per_environment() -> None:
    counts = Counter(task.category for task in SEEDS)
    short = {name: counts[name] for name in ENVIRONMENTS if counts[name] < 10}
    assert not short, f"environments with fewer than 10 seeds: {short}"


@pytest.mark.parametrize("task", SEEDS, ids=[f"{t.category}-{t.id}" for t in SEEDS])
def test_seed_replays_cleanly_with_a_real_dependency(task: Task) -> None:
    assert task.id == task.content_id()
    assert len(task.calls) >= 2
    assert any(call.depends_on for call in task.calls), "a seed needs at least one dependency"
    ids = [call.id for call in task.calls]
    assert len(set(ids)) == len(ids)
    for position, call in enumerate(task.calls):
        assert set(call.depends_on) <= set(ids[:position]), f"{call.id} depends on a later step"
        for source in call.bindings.values():
            assert source.split(".", 1)[0] in call.depends_on
    result = replay(task)
    assert result.ok, [f"{o.call_id}: {o.error}" for o in result.errors]
    for call in task.calls:
        for argument, source in call.bindings.items():
            step, _, path = source.partition(".")
            value = next(o.result for o in result.outcomes if o.call_id == step)
            for key in filter(None, path.split(".")):
                value = value[int(key)] if isinstance(value, list) else value[key]  # type: ignore[index,call-overload]
            name, _, index = argument.partition(".")
            bound = call.arguments[name]
            if index:
                assert isinstance(bound, list)
                bound = bound[int(index)]
            assert value == bound or (isinstance(bound, list) and value in bound), (
                f"{call.id}.{argument} is bound to {source} but differs from its value"
            )
    again = replay(task)
    assert again.final_state == result.final_state, "replay is not deterministic"
