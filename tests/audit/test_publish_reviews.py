"""Decisions flow into the dataset: overrides that still replay join ``single``, spot-check
rejects leave it, and the card counts the decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import datasets
from huggingface_hub.repocard import metadata_load

from pipeline.audit.overrides import accepted_overrides, rejected_by_review
from pipeline.audit.store import append_review
from pipeline.jsonl import write_records
from pipeline.models import Bounds, Composition, Decision, Instance, Review
from pipeline.publish import build_dataset_folder
from pipeline.replay import replay

if TYPE_CHECKING:
    from tests.audit.conftest import AuditRun


def _decide(run_dir: Path, sample: str, decision: Decision, who: str = "ann") -> None:
    at = datetime(2026, 2, 1, tzinfo=UTC)
    append_review(run_dir, Review(sample_id=sample, decision=decision, reviewer=who, at=at))


def _single_ids(folder: Path, cache: Path) -> dict[str, str]:
    """Published task id -> split."""
    meta = metadata_load(folder / "README.md") or {}
    config = next(c for c in meta["configs"] if c["config_name"] == "single")
    found: dict[str, str] = {}
    for entry in config["data_files"]:
        rows: Any = datasets.load_dataset(
            str(folder), "single", split=entry["split"], cache_dir=str(cache)
        )
        found.update({row["id"]: entry["split"] for row in rows})
    return found


def test_overrides_replay_and_latest_decision_wins(audit_run: AuditRun) -> None:
    run_dir = audit_run.run_dir
    assert accepted_overrides(run_dir) == []
    for sample in (audit_run.good.id, audit_run.broken.id, audit_run.raw_only):
        _decide(run_dir, sample, Decision.OVERRIDE_ACCEPT)
    overrides = accepted_overrides(run_dir)
    assert [task.id for task in overrides] == [audit_run.good.id]  # broken fails, raw has none
    expected = overrides[0].expected
    assert expected is not None
    assert expected.state_digest == replay(audit_run.good).state_digest()
    _decide(run_dir, audit_run.good.id, Decision.CONFIRM_REJECT, "bo")
    assert accepted_overrides(run_dir) == []
    spot = audit_run.accepted[-1].id
    _decide(run_dir, spot, Decision.REJECT)
    assert rejected_by_review(run_dir) == {spot}


def test_publish_takes_overrides_in_and_drops_spot_rejects(
    audit_run: AuditRun, tmp_path: Path
) -> None:
    run_dir = audit_run.run_dir
    child = next(task for task in audit_run.accepted if task.lineage.parents)
    keeper = next(task for task in audit_run.accepted if task.id != child.id)
    instances = [
        Instance(
            id=f"i{number}",
            tasks=tasks,
            composition=Composition.SAME_CATEGORY,
            latency_profile="uniform",
            seed=number,
            latency={},
            bounds=Bounds(optimal_makespan=1, sequential_makespan=2, turn_cost=1),
        )
        for number, tasks in enumerate([[child, child], [keeper, keeper]])
    ]
    write_records(run_dir / "instances.jsonl", instances)
    before = _single_ids(build_dataset_folder(run_dir), tmp_path / "c0")
    assert audit_run.good.id not in before and child.id in before

    _decide(run_dir, audit_run.good.id, Decision.OVERRIDE_ACCEPT)
    _decide(run_dir, audit_run.broken.id, Decision.OVERRIDE_ACCEPT)
    _decide(run_dir, audit_run.payload.id, Decision.CONFIRM_REJECT)
    _decide(run_dir, child.id, Decision.REJECT)
    folder = build_dataset_folder(run_dir)
    after = _single_ids(folder, tmp_path / "c1")
    assert set(after) == (set(before) | {audit_run.good.id}) - {child.id}
    # the override joins its seed's split, even though a reviewer dropped its parent
    assert audit_run.good.lineage.parents == [child.id]
    assert after[audit_run.good.id] == after[child.lineage.parents[0]]
    multi: Any = datasets.load_dataset(str(folder), "multi", cache_dir=str(tmp_path / "c2"))
    assert {row["id"] for split in multi.values() for row in split} == {"i1"}
    card = (folder / "README.md").read_text("utf-8")
    assert "4 review decisions on 4 samples" in card
    for decision, count in (("override_accept", 2), ("confirm_reject", 1), ("reject", 1)):
        assert f"| {decision} | {count} |" in card
