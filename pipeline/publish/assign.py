"""Which split every published task and instance belongs to (by seed ancestor, DESIGN §10)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pipeline.models import Instance, Task
from pipeline.splits import Split, root_ancestors, split_of


class PublishError(ValueError):
    """The run's outputs cannot be published as they are; the message says what is wrong."""


@dataclass(frozen=True)
class SplitPlan:
    test_fraction: float
    roots: dict[str, str]  # task id -> seed ancestor id

    def root(self, task: Task) -> str:
        return self.roots.get(task.id, task.id)

    def task_split(self, task: Task) -> Split:
        return split_of(self.root(task), self.test_fraction)

    def instance_split(self, instance: Instance) -> Split:
        splits = {task.id: self.task_split(task) for task in instance.tasks}
        if len(set(splits.values())) != 1:
            detail = ", ".join(
                f"{task.id} (seed {self.root(task)}) -> {splits[task.id].value}"
                for task in instance.tasks
            )
            raise PublishError(
                f"instance {instance.id} mixes splits: {detail}; compose and publish must use the "
                f"same test fraction (publish used {self.test_fraction})"
            )
        return next(iter(splits.values()))


def plan_splits(
    tasks: Sequence[Task], instances: Iterable[Instance], test_fraction: float
) -> SplitPlan:
    if not 0.0 <= test_fraction <= 1.0:
        raise PublishError(f"test fraction must lie in [0, 1], got {test_fraction}")
    # Instance tasks join the lineage graph too, in case compose kept a task evolve did not.
    known: dict[str, Task] = {task.id: task for task in tasks}
    for instance in instances:
        for task in instance.tasks:
            known.setdefault(task.id, task)
    return SplitPlan(test_fraction, root_ancestors(known.values()))


def check_disjoint(roots_by_split: dict[str, set[str]]) -> None:
    """Fail if any seed ancestor appears in both train and test (a leak between the splits)."""
    shared = roots_by_split.get(Split.TRAIN.value, set()) & roots_by_split.get(
        Split.TEST.value, set()
    )
    if shared:
        sample = ", ".join(sorted(shared)[:5])
        raise PublishError(f"{len(shared)} seed ancestors are in both train and test: {sample}")
