"""Reference agents that play the ground truth: optimally interleaved, or one call at a time."""

from __future__ import annotations

import json

from pipeline.harness.sim import Action, CallAction, Episode, FinishAction, Observation, WaitAction
from pipeline.models import Task
from pipeline.schedule import optimal_schedule


def _answer(task: Task, results: dict[str, object]) -> str:
    """The oracle's final answer: the requested outputs (or the last result) as JSON."""
    wanted = list(task.expected.outputs) if task.expected and task.expected.outputs else []
    chosen = {step: results.get(step) for step in wanted} or {
        task.calls[-1].id: results.get(task.calls[-1].id)
    }
    return json.dumps(chosen, sort_keys=True, default=str)


class _GroundTruthPlayer:
    """Tracks which ground-truth calls were issued and delivered, per task."""

    def __init__(self, episode: Episode) -> None:
        self.tasks = episode.instance.tasks
        self.issued: dict[str, str] = {}  # harness call id -> "task_id/step_id"
        self.sent: set[str] = set()  # "task_id/step_id"
        self.delivered: dict[str, dict[str, object]] = {task.id: {} for task in self.tasks}
        self._order: list[str] = []

    def observe(self, observation: Observation) -> None:
        for ack, key in zip(observation.acks, self._order):
            self.issued[ack.call_id] = key
        self._order = []
        for delivery in observation.deliveries:
            owner = self.issued.get(delivery.call_id)
            if owner is not None:
                task_id, step = owner.split("/", 1)
                self.delivered[task_id][step] = delivery.result

    def ready(self, task: Task, limit: int | None = None) -> list[CallAction]:
        """Mark and return the task's calls whose inputs have all been delivered."""
        out: list[CallAction] = []
        for call in task.calls:
            key = f"{task.id}/{call.id}"
            if key in self.sent or (limit is not None and len(out) >= limit):
                continue
            if all(parent in self.delivered[task.id] for parent in call.depends_on):
                out.append(CallAction(task.id, call.tool, dict(call.arguments)))
                self._order.append(key)
                self.sent.add(key)
        return out

    def finishable(self, task: Task, finished: frozenset[str]) -> bool:
        return task.id not in finished and len(self.delivered[task.id]) == len(task.calls)


class OracleAsync:
    """Follows the optimal schedule: acts exactly at the planned turn times, else waits."""

    name = "oracle-async"

    def __init__(self, episode: Episode) -> None:
        self.player = _GroundTruthPlayer(episode)
        self.turns = list(optimal_schedule(episode.dags(), episode.turn_cost).turns)

    async def __call__(self, observation: Observation) -> list[Action]:
        self.player.observe(observation)
        if not self.turns or self.turns[0] > observation.now + 1e-6:
            return [WaitAction()]
        self.turns.pop(0)
        actions: list[Action] = []
        for task in self.player.tasks:
            if self.player.finishable(task, observation.finished):
                actions.append(FinishAction(task.id, _answer(task, self.player.delivered[task.id])))
        for task in self.player.tasks:
            actions.extend(self.player.ready(task))
        return actions


class OracleSync:
    """One task at a time, one call per turn, every call awaited: the sequential baseline."""

    name = "oracle-sync"

    def __init__(self, episode: Episode) -> None:
        self.player = _GroundTruthPlayer(episode)
        self.waiting = False

    async def __call__(self, observation: Observation) -> list[Action]:
        self.player.observe(observation)
        if observation.deliveries:
            self.waiting = False
        if self.waiting:
            return [WaitAction()]
        for task in self.player.tasks:
            if task.id in observation.finished:
                continue
            if self.player.finishable(task, observation.finished):
                return [FinishAction(task.id, _answer(task, self.player.delivered[task.id]))]
            ready = self.player.ready(task, limit=1)
            if ready:
                self.waiting = True
                return list(ready)
            return [WaitAction()]
        return [WaitAction()]
