"""Composition throughput: 10,000 instances (with exact optimal bounds) from an evolved pool."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.compose import ComposeSettings, compose
from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.jsonl import read_records, write_records
from pipeline.models import Task
from pipeline.seeds import load_seeds


def main() -> None:
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "run"
        evolve(load_seeds(), run, EvolveSettings())
        tasks = list(read_records(run / "evolved.jsonl", Task))
        started = time.perf_counter()
        report = compose(tasks, ComposeSettings(count=10_000))
        seconds = time.perf_counter() - started
        write_records(run / "instances.jsonl", report.instances)
        written = time.perf_counter() - started
        print(
            f"compose {len(report.instances)} instances from {len(tasks)} tasks: {seconds:.1f} s"
            f" ({len(report.instances) / seconds:.0f}/s), {written:.1f} s with writing"
        )
        started = time.perf_counter()
        command = [sys.executable, "-m", "pipeline.cli", "compose", "--run-dir", str(run)]
        subprocess.run([*command, "--count", "100000"], check=True, capture_output=True)  # noqa: S603
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        size = (run / "instances.jsonl").stat().st_size / 1e6
        print(
            f"compose 100,000 instances streamed to disk ({size:.0f} MB): {seconds:.0f} s,"
            f" peak RSS {peak:.0f} MiB"
        )


if __name__ == "__main__":
    main()
