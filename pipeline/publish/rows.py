"""Contract records <-> flat Parquet rows.

Scalars become typed columns; every nested value is stored as compact JSON text (DESIGN §3) so
that the Arrow schema does not depend on what the states and arguments of a run happen to hold.
A few derived columns (split, seed ancestor, sizes) make the data easy to filter; reading a row
back ignores them and rebuilds the model from its own fields only, so rows round-trip exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from pipeline.models import Instance, Rejection, Task

ColumnKind = Literal["string", "nullable_string", "int64", "float64", "json"]
Row = dict[str, Any]
M = TypeVar("M", bound=BaseModel)

#: column -> kind, in column order; "json" columns hold JSON text of the model field
TASK_COLUMNS: dict[str, ColumnKind] = {
    "id": "string",
    "split": "string",
    "root_id": "string",
    "category": "string",
    "operator": "string",
    "round": "int64",
    "num_calls": "int64",
    "question": "string",
    "envs": "json",
    "initial_config": "json",
    "calls": "json",
    "expected": "json",
    "lineage": "json",
}
INSTANCE_COLUMNS: dict[str, ColumnKind] = {
    "id": "string",
    "split": "string",
    "composition": "string",
    "latency_profile": "string",
    "seed": "int64",
    "num_tasks": "int64",
    "optimal_makespan": "float64",
    "sequential_makespan": "float64",
    "task_ids": "json",
    "root_ids": "json",
    "tasks": "json",
    "latency": "json",
    "bounds": "json",
}
REJECTION_COLUMNS: dict[str, ColumnKind] = {
    "sample_id": "string",
    "stage": "string",
    "code": "string",
    "message": "string",
    "raw": "nullable_string",
    "evidence": "json",
}

COLUMNS: dict[type[BaseModel], dict[str, ColumnKind]] = {
    Task: TASK_COLUMNS,
    Instance: INSTANCE_COLUMNS,
    Rejection: REJECTION_COLUMNS,
}


def missing_columns() -> dict[str, list[str]]:
    """Model fields without a column (a new contract field must get one, or it would be lost)."""
    return {
        model.__name__: [name for name in model.model_fields if name not in columns]
        for model, columns in COLUMNS.items()
        if any(name not in columns for name in model.model_fields)
    }


def dumps(value: Any) -> str:
    """Compact JSON that keeps key order and non-ASCII text (deterministic for equal input)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def task_to_row(task: Task, split: str, root_id: str) -> Row:
    data = task.model_dump(mode="json")
    return {
        "id": task.id,
        "split": split,
        "root_id": root_id,
        "category": task.category,
        "operator": task.lineage.operator,
        "round": task.lineage.round,
        "num_calls": len(task.calls),
        "question": task.question,
        "envs": dumps(data["envs"]),
        "initial_config": dumps(data["initial_config"]),
        "calls": dumps(data["calls"]),
        "expected": dumps(data["expected"]),
        "lineage": dumps(data["lineage"]),
    }


def instance_to_row(instance: Instance, split: str, root_ids: Sequence[str]) -> Row:
    data = instance.model_dump(mode="json")
    return {
        "id": instance.id,
        "split": split,
        "composition": instance.composition.value,
        "latency_profile": instance.latency_profile,
        "seed": instance.seed,
        "num_tasks": len(instance.tasks),
        "optimal_makespan": instance.bounds.optimal_makespan,
        "sequential_makespan": instance.bounds.sequential_makespan,
        "task_ids": dumps([task.id for task in instance.tasks]),
        "root_ids": dumps(list(root_ids)),
        "tasks": dumps(data["tasks"]),
        "latency": dumps(data["latency"]),
        "bounds": dumps(data["bounds"]),
    }


def rejection_to_row(rejection: Rejection) -> Row:
    return {
        "sample_id": rejection.sample_id,
        "stage": rejection.stage.value,
        "code": rejection.code.value,
        "message": rejection.message,
        "raw": rejection.raw,
        "evidence": dumps(rejection.evidence.model_dump(mode="json")),
    }


def _from_row(model: type[M], row: Mapping[str, Any]) -> M:
    # Splice the stored JSON text into one document and validate it in JSON mode: strict models
    # accept enum values as strings there, and nested values are not parsed twice.
    columns = COLUMNS[model]
    parts = []
    for name in model.model_fields:
        value = row[name]
        text = value if columns[name] == "json" else dumps(value)
        parts.append(f"{dumps(name)}:{text}")
    return model.model_validate_json("{" + ",".join(parts) + "}")


def row_to_task(row: Mapping[str, Any]) -> Task:
    return _from_row(Task, row)


def row_to_instance(row: Mapping[str, Any]) -> Instance:
    return _from_row(Instance, row)


def row_to_rejection(row: Mapping[str, Any]) -> Rejection:
    return _from_row(Rejection, row)
