"""Two independent creations done the other way round still solve the task: the tickets hold
each other's ids, and the scorer compares ids by the call that drew them."""

from __future__ import annotations

import asyncio

from instances import instance_of

from pipeline.dependencies import infer_dependencies
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
from pipeline.models import Call, Instance, Task
from pipeline.validate.chain import validate_task

_TICKETS = {"tickets": {"ticket_queue": [], "ticket_counter": 58, "current_user": "bmartin"}}


def _task(question: str, envs: list[str], config: dict, calls: list[Call]) -> Task:  # type: ignore[type-arg]
    calls = infer_dependencies(envs, config, calls, question)
    task = Task(
        id="pending", category=envs[0], envs=envs, question=question,
        initial_config=config, calls=calls,
    ).with_content_id()  # fmt: skip
    verdict = validate_task(task)
    assert verdict.task is not None, verdict.rejection
    return verdict.task


def _instance() -> Instance:
    tickets = _task(
        "Open a ticket titled 'Laptop battery swelling' and one titled 'Replace mouse'.",
        ["tickets"],
        _TICKETS,
        [
            Call(
                id="s1",
                tool="tickets.create_ticket",
                arguments={"title": "Laptop battery swelling"},
            ),
            Call(id="s2", tool="tickets.create_ticket", arguments={"title": "Replace mouse"}),
        ],
    )
    assert [call.depends_on for call in tickets.calls] == [[], []]
    maths = _task(
        "Add 3 and 4, and multiply 6 by 7.",
        ["maths"],
        {},
        [
            Call(id="s1", tool="maths.add", arguments={"a": 3, "b": 4}),
            Call(id="s2", tool="maths.multiply", arguments={"a": 6, "b": 7}),
        ],
    )
    return instance_of([tickets, maths], "drawn-ids")


class Reversed:
    """Issues every call at once, each task's calls in reverse order, then finishes."""

    name = "reversed"

    def __init__(self, episode: Episode) -> None:
        self.instance = episode.instance
        self.started = False

    async def __call__(self, observation: Observation) -> list[Action]:
        if not self.started:
            self.started = True
            return [
                CallAction(task.id, call.tool, dict(call.arguments))
                for task in self.instance.tasks
                for call in reversed(task.calls)
            ]
        if observation.pending:
            return [WaitAction()]
        return [FinishAction(task.id, "done") for task in self.instance.tasks]


def test_independent_creations_in_the_other_order_solve_the_task() -> None:
    _, score = asyncio.run(run_episode(_instance(), Reversed, Mode.CLOCK))
    assert score.success, score.label_details
