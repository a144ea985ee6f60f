"""Contract records survive the trip through flat rows unchanged."""

from __future__ import annotations

import json
import random

from pipeline.evolve.rename import rename
from pipeline.models import (
    Bounds,
    Composition,
    Evidence,
    Expected,
    Instance,
    Rejection,
    RejectionCode,
    Stage,
)
from pipeline.publish.rows import (
    INSTANCE_COLUMNS,
    REJECTION_COLUMNS,
    TASK_COLUMNS,
    instance_to_row,
    missing_columns,
    rejection_to_row,
    row_to_instance,
    row_to_rejection,
    row_to_task,
    task_to_row,
)
from pipeline.seeds import load_seeds


def test_every_contract_field_has_a_column() -> None:
    assert missing_columns() == {}


def test_tasks_round_trip_with_expected_and_lineage() -> None:
    seeds = load_seeds()
    child = next(t for t in (rename(s, random.Random(3)) for s in seeds) if t is not None)
    child = child.model_copy(
        update={
            "expected": Expected(
                state_digest="d1", outputs={"s1": {"name": "café ☕", "values": [1, 2.5, None]}}
            )
        }
    )
    for task in [*seeds, child]:
        row = task_to_row(task, "train", "root")
        assert list(row) == list(TASK_COLUMNS)
        assert row_to_task(row) == task
    row = task_to_row(child, "test", child.lineage.parents[0])
    assert json.loads(row["lineage"])["parents"] == child.lineage.parents
    assert row["num_calls"] == len(child.calls) and row["operator"] == "rename"
    assert "café ☕" in row["expected"]  # text stays readable, not \u-escaped


def test_instance_round_trips() -> None:
    a, b, c = load_seeds()[:3]
    tools = sorted({call.tool for task in (a, b, c) for call in task.calls})
    instance = Instance(
        id="inst-1",
        tasks=[a, b, c],
        composition=Composition.SAME_CATEGORY,
        latency_profile="lognormal",
        seed=4_000_000_000,
        latency={tool: 0.1 + index / 3 for index, tool in enumerate(tools)},
        bounds=Bounds(optimal_makespan=3.25, sequential_makespan=9.5, turn_cost=1.0),
    )
    row = instance_to_row(instance, "train", ["r1", "r2", "r3"])
    assert list(row) == list(INSTANCE_COLUMNS)
    assert row["composition"] == "same_category" and row["num_tasks"] == 3
    assert json.loads(row["task_ids"]) == [a.id, b.id, c.id]
    assert row_to_instance(row) == instance


def test_rejection_round_trips() -> None:
    full = Rejection(
        sample_id="s",
        stage=Stage.EXECUTE,
        code=RejectionCode.EXECUTE_TOOL_ERROR,
        message="step s2 failed: 'x' is not a file",
        evidence=Evidence(
            step_id="s2",
            output={"error": "nope"},
            diff=["- a", "+ b"],
            also_failed={"grounding.ungrounded_argument": "x"},
        ),
        raw='{"calls": [',
    )
    bare = Rejection(
        sample_id="t", stage=Stage.PARSE, code=RejectionCode.PARSE_MALFORMED, message="m"
    )
    for rejection in (full, bare):
        row = rejection_to_row(rejection)
        assert list(row) == list(REJECTION_COLUMNS)
        assert row_to_rejection(row) == rejection
    assert rejection_to_row(bare)["raw"] is None
