"""A scripted agent makes each failure on purpose; the episode gets exactly that label."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from pipeline.harness.oracles import OracleAsync
from pipeline.harness.runner import run_episode
from pipeline.harness.sim import (
    Action,
    CallAction,
    Episode,
    FinishAction,
    Mode,
    Observation,
    WaitAction,
)
from pipeline.models import Instance

Tamper = Callable[[Instance, list[Action], Observation], list[Action]]


class Saboteur:
    """Plays the optimal oracle, but lets ``tamper`` rewrite its actions."""

    name = "saboteur"

    def __init__(self, episode: Episode, tamper: Tamper) -> None:
        self.oracle = OracleAsync(episode)
        self.instance = episode.instance
        self.tamper = tamper

    async def __call__(self, observation: Observation) -> list[Action]:
        return self.tamper(self.instance, await self.oracle(observation), observation)


def _dependent(instance: Instance) -> tuple[str, int] | None:
    for task in instance.tasks:
        for index, call in enumerate(task.calls):
            if call.depends_on:
                return task.id, index
    return None


def rush_dependent(instance: Instance, actions: list[Action], obs: Observation) -> list[Action]:
    """In the first turn, also send a dependent step whose producer has not answered yet."""
    target = _dependent(instance)
    if obs.now == 0 and target is not None:
        task = next(t for t in instance.tasks if t.id == target[0])
        call = task.calls[target[1]]
        return [*actions, CallAction(task.id, call.tool, dict(call.arguments))]
    return actions


def neglect_last(instance: Instance, actions: list[Action], obs: Observation) -> list[Action]:
    """Never finish the last task."""
    last = instance.tasks[-1].id
    kept = [a for a in actions if not (isinstance(a, FinishAction) and a.task_id == last)]
    return kept if kept or not actions else [WaitAction()]


def wrong_task(instance: Instance, actions: list[Action], obs: Observation) -> list[Action]:
    """Send the first call of task 1 to task 2 as well (that task's tools may not fit)."""
    if obs.now == 0:
        first = instance.tasks[0].calls[0]
        return [*actions, CallAction(instance.tasks[1].id, first.tool, dict(first.arguments))]
    return actions


def invented_value(instance: Instance, actions: list[Action], obs: Observation) -> list[Action]:
    """Add a call with an argument nobody ever mentioned."""
    if obs.now == 0:
        task = instance.tasks[0]
        call = task.calls[0]
        arguments = {
            k: ("Qwertzuiop Invented 913" if isinstance(v, str) else v)
            for k, v in call.arguments.items()
        }
        if arguments != call.arguments:
            return [*actions, CallAction(task.id, call.tool, arguments)]
    return actions


CASES: dict[str, tuple[Tamper, str]] = {
    "dependency violation": (rush_dependent, "dependency_violation"),
    "task neglect": (neglect_last, "task_neglect"),
    "tool confusion": (wrong_task, "tool_confusion"),
    "ungrounded argument": (invented_value, "ungrounded_argument"),
}


def _eligible(instance: Instance, case: str) -> bool:
    if case == "dependency violation":
        return _dependent(instance) is not None
    if case == "ungrounded argument":
        return any(isinstance(v, str) for v in instance.tasks[0].calls[0].arguments.values())
    if case == "tool confusion":
        return instance.tasks[0].category != instance.tasks[1].category
    return True


@pytest.mark.parametrize("case", list(CASES))
def test_each_failure_gets_exactly_its_label(instances: list[Instance], case: str) -> None:
    tamper, expected = CASES[case]
    chosen = [i for i in instances if _eligible(i, case)][:15]
    assert len(chosen) >= 10
    for instance in chosen:
        _, score = asyncio.run(
            run_episode(instance, lambda episode: Saboteur(episode, tamper), Mode.CLOCK)
        )
        # a value used before the call that reveals it is also ungrounded: the initial state
        # is hidden from the agent, so rushing a dependent call may earn both labels
        allowed = (
            {expected, "ungrounded_argument"} if expected == "dependency_violation" else {expected}
        )
        assert expected in score.labels and set(score.labels) <= allowed, (
            instance.id,
            score.label_details,
        )
        if expected == "task_neglect":
            assert not score.success
