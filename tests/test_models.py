from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from pipeline.models import Call, Evidence, Rejection, RejectionCode, Review, Stage, Task
from pipeline.schemas import render_schemas, stale_schemas


def _task(**overrides: object) -> Task:
    data: dict[str, object] = {
        "id": "pending",
        "category": "maths",
        "envs": ["maths"],
        "question": "Add 1.5 and 2, then double it.",
        "calls": [
            {"id": "s1", "tool": "maths.add", "arguments": {"a": 1.5, "b": 2}},
            {
                "id": "s2",
                "tool": "maths.multiply",
                "arguments": {"a": 3.5, "b": 2},
                "depends_on": ["s1"],
                "bindings": {"a": "s1.result"},
            },
        ],
    }
    data.update(overrides)
    return Task.model_validate(data)


def test_content_id_ignores_lineage_but_not_content() -> None:
    task = _task().with_content_id()
    assert len(task.id) == 16
    relabelled = task.model_copy(
        update={"lineage": task.lineage.model_copy(update={"operator": "x"})}
    )
    assert relabelled.content_id() == task.id
    assert _task(question="Something else entirely.").content_id() != task.id


def test_models_are_strict_and_closed() -> None:
    with pytest.raises(ValidationError):
        Call.model_validate({"id": "s1", "tool": "maths.add", "arguments": {}, "surprise": 1})
    with pytest.raises(ValidationError):  # no string-to-list coercion
        Call.model_validate({"id": "s1", "tool": "maths.add", "depends_on": "s0"})
    with pytest.raises(ValidationError):  # a tool must be qualified by its environment
        Call.model_validate({"id": "s1", "tool": "add"})
    with pytest.raises(ValidationError):
        _task(calls="not a list")


def test_task_round_trips_through_json() -> None:
    task = _task().with_content_id()
    again = Task.model_validate_json(task.model_dump_json())
    assert again == task


def test_rejection_code_must_match_stage() -> None:
    ok = Rejection(
        sample_id="t",
        stage=Stage.STATIC,
        code=RejectionCode.STATIC_UNKNOWN_TOOL,
        message="m",
        evidence=Evidence(step_id="s1"),
    )
    assert ok.code.stage is Stage.STATIC
    with pytest.raises(ValidationError, match="does not belong"):
        Rejection(
            sample_id="t", stage=Stage.PARSE, code=RejectionCode.STATIC_UNKNOWN_TOOL, message="m"
        )


def test_review_parses_timestamps_from_json() -> None:
    review = Review.model_validate_json(
        json.dumps(
            {
                "sample_id": "t",
                "decision": "override_accept",
                "reviewer": "ana",
                "at": "2026-11-24T12:00:00Z",
            }
        )
    )
    assert review.at.year == 2026
    with pytest.raises(ValidationError):
        Review.model_validate_json(
            json.dumps(
                {
                    "sample_id": "t",
                    "decision": "maybe",
                    "reviewer": "ana",
                    "at": "2026-11-24T12:00:00Z",
                }
            )
        )


def test_schemas_folder_is_fresh() -> None:
    assert stale_schemas() == [], "schemas/ is stale: run `make schemas`"


def test_stale_schema_is_detected(tmp_path) -> None:  # type: ignore[no-untyped-def]
    for name, text in render_schemas().items():
        (tmp_path / name).write_text(text)
    assert stale_schemas(tmp_path) == []
    (tmp_path / "task.schema.json").write_text("{}")
    (tmp_path / "old.schema.json").write_text("{}")
    assert stale_schemas(tmp_path) == ["old.schema.json", "task.schema.json"]


@pytest.mark.parametrize("latency", [float("nan"), float("inf"), -1.0])
def test_an_instance_latency_is_a_finite_duration(latency: float) -> None:
    from pipeline.compose import ComposeSettings, iter_instances
    from pipeline.models import Instance
    from pipeline.seeds import load_seeds

    instance = next(iter_instances(load_seeds()[:12], ComposeSettings(count=1)))
    data = json.loads(instance.model_dump_json())
    tool = next(iter(data["latency"]))
    data["latency"][tool] = latency
    with pytest.raises(ValidationError):
        Instance.model_validate_json(json.dumps(data))
    data["latency"][tool] = 0.5
    Instance.model_validate_json(json.dumps(data))


def test_derive_makes_a_child_with_lineage_to_its_parent() -> None:
    parent = _task().with_content_id()
    parent = parent.model_copy(
        update={"lineage": parent.lineage.model_copy(update={"round": 2, "source": "seeds/x"})}
    )
    child = parent.derive("verbalise", question="Say it another way.")
    assert child.question == "Say it another way." and child.calls == parent.calls
    assert child.id == child.content_id() != parent.id
    assert child.expected is None
    assert (child.lineage.parents, child.lineage.operator) == ([parent.id], "verbalise")
    assert (child.lineage.round, child.lineage.source) == (3, "seeds/x")
    variant = parent.derive("long_context", next_round=False, model="m", prompt_hash="h")
    assert (variant.lineage.round, variant.lineage.model, variant.lineage.prompt_hash) == (
        2,
        "m",
        "h",
    )
