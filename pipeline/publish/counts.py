"""Every count a release reports, from one place: the card's tables, the ``published`` block of
its ``manifest.json`` and what ``asynctool publish`` / ``dataset`` print are all rendered from a
:class:`ReleaseCounts`, which is computed from the records the release was built from.

The run manifest records what each stage counted when it ran. Where it disagrees with the files
(an older run, a hand-edited file), the disagreement is listed rather than hidden.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pipeline.manifest import (
    DroppedRecord,
    Manifest,
    PublishedInstances,
    PublishedRejections,
    PublishedReviews,
    PublishedSection,
    PublishedTasks,
)
from pipeline.publish.review import Dropped, ReviewOutcome
from pipeline.splits import Split

REJECTED_SPLIT = "full"  # the rejected config's one split ("all" is reserved by datasets)


@dataclass
class ReleaseCounts:
    tasks_validated: int  # distinct tasks in evolved.jsonl
    task_repeats: int  # identical lines of evolved.jsonl kept once
    instances_composed: Counter[str]  # split -> instances in instances.jsonl
    validator_rejections: Counter[str]  # code -> rows of evolve_rejected.jsonl
    review: ReviewOutcome
    rows: Counter[tuple[str, str]] = field(default_factory=Counter)  # (config, split) -> rows
    disagreements: list[str] = field(default_factory=list)  # run manifest vs files

    def published(self, config: str) -> int:
        return sum(n for (name, _), n in self.rows.items() if name == config)

    @property
    def validator_total(self) -> int:
        return sum(self.validator_rejections.values())

    @property
    def review_rejections(self) -> int:
        return len(self.review.rejected_tasks)

    @property
    def rejections(self) -> int:
        return self.validator_total + self.review_rejections

    def section(self) -> PublishedSection:
        """The ``published`` section of the released ``manifest.json``."""
        review = self.review
        return PublishedSection(
            rows={
                config: {
                    split: n for (name, split), n in sorted(self.rows.items()) if name == config
                }
                for config in ("single", "multi", "rejected")
            },
            tasks=PublishedTasks(
                validated=self.tasks_validated,
                repeated_lines_collapsed=self.task_repeats,
                overrides_published=[task.id for task in review.overrides_published],
                removed_by_review=_dropped(review.rejected_tasks),
                published=self.published("single"),
            ),
            instances=PublishedInstances(
                composed=dict(sorted(self.instances_composed.items())),
                removed_by_review=_dropped(review.instances_dropped),
                published=self.published("multi"),
            ),
            rejections=PublishedRejections(
                by_validator=self.validator_total,
                by_review=self.review_rejections,
                by_code=dict(sorted(self.by_code().items())),
                published=self.published("rejected"),
            ),
            reviews=PublishedReviews(
                decisions=review.decisions,
                samples=review.samples,
                superseded=review.superseded,
                latest=dict(sorted(review.latest.items())),
                overrides_not_published=_dropped(review.overrides_dropped),
                rejects_of_unknown_samples=list(review.rejected_unknown),
            ),
            manifest_disagreements=list(self.disagreements),
        )

    def by_code(self) -> Counter[str]:
        codes = Counter(self.validator_rejections)
        if self.review_rejections:
            codes["review.rejected"] += self.review_rejections
        return codes

    def summary_lines(self) -> list[str]:
        """What the command line prints: the published rows and every drop, with its reason."""
        review = self.review
        composed = sum(self.instances_composed.values())
        lines = [
            f"validated tasks: {self.tasks_validated}; composed instances: {composed} "
            f"{_splits(self.instances_composed)}",
            f"rejected candidates: {self.rejections} ({self.validator_total} "
            f"by the validator, {self.review_rejections} by reviewers)"
            + (", by code:" if self.rejections else ""),
            *(f"  {code}: {n}" for code, n in sorted(self.by_code().items(), key=_by_count)),
        ]
        if review.decisions:
            lines.append(
                f"reviews: {review.decisions} decisions on {review.samples} samples "
                f"({review.superseded} superseded by a later decision); overrides published: "
                f"{len(review.overrides_published)}, not published: {len(review.overrides_dropped)}"
            )
        lines += [f"  override {d.id} not published: {d.reason}" for d in review.overrides_dropped]
        lines += [f"  task {d.id} removed: {d.reason}" for d in review.rejected_tasks]
        lines += [f"  instance {d.id} removed: {d.reason}" for d in review.instances_dropped]
        lines += [
            f"  reject of {sample} ignored: no accepted task has that id"
            for sample in review.rejected_unknown
        ]
        if self.task_repeats:
            lines.append(f"  {self.task_repeats} repeated lines of evolved.jsonl kept once")
        published = ", ".join(
            f"{config} {_splits(Counter({s: n for (c, s), n in self.rows.items() if c == config}))}"
            for config in ("single", "multi", "rejected")
        )
        lines.append(f"published rows: {published}")
        lines += [
            f"note: the run manifest disagrees with its files: {d}" for d in self.disagreements
        ]
        return lines


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])


def _splits(counts: Counter[str]) -> str:
    if not counts:
        return "none"
    order = [split.value for split in Split] + [REJECTED_SPLIT]
    return "{" + ", ".join(f"{s}: {counts[s]}" for s in order if s in counts) + "}"


def _dropped(items: list[Dropped]) -> list[DroppedRecord]:
    return [DroppedRecord(id=item.id, reason=item.reason) for item in items]


def _compare_codes(recorded: dict[str, int], found: Counter[str]) -> str | None:
    codes = sorted(set(recorded) | set(found))
    differ = [
        f"{c} {recorded.get(c, 0)} vs {found[c]}" for c in codes if recorded.get(c) != found[c]
    ]
    if not differ:
        return None
    return (
        "evolve.counts.rejected_by_code (manifest vs evolve_rejected.jsonl): "
        + ", ".join(differ[:8])
    ) + (f" and {len(differ) - 8} more" if len(differ) > 8 else "")


def manifest_disagreements(manifest: Manifest | None, counts: ReleaseCounts) -> list[str]:
    """Where the run manifest's stage counts differ from the files the release was built from."""
    found: list[str] = []
    stage = manifest.evolve.counts if manifest is not None and manifest.evolve else None
    if stage is not None:
        for key, recorded, actual, source in (
            ("evolved", stage.evolved, counts.tasks_validated, "evolved.jsonl"),
            ("rejected", stage.rejected, counts.validator_total, "evolve_rejected.jsonl"),
        ):
            if recorded != actual:
                found.append(f"evolve.counts.{key} is {recorded}, {source} holds {actual}")
        codes = _compare_codes(stage.rejected_by_code, counts.validator_rejections)
        if codes:
            found.append(codes)
    compose = manifest.compose if manifest is not None else None
    if compose is not None:
        total = sum(counts.instances_composed.values())
        if compose.instances != total:
            found.append(f"compose.instances is {compose.instances}, instances.jsonl holds {total}")
        per_split = compose.per_split
        for split in sorted(set(per_split) | set(counts.instances_composed)):
            if per_split.get(split, 0) != counts.instances_composed[split]:
                found.append(
                    f"compose.per_split.{split} is {per_split.get(split, 0)}, "
                    f"instances.jsonl holds {counts.instances_composed[split]}"
                )
    return found
