"""LLM client throughput: 2,000 structured requests at concurrency 64 against a 200 ms server.

The ideal wall time is 2000 * 0.2 / 64 = 6.25 s (in whole waves of 64 it is 32 * 0.2 = 6.4 s).
The first run starts from an empty cache with distinct messages, so every call is a request; the
rerun of the same calls must be served from the disk cache with zero requests.

By default the fake server runs in a child process, as a real model server would; with
``--in-process`` it shares this process (and its GIL) with the client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, Field

from pipeline.llm import LLMClient, LLMConfig, UsageLedger
from pipeline.llm.fake_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent


class Proposal(BaseModel):
    question: str = Field(min_length=1)
    ground_truth: list[str] = Field(min_length=1)
    confidence: float = Field(ge=0, le=1)


async def run(config: LLMConfig, count: int) -> tuple[float, int, int]:
    """Wall seconds, requests sent and valid results for ``count`` distinct calls."""
    usage = UsageLedger()
    async with LLMClient(config, usage) as client:
        started = time.perf_counter()
        results = await asyncio.gather(
            *(
                client.structured(
                    stage="bench",
                    messages=[
                        {"role": "system", "content": "Propose a task as JSON."},
                        {"role": "user", "content": f"Task number {index}: rename a file."},
                    ],
                    output=Proposal,
                    template_hash="bench-v1",
                )
                for index in range(count)
            )
        )
        elapsed = time.perf_counter() - started
    valid = sum(result.value is not None for result in results)
    return elapsed, usage.total()["requests"], valid


def start_child_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    child = subprocess.Popen(
        [sys.executable, "-m", "pipeline.llm.fake_server", "--latency", str(latency)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    return child, child.stdout.readline().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--in-process", action="store_true", help="serve from this process")
    args = parser.parse_args()

    print(
        f"machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, {platform.platform()}"
    )
    server: FakeOpenAIServer | None = None
    child: subprocess.Popen[str] | None = None
    if args.in_process:
        server = FakeOpenAIServer(latency=args.latency)
        url = server.start()
    else:
        child, url = start_child_server(args.latency)
    where = "in this process" if args.in_process else "in a child process"
    print(f"server: FakeOpenAIServer {where}, {args.latency * 1000:.0f} ms latency, {url}")
    ideal = args.requests * args.latency / args.concurrency
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = LLMConfig(
                base_url=url,
                model="bench",
                concurrency=args.concurrency,
                cache_path=Path(folder) / "llm.sqlite",
            )
            seconds, sent, valid = asyncio.run(run(config, args.requests))
            print(
                f"cold: {args.requests} calls at concurrency {args.concurrency}:"
                f" {seconds:.2f} s, ideal {ideal:.2f} s -> {100 * seconds / ideal:.1f} %"
                f" ({sent} requests, {valid} valid)"
            )
            seconds, sent, valid = asyncio.run(run(config, args.requests))
            print(
                f"warm: the same {args.requests} calls again: {seconds:.2f} s,"
                f" {sent} requests sent ({valid} valid)"
            )
    finally:
        if server is not None:
            server.stop()
        if child is not None:
            child.terminate()
            child.wait(timeout=10)


if __name__ == "__main__":
    main()
