"""Validating a JSON-lines file in shards, with resumable per-shard outputs and a manifest.

Layout of ``output/runs/<run_id>/``::

    shards/00000.accepted.jsonl  shards/00000.rejected.jsonl  shards/00000.stats.json  ...
    accepted.jsonl  rejected.jsonl  manifest.json

A shard is a byte range of the input; it is processed by streaming its lines, and its three
files are written atomically, stats last — so a shard with stats is complete and a rerun after a
crash skips it. Every input line ends in exactly one of accepted or rejected.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from pipeline.jsonl import write_atomic
from pipeline.validate.chain import validate_line

DEFAULT_SHARD_SIZE = 1000


@dataclass(frozen=True)
class Shard:
    index: int
    start: int  # byte offset of its first line
    end: int  # byte offset after its last line
    lines: int

    @property
    def stem(self) -> str:
        return f"{self.index:05d}"


@dataclass
class ShardStats:
    index: int
    accepted: int = 0
    rejected: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


def plan_shards(path: Path, shard_size: int = DEFAULT_SHARD_SIZE) -> list[Shard]:
    """Split a JSON-lines file into shards of ``shard_size`` non-empty lines (by byte ranges)."""
    if shard_size < 1:
        raise ValueError("shard size must be at least 1")
    shards: list[Shard] = []
    start = offset = count = 0
    with path.open("rb") as handle:
        for line in handle:
            offset += len(line)
            if line.strip():
                count += 1
            if count == shard_size:
                shards.append(Shard(len(shards), start, offset, count))
                start, count = offset, 0
    if count:
        shards.append(Shard(len(shards), start, offset, count))
    return shards


def _shard_lines(path: Path, shard: Shard) -> Iterator[str]:
    with path.open("rb") as handle:
        handle.seek(shard.start)
        remaining = shard.end - shard.start
        while remaining > 0:
            line = handle.readline()
            if not line:
                break
            remaining -= len(line)
            if line.strip():  # bytes, as in plan_shards: a line of Unicode spaces still counts
                yield line.decode("utf-8", errors="replace").rstrip("\r\n")


def _shard_dir(run_dir: Path) -> Path:
    return run_dir / "shards"


def shard_done(run_dir: Path, shard: Shard) -> ShardStats | None:
    stats = _shard_dir(run_dir) / f"{shard.stem}.stats.json"
    if not stats.exists():
        return None
    return ShardStats(**json.loads(stats.read_text(encoding="utf-8")))


def validate_shard(input_path: Path, run_dir: Path, shard: Shard) -> ShardStats:
    """Validate one shard and write its outputs; a finished shard is not redone."""
    done = shard_done(run_dir, shard)
    if done is not None:
        return done
    started = time.perf_counter()
    stats = ShardStats(shard.index)
    accepted: list[str] = []
    rejected: list[str] = []
    codes: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    for line in _shard_lines(input_path, shard):
        verdict = validate_line(line)
        if verdict.task is not None:
            accepted.append(verdict.task.model_dump_json() + "\n")
        elif verdict.rejection is not None:
            rejected.append(verdict.rejection.model_dump_json() + "\n")
            codes[verdict.rejection.code.value] += 1
            stages[verdict.rejection.stage.value] += 1
    stats.accepted, stats.rejected = len(accepted), len(rejected)
    stats.codes, stats.stages = dict(codes), dict(stages)
    stats.seconds = round(time.perf_counter() - started, 4)
    folder = _shard_dir(run_dir)
    write_atomic(folder / f"{shard.stem}.accepted.jsonl", "".join(accepted))
    write_atomic(folder / f"{shard.stem}.rejected.jsonl", "".join(rejected))
    write_atomic(folder / f"{shard.stem}.stats.json", json.dumps(asdict(stats)))
    return stats


def _concatenate(parts: Iterable[Path], target: Path) -> None:
    temp = target.with_name(f".{target.name}.tmp")
    with temp.open("wb") as out:
        for part in parts:
            with part.open("rb") as handle:
                shutil.copyfileobj(handle, out)
    temp.replace(target)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def finish_run(
    input_path: Path,
    run_dir: Path,
    shards: list[Shard],
    stats: list[ShardStats],
    config: dict[str, Any],
    seconds: float,
) -> dict[str, Any]:
    """Merge shard outputs in input order and write the manifest; returns the manifest."""
    folder = _shard_dir(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _concatenate((folder / f"{s.stem}.accepted.jsonl" for s in shards), run_dir / "accepted.jsonl")
    _concatenate((folder / f"{s.stem}.rejected.jsonl" for s in shards), run_dir / "rejected.jsonl")
    codes: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    for item in stats:
        codes.update(item.codes)
        stages.update(item.stages)
    accepted = sum(item.accepted for item in stats)
    rejected = sum(item.rejected for item in stats)
    manifest = {
        "run_id": run_dir.name,
        "stage": "validate",
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "input": {"path": str(input_path), "sha256": file_sha256(input_path)},
        "config": config,
        "versions": {
            "python": platform.python_version(),
            "asynctool-forge": _version("asynctool-forge"),
            "pydantic": _version("pydantic"),
            "prefect": _version("prefect"),
        },
        "counts": {
            "input": sum(s.lines for s in shards),
            "accepted": accepted,
            "rejected": rejected,
            "rejected_by_stage": dict(sorted(stages.items())),
            "rejected_by_code": dict(codes.most_common()),
        },
        "timings": {
            "seconds": round(seconds, 3),
            "check_seconds": round(sum(item.seconds for item in stats), 3),
            "tasks_per_second": round((accepted + rejected) / seconds, 1) if seconds else None,
        },
    }
    write_atomic(run_dir / "manifest.json", json.dumps(manifest, indent=2) + "\n")
    return manifest


def validate_file(
    input_path: Path,
    run_dir: Path,
    shard_size: int = DEFAULT_SHARD_SIZE,
    on_shard: Callable[[ShardStats], None] | None = None,
) -> dict[str, Any]:
    """Validate in this process, shard after shard (the flow runs the same shards as tasks)."""
    started = time.perf_counter()
    shards = plan_shards(input_path, shard_size)
    stats = []
    for shard in shards:
        result = validate_shard(input_path, run_dir, shard)
        stats.append(result)
        if on_shard is not None:
            on_shard(result)
    config = {"shard_size": shard_size, "runner": "inline"}
    return finish_run(input_path, run_dir, shards, stats, config, time.perf_counter() - started)
