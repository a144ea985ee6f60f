"""Validating a JSON-lines file in shards, with resumable per-shard outputs and a manifest.

Layout of ``output/runs/<run_id>/``::

    shards/00000.accepted.jsonl  shards/00000.rejected.jsonl  shards/00000.stats.json  ...
    accepted.jsonl  rejected.jsonl  manifest.json (its ``validate`` section)

A shard is a byte range of the input; it is processed by streaming its lines, and its three
files are written atomically, stats last — so a shard with stats is complete and a rerun after a
crash skips it. Every input line ends in exactly one of accepted or rejected.
"""

from __future__ import annotations

import json
import platform
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from functools import partial
from importlib import metadata
from pathlib import Path

from pipeline.jsonl import file_sha256, write_atomic, write_parts
from pipeline.manifest import (
    InputFile,
    ValidateConfig,
    ValidateCounts,
    ValidateSection,
    ValidateTimings,
    read_manifest,
    record_section,
)
from pipeline.models import Rejection, RejectionCode
from pipeline.rundir import RunDir
from pipeline.runguard import claim, run_lock
from pipeline.shards import ShardRunner, ShardSlot, process_once, run_inline
from pipeline.validate.chain import validate_line

DEFAULT_SHARD_SIZE = 1000


@dataclass(frozen=True)
class Shard:
    index: int
    start: int  # byte offset of its first line
    end: int  # byte offset after its last line
    lines: int


@dataclass
class ShardStats:
    index: int
    accepted: int = 0
    rejected: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardStats:
        return cls(**json.loads(text))


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


def _shard_lines(path: Path, shard: Shard) -> Iterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(shard.start)
        remaining = shard.end - shard.start
        while remaining > 0:
            line = handle.readline()
            if not line:
                break
            remaining -= len(line)
            if line.strip():  # bytes, as in plan_shards: a line of Unicode spaces still counts
                yield line.rstrip(b"\r\n")  # decoded by validate_line, which rejects bad UTF-8


def _slot(run_dir: Path, index: int) -> ShardSlot:
    return ShardSlot(RunDir(run_dir).shards, index)


def validate_shard(input_path: Path, run_dir: Path, shard: Shard) -> ShardStats:
    """Validate one shard and write its outputs; a finished shard is not redone."""
    return process_once(
        _slot(run_dir, shard.index),
        ShardStats.from_json,
        lambda: _validate_lines(input_path, shard),
    )


def _validate_lines(input_path: Path, shard: Shard) -> tuple[dict[str, str], ShardStats]:
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
    return {"accepted": "".join(accepted), "rejected": "".join(rejected)}, stats


def _write_unique(parts: list[Path], target: Path) -> Path:
    """Join the shards' accepted tasks into ``target``, keeping the first task of each id; the
    later ones become ``parse.duplicate_id`` rejections (returned as a file beside the shards),
    since every later stage keys tasks by id."""
    seen: set[str] = set()
    repeats: list[str] = []
    unique = target.with_name(f".{target.name}.unique.tmp")
    try:
        with unique.open("w", encoding="utf-8") as out:
            for part in parts:
                with part.open(encoding="utf-8", newline="\n") as handle:
                    for line in handle:
                        task_id = json.loads(line)["id"]
                        if task_id in seen:
                            repeats.append(_repeat(task_id, line))
                            continue
                        seen.add(task_id)
                        out.write(line)
        unique.replace(target)
    except BaseException:
        unique.unlink(missing_ok=True)
        raise
    repeats_file = parts[0].parent / "duplicates.rejected.jsonl" if parts else target
    write_atomic(repeats_file, "".join(repeats))
    return repeats_file


def _repeat(task_id: str, line: str) -> str:
    rejection = Rejection(
        sample_id=task_id,
        stage=RejectionCode.PARSE_DUPLICATE_ID.stage,
        code=RejectionCode.PARSE_DUPLICATE_ID,
        message=f"an earlier line of the input has the task id {task_id!r}; the first is kept",
        raw=line.rstrip("\n")[:100_000],
    )
    return rejection.model_dump_json() + "\n"


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
    config: ValidateConfig,
    seconds: float,
) -> ValidateSection:
    """Merge shard outputs in input order and record the manifest's validate section."""
    slots = [_slot(run_dir, shard.index) for shard in shards]
    run_dir.mkdir(parents=True, exist_ok=True)
    repeats = _write_unique([slot.output("accepted") for slot in slots], RunDir(run_dir).accepted)
    write_parts([*(slot.output("rejected") for slot in slots), repeats], RunDir(run_dir).rejected)
    codes: Counter[str] = Counter()
    stages: Counter[str] = Counter()
    for item in stats:
        codes.update(item.codes)
        stages.update(item.stages)
    repeated = sum(1 for _ in repeats.open(encoding="utf-8"))
    if repeated:
        codes[RejectionCode.PARSE_DUPLICATE_ID.value] += repeated
        stages[RejectionCode.PARSE_DUPLICATE_ID.stage.value] += repeated
    accepted = sum(item.accepted for item in stats) - repeated
    rejected = sum(item.rejected for item in stats) + repeated
    section = ValidateSection(
        finished_at=datetime.now(UTC).replace(microsecond=0),
        input=InputFile(path=str(input_path), sha256=file_sha256(input_path)),
        config=config,
        versions={
            "python": platform.python_version(),
            "asynctool-forge": _version("asynctool-forge"),
            "pydantic": _version("pydantic"),
            "prefect": _version("prefect"),
        },
        counts=ValidateCounts(
            input=sum(s.lines for s in shards),
            accepted=accepted,
            rejected=rejected,
            rejected_by_stage=dict(sorted(stages.items())),
            rejected_by_code=dict(codes.most_common()),
        ),
        timings=ValidateTimings(
            seconds=round(seconds, 3),
            check_seconds=round(sum(item.seconds for item in stats), 3),
            tasks_per_second=round((accepted + rejected) / seconds, 1) if seconds else None,
        ),
    )
    record_section(run_dir, section)
    return section


def claim_run(input_path: Path, run_dir: Path, shard_size: int) -> None:
    """Record the input and shard size a run validates, or refuse a rerun with others: shards
    are byte ranges named by position, so another input or size would mix, lose or repeat
    lines."""
    read_manifest(run_dir)  # an unreadable manifest is refused now, not after the work
    inputs = {"input_sha256": file_sha256(input_path), "shard_size": shard_size}
    claim(RunDir(run_dir).validation_inputs, inputs, "validated")


def validate_file(
    input_path: Path,
    run_dir: Path,
    shard_size: int = DEFAULT_SHARD_SIZE,
    on_shard: Callable[[ShardStats], None] | None = None,
) -> ValidateSection:
    """Validate in this process, shard after shard (the flow runs the same shards as tasks)."""
    with run_lock(run_dir):
        claim_run(input_path, run_dir, shard_size)
        inline = partial(run_inline, on_done=on_shard)
        return run_validation(input_path, run_dir, shard_size, inline, "inline")


def run_validation(
    input_path: Path,
    run_dir: Path,
    shard_size: int,
    runner: ShardRunner[Shard, ShardStats],
    runner_name: str,
) -> ValidateSection:
    """The validate stage: plan byte-range shards, process them with ``runner``, merge them in
    input order and record the manifest's section (``runner_name`` says what ran them)."""
    started = time.perf_counter()
    shards = plan_shards(input_path, shard_size)
    stats = runner(partial(validate_shard, input_path, run_dir), shards)
    config = ValidateConfig(shard_size=shard_size, runner=runner_name)
    seconds = time.perf_counter() - started
    return finish_run(input_path, run_dir, shards, stats, config, seconds)
