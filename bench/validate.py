"""Validation benchmarks.

1. Throughput of the full non-LLM check chain on one core, in tasks/s, on BFCL-derived tasks
   (turn granularity) and on the seeds: best of 3 passes over JSON lines, parsing included.
2. Prefect overhead at 10,000 tasks: the validate flow (threads, one task per 1,000-task shard)
   against the same shards run inline, as a share of the flow's wall time. Needs a Prefect API
   (``make bench`` starts the shared local server); skipped without ``PREFECT_API_URL``.
3. Peak memory (max RSS of a child process) while validating 100,000 tasks streamed from disk.

Options: ``--quick`` runs part 3 on 20,000 tasks (for a fast look).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.bfcl.importer import Granularity, import_bfcl, multi_turn_files
from pipeline.seeds import load_seeds
from pipeline.validate.chain import validate_line
from pipeline.validate.runner import validate_file

BFCL = Path(__file__).resolve().parent.parent.parent / "shared" / "peers" / "bfcl" / "v4"


def candidate_lines() -> tuple[list[str], list[str]]:
    seeds = [task.model_dump_json() for task in load_seeds()]
    bfcl: list[str] = []
    if BFCL.is_dir():
        report = import_bfcl(multi_turn_files(BFCL), Granularity.TURN)
        bfcl = [task.model_dump_json() for task in report.tasks]
    return bfcl, seeds


def chain_throughput(name: str, lines: list[str]) -> None:
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for line in lines:
            validate_line(line)
        best = min(best, time.perf_counter() - started)
    print(f"chain  {name:10s} {len(lines):5d} tasks  {len(lines) / best:8.0f} tasks/s (best of 3)")


def write_file(path: Path, lines: list[str], count: int) -> None:
    with path.open("w", encoding="utf-8") as handle:
        for line in itertools.islice(itertools.cycle(lines), count):
            handle.write(line + "\n")


def prefect_overhead(lines: list[str], folder: Path) -> None:
    if not os.environ.get("PREFECT_API_URL"):
        print("prefect overhead skipped: PREFECT_API_URL not set (run through `make bench`)")
        return
    from pipeline.flows import run_validate_flow

    source = folder / "10k.jsonl"
    write_file(source, lines, 10_000)
    started = time.perf_counter()
    validate_file(source, folder / "inline", shard_size=1000)
    inline = time.perf_counter() - started
    started = time.perf_counter()
    run_validate_flow(source, folder / "flow", shard_size=1000)
    flow = time.perf_counter() - started
    share = max(flow - inline, 0.0) / flow
    print(
        f"prefect 10,000 tasks: inline {inline:6.2f} s, flow {flow:6.2f} s"
        f"  -> overhead {share:.1%} of the flow's wall time"
    )
    from pipeline.flows import Runner

    started = time.perf_counter()
    run_validate_flow(source, folder / "dask", shard_size=1000, runner=Runner("dask", workers=2))
    dask = time.perf_counter() - started
    print(
        f"dask 10,000 tasks on a 2-worker LocalCluster: {dask:6.2f} s"
        f" -> threads/dask time ratio {flow / dask:.2f} (cluster start-up included)"
    )


def peak_memory(lines: list[str], folder: Path, count: int) -> None:
    source = folder / "big.jsonl"
    write_file(source, lines, count)
    size_mb = source.stat().st_size / 1e6
    code = (
        "import sys; from pathlib import Path; from pipeline.validate.runner import validate_file;"
        "validate_file(Path(sys.argv[1]), Path(sys.argv[2]), shard_size=1000)"
    )
    started = time.perf_counter()
    subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code, str(source), str(folder / "big")], check=True
    )
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(
        f"memory {count:,} tasks ({size_mb:.0f} MB input) streamed: peak RSS {peak_mib:.0f} MiB,"
        f" {seconds:.0f} s ({count / seconds:.0f} tasks/s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        cores = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cores)})  # one core for the chain and the thread runner
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores (pinned to one),"
        f" Python {platform.python_version()}"
    )
    bfcl, seeds = candidate_lines()
    if bfcl:
        chain_throughput("bfcl-turn", bfcl)
        # long-context tasks carry states and results of thousands of entries: shown apart
        long = [line for line in bfcl if '"long_context":true' in line]
        standard = [line for line in bfcl if line not in long]
        if long and standard:
            chain_throughput("bfcl-std", standard)
            chain_throughput("bfcl-long", long)
    chain_throughput("seeds", seeds)
    lines = bfcl + seeds
    with tempfile.TemporaryDirectory(prefix="asynctool-bench-") as temp:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, cores)  # Dask workers may use both cores
        prefect_overhead(lines, Path(temp))
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {min(cores)})
        peak_memory(lines, Path(temp), 20_000 if args.quick else 100_000)


if __name__ == "__main__":
    main()
