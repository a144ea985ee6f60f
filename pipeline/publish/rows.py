"""Contract records <-> flat Parquet rows.

Scalars become typed columns; every nested value is stored as compact JSON text (DESIGN §3) so
that the Arrow schema does not depend on what the states and arguments of a run happen to hold.
A few derived columns (split, seed ancestor, sizes) make the data easy to filter; reading a row
back ignores them and rebuilds the model from its own fields only, so rows round-trip exactly.

Each column is declared once, with its kind and its meaning; the dataset card's column tables
are rendered from these declarations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from pipeline.models import Instance, Rejection, Task

ColumnKind = Literal["string", "nullable_string", "int64", "float64", "json", "nullable_json"]
Row = dict[str, Any]
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Column:
    kind: ColumnKind
    doc: str  # what the value means, with its unit where it has one


TASK_SCHEMA: dict[str, Column] = {
    "id": Column("string", "task id: a hash of the task's content"),
    "split": Column("string", "`train` or `test`, decided by the seed ancestor"),
    "root_id": Column("string", "id of the seed ancestor (the task's lineage followed back)"),
    "category": Column("string", "tool category (simulated environment) the task belongs to"),
    "operator": Column("string", "how the task was made: `seed`, `import` (BFCL) or an operator"),
    "round": Column("int64", "evolution round that produced it (0 for seeds and imports)"),
    "num_calls": Column("int64", "number of ground-truth calls"),
    "question": Column("string", "the user's request, in English"),
    "envs": Column("json", "JSON list of the environments the task uses"),
    "initial_config": Column("json", "JSON object: the start state of each environment"),
    "calls": Column(
        "json",
        "JSON list of the gold calls: `id`, `tool`, `arguments`, `depends_on` (earlier steps it "
        "needs) and `bindings` (argument -> `step.json.path` of an earlier output)",
    ),
    "expected": Column(
        "json", "JSON object: digest of the final state and the outputs the question asks for"
    ),
    "lineage": Column(
        "json",
        "JSON object: parents, operator, round, model, prompt hash, source, words (who"
        " wrote an LLM deepen or broaden request: model or code)",
    ),
}
INSTANCE_SCHEMA: dict[str, Column] = {
    "id": Column("string", "instance id"),
    "split": Column("string", "`train` or `test` (all its tasks share it)"),
    "composition": Column("string", "`same_category` or `cross_category`"),
    "latency_profile": Column("string", "profile the tool latencies were drawn from"),
    "seed": Column("int64", "random seed the latencies were drawn with"),
    "num_tasks": Column("int64", "number of tasks to solve concurrently (2 or 3)"),
    "context_profile": Column(
        "string", "`standard`, or `long`: environments load BFCL's long-context state"
    ),
    "optimal_makespan": Column(
        "float64", "seconds (simulated): the earliest time every task can be finished"
    ),
    "sequential_makespan": Column(
        "float64", "seconds (simulated): one task at a time, one call per turn, each awaited"
    ),
    "task_ids": Column("json", "JSON list of the ids of its tasks, in order"),
    "root_ids": Column("json", "JSON list of the seed ancestor of each task, in order"),
    "tasks": Column("json", "JSON list of the full tasks (each as a `single` row's record)"),
    "latency": Column(
        "json", "JSON object: seconds (simulated) from a call's start to its result, per tool"
    ),
    "bounds": Column(
        "json", "JSON object: both makespans and `turn_cost`, the seconds one agent turn costs"
    ),
}
REJECTION_SCHEMA: dict[str, Column] = {
    "sample_id": Column("string", "id of the rejected candidate (a task id when it parsed)"),
    "stage": Column("string", "validation stage whose check failed (`review`: a reviewer)"),
    "code": Column("string", "reason, `<stage>.<check>`, from a closed list"),
    "message": Column("string", "what failed, in words"),
    "question": Column("nullable_string", "the candidate's question (null: it never parsed)"),
    "category": Column("nullable_string", "the candidate's tool category (null: never parsed)"),
    "review": Column(
        "nullable_string",
        "a reviewer's latest decision on the sample: `confirm_reject`, `override_accept`, "
        "`reject`; null if none",
    ),
    "raw": Column("nullable_string", "raw model text, when the candidate could not be parsed"),
    "evidence": Column(
        "json", "JSON object: failing step id, its output, a state diff, other failed checks"
    ),
    "task": Column(
        "nullable_json", "JSON object: the whole candidate task as generated (null: none)"
    ),
}


def _kinds(schema: Mapping[str, Column]) -> dict[str, ColumnKind]:
    return {name: column.kind for name, column in schema.items()}


#: column -> kind, in column order
TASK_COLUMNS: dict[str, ColumnKind] = _kinds(TASK_SCHEMA)
INSTANCE_COLUMNS: dict[str, ColumnKind] = _kinds(INSTANCE_SCHEMA)
REJECTION_COLUMNS: dict[str, ColumnKind] = _kinds(REJECTION_SCHEMA)

SCHEMAS: dict[str, dict[str, Column]] = {
    "single": TASK_SCHEMA,
    "multi": INSTANCE_SCHEMA,
    "rejected": REJECTION_SCHEMA,
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
        "context_profile": instance.context_profile.value,
        "optimal_makespan": instance.bounds.optimal_makespan,
        "sequential_makespan": instance.bounds.sequential_makespan,
        "task_ids": dumps([task.id for task in instance.tasks]),
        "root_ids": dumps(list(root_ids)),
        "tasks": dumps(data["tasks"]),
        "latency": dumps(data["latency"]),
        "bounds": dumps(data["bounds"]),
    }


def rejection_to_row(
    rejection: Rejection, candidate: Task | None = None, review: str | None = None
) -> Row:
    """``candidate`` is the rejected task when it parsed, so a reader sees what was rejected;
    ``review`` is a reviewer's latest decision on the sample."""
    return {
        "sample_id": rejection.sample_id,
        "stage": rejection.stage.value,
        "code": rejection.code.value,
        "message": rejection.message,
        "question": candidate.question if candidate is not None else None,
        "category": candidate.category if candidate is not None else None,
        "review": review,
        "raw": rejection.raw,
        "evidence": dumps(rejection.evidence.model_dump(mode="json")),
        "task": dumps(candidate.model_dump(mode="json")) if candidate is not None else None,
    }


def _from_row(model: type[M], row: Mapping[str, Any]) -> M:
    # Splice the stored JSON text into one document and validate it in JSON mode: strict models
    # accept enum values as strings there, and nested values are not parsed twice.
    columns = COLUMNS[model]
    parts = []
    for name, field in model.model_fields.items():
        if name not in row and not field.is_required():
            continue  # a defaulted field added later (context_profile): older releases lack it
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
