"""The offline default of ``asynctool evolve`` (programmatic operators, no LLM): wall time to
grow the seeds into at least 1,000 validated tasks, and the acceptance rate per operator."""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path

from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.seeds import load_seeds


def main() -> None:
    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"
    )
    seeds = load_seeds()
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        section = evolve(seeds, Path(folder) / "run", EvolveSettings())
        seconds = time.perf_counter() - started
    counts = section.counts
    print(
        f"offline evolve: {counts.new_accepted} new validated tasks from {len(seeds)} seeds"
        f" in {seconds:.1f} s ({counts.new_accepted / seconds:.0f} tasks/s),"
        f" {counts.rounds} rounds"
    )
    for name, record in section.operators.items():
        rate = f"{record.acceptance_rate:.1%}" if record.acceptance_rate is not None else "-"
        print(f"  {name:10s} acceptance {rate} of {record.generated}")


if __name__ == "__main__":
    main()
