"""Harness benchmarks, one core: oracle episodes per second (simulation and scoring), and the
simulator's own overhead per agent turn (wall time of an episode minus the agent's time, per
turn). Instances are built fresh: the seeds evolved for one round, then composed."""

from __future__ import annotations

import asyncio
import os
import platform
import tempfile
import time
from pathlib import Path

from pipeline.compose import ComposeSettings, compose
from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.harness.oracles import OracleAsync, OracleSync
from pipeline.harness.runner import run_many
from pipeline.harness.sim import Action, Episode, Mode, Observation
from pipeline.jsonl import read_records
from pipeline.models import Instance, Task
from pipeline.seeds import load_seeds


def build(count: int) -> list[Instance]:
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        evolve(load_seeds(), run, EvolveSettings(rounds=1))
        tasks = list(read_records(run / "evolved.jsonl", Task))
    return compose(tasks, ComposeSettings(count=count, seed=1)).instances


class Timed:
    """Wraps an agent and adds up the time spent inside it."""

    def __init__(self, agent: OracleAsync) -> None:
        self.agent = agent
        self.name = agent.name
        self.spent = 0.0

    async def __call__(self, observation: Observation) -> list[Action]:
        started = time.perf_counter()
        actions = await self.agent(observation)
        self.spent += time.perf_counter() - started
        return actions


async def overhead(instances: list[Instance]) -> tuple[float, int]:
    total = 0.0
    turns = 0
    for instance in instances:
        episode = Episode(instance, Mode.CLOCK)
        agent = Timed(OracleAsync(episode))
        started = time.perf_counter()
        trace = await episode.run(agent)
        total += time.perf_counter() - started - agent.spent
        turns += len(trace.turns) + sum(1 for e in trace.events if e["event"] == "wait")
    return total, turns


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (pinned to one),"
        f" Python {platform.python_version()}"
    )
    instances = build(1000)
    for name, factory in (("oracle-async", OracleAsync), ("oracle-sync", OracleSync)):
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            asyncio.run(run_many(instances, factory, name, Mode.CLOCK, concurrency=64))
            best = min(best, time.perf_counter() - started)
        print(
            f"{name:13s} {len(instances)} episodes: {len(instances) / best:7.0f} episodes/s"
            " (best of 3, with scoring)"
        )
    seconds, turns = asyncio.run(overhead(instances))
    print(f"simulator overhead: {seconds / turns * 1000:.3f} ms per agent step ({turns} steps)")


if __name__ == "__main__":
    main()
