"""What reviewers' decisions do to a release, with a reason for everything they add or remove.

Only the latest decision on a sample counts (``pipeline.audit.store``); earlier ones are
superseded. An ``override_accept`` publishes the candidate only if it still replays; one that does
not is reported with the reason, never dropped silently. A ``reject`` of an accepted task removes
it and every instance holding it, and the task joins the rejected config as ``review.rejected``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from pipeline.audit.overrides import revalidated
from pipeline.audit.store import latest_reviews
from pipeline.long_context_variants import made_from
from pipeline.models import Decision, Instance, Rejection, RejectionCode, Review, Stage, Task
from pipeline.replay import replay


@dataclass(frozen=True)
class Dropped:
    id: str
    reason: str


@dataclass
class ReviewOutcome:
    decisions: int = 0  # review records, superseded ones included
    latest: Counter[str] = field(default_factory=Counter)  # decision -> samples it is latest for
    overrides_published: list[Task] = field(default_factory=list)
    overrides_dropped: list[Dropped] = field(default_factory=list)
    rejected_tasks: list[Dropped] = field(default_factory=list)  # accepted tasks a reviewer cut
    rejected_unknown: list[str] = field(default_factory=list)  # `reject` of an id not accepted
    instances_dropped: list[Dropped] = field(default_factory=list)

    @property
    def samples(self) -> int:
        return sum(self.latest.values())

    @property
    def superseded(self) -> int:
        return self.decisions - self.samples


def _replay_failure(task: Task) -> str:
    """Why a candidate no longer replays, in one line."""
    try:
        result = replay(task)
    except (ValueError, TypeError, LookupError) as error:
        return f"its environments cannot be built: {error}"
    for outcome in result.errors:
        return f"step {outcome.call_id} ({outcome.tool}) now fails: {outcome.error}"
    return "its replay no longer yields the requested outputs"


def _review_note(review: Review) -> str:
    note = f": {review.note}" if review.note else ""
    return f"rejected by reviewer {review.reviewer} on {review.at.date().isoformat()}{note}"


def _named(task: Task) -> str:
    source = made_from(task)
    return task.id if source == task.id else f"{task.id} (long-context variant of {source})"


def apply_reviews(
    reviews: Sequence[Review],
    tasks: Sequence[Task],
    instances: Sequence[Instance],
    candidates: Mapping[str, Task],
) -> tuple[ReviewOutcome, list[Task], list[Instance]]:
    """The outcome, the tasks to publish (overrides added, reviewer rejects removed) and the
    instances left (those holding a removed task go)."""
    latest = latest_reviews(reviews)
    outcome = ReviewOutcome(decisions=len(reviews))
    outcome.latest.update(review.decision.value for review in latest.values())
    known = {task.id for task in tasks}
    removed: dict[str, str] = {}
    for sample_id in sorted(latest):
        review = latest[sample_id]
        if review.decision is Decision.REJECT:
            if sample_id in known:
                removed[sample_id] = _review_note(review)
                outcome.rejected_tasks.append(Dropped(sample_id, removed[sample_id]))
            else:
                outcome.rejected_unknown.append(sample_id)
        elif review.decision is Decision.OVERRIDE_ACCEPT and sample_id not in known:
            candidate = candidates.get(sample_id)
            checked = revalidated(candidate) if candidate is not None else None
            if checked is not None:
                outcome.overrides_published.append(checked)
            else:
                reason = (
                    "no candidate task was stored for it (it never parsed)"
                    if candidate is None
                    else _replay_failure(candidate)
                )
                outcome.overrides_dropped.append(Dropped(sample_id, reason))
    kept = [task for task in tasks if task.id not in removed]
    kept += outcome.overrides_published
    left = []
    for instance in instances:
        # a long-context variant goes with the task it was made from
        cut = [_named(task) for task in instance.tasks if made_from(task) in removed]
        if cut:
            reason = f"holds task {', '.join(cut)}, which a reviewer rejected"
            outcome.instances_dropped.append(Dropped(instance.id, reason))
        else:
            left.append(instance)
    return outcome, kept, left


def review_rejections(outcome: ReviewOutcome) -> list[Rejection]:
    """Accepted tasks a reviewer rejected, as rows of the rejected config."""
    return [
        Rejection(
            sample_id=item.id,
            stage=Stage.REVIEW,
            code=RejectionCode.REVIEW_REJECTED,
            message=item.reason,
        )
        for item in outcome.rejected_tasks
    ]
