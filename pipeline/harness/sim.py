"""The discrete-event simulator: one agent, several tasks, tools that answer late.

The clock is virtual and follows the scheduling model of ``pipeline.schedule``: a turn costs
``turn_cost`` seconds (or the agent's measured wall time); calls issued in a turn start when it
ends, each gets an immediate acknowledgement with its call id, runs against *its task's own*
environments at that moment, and its result is delivered ``latency`` seconds later — possibly
out of order. A turn sees every result delivered by its start. A response with no call and no
finished task is a wait: it costs nothing and moves the clock to the next delivery.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import JsonValue

from pipeline.envs import ToolError, resolve_tool
from pipeline.models import Instance
from pipeline.replay import Envs, build_envs
from pipeline.schedule import TaskDag, optimal_schedule, sequential_makespan, task_dag


class Mode(StrEnum):
    SYNC = "sync"  # no latency: results arrive as the turn ends
    ROUNDS = "rounds"  # every call takes one turn, the paper's setting
    CLOCK = "clock"  # per-tool seconds from the instance's latency table


@dataclass(frozen=True)
class CallAction:
    task_id: str
    tool: str  # qualified: "filesystem.cd"
    arguments: dict[str, Any]


@dataclass(frozen=True)
class FinishAction:
    task_id: str
    answer: str


@dataclass(frozen=True)
class WaitAction:
    pass


Action = CallAction | FinishAction | WaitAction


@dataclass(frozen=True)
class Ack:
    call_id: str
    task_id: str
    tool: str
    status: str  # "pending" or "rejected"
    eta: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class Delivery:
    call_id: str
    task_id: str
    tool: str
    arguments: dict[str, Any]
    result: JsonValue
    error: str | None
    issued_at: float  # start of the turn that issued it
    started_at: float  # end of that turn
    delivered_at: float


@dataclass
class Observation:
    now: float
    deliveries: list[Delivery]
    acks: list[Ack]
    pending: int
    finished: frozenset[str]


@dataclass
class IssuedCall:
    call_id: str
    task_id: str
    tool: str
    arguments: dict[str, Any]
    turn: int
    issued_at: float
    started_at: float
    delivered_at: float | None  # None when the harness refused it
    result: JsonValue = None
    error: str | None = None
    seen_results: frozenset[str] = frozenset()  # call ids delivered before its turn began


@dataclass
class EpisodeTrace:
    instance_id: str
    mode: Mode
    turn_cost: float
    turns: list[tuple[float, float]] = field(default_factory=list)  # (start, end)
    calls: list[IssuedCall] = field(default_factory=list)
    finished: dict[str, tuple[float, str]] = field(default_factory=dict)  # task -> (time, answer)
    end_time: float = 0.0
    stop_reason: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    envs: dict[str, Envs] = field(default_factory=dict)


AgentStep = Callable[[Observation], Awaitable[list[Action]]]


def latency_of(instance: Instance, mode: Mode, turn_cost: float, tool: str) -> float:
    if mode is Mode.SYNC:
        return 0.0
    if mode is Mode.ROUNDS:
        return turn_cost
    if tool in instance.latency:
        return instance.latency[tool]
    return resolve_tool(tool)[1].latency  # a tool outside the ground truth: its default


class Episode:
    """One instance under one mode; ``run(agent_step)`` plays it out and returns the trace."""

    def __init__(
        self,
        instance: Instance,
        mode: Mode = Mode.CLOCK,
        turn_cost: float | None = None,
        measure_turns: bool = False,
        max_turns: int = 200,
    ) -> None:
        self.instance = instance
        self.mode = mode
        self.turn_cost = instance.bounds.turn_cost if turn_cost is None else turn_cost
        self.measure_turns = measure_turns
        self.max_turns = max_turns
        self.task_ids = [task.id for task in instance.tasks]
        self.trace = EpisodeTrace(instance.id, mode, self.turn_cost)
        self.trace.envs = {t.id: build_envs(t.envs, t.initial_config) for t in instance.tasks}
        self._pending: list[tuple[float, int, IssuedCall]] = []
        self._delivered: list[Delivery] = []
        self._counter = 0
        self._wall0 = time.perf_counter()

    def latency(self, tool: str) -> float:
        return latency_of(self.instance, self.mode, self.turn_cost, tool)

    def dags(self) -> list[TaskDag]:
        """The tasks' ground-truth DAGs with this episode's latencies."""
        latency = {c.tool: self.latency(c.tool) for t in self.instance.tasks for c in t.calls}
        return [task_dag(task, latency) for task in self.instance.tasks]

    def bounds(self) -> tuple[float, float]:
        """(optimal, sequential) makespan under this episode's mode and turn cost."""
        dags = self.dags()
        optimal = optimal_schedule(dags, self.turn_cost).makespan
        return optimal, round(sequential_makespan(dags, self.turn_cost), 9)

    def _log(self, now: float, event: str, **data: Any) -> None:
        record = {"event": event, "sim_time": round(now, 6)}
        record["wall_time"] = round(time.perf_counter() - self._wall0, 6)
        record.update(data)
        self.trace.events.append(record)

    def _deliver_until(self, now: float) -> list[Delivery]:
        fresh: list[Delivery] = []
        while self._pending and self._pending[0][0] <= now + 1e-9:
            delivered_at, _, call = heapq.heappop(self._pending)
            delivery = Delivery(
                call.call_id, call.task_id, call.tool, call.arguments, call.result, call.error,
                call.issued_at, call.started_at, delivered_at,
            )  # fmt: skip
            fresh.append(delivery)
            self._log(delivered_at, "delivery", call_id=call.call_id, task_id=call.task_id,
                      tool=call.tool, result=call.result, error=call.error)  # fmt: skip
        self._delivered.extend(fresh)
        return fresh

    def _issue(self, action: CallAction, turn: int, start: float, end: float) -> Ack:
        self._counter += 1
        call_id = f"c{self._counter}"
        seen = frozenset(d.call_id for d in self._delivered if d.delivered_at <= start + 1e-9)
        issued = IssuedCall(call_id, action.task_id, action.tool, dict(action.arguments), turn,
                            start, end, None, seen_results=seen)  # fmt: skip
        self.trace.calls.append(issued)
        envs = self.trace.envs.get(action.task_id)
        env_name, _, function = action.tool.partition(".")
        refusal = None
        if envs is None:
            refusal = f"there is no task {action.task_id!r}; tasks: {', '.join(self.task_ids)}"
        elif env_name not in envs:
            refusal = f"task {action.task_id} has no tool {action.tool!r}"
        if refusal is not None:
            issued.error = refusal
            self._log(start, "call", call_id=call_id, task_id=action.task_id, tool=action.tool,
                      arguments=action.arguments, status="rejected", error=refusal)  # fmt: skip
            return Ack(call_id, action.task_id, action.tool, "rejected", error=refusal)
        assert envs is not None
        try:
            issued.result = envs[env_name].invoke(function, action.arguments)
        except ToolError as error:
            issued.error = str(error)
        issued.delivered_at = end + self.latency(action.tool)
        heapq.heappush(self._pending, (issued.delivered_at, self._counter, issued))
        self._log(
            start, "call", call_id=call_id, task_id=action.task_id, tool=action.tool,
            arguments=action.arguments, status="pending", started_at=end,
            eta=issued.delivered_at,
        )  # fmt: skip
        return Ack(call_id, action.task_id, action.tool, "pending", eta=issued.delivered_at)

    async def run(self, agent_step: AgentStep) -> EpisodeTrace:
        now = 0.0
        acks: list[Ack] = []
        fresh: list[Delivery] = []
        turns = 0
        trace = self.trace
        # the log alone must be enough to redraw the episode (plots read it, not a rerun)
        self._log(now, "start", instance_id=self.instance.id, mode=self.mode.value,
                  turn_cost=self.turn_cost, task_ids=self.task_ids)  # fmt: skip
        while len(trace.finished) < len(self.task_ids):
            observation = Observation(
                now, fresh, acks, len(self._pending), frozenset(trace.finished)
            )
            wall = time.perf_counter()
            actions = await agent_step(observation)
            spent = time.perf_counter() - wall
            calls = [a for a in actions if isinstance(a, CallAction)]
            finishes = [a for a in actions if isinstance(a, FinishAction)]
            if not calls and not finishes:
                if not self._pending:
                    trace.stop_reason = "the agent waited with nothing pending"
                    break
                now = self._pending[0][0]
                self._log(now, "wait")
                fresh, acks = self._deliver_until(now), []
                continue
            turns += 1
            if turns > self.max_turns:
                trace.stop_reason = f"more than {self.max_turns} turns"
                break
            cost = spent if self.measure_turns else self.turn_cost
            start, end = now, now + cost
            trace.turns.append((start, end))
            self._log(start, "turn", number=turns, cost=cost, calls=len(calls),
                      finishes=[f.task_id for f in finishes])  # fmt: skip
            acks = [self._issue(call, turns, start, end) for call in calls]
            for finish in finishes:
                if finish.task_id in self.task_ids and finish.task_id not in trace.finished:
                    trace.finished[finish.task_id] = (end, finish.answer)
                    self._log(end, "finish", task_id=finish.task_id, answer=finish.answer)
            now = end
            fresh = self._deliver_until(now)
        else:
            trace.stop_reason = "all tasks finished"
        trace.end_time = now
        self._log(now, "end", reason=trace.stop_reason)
        return trace
