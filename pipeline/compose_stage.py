"""The compose stage of a run folder, as a sharded stage (:mod:`pipeline.shards`).

Plan: the instance specs are drawn here, sequential and cheap (each draw depends on the ones
before), into ``compose/specs.jsonl``. Process: shards of specs are built into instances (the
latency tables and exact bounds, the expensive part). Merge: the shards in order become
``instances.jsonl``. Record: the manifest's ``compose`` section, and the tasks kept out of long
instances in ``compose/long_context_left_out.jsonl``.

``asynctool compose`` (inline or as a Prefect flow on threads or Dask) and ``make dataset`` all
run :func:`run_compose`, so they write the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.compose import ComposeSettings, ComposeTally, InstanceSpec, build_instance, iter_specs
from pipeline.jsonl import file_sha256, read_records, write_atomic
from pipeline.long_context_variants import VariantCache
from pipeline.manifest import ComposeSection, record_section
from pipeline.models import Task
from pipeline.rundir import RunDir, StageDir
from pipeline.shards import ShardRunner, ShardSlot, merge_in_order, process_once

DEFAULT_SHARD_SIZE = 1000


@dataclass(frozen=True)
class ComposeJob:
    run_dir: str
    index: int
    start: int  # specs start:stop of compose/specs.jsonl
    stop: int
    turn_cost: float


@dataclass
class ComposeShardStats:
    index: int
    instances: int

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ComposeShardStats:
        return cls(**json.loads(text))


def _slot(run: RunDir, index: int) -> ShardSlot:
    return ShardSlot(run.compose_shards, index)


def build_shard(job: ComposeJob) -> ComposeShardStats:
    """Build one shard of the drawn specs into instances (a finished shard is not redone)."""
    run = RunDir(Path(job.run_dir))
    return process_once(_slot(run, job.index), ComposeShardStats.from_json, lambda: _build(job))


def _build(job: ComposeJob) -> tuple[dict[str, str], ComposeShardStats]:
    run = RunDir(Path(job.run_dir))
    text = run.compose_specs.read_text(encoding="utf-8")
    lines = [line for line in text.split("\n") if line]  # not splitlines(): U+2028 in a value
    specs = [_spec(json.loads(line)) for line in lines[job.start : job.stop]]
    tasks = {task.id: task for task in read_records(run.evolved, Task)}
    variants = VariantCache()
    built = [build_instance(spec, tasks, job.turn_cost, variants) for spec in specs]
    out = "".join(instance.model_dump_json() + "\n" for instance in built)
    return {"instances": out}, ComposeShardStats(job.index, len(built))


def _spec(data: dict[str, Any]) -> InstanceSpec:
    data["task_ids"] = tuple(data["task_ids"])
    return InstanceSpec(**data)


def _plan(
    run: RunDir, settings: ComposeSettings, tally: ComposeTally, shard_size: int
) -> list[ComposeJob]:
    """Draw the specs; shards built for other draws or another pool are removed first."""
    tasks = list(read_records(run.evolved, Task))
    specs = "".join(json.dumps(asdict(spec)) + "\n" for spec in iter_specs(tasks, settings, tally))
    inputs = {"evolved_sha256": file_sha256(run.evolved), "turn_cost": settings.turn_cost}
    record = StageDir(run.compose).inputs
    same = run.compose_specs.exists() and run.compose_specs.read_text(encoding="utf-8") == specs
    if not same or not record.exists() or json.loads(record.read_text()) != inputs:
        for stale in run.compose_shards.glob("*"):
            stale.unlink()
        write_atomic(run.compose_specs, specs)
        write_atomic(record, json.dumps(inputs))
    count = specs.count("\n")
    return [
        ComposeJob(str(run.path), index, start, min(start + shard_size, count), settings.turn_cost)
        for index, start in enumerate(range(0, count, shard_size))
    ]


def run_compose(
    run_dir: Path,
    settings: ComposeSettings,
    runner: ShardRunner[ComposeJob, ComposeShardStats],
    shard_size: int = DEFAULT_SHARD_SIZE,
) -> ComposeSection:
    """Compose the run's validated tasks into ``instances.jsonl``; returns the recorded section."""
    run = RunDir(run_dir)
    tally = ComposeTally()
    jobs = _plan(run, settings, tally, shard_size)
    stats = runner(build_shard, jobs)
    merge_in_order([_slot(run, job.index) for job in jobs], "instances", run.instances)
    summary = tally.summary()
    left_out = summary.pop("long_context_left_out")
    kept_in = None
    if settings.long_context_share > 0:
        # every task kept out of long instances, with the rejection of its variant
        lines = "".join(json.dumps(item) + "\n" for item in left_out)
        write_atomic(run.long_context_left_out, lines)
        kept_in = str(run.long_context_left_out.relative_to(run.path))
    else:
        run.long_context_left_out.unlink(missing_ok=True)  # from an earlier compose of this run
    count = sum(item.instances for item in stats)
    section = ComposeSection.of(asdict(settings), count, summary, kept_in)
    record_section(run_dir, section)
    return section
