"""Publish throughput: build the dataset folder of a run holding 10,000 multi-task instances.

The instances are synthesised from the project's seeds (2-3 seeds of one split each, made-up
latencies and bounds), so this times publishing alone; composition is timed elsewhere. Each
pass reads the run's JSON lines, assigns splits, writes every Parquet file and the card, and
swaps the folder in. Then ``datasets.load_dataset`` reads the multi config back.
"""

from __future__ import annotations

import os
import platform
import random
import statistics
import tempfile
import time
from pathlib import Path

import datasets

from pipeline.jsonl import write_records
from pipeline.models import Bounds, Composition, Instance, Task
from pipeline.publish import build_dataset_folder
from pipeline.seeds import load_seeds
from pipeline.splits import Split, split_of

INSTANCES = 10_000
PASSES = 3


def synthesise(seeds: list[Task], count: int, rng: random.Random) -> list[Instance]:
    pools = {split: [s for s in seeds if split_of(s.id) is split] for split in Split}
    instances = []
    for number in range(count):
        split = Split.TEST if rng.random() < 0.2 else Split.TRAIN
        tasks = rng.sample(pools[split], rng.choice((2, 3)))
        tools = sorted({call.tool for task in tasks for call in task.calls})
        optimal = rng.uniform(2, 10)
        instances.append(
            Instance(
                id=f"bench-{number:05d}",
                tasks=tasks,
                composition=rng.choice(list(Composition)),
                latency_profile=rng.choice(("uniform", "lognormal", "paper-rounds")),
                seed=rng.getrandbits(32),
                latency={tool: round(rng.uniform(0.1, 3.0), 3) for tool in tools},
                bounds=Bounds(
                    optimal_makespan=optimal,
                    sequential_makespan=optimal * rng.uniform(1.2, 3),
                    turn_cost=1.0,
                ),
            )
        )
    return instances


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, {platform.platform()}"
    )
    seeds = load_seeds()
    instances = synthesise(seeds, INSTANCES, random.Random(0))
    with tempfile.TemporaryDirectory() as temp:
        run_dir = Path(temp)
        write_records(run_dir / "evolved.jsonl", seeds)
        write_records(run_dir / "instances.jsonl", instances)
        size = (run_dir / "instances.jsonl").stat().st_size
        print(
            f"input: {len(seeds)} tasks, {INSTANCES} instances ({size / 1e6:.1f} MB of JSON lines)"
        )
        times = []
        for _ in range(PASSES):
            started = time.perf_counter()
            folder = build_dataset_folder(run_dir)
            times.append(time.perf_counter() - started)
        best, median = min(times), statistics.median(times)
        parquet = sum(p.stat().st_size for p in (folder / "data" / "multi").glob("*.parquet"))
        print(
            f"publish     best of {PASSES}: {best:6.2f} s  (median {median:.2f} s)"
            f"  {INSTANCES / best:8.0f} instances/s  multi Parquet {parquet / 1e6:.1f} MB"
        )
        started = time.perf_counter()
        loaded = datasets.load_dataset(str(folder), "multi", cache_dir=str(run_dir / "cache"))
        seconds = time.perf_counter() - started
        rows = sum(len(split) for split in loaded.values())
        print(
            f"load multi  first load:  {seconds:6.2f} s  {rows / seconds:8.0f} rows/s ({rows} rows)"
        )


if __name__ == "__main__":
    main()
