"""Kill and resume: ``asynctool validate --inline`` and ``asynctool publish`` are killed with
SIGKILL at a random point, rerun with the same command, and must end with the same files as an
uninterrupted run. Evolve's kill-and-resume test is in ``tests/evolve/test_engine.py``.

Kill delays come from a seeded generator. A process that finished before the kill counts as an
attempt that proves nothing; each test needs at least one attempt that was killed mid-way.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from pipeline.compose import ComposeSettings, compose
from pipeline.evolve.engine import EvolveSettings, evolve
from pipeline.jsonl import read_records, write_records
from pipeline.models import Task
from pipeline.rundir import RunDir
from pipeline.seeds import load_seeds

pytestmark = pytest.mark.slow  # subprocesses killed and rerun: seconds each

ATTEMPTS = 3  # killed runs per test, each resumed and compared
POLL = 0.002  # seconds between looks at a running process's outputs
START_TIMEOUT = 120.0  # seconds a process may take to show its first output


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def _run(command: list[str], cwd: Path) -> None:
    done = subprocess.run(command, cwd=cwd, capture_output=True, check=False, timeout=600)
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]


def _kill_when(command: list[str], cwd: Path, started: Callable[[], bool], delay: float) -> bool:
    """Start ``command``; once ``started()`` holds, wait ``delay`` seconds and SIGKILL it.

    Returns whether the process was still running when it was killed.
    """
    began = time.monotonic()
    process = subprocess.Popen(
        command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = began + START_TIMEOUT
        while not started() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(POLL)
        if process.poll() is None:
            time.sleep(delay)
        running = process.poll() is None
        if running:
            os.kill(process.pid, signal.SIGKILL)
    finally:
        if process.poll() is None:  # a failed assertion above must not leave it behind
            process.kill()
        process.wait()
    if not running:
        assert process.returncode == 0, f"{command} failed before the kill"
    return running


def _tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path (hidden leftovers included)."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


# --- validate --------------------------------------------------------------------------------


def _candidates(path: Path, rng: random.Random) -> int:
    """Seeds plus broken and reworded variants: about a thousand lines, both verdicts."""
    lines: list[str] = []
    for seed in load_seeds():
        data = json.loads(seed.model_dump_json())
        lines.append(json.dumps(data))
        for number in range(8):
            variant = json.loads(seed.model_dump_json())
            variant.pop("id")
            choice = rng.randrange(5)
            if choice == 0:
                variant["question"] += f" (request {number})"
            elif choice == 1:
                variant["calls"].reverse()
            elif choice == 2:
                variant["calls"] = variant["calls"][:1]
            elif choice == 3:
                variant["calls"][0]["arguments"]["unexpected"] = number
            else:
                lines.append("{not json " + str(number))
                continue
            lines.append(json.dumps(variant))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def _validate_command(source: Path, output: Path, run_id: str) -> list[str]:
    return _cli(
        "validate", str(source), "--inline", "--output", str(output), "--run-id", run_id,
        "--shard-size", "20",
    )  # fmt: skip


def _shard_files(run_dir: Path) -> dict[str, tuple[int, int]]:
    """Finished shards' stats files -> (inode, mtime) to tell a skipped shard from a redone one."""
    return {
        path.name: (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in (run_dir / "shards").glob("*.stats.json")
    }


def _check_finished_shards(run_dir: Path) -> None:
    """A shard with stats is complete: its accepted and rejected files hold its counts."""
    for stats_path in (run_dir / "shards").glob("*.stats.json"):
        stats = json.loads(stats_path.read_text(encoding="utf-8"))
        stem = stats_path.name.removesuffix(".stats.json")
        for kind in ("accepted", "rejected"):
            text = (run_dir / "shards" / f"{stem}.{kind}.jsonl").read_text(encoding="utf-8")
            assert text.count("\n") == stats[kind], (stem, kind)


def test_killed_validate_resumes_to_the_same_files(tmp_path: Path) -> None:
    rng = random.Random(20240611)
    source = tmp_path / "candidates.jsonl"
    total = _candidates(source, rng)
    output = tmp_path / "output"
    _run(_validate_command(source, output, "whole"), tmp_path)
    whole = output / "runs" / "whole"
    expected = {name: (whole / name).read_bytes() for name in ("accepted.jsonl", "rejected.jsonl")}
    whole_counts = json.loads((whole / "manifest.json").read_text())["validate"]["counts"]
    assert whole_counts["input"] == total and whole_counts["accepted"] > 0

    mid_way = 0
    delay = rng.uniform(0.05, 0.6)
    for attempt in range(ATTEMPTS):
        run_dir = output / "runs" / f"killed{attempt}"
        command = _validate_command(source, output, run_dir.name)

        def first_shard(run_dir: Path = run_dir) -> bool:
            return any((run_dir / "shards").glob("*.stats.json"))

        running = _kill_when(command, tmp_path, first_shard, delay)
        killed_mid_way = running and not (run_dir / "manifest.json").exists()
        mid_way += killed_mid_way
        for name, content in expected.items():  # merged files appear whole or not at all
            assert not (run_dir / name).exists() or (run_dir / name).read_bytes() == content
        _check_finished_shards(run_dir)
        before = _shard_files(run_dir)
        _run(command, tmp_path)
        for name, content in expected.items():
            assert (run_dir / name).read_bytes() == content, (attempt, name)
        counts = json.loads((run_dir / "manifest.json").read_text())["validate"]["counts"]
        assert counts == whole_counts
        after = _shard_files(run_dir)
        assert all(after[name] == stamp for name, stamp in before.items()), "a shard was redone"
        # a run that outlived its kill delay gets a shorter one next time, and vice versa
        delay = rng.uniform(0.0, delay) if not killed_mid_way else rng.uniform(delay, 2 * delay)
    assert mid_way >= 1, "every validate run finished before it could be killed"


# --- publish ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def publish_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with evolved tasks and composed instances (the inputs of publish)."""
    run = tmp_path_factory.mktemp("publish") / "run"
    evolve(load_seeds(), run, EvolveSettings(rounds=1))
    tasks = list(read_records(run / "evolved.jsonl", Task))
    report = compose(tasks, ComposeSettings(count=1200, seed=3))
    write_records(run / "instances.jsonl", report.instances)
    return run


def _publish_command(run_dir: Path, version: str) -> list[str]:
    return _cli("publish", "--run-dir", str(run_dir), "--version", version)


def _staging(run_dir: Path) -> list[Path]:
    return sorted(run_dir.glob(f".{RunDir(run_dir).dataset.name}-*"))


def _restore(folder: Path, tree: dict[str, bytes]) -> None:
    """Put back a published folder from its snapshot (quicker than publishing it again)."""
    shutil.rmtree(folder, ignore_errors=True)
    for name, content in tree.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)


def test_killed_publish_keeps_the_old_folder_and_resumes(publish_run: Path) -> None:
    rng = random.Random(7)
    dataset = RunDir(publish_run).dataset
    _run(_publish_command(publish_run, "0.0.9"), publish_run)
    old = _tree(dataset)  # the folder a killed publish must keep
    _run(_publish_command(publish_run, "0.1.0"), publish_run)
    reference = _tree(dataset)
    assert old != reference and any(name.endswith(".parquet") for name in reference)

    mid_way = 0
    for attempt in range(ATTEMPTS):
        _restore(dataset, old)
        leftovers = set(_staging(publish_run))

        def building(leftovers: set[Path] = leftovers) -> bool:
            return len(_staging(publish_run)) > len(leftovers)

        delay = rng.uniform(0.0, 0.3)
        running = _kill_when(_publish_command(publish_run, "0.1.0"), publish_run, building, delay)
        if dataset.exists():
            now = _tree(dataset)
            assert now in (old, reference), "a killed publish left a partial dataset folder"
            killed_mid_way = running and now == old
        else:  # killed between moving the old folder aside and moving the new one in
            assert running
            kept = [path / RunDir(publish_run).dataset.name for path in _staging(publish_run)]
            assert any(p.is_dir() and _tree(p) == old for p in kept), "the old folder is lost"
            killed_mid_way = True
        mid_way += killed_mid_way
        _run(_publish_command(publish_run, "0.1.0"), publish_run)
        assert _tree(dataset) == reference, f"attempt {attempt}: the rerun differs"
    assert mid_way >= 1, "every publish finished before it could be killed"
