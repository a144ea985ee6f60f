"""A small run folder for the audit tests, and the app served by uvicorn on loopback."""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest
import uvicorn
from fastapi import FastAPI

from pipeline.evolve.rename import rename
from pipeline.jsonl import write_records
from pipeline.models import Call, Evidence, Lineage, Rejection, RejectionCode, Task
from pipeline.replay import replay
from pipeline.seeds import load_seeds
from pipeline.validate.chain import validate_task

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"


@dataclass(frozen=True)
class AuditRun:
    SCRIPT: ClassVar[str] = SCRIPT
    IMG: ClassVar[str] = IMG

    run_dir: Path
    seeds: list[Task]
    accepted: list[Task]
    good: Task  # rejected, but replays cleanly: an override publishes it
    broken: Task  # rejected, and its replay fails: an override cannot publish it
    payload: Task  # script and onerror payloads in its question and state
    raw_only: str  # a parse failure: a rejection without a candidate task
    filler: list[str]  # rejections without candidates, enough for a second page


def _validated(task: Task) -> Task:
    verdict = validate_task(task)
    assert verdict.task is not None, verdict.rejection
    return verdict.task


def _rejection(sample_id: str, code: RejectionCode, message: str, **extra: object) -> Rejection:
    return Rejection.model_validate(
        {"sample_id": sample_id, "stage": code.stage, "code": code, "message": message, **extra}
    )


def make_audit_run(run_dir: Path, filler: int = 0) -> AuditRun:
    run_dir.mkdir(parents=True, exist_ok=True)
    seeds = [
        _validated(seed)
        for seed in sorted(load_seeds(), key=lambda t: t.id)
        if seed.category == "filesystem"
    ][:3]
    children = []
    for number, seed in enumerate(seeds):
        child = rename(seed, random.Random(number))
        if child is not None and validate_task(child).task is not None:
            children.append(_validated(child))
    assert children, "no renamed filesystem seed validates"
    accepted = seeds + children
    parent = children[0]
    renamed = rename(parent, random.Random(99))
    assert renamed is not None
    good = renamed.model_copy(
        update={
            "lineage": Lineage(
                parents=[parent.id], operator="paraphrase", round=2, model="smollm2-135m"
            )
        }
    ).with_content_id()
    assert replay(good).ok and good.id not in {task.id for task in accepted}
    first = seeds[1]
    bad_call = first.calls[-1].model_copy(update={"tool": "filesystem.no_such_tool"})
    broken = first.model_copy(
        update={
            "calls": [*first.calls[:-1], bad_call],
            "expected": None,
            "lineage": Lineage(parents=[first.id], operator="extend", round=1),
        }
    ).with_content_id()
    payload = Task(
        id="pending",  # replaced by the content id below
        category="filesystem",
        envs=["filesystem"],
        question=f"Show me {SCRIPT} and {IMG} from notes.txt",
        initial_config={
            "filesystem": {
                "root": {
                    "alice": {
                        "type": "directory",
                        "contents": {"notes.txt": {"type": "file", "content": SCRIPT + IMG}},
                    }
                },
                "cwd": [],
            }
        },
        calls=[
            Call(id="s1", tool="filesystem.cat", arguments={"file_name": "notes.txt"}),
            Call(id="s2", tool="filesystem.echo", arguments={"content": IMG}, depends_on=["s1"]),
        ],
        lineage=Lineage(parents=[seeds[2].id], operator="verbalise", round=1, model="evil-llm"),
    ).with_content_id()
    last = good.calls[-1]
    # worded as the grounding check words it: the argument at fault is named in the message
    name, value = sorted(last.arguments.items())[-1]
    rejections = [
        _rejection(
            good.id,
            RejectionCode.GROUNDING_UNGROUNDED_ARGUMENT,
            f"step {last.id} passes {name}={value!r}, which appears neither in the question "
            "nor in an earlier output",
            evidence=Evidence(step_id=last.id, output=last.arguments, diff=["+ alice/out.txt"]),
        ),
        _rejection(
            broken.id,
            RejectionCode.STATIC_UNKNOWN_TOOL,
            "filesystem has no tool no_such_tool",
            evidence=Evidence(
                step_id=bad_call.id, also_failed={"static.bad_arguments": "unexpected argument"}
            ),
        ),
        _rejection(
            payload.id,
            RejectionCode.EXECUTE_TOOL_ERROR,
            f"step s2 raised: {IMG}",
            evidence=Evidence(
                step_id="s2", output={"error": SCRIPT}, diff=[f"- {SCRIPT}", f"+ {IMG}"]
            ),
            raw=f"the model said {SCRIPT}",
        ),
        _rejection(
            "raw-0001",
            RejectionCode.PARSE_MALFORMED,
            "not JSON",
            raw="{ this is not json " + SCRIPT,
        ),
    ]
    filler_ids = [f"m{number:03d}" for number in range(filler)]
    rejections += [
        _rejection(sample_id, RejectionCode.MINIMALITY_REDUNDANT_CALL, "step s2 can be dropped")
        for sample_id in filler_ids
    ]
    write_records(run_dir / "evolved.jsonl", accepted)
    write_records(run_dir / "evolve_rejected.jsonl", rejections)
    write_records(run_dir / "rejected_tasks.jsonl", [good, broken, payload])
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": run_dir.name}), "utf-8")
    return AuditRun(run_dir, seeds, accepted, good, broken, payload, "raw-0001", filler_ids)


def fixed_clock(start: datetime = datetime(2026, 3, 1, 12, tzinfo=UTC)) -> Callable[[], datetime]:
    """A clock that advances one second per reading."""
    ticks = iter(range(1_000_000))
    return lambda: start + timedelta(seconds=next(ticks))


@pytest.fixture
def audit_run(tmp_path: Path) -> AuditRun:
    """A run with 3 + 55 rejects beside the good/broken/payload ones (two list pages)."""
    return make_audit_run(tmp_path / "runs" / "r1", filler=55)


@pytest.fixture
def make_run() -> Callable[..., AuditRun]:
    return make_audit_run


@pytest.fixture
def clock() -> Callable[[], datetime]:
    return fixed_clock()


@pytest.fixture
def serve_app() -> Callable[[FastAPI], AbstractContextManager[str]]:
    return served


@contextmanager
def served(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a thread; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120  # a bound on a stuck start, not a timing claim
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
