"""One way to run a stage in shards: plan -> process (skipped when done) -> merge in order ->
record.

- *plan*: the stage cuts its input into jobs, small picklable descriptions (a byte range of a
  file, a slice of a round's parents), each with an ``index``;
- *process*: a job runs through :func:`process_once`, which writes the shard's outputs
  (``shards/NNNNN.<name>.jsonl``) atomically and its stats (``shards/NNNNN.stats.json``) last,
  so a shard with stats is complete and a rerun reads them back instead of redoing it;
- a *runner* decides where jobs run: :func:`run_inline` here, or Prefect tasks on threads or a
  Dask cluster (:func:`pipeline.flows.prefect_shards`); results come back in plan order;
- *merge*: :func:`merge_in_order` joins one output of every shard, in plan order, into the
  stage's merged file, so the result does not depend on which runner ran the shards or when;
- *record*: the stage records its manifest section (:func:`pipeline.manifest.record_section`).

Validation, every evolve round, compose and eval run through it; a stage is a function of its
runner, so one Prefect flow runs them all (:func:`pipeline.flows.stage_flow`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

from pipeline.jsonl import write_atomic, write_parts


class ShardStats(Protocol):
    """What a processed shard reports; written last, so its presence marks the shard done."""

    @property
    def index(self) -> int: ...

    def to_json(self) -> str: ...


J = TypeVar("J")
S = TypeVar("S", bound=ShardStats)

#: where a stage's jobs run: ``runner(process, jobs)`` returns each job's stats in plan order
ShardRunner = Callable[[Callable[[J], S], Sequence[J]], list[S]]


@dataclass(frozen=True)
class ShardSlot:
    """The files of shard ``index`` in a stage's ``shards`` folder."""

    folder: Path
    index: int

    @property
    def stem(self) -> str:
        return f"{self.index:05d}"

    def output(self, name: str) -> Path:
        return self.folder / f"{self.stem}.{name}.jsonl"

    @property
    def stats(self) -> Path:
        return self.folder / f"{self.stem}.stats.json"


def process_once(
    slot: ShardSlot,
    load: Callable[[str], S],
    work: Callable[[], tuple[Mapping[str, str], S]],
) -> S:
    """The shard's stats: read back (``load``) when it finished before, else ``work()`` runs and
    its outputs (name -> text) are written atomically, then its stats."""
    if slot.stats.exists():
        return load(slot.stats.read_text(encoding="utf-8"))
    outputs, stats = work()
    for name, text in outputs.items():
        write_atomic(slot.output(name), text)
    write_atomic(slot.stats, stats.to_json())
    return stats


def merge_in_order(slots: Sequence[ShardSlot], name: str, target: Path) -> None:
    """Output ``name`` of every shard, in plan order, as ``target`` (replaced atomically)."""
    write_parts([slot.output(name) for slot in slots], target)


def run_inline(
    process: Callable[[J], S],
    jobs: Sequence[J],
    on_done: Callable[[S], None] | None = None,
) -> list[S]:
    """Every job in this process, one after the other; ``on_done`` hears each shard's stats."""
    results = []
    for job in jobs:
        stats = process(job)
        results.append(stats)
        if on_done is not None:
            on_done(stats)
    return results
