"""A hand-picked set of tasks as one instance, for the harness tests; pytest puts this folder on
the path (``pythonpath``)."""

from __future__ import annotations

import random

from pipeline.compose import LatencyProfile, latency_table
from pipeline.models import Composition, Instance, Task
from pipeline.schedule import bounds_for


def instance_of(tasks: list[Task], instance_id: str) -> Instance:
    """``tasks`` as a cross-category instance with the default latencies (drawn with seed 0)
    and the bounds they give."""
    tools = [call.tool for task in tasks for call in task.calls]
    latency = latency_table(tools, LatencyProfile.DEFAULTS, random.Random(0), 1.0)
    return Instance(
        id=instance_id, tasks=tasks, composition=Composition.CROSS_CATEGORY,
        latency_profile="defaults", seed=0, latency=latency,
        bounds=bounds_for(tasks, latency, 1.0),
    )  # fmt: skip
