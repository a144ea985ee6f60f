"""Train/test splits that never share a seed ancestor.

Every task descends from one seed through ``lineage.parents``; the split is a function of that
root alone (a salted hash), so all descendants of a seed — renamed, extended, reworded — land
in the same split, and an instance is composed from tasks of one split only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from enum import StrEnum

from pipeline.models import Task

DEFAULT_TEST_FRACTION = 0.2


class Split(StrEnum):
    TRAIN = "train"
    TEST = "test"


def root_ancestors(tasks: Iterable[Task]) -> dict[str, str]:
    """Task id -> the id of its seed (a task whose parents are unknown is its own root)."""
    parents: Mapping[str, list[str]] = {task.id: task.lineage.parents for task in tasks}
    roots: dict[str, str] = {}
    for task_id in parents:
        chain = [task_id]
        current = task_id
        while parents.get(current) and parents[current][0] in parents and current not in roots:
            current = parents[current][0]
            if current in chain:
                break  # a cycle would be a bug upstream; stop rather than loop
            chain.append(current)
        root = roots.get(current, current)
        for member in chain:
            roots[member] = root
    return roots


def split_of(root_id: str, test_fraction: float = DEFAULT_TEST_FRACTION, salt: str = "") -> Split:
    digest = hashlib.sha256(f"{salt}:{root_id}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    return Split.TEST if position < test_fraction else Split.TRAIN
