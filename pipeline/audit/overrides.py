"""Reviewers' latest decisions as publishing sees them: tasks to add and tasks to drop."""

from __future__ import annotations

from pathlib import Path

from pipeline.audit.store import latest_reviews, read_reviews
from pipeline.jsonl import read_records
from pipeline.models import Decision, Expected, Task
from pipeline.replay import replay, state_digest
from pipeline.rundir import RunDir
from pipeline.validate.context import ValidationContext
from pipeline.validate.execution import requested_outputs


def _latest_with(run_dir: Path, decision: Decision) -> set[str]:
    latest = latest_reviews(read_reviews(run_dir))
    return {sample_id for sample_id, review in latest.items() if review.decision is decision}


def revalidated(task: Task) -> Task | None:
    """The task with ``expected`` filled from a fresh replay, or None if any call fails now."""
    try:
        result = replay(task)
        if not result.ok:
            return None
        outputs = requested_outputs(ValidationContext(task))
    except (ValueError, TypeError, LookupError):
        # a candidate rejected before execution may not even build its environments
        return None
    expected = Expected(state_digest=state_digest(result.final_state), outputs=outputs)
    return task.model_copy(update={"expected": expected})


def accepted_overrides(run_dir: Path) -> list[Task]:
    """Rejected candidates whose latest decision is ``override_accept`` and that still replay.

    Sorted by id. Candidates come from ``rejected_tasks.jsonl``; an override of a sample without
    a stored candidate (e.g. unparsable LLM output) has nothing to publish and is skipped.
    """
    wanted = _latest_with(run_dir, Decision.OVERRIDE_ACCEPT)
    path = RunDir(run_dir).rejected_tasks
    if not wanted or not path.is_file():
        return []
    found: dict[str, Task] = {}
    for task in read_records(path, Task):
        if task.id in wanted and task.id not in found:
            checked = revalidated(task)
            if checked is not None:
                found[task.id] = checked
    return [found[key] for key in sorted(found)]


def rejected_by_review(run_dir: Path) -> set[str]:
    """Ids of accepted tasks whose latest spot-check decision is ``reject``."""
    return _latest_with(run_dir, Decision.REJECT)
