"""Build a run's Hugging Face dataset folder: ``data/<config>/<split>-*.parquet`` plus the card."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel

from pipeline.audit.store import latest_reviews, read_reviews
from pipeline.jsonl import file_sha256, read_records, replace_folder
from pipeline.manifest import Manifest, read_manifest, release_manifest
from pipeline.models import Instance, Rejection, Review, Task
from pipeline.publish.assign import PublishError, SplitPlan, check_disjoint, plan_splits
from pipeline.publish.card import CardInfo, DataFile, render_card
from pipeline.publish.counts import REJECTED_SPLIT, ReleaseCounts, manifest_disagreements
from pipeline.publish.parquet import write_parquet
from pipeline.publish.review import ReviewOutcome, apply_reviews, review_rejections
from pipeline.publish.rows import (
    INSTANCE_COLUMNS,
    REJECTION_COLUMNS,
    TASK_COLUMNS,
    ColumnKind,
    Row,
    instance_to_row,
    rejection_to_row,
    task_to_row,
)
from pipeline.publish.version import check_version
from pipeline.rundir import MANIFEST, RUNS, RunDir
from pipeline.splits import DEFAULT_TEST_FRACTION, Split

#: hex digits of a data file's SHA-256 in its name (see ``_Builder.write``)
NAME_DIGEST = 16

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RunInputs:
    tasks: list[Task]
    task_repeats: int  # identical lines of evolved.jsonl, kept once
    instances: list[Instance]
    rejections: list[Rejection]
    reviews: list[Review]
    candidates: dict[str, Task]  # rejected candidates by id (``rejected_tasks.jsonl``)
    manifest: Manifest | None


@dataclass(frozen=True)
class Published:
    folder: Path
    counts: ReleaseCounts


def _records(path: Path, model: type[M]) -> list[M]:
    return list(read_records(path, model)) if path.is_file() else []


def _unique(records: Sequence[M], key: Callable[[M], str], what: str) -> tuple[list[M], int]:
    """One record per id and how many exact repeats collapsed; two different records with one
    id are an error."""
    seen: dict[str, M] = {}
    for record in records:
        earlier = seen.setdefault(key(record), record)
        if earlier is not record and earlier != record:
            raise PublishError(f"two different {what}s share the id {key(record)}")
    return list(seen.values()), len(records) - len(seen)


def load_run(run_dir: Path) -> RunInputs:
    run = RunDir(run_dir)
    evolved = run.evolved
    if not evolved.is_file():
        raise FileNotFoundError(f"{evolved} does not exist: run `asynctool evolve` first")
    manifest = read_manifest(run_dir)
    tasks, repeats = _unique(_records(evolved, Task), lambda t: t.id, "task")
    instances, _ = _unique(_records(run.instances, Instance), lambda i: i.id, "instance")
    candidates: dict[str, Task] = {}
    for task in _records(run.rejected_tasks, Task):
        candidates.setdefault(task.id, task)
    return RunInputs(
        tasks=tasks,
        task_repeats=repeats,
        instances=instances,
        rejections=_records(run.evolve_rejected, Rejection),
        reviews=read_reviews(run_dir),
        candidates=candidates,
        manifest=manifest,
    )


def newest_run(output: Path) -> Path:
    """The run folder under ``output/runs`` whose ``evolved.jsonl`` was written last."""
    runs = [RunDir(path) for path in (output / RUNS).glob("*") if path.is_dir()]
    candidates = sorted(
        (run.evolved.stat().st_mtime, run.name, run.path) for run in runs if run.evolved.is_file()
    )
    if not candidates:
        raise FileNotFoundError(f"no run with evolved tasks under {output / RUNS}")
    return candidates[-1][2]


@dataclass
class _Builder:
    root: Path
    files: list[DataFile]

    def write(
        self, config: str, split: str, rows: list[Row], columns: dict[str, ColumnKind]
    ) -> None:
        """Write one split as ``data/<config>/<split>-<digest>.parquet``.

        The content digest in the name is what keeps ``datasets`` from serving stale rows: for a
        local folder whose card lists ``configs``, its cache key is the folder's name plus a hash
        of the card's ``data_files`` patterns, not of the files' contents. Every run's folder is
        called ``dataset``, so with fixed file names two runs, or a republished run, shared one
        cache entry. With the digest in the name, new content means a new key.
        """
        if not rows:
            return  # an empty split cannot be loaded by datasets; the card says so
        staging = self.root / "data" / config / f".{split}.parquet"
        write_parquet(staging, rows, columns)
        digest = file_sha256(staging)
        relative = f"data/{config}/{split}-{digest[:NAME_DIGEST]}.parquet"
        os.replace(staging, self.root / relative)
        size = (self.root / relative).stat().st_size
        self.files.append(DataFile(config, split, relative, len(rows), size, digest))


def _single_rows(tasks: Sequence[Task], plan: SplitPlan) -> dict[Split, list[Row]]:
    by_split: dict[Split, list[Row]] = defaultdict(list)
    for task in sorted(tasks, key=lambda t: t.id):
        split = plan.task_split(task)
        by_split[split].append(task_to_row(task, split.value, plan.root(task)))
    return by_split


def _multi_rows(instances: Sequence[Instance], plan: SplitPlan) -> dict[Split, list[Row]]:
    by_split: dict[Split, list[Row]] = defaultdict(list)
    for instance in sorted(instances, key=lambda i: i.id):
        split = plan.instance_split(instance)
        roots = [plan.root(task) for task in instance.tasks]
        by_split[split].append(instance_to_row(instance, split.value, roots))
    return by_split


def _rejected_rows(inputs: RunInputs, outcome: ReviewOutcome) -> list[Row]:
    """Validator rejections, then reviewers' rejections of accepted tasks, each with the
    candidate task (when there is one) and the sample's latest review decision."""
    latest = latest_reviews(inputs.reviews)
    accepted = {task.id: task for task in inputs.tasks}
    rows = []
    for rejection in [*inputs.rejections, *review_rejections(outcome)]:
        sample = rejection.sample_id
        candidate = inputs.candidates.get(sample) or accepted.get(sample)
        decision = latest[sample].decision.value if sample in latest else None
        rows.append(rejection_to_row(rejection, candidate, decision))
    return sorted(rows, key=_rejection_key)


def _rejection_key(row: Row) -> tuple[str, ...]:
    return (row["sample_id"], row["stage"], row["code"], row["message"], row["evidence"])


@dataclass(frozen=True)
class _Release:
    """What goes into the folder: the reviewed records and their split plan."""

    run_id: str
    inputs: RunInputs
    tasks: list[Task]
    instances: list[Instance]
    plan: SplitPlan
    counts: ReleaseCounts


def _plan_release(run_dir: Path, test_fraction: float) -> _Release:
    inputs = load_run(run_dir)
    outcome, tasks, instances = apply_reviews(
        inputs.reviews, inputs.tasks, inputs.instances, inputs.candidates
    )
    # Splits are planned on the whole lineage (reviewer-rejected tasks too), so dropping a
    # parent never moves its descendants to another split.
    plan = plan_splits(
        [*inputs.tasks, *outcome.overrides_published], inputs.instances, test_fraction
    )
    counts = ReleaseCounts(
        tasks_validated=len(inputs.tasks),
        task_repeats=inputs.task_repeats,
        instances_composed=Counter(plan.instance_split(i).value for i in inputs.instances),
        validator_rejections=Counter(rejection.code.value for rejection in inputs.rejections),
        review=outcome,
    )
    counts.disagreements = manifest_disagreements(inputs.manifest, counts)
    return _Release(run_dir.name, inputs, tasks, instances, plan, counts)


def _card_info(
    release: _Release, files: list[DataFile], version: str, license: str, repo_id: str | None
) -> CardInfo:
    plan = release.plan
    listing = "".join(f"{f.path} {f.sha256}\n" for f in sorted(files, key=lambda f: f.path))
    manifest = release_manifest(release.inputs.manifest, release.run_id, release.counts.section())
    info = CardInfo(
        version=version,
        license=license,
        test_fraction=plan.test_fraction,
        repo_id=repo_id,
        files=files,
        data_sha256=hashlib.sha256(listing.encode()).hexdigest(),
        counts=release.counts,
        manifest=manifest,
        run_id=release.run_id,
    )
    roots: dict[str, set[str]] = defaultdict(set)
    for task in release.tasks:
        split = plan.task_split(task).value
        info.single[(split, task.category)] += 1
        info.operators[task.lineage.operator] += 1
        roots[split].add(plan.root(task))
    for instance in release.instances:
        split = plan.instance_split(instance).value
        info.multi[(split, instance.composition.value)] += 1
        info.tasks_per_instance[len(instance.tasks)] += 1
        info.latency_profiles[instance.latency_profile] += 1
        info.context_profiles[instance.context_profile.value] += 1
        roots[split].update(plan.root(task) for task in instance.tasks)
    check_disjoint(roots)
    info.roots.update({split: len(members) for split, members in roots.items()})
    return info


def _write_folder(
    root: Path, release: _Release, version: str, license: str, repo_id: str | None
) -> None:
    builder = _Builder(root, [])
    single = _single_rows(release.tasks, release.plan)
    multi = _multi_rows(release.instances, release.plan)
    for split in Split:
        builder.write("single", split.value, single[split], TASK_COLUMNS)
    for split in Split:
        builder.write("multi", split.value, multi[split], INSTANCE_COLUMNS)
    rejected = _rejected_rows(release.inputs, release.counts.review)
    builder.write("rejected", REJECTED_SPLIT, rejected, REJECTION_COLUMNS)
    release.counts.rows.update({(f.config, f.split): f.rows for f in builder.files})
    info = _card_info(release, builder.files, version, license, repo_id)
    (root / "README.md").write_text(render_card(info), encoding="utf-8")
    (root / MANIFEST).write_text(info.manifest.text(), encoding="utf-8")


def _swap_in(built: Path, target: Path) -> None:
    """Replace ``target`` by ``built``, leaving a complete folder at every instant."""
    replace_folder(built, target)


def publish_run(
    run_dir: Path,
    version: str = "0.1.0",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    license: str = "apache-2.0",
    repo_id: str | None = None,
) -> Published:
    """Write ``run_dir/dataset`` (built aside, then renamed into place) with reviewers' latest
    decisions applied; return it with every count the release reports.

    ``repo_id`` only fills the card's loading and evaluation examples (a push rewrites them for
    the repository it pushes to).
    """
    check_version(version)
    release = _plan_release(run_dir, test_fraction)
    target = RunDir(run_dir).dataset
    staging = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".{target.name}-new-"))
    try:
        _write_folder(staging, release, version, license, repo_id)
        staging.chmod(0o755)  # mkdtemp makes it private; a published folder should not be
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Published(target, release.counts)


def build_dataset_folder(
    run_dir: Path,
    version: str = "0.1.0",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    license: str = "apache-2.0",
    repo_id: str | None = None,
) -> Path:
    """:func:`publish_run`, returning only the folder."""
    return publish_run(run_dir, version, test_fraction, license, repo_id).folder
