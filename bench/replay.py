"""Replay throughput: tasks/s and calls/s, single core, in-process, best of 5 passes.

Also the time to import the BFCL base file at turn granularity (once, not best of).

Sets: the BFCL base tasks (imported at task granularity, all turns joined; skipped when the
peer data is absent) and the project's seeds. Each pass builds fresh environments from every
task's initial state, runs every call and snapshots the final state.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

from pipeline.bfcl.importer import Granularity, import_bfcl
from pipeline.models import Task
from pipeline.replay import replay
from pipeline.seeds import load_seeds

BFCL = Path(__file__).resolve().parent.parent.parent / "shared" / "peers" / "bfcl" / "v4"
PASSES = 5


def best_pass(tasks: list[Task]) -> float:
    best = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        for task in tasks:
            replay(task)
        best = min(best, time.perf_counter() - started)
    return best


def report(name: str, tasks: list[Task]) -> None:
    calls = sum(len(task.calls) for task in tasks)
    seconds = best_pass(tasks)
    print(
        f"{name:12s} {len(tasks):4d} tasks {calls:5d} calls"
        f"  best of {PASSES}: {seconds * 1000:7.1f} ms"
        f"  {len(tasks) / seconds:8.0f} tasks/s  {calls / seconds:8.0f} calls/s"
    )


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}, {platform.platform()}"
    )
    if (BFCL / "BFCL_v4_multi_turn_base.json").exists():
        started = time.perf_counter()
        turns = import_bfcl([BFCL / "BFCL_v4_multi_turn_base.json"], Granularity.TURN)
        seconds = time.perf_counter() - started
        print(f"bfcl import  {len(turns.tasks):4d} turn tasks  {seconds:.2f} s")
        imported = import_bfcl([BFCL / "BFCL_v4_multi_turn_base.json"], Granularity.TASK)
        report("bfcl base", imported.tasks)
    else:
        print(f"bfcl base    skipped: no peer data at {BFCL}", file=sys.stderr)
    report("seeds", load_seeds())


if __name__ == "__main__":
    main()
