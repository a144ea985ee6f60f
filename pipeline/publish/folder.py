"""Build a run's Hugging Face dataset folder: ``data/<config>/<split>-*.parquet`` plus the card."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from pipeline.audit.overrides import accepted_overrides, rejected_by_review
from pipeline.jsonl import read_records
from pipeline.models import Instance, Rejection, Review, Task
from pipeline.publish.assign import PublishError, SplitPlan, check_disjoint, plan_splits
from pipeline.publish.card import CardInfo, DataFile, render_card
from pipeline.publish.parquet import write_parquet
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
from pipeline.splits import DEFAULT_TEST_FRACTION, Split

DATASET_DIR = "dataset"
EVOLVED = "evolved.jsonl"
INSTANCES = "instances.jsonl"
REJECTED = "evolve_rejected.jsonl"
REVIEWS = "reviews.jsonl"
MANIFEST = "manifest.json"
#: the one split of the rejected config; "all" is reserved by datasets (the union of all splits)
REJECTED_SPLIT = "full"

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class RunInputs:
    tasks: list[Task]
    instances: list[Instance]
    rejections: list[Rejection]
    reviews: list[Review]
    manifest: dict[str, Any] | None


def _records(path: Path, model: type[M]) -> list[M]:
    return list(read_records(path, model)) if path.is_file() else []


def _unique(records: Sequence[M], key: Callable[[M], str], what: str) -> list[M]:
    """One record per id: exact repeats collapse, two different records with one id are an error."""
    seen: dict[str, M] = {}
    for record in records:
        earlier = seen.setdefault(key(record), record)
        if earlier is not record and earlier != record:
            raise PublishError(f"two different {what}s share the id {key(record)}")
    return list(seen.values())


def load_run(run_dir: Path) -> RunInputs:
    evolved = run_dir / EVOLVED
    if not evolved.is_file():
        raise FileNotFoundError(f"{evolved} does not exist: run `asynctool evolve` first")
    manifest_path = run_dir / MANIFEST
    manifest = json.loads(manifest_path.read_text("utf-8")) if manifest_path.is_file() else None
    if manifest is not None and not isinstance(manifest, dict):
        raise PublishError(f"{manifest_path} is not a JSON object")
    return RunInputs(
        tasks=_unique(_records(evolved, Task), lambda t: t.id, "task"),
        instances=_unique(_records(run_dir / INSTANCES, Instance), lambda i: i.id, "instance"),
        rejections=_records(run_dir / REJECTED, Rejection),
        reviews=_records(run_dir / REVIEWS, Review),
        manifest=manifest,
    )


def newest_run(output: Path) -> Path:
    """The run folder under ``output/runs`` whose ``evolved.jsonl`` was written last."""
    candidates = sorted(
        (path.stat().st_mtime, path.parent.name, path.parent)
        for path in (output / "runs").glob(f"*/{EVOLVED}")
    )
    if not candidates:
        raise FileNotFoundError(f"no run with {EVOLVED} under {output / 'runs'}")
    return candidates[-1][2]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class _Builder:
    root: Path
    files: list[DataFile]

    def write(
        self, config: str, split: str, rows: list[Row], columns: dict[str, ColumnKind]
    ) -> None:
        if not rows:
            return  # an empty split cannot be loaded by datasets; the card says so
        relative = f"data/{config}/{split}-00000-of-00001.parquet"
        path = self.root / relative
        write_parquet(path, rows, columns)
        self.files.append(
            DataFile(config, split, relative, len(rows), path.stat().st_size, _sha256(path))
        )


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


def _rejection_key(row: Row) -> tuple[str, ...]:
    return (row["sample_id"], row["stage"], row["code"], row["message"], row["evidence"])


def _card_info(
    inputs: RunInputs,
    plan: SplitPlan,
    files: list[DataFile],
    version: str,
    license: str,
    repo_id: str | None,
) -> CardInfo:
    listing = "".join(f"{f.path} {f.sha256}\n" for f in sorted(files, key=lambda f: f.path))
    info = CardInfo(
        version=version,
        license=license,
        test_fraction=plan.test_fraction,
        repo_id=repo_id,
        files=files,
        data_sha256=hashlib.sha256(listing.encode()).hexdigest(),
        manifest=inputs.manifest,
    )
    roots: dict[str, set[str]] = defaultdict(set)
    for task in inputs.tasks:
        split = plan.task_split(task).value
        info.single[(split, task.category)] += 1
        info.operators[task.lineage.operator] += 1
        roots[split].add(plan.root(task))
    for instance in inputs.instances:
        split = plan.instance_split(instance).value
        info.multi[(split, instance.composition.value)] += 1
        info.tasks_per_instance[len(instance.tasks)] += 1
        info.latency_profiles[instance.latency_profile] += 1
        roots[split].update(plan.root(task) for task in instance.tasks)
    check_disjoint(roots)
    info.roots.update({split: len(members) for split, members in roots.items()})
    info.rejected_by_code.update(rejection.code.value for rejection in inputs.rejections)
    info.reviews.update(review.decision.value for review in inputs.reviews)
    info.reviewed_samples = len({review.sample_id for review in inputs.reviews})
    return info


def _write_folder(
    root: Path, inputs: RunInputs, plan: SplitPlan, version: str, license: str, repo_id: str | None
) -> None:
    builder = _Builder(root, [])
    single = _single_rows(inputs.tasks, plan)
    multi = _multi_rows(inputs.instances, plan)
    for split in Split:
        builder.write("single", split.value, single[split], TASK_COLUMNS)
    for split in Split:
        builder.write("multi", split.value, multi[split], INSTANCE_COLUMNS)
    rejected = sorted((rejection_to_row(r) for r in inputs.rejections), key=_rejection_key)
    builder.write("rejected", REJECTED_SPLIT, rejected, REJECTION_COLUMNS)
    info = _card_info(inputs, plan, builder.files, version, license, repo_id)
    (root / "README.md").write_text(render_card(info), encoding="utf-8")
    if inputs.manifest is not None:
        text = json.dumps(inputs.manifest, indent=2, ensure_ascii=False) + "\n"
        (root / MANIFEST).write_text(text, encoding="utf-8")


def _swap_in(built: Path, target: Path) -> None:
    """Replace ``target`` by ``built``; a folder cannot be renamed over a non-empty one."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}-old-"))
        os.replace(target, old / target.name)
    os.replace(built, target)
    if old is not None:
        shutil.rmtree(old)


def _reviewed(run_dir: Path, inputs: RunInputs) -> tuple[list[Task], RunInputs]:
    """Apply reviewers' latest decisions (``pipeline.audit``): overrides that still replay join
    the tasks; spot-check rejects leave them, with every instance holding one.

    Also returns the lineage pool (rejected tasks kept) the splits are planned on, so a dropped
    parent never moves its descendants to another split.
    """
    known = {task.id for task in inputs.tasks}
    pool = inputs.tasks + [task for task in accepted_overrides(run_dir) if task.id not in known]
    dropped = rejected_by_review(run_dir)
    if not dropped and len(pool) == len(inputs.tasks):
        return pool, inputs
    tasks = [task for task in pool if task.id not in dropped]
    instances = [i for i in inputs.instances if not any(t.id in dropped for t in i.tasks)]
    return pool, replace(inputs, tasks=tasks, instances=instances)


def build_dataset_folder(
    run_dir: Path,
    version: str = "0.1.0",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    license: str = "apache-2.0",
    repo_id: str | None = None,
) -> Path:
    """Write ``run_dir/dataset`` (built aside, then renamed into place) and return its path.

    ``repo_id`` only fills the loading example of the card.
    """
    check_version(version)
    lineage, inputs = _reviewed(run_dir, load_run(run_dir))
    plan = plan_splits(lineage, inputs.instances, test_fraction)
    target = run_dir / DATASET_DIR
    staging = Path(tempfile.mkdtemp(dir=run_dir, prefix=f".{DATASET_DIR}-new-"))
    try:
        _write_folder(staging, inputs, plan, version, license, repo_id)
        staging.chmod(0o755)  # mkdtemp makes it private; a published folder should not be
        _swap_in(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target
