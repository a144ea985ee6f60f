"""The scheduling model shared by composition (bounds) and the harness (simulation).

One agent works on all tasks of an instance. It acts in **turns**; a turn costs ``turn_cost``
seconds. In a turn it may issue any calls whose inputs it has seen and finish any task whose
results it has all seen. Calls issued in a turn start when the turn ends and run in parallel
without limit; a call's result is delivered ``latency[tool]`` seconds after it starts. A turn
starting at time ``t`` sees every result delivered at or before ``t``. Between turns the agent
may wait for the next delivery. A call may be issued only after every call it depends on has
been delivered; a task is finished in a turn after its last result is delivered.

* **Sequential makespan**: one task at a time, one call per turn, each call awaited, then one
  turn to finish the task: ``sum over tasks of (sum over calls of (turn + latency) + turn)``.
* **Optimal makespan**: the earliest time by which every task can be finished. Issuing every
  ready call in a turn is never worse (calls are free and parallel), so the only choice at each
  idle moment is *act now* or *wait for the next delivery*; the search below tries both with
  memoisation and returns the best makespan together with the turn times that reach it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache

from pipeline.models import Bounds, Task

_EPS = 1e-9


@dataclass(frozen=True)
class TaskDag:
    """One task's calls: their latencies (seconds) and, per call, the calls it depends on."""

    latencies: tuple[float, ...]
    depends: tuple[frozenset[int], ...]

    def __post_init__(self) -> None:
        if len(self.latencies) != len(self.depends):
            raise ValueError("one dependency set per call")
        for index, parents in enumerate(self.depends):
            if any(parent >= index or parent < 0 for parent in parents):
                raise ValueError(f"call {index} depends on a call that does not come before it")


def sequential_makespan(dags: Sequence[TaskDag], turn_cost: float) -> float:
    return sum(sum(turn_cost + latency for latency in dag.latencies) + turn_cost for dag in dags)


@dataclass(frozen=True)
class Schedule:
    makespan: float
    turns: tuple[float, ...]  # start times of the agent's turns, in order


def optimal_schedule(dags: Sequence[TaskDag], turn_cost: float) -> Schedule:
    """The best schedule under the model above (exact search over act-or-wait decisions)."""
    calls = [(t, c) for t, dag in enumerate(dags) for c in range(len(dag.latencies))]
    index = {call: i for i, call in enumerate(calls)}
    latency = [dags[t].latencies[c] for t, c in calls]
    parents = [tuple(index[(t, p)] for p in dags[t].depends[c]) for t, c in calls]
    task_calls = [
        tuple(index[(t, c)] for c in range(len(dag.latencies))) for t, dag in enumerate(dags)
    ]
    n_tasks = len(dags)

    @cache
    def best(
        now: float, delivery: tuple[float | None, ...], finished: frozenset[int]
    ) -> tuple[float, tuple[float, ...]]:
        if len(finished) == n_tasks:
            return now, ()
        seen = [d is not None and d <= now + _EPS for d in delivery]
        ready = [
            i for i, d in enumerate(delivery) if d is None and all(seen[p] for p in parents[i])
        ]
        finishable = [
            t for t in range(n_tasks) if t not in finished and all(seen[i] for i in task_calls[t])
        ]
        pending = [d for d in delivery if d is not None and d > now + _EPS]
        options: list[tuple[float, tuple[float, ...]]] = []
        if ready or finishable:
            end = now + turn_cost
            after = list(delivery)
            for i in ready:
                after[i] = end + latency[i]
            done = finished | frozenset(finishable)
            makespan, turns = best(end, tuple(after), done)
            options.append((makespan, (now, *turns)))
        if pending and (ready or finishable):
            makespan, turns = best(min(pending), delivery, finished)
            options.append((makespan, turns))
        elif pending:
            return best(min(pending), delivery, finished)
        if not options:
            return float("inf"), ()
        return min(options, key=lambda option: (option[0], len(option[1])))

    makespan, turns = best(0.0, tuple([None] * len(calls)), frozenset())
    best.cache_clear()
    return Schedule(round(makespan, 9), turns)


# ----- tasks and instances ---------------------------------------------------------------------


def task_dag(task: Task, latency: Mapping[str, float]) -> TaskDag:
    position = {call.id: index for index, call in enumerate(task.calls)}
    return TaskDag(
        tuple(latency[call.tool] for call in task.calls),
        tuple(frozenset(position[parent] for parent in call.depends_on) for call in task.calls),
    )


def bounds_for(tasks: Sequence[Task], latency: Mapping[str, float], turn_cost: float) -> Bounds:
    dags = [task_dag(task, latency) for task in tasks]
    return Bounds(
        optimal_makespan=optimal_schedule(dags, turn_cost).makespan,
        sequential_makespan=round(sequential_makespan(dags, turn_cost), 9),
        turn_cost=turn_cost,
    )
