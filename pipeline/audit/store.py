"""What the audit reads from a run folder, and the one thing it writes: ``reviews.jsonl``.

Files of ``output/runs/<run_id>/`` used here (all optional, but a run needs one of the first two):

- ``evolved.jsonl``: accepted ``Task`` records (seeds included); spot checks sample these.
- ``evolve_rejected.jsonl``: one ``Rejection`` per failed check; a sample may appear more than once.
- ``rejected_tasks.jsonl``: the candidate ``Task`` of every rejection that had one, keyed by
  ``Task.id == Rejection.sample_id``. Without it a reject shows only its rejection (message,
  evidence, raw text), and an ``override_accept`` has nothing to publish.
- ``reviews.jsonl``: append-only ``Review`` records. Appends hold an exclusive ``flock`` and are
  fsynced, so concurrent requests (threads or processes) never interleave or lose a line. The
  latest line for a sample (file order, which is append order) is its decision.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from pydantic import ValidationError

from pipeline.jsonl import RecordError, read_records
from pipeline.models import Decision, Rejection, Review, Task
from pipeline.rundir import RunDir

PAGE_SIZE = 50
#: the filter value meaning "field not set" (an empty query value means "no filter")
MISSING = "-"
UNDECIDED = "undecided"
FILTERS = ("stage", "code", "category", "operator", "model", "decision")
#: how far the lineage view walks up before it stops (a guard against malformed parents)
LINEAGE_LIMIT = 64


class Kind(StrEnum):
    REJECTED = "rejected"
    ACCEPTED = "accepted"


#: the decisions a reviewer may take on each kind of sample
DECISIONS: dict[Kind, tuple[Decision, ...]] = {
    Kind.REJECTED: (Decision.CONFIRM_REJECT, Decision.OVERRIDE_ACCEPT),
    Kind.ACCEPTED: (Decision.REJECT,),
}


def _by_id(path: Path) -> dict[str, Task]:
    tasks: dict[str, Task] = {}
    if path.is_file():
        for task in read_records(path, Task):
            tasks.setdefault(task.id, task)
    return tasks


@dataclass(frozen=True)
class LineageStep:
    id: str
    depth: int
    kind: Kind | None  # None: the parent is in neither file
    task: Task | None


@dataclass(frozen=True)
class RunData:
    run_dir: Path
    accepted: dict[str, Task]
    candidates: dict[str, Task]
    rejections: dict[str, list[Rejection]]  # sample id -> its rejections, in file order

    @classmethod
    def load(cls, run_dir: Path) -> RunData:
        run = RunDir(run_dir)
        if not run.evolved.is_file() and not run.evolve_rejected.is_file():
            raise FileNotFoundError(
                f"{run_dir} has neither {run.evolved.name} nor {run.evolve_rejected.name}"
            )
        rejections: dict[str, list[Rejection]] = {}
        if run.evolve_rejected.is_file():
            for rejection in read_records(run.evolve_rejected, Rejection):
                rejections.setdefault(rejection.sample_id, []).append(rejection)
        return cls(
            run_dir,
            _by_id(RunDir(run_dir).evolved),
            _by_id(RunDir(run_dir).rejected_tasks),
            rejections,
        )

    def kind(self, sample_id: str) -> Kind | None:
        # an id that was accepted once is published anyway, so it is audited as accepted
        if sample_id in self.accepted:
            return Kind.ACCEPTED
        if sample_id in self.rejections or sample_id in self.candidates:
            return Kind.REJECTED
        return None

    def task(self, sample_id: str) -> Task | None:
        return self.accepted.get(sample_id) or self.candidates.get(sample_id)

    def lineage(self, sample_id: str) -> list[LineageStep]:
        """Ancestors breadth-first, nearest first, up to the seeds (tasks without parents)."""
        start = self.task(sample_id)
        if start is None:
            return []
        steps: list[LineageStep] = []
        seen = {sample_id}
        frontier = [(parent, 1) for parent in start.lineage.parents]
        while frontier and len(steps) < LINEAGE_LIMIT:
            parent_id, depth = frontier.pop(0)
            if parent_id in seen:
                continue
            seen.add(parent_id)
            parent = self.task(parent_id)
            steps.append(LineageStep(parent_id, depth, self.kind(parent_id), parent))
            if parent is not None:
                frontier.extend((grand, depth + 1) for grand in parent.lineage.parents)
        return steps


class RunCache:
    """The run's data, reloaded when one of its files changes (an evolve rerun, say)."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._lock = threading.Lock()
        self._signature: tuple[tuple[int, int], ...] | None = None
        self._data: RunData | None = None

    def _stat(self) -> tuple[tuple[int, int], ...]:
        marks = []
        run = RunDir(self.run_dir)
        for path in (run.evolved, run.evolve_rejected, run.rejected_tasks):
            info = path.stat() if path.is_file() else None
            marks.append((info.st_mtime_ns, info.st_size) if info else (0, -1))
        return tuple(marks)

    def get(self) -> RunData:
        with self._lock:
            signature = self._stat()
            if self._data is None or signature != self._signature:
                self._data = RunData.load(self.run_dir)
                self._signature = signature
            return self._data


class StaleDecision(Exception):
    """A decision made on an out-of-date view: the sample was decided since the page loaded."""

    def __init__(self, seen: int, current: list[Review]) -> None:
        self.seen = seen
        #: every decision on the sample now, oldest first
        self.current = current
        super().__init__(
            f"the page saw {seen} decision(s) on this sample; there are now {len(current)}"
        )

    @property
    def since(self) -> list[Review]:
        """The decisions the page did not show."""
        return self.current[self.seen :] if self.seen < len(self.current) else self.current


def append_review(run_dir: Path, review: Review, seen: int | None = None) -> None:
    """Append one decision; safe against concurrent writers in any process on this machine.

    ``seen`` is how many decisions on the sample the reviewer's page showed: when the file holds
    another number, :class:`StaleDecision` is raised and nothing is written. The check runs under
    the same exclusive lock as the write, so two reviewers racing on one sample cannot both pass.
    """
    line = (review.model_dump_json() + "\n").encode("utf-8")
    fd = os.open(RunDir(run_dir).reviews, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        size = os.fstat(fd).st_size
        if seen is not None:
            text = os.pread(fd, size, 0).decode("utf-8")
            current = [
                other
                for other in _parse_reviews(text, RunDir(run_dir).reviews)
                if other.sample_id == review.sample_id
            ]
            if len(current) != seen:
                raise StaleDecision(seen, current)
        # a line torn by a crash must not swallow the next decision
        if size and os.pread(fd, 1, size - 1) != b"\n":
            line = b"\n" + line
        view = memoryview(line)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock


def read_reviews(run_dir: Path) -> list[Review]:
    """Every decision in append order; a shared lock keeps a half-written line out of view."""
    path = RunDir(run_dir).reviews
    if not path.is_file():
        return []
    with path.open("rb") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_SH)
        text = handle.read().decode("utf-8")
    return _parse_reviews(text, path)


def _parse_reviews(text: str, path: Path) -> list[Review]:
    reviews = []
    # split on "\n" only: splitlines() also breaks at U+2028 inside a reviewer's note
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            reviews.append(Review.model_validate_json(line))
        except ValidationError as error:
            raise RecordError(f"{path}:{number}: not a valid Review: {error}") from None
    return reviews


def latest_reviews(reviews: Sequence[Review]) -> dict[str, Review]:
    latest: dict[str, Review] = {}
    for review in reviews:
        latest[review.sample_id] = review
    return latest


@dataclass(frozen=True)
class RejectRow:
    """One rejected sample as the list shows it."""

    sample_id: str
    rejections: list[Rejection]
    task: Task | None
    latest: Review | None

    def values(self, key: str) -> set[str]:
        """The row's values of a filter field (a sample can fail with several codes)."""
        lineage = self.task.lineage if self.task else None
        if key == "stage":
            return {r.stage.value for r in self.rejections}
        if key == "code":
            return {r.code.value for r in self.rejections}
        if key == "category":
            return {self.task.category if self.task else MISSING}
        if key == "operator":
            return {lineage.operator if lineage else MISSING}
        if key == "model":
            return {(lineage.model if lineage else None) or MISSING}
        if key == "decision":
            return {self.latest.decision.value if self.latest else UNDECIDED}
        raise KeyError(key)


@dataclass
class RejectPage:
    rows: list[RejectRow]
    total: int
    page: int
    pages: int
    #: rejections per code among samples matching every filter but ``code``
    counts: Counter[str] = field(default_factory=Counter)
    #: every value each filter can take in this run
    options: dict[str, list[str]] = field(default_factory=dict)


def reject_rows(data: RunData, latest: Mapping[str, Review]) -> list[RejectRow]:
    return [
        RejectRow(sample_id, rejections, data.candidates.get(sample_id), latest.get(sample_id))
        for sample_id, rejections in data.rejections.items()
        if sample_id not in data.accepted
    ]


def _matches(row: RejectRow, filters: Mapping[str, str], skip: str | None = None) -> bool:
    return all(value in row.values(key) for key, value in filters.items() if value and key != skip)


def query_rejects(
    data: RunData, latest: Mapping[str, Review], filters: Mapping[str, str], page: int = 1
) -> RejectPage:
    rows = reject_rows(data, latest)
    chosen = [row for row in rows if _matches(row, filters)]
    pages = max(1, -(-len(chosen) // PAGE_SIZE))
    page = min(max(page, 1), pages)
    counts: Counter[str] = Counter(
        rejection.code.value
        for row in rows
        if _matches(row, filters, skip="code")
        for rejection in row.rejections
    )
    options = {key: sorted({v for row in rows for v in row.values(key)}) for key in FILTERS}
    start = (page - 1) * PAGE_SIZE
    return RejectPage(chosen[start : start + PAGE_SIZE], len(chosen), page, pages, counts, options)


def reject_queue(
    data: RunData, latest: Mapping[str, Review], filters: Mapping[str, str]
) -> list[str]:
    """The ids a reviewer works through from a filtered list, in list order.

    The decision filter is left out: deciding a sample must not move it out of its own queue.
    """
    return [
        row.sample_id for row in reject_rows(data, latest) if _matches(row, filters, "decision")
    ]


def next_undecided(queue: Sequence[str], latest: Mapping[str, Review], current: str) -> str | None:
    """The first undecided id after ``current`` in ``queue`` (wrapping around), or None."""
    start = queue.index(current) + 1 if current in queue else 0
    for sample_id in [*queue[start:], *queue[:start]]:
        if sample_id != current and sample_id not in latest:
            return sample_id
    return None
