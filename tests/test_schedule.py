"""The scheduling model: hand-checked schedules and bounds that hold for random DAGs."""

from __future__ import annotations

import random

import pytest

from pipeline.schedule import TaskDag, optimal_schedule, sequential_makespan


def chain(*latencies: float) -> TaskDag:
    return TaskDag(
        latencies, tuple(frozenset({i - 1}) if i else frozenset() for i in range(len(latencies)))
    )


def test_two_chains_interleave_and_waiting_can_beat_acting_at_once() -> None:
    a, b = chain(2.0, 1.0), chain(0.5, 0.5, 0.5)
    schedule = optimal_schedule([a, b], 1.0)
    # turn 0 issues a0 and b0; b0 is seen at 1.5, a0 at 3.0; a1 and b2 go out at 4.0 and land
    # at 5.0 and 4.5; one turn at 5.0 finishes both (acting at 4.5 would end at 6.5)
    assert schedule.makespan == pytest.approx(6.0)
    assert schedule.turns == (0.0, 1.5, 3.0, 5.0)
    assert sequential_makespan([a, b], 1.0) == pytest.approx(11.5)


def test_independent_calls_go_out_together() -> None:
    parallel = TaskDag((3.0, 2.0, 1.0), (frozenset(), frozenset(), frozenset()))
    assert optimal_schedule([parallel], 1.0).makespan == pytest.approx(5.0)  # 1 + 3 + 1
    assert sequential_makespan([parallel], 1.0) == pytest.approx(10.0)  # 4 + 3 + 2 + 1


def test_a_single_chain_cannot_be_sped_up() -> None:
    only = chain(0.4, 1.2, 0.7)
    assert optimal_schedule([only], 1.0).makespan == pytest.approx(sequential_makespan([only], 1.0))


def test_dependencies_must_point_backwards() -> None:
    with pytest.raises(ValueError, match="does not come before"):
        TaskDag((1.0, 1.0), (frozenset({1}), frozenset()))


def _greedy(dags: list[TaskDag], turn: float) -> float:
    """Act whenever anything can be done: a feasible schedule, so an upper bound."""
    delivered: dict[tuple[int, int], float] = {}
    finished: set[int] = set()
    now = 0.0
    while len(finished) < len(dags):
        seen = {k for k, d in delivered.items() if d <= now + 1e-9}
        ready = [
            (t, c)
            for t, dag in enumerate(dags)
            for c in range(len(dag.latencies))
            if (t, c) not in delivered and all((t, p) in seen for p in dag.depends[c])
        ]
        done = [
            t
            for t, dag in enumerate(dags)
            if t not in finished and all((t, c) in seen for c in range(len(dag.latencies)))
        ]
        if ready or done:
            for t, c in ready:
                delivered[(t, c)] = now + turn + dags[t].latencies[c]
            finished.update(done)
            now += turn
        else:
            now = min(d for d in delivered.values() if d > now + 1e-9)
    return now


def _critical_path(dag: TaskDag, turn: float) -> float:
    finish: list[float] = []
    for latency, parents in zip(dag.latencies, dag.depends):
        finish.append(max((finish[p] for p in parents), default=0.0) + turn + latency)
    return max(finish) + turn


def test_optimal_lies_between_the_critical_path_and_any_feasible_schedule() -> None:
    rng = random.Random(11)
    for _ in range(200):
        dags = []
        for _ in range(rng.choice([2, 3])):
            n = rng.randint(2, 5)
            depends = tuple(frozenset(p for p in range(i) if rng.random() < 0.5) for i in range(n))
            dags.append(TaskDag(tuple(round(rng.uniform(0.05, 3.0), 2) for _ in range(n)), depends))
        turn = rng.choice([0.5, 1.0, 2.0])
        optimal = optimal_schedule(dags, turn).makespan
        assert max(_critical_path(d, turn) for d in dags) <= optimal + 1e-9
        assert optimal <= _greedy(dags, turn) + 1e-9
        assert optimal <= sequential_makespan(dags, turn) + 1e-9
