"""Validation cost against the number of calls in one task (issue 13).

A task of ``n`` independent file creations in one folder is the worst common shape for the
dependency checks: every pair of calls shares an environment and none is ordered, so each pair
is replayed. For each ``n`` the full check chain runs once and reports seconds and peak memory
(tracemalloc, up to 100 calls), first with the limits lifted (the cost of the checks themselves)
and then under the default limits (what a run pays: bounded by ``limit.calls`` and
``limit.time``). Above ``--lifted-up-to`` a "time" row keeps only the deadline, to show that it
alone bounds a candidate.

Options: ``--sizes 10,25,50,100,200,400`` and ``--lifted-up-to 200`` (lifting the limits at 400
calls costs more than ten minutes here).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc
from typing import Any

from pipeline.validate.chain import validate_task
from pipeline.validate.limits import DEFAULT_LIMITS, Limits
from pipeline.validate.static import parse_candidate

LIFTED = Limits(max_calls=10**6, max_question_chars=10**9, max_output_chars=10**12,
                seconds_per_candidate=10**6)  # fmt: skip
TIME_ONLY = Limits(max_calls=10**6, max_question_chars=10**9, max_output_chars=10**12)


def creations(count: int) -> dict[str, Any]:
    names = [f"note{i}.txt" for i in range(count)]
    return {
        "category": "filesystem",
        "envs": ["filesystem"],
        "question": "In my workspace, create the files " + ", ".join(f"'{n}'" for n in names),
        "initial_config": {
            "filesystem": {"root": {"workspace": {"type": "directory", "contents": {}}}}
        },
        "calls": [
            {"id": f"s{i}", "tool": "filesystem.touch", "arguments": {"file_name": name}}
            for i, name in enumerate(names, 1)
        ],
    }


def measure(count: int, limits: Limits, memory: bool) -> tuple[float, float | None, str]:
    """Seconds of one untraced pass, and the peak of a second, traced pass (tracemalloc slows
    the code it traces, so the two are not taken together)."""
    task = parse_candidate(json.dumps(creations(count)))
    started = time.perf_counter()
    verdict = validate_task(task, limits=limits)
    seconds = time.perf_counter() - started
    peak = None
    if memory:
        tracemalloc.start()
        validate_task(task, limits=limits)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    outcome = "accepted" if verdict.rejection is None else verdict.rejection.code.value
    return seconds, peak, outcome


def seconds_hint(count: int) -> bool:
    """Trace memory only where a second pass is cheap (up to 100 calls)."""
    return count <= 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10,25,50,100,200,400")
    parser.add_argument("--lifted-up-to", type=int, default=200)
    args = parser.parse_args()
    sizes = [int(part) for part in args.sizes.split(",")]
    print(f"machine: {platform.machine()}, Python {platform.python_version()}, one core")
    print(f"{'calls':>6} {'limits':>8} {'seconds':>9} {'peak MiB':>9}  verdict")
    for count in sizes:
        for name, limits in (("lifted", LIFTED), ("time", TIME_ONLY), ("default", DEFAULT_LIMITS)):
            if name == "lifted" and count > args.lifted_up_to:
                continue
            if name == "time" and count <= args.lifted_up_to:
                continue  # beyond what is lifted: show that the deadline alone bounds it
            seconds, peak, outcome = measure(count, limits, memory=seconds_hint(count))
            shown = "-" if peak is None else f"{peak:.1f}"
            print(f"{count:6d} {name:>8} {seconds:9.2f} {shown:>9}  {outcome}", flush=True)


if __name__ == "__main__":
    main()
