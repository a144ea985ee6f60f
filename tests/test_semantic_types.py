"""Every tool parameter and every result field carries a semantic type (DESIGN §4)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.bfcl.importer import Granularity, import_bfcl, multi_turn_files
from pipeline.envs import ENVIRONMENTS
from pipeline.envs.base import ToolSpec
from pipeline.jsonl import read_records
from pipeline.models import Task
from pipeline.replay import replay
from pipeline.semantics import Sem

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def _all_specs() -> Iterator[tuple[str, ToolSpec]]:
    for env_name, cls in ENVIRONMENTS.items():
        for name, spec in cls.tool_specs().items():
            yield f"{env_name}.{name}", spec


def test_every_parameter_has_a_semantic_type() -> None:
    missing = [
        f"{qualified}({param})"
        for qualified, spec in _all_specs()
        for param in spec.param_names
        if param not in spec.param_types
    ]
    assert not missing, f"parameters without a semantic type: {missing}"


def test_semantic_types_show_in_the_derived_schema() -> None:
    for qualified, spec in _all_specs():
        for param, sem in spec.param_types.items():
            schema = spec.parameters["properties"][param]
            assert schema["x-semantic-type"] == sem.value, qualified


def test_every_tool_declares_its_result_types() -> None:
    missing = [qualified for qualified, spec in _all_specs() if not spec.result_types]
    assert not missing, f"tools without declared result types: {missing}"
    for qualified, spec in _all_specs():
        for _, sem in spec.result_types:
            assert isinstance(sem, Sem), qualified


def _leaf_paths(value: Any, path: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        if not value:
            yield path
        for key, item in value.items():
            yield from _leaf_paths(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        if not value:
            yield path
        for index, item in enumerate(value):
            yield from _leaf_paths(item, f"{path}.{index}" if path else str(index))
    else:
        yield path


def _untyped_results(tasks: list[Task]) -> set[str]:
    untyped: set[str] = set()
    for task in tasks:
        result = replay(task)
        for call, outcome in zip(task.calls, result.outcomes):
            if not outcome.ok or outcome.result is None:
                continue
            spec = ENVIRONMENTS[call.env].tool_specs()[call.function]
            for path in _leaf_paths(outcome.result):
                if spec.result_type(path) is None and not _empty_container_typed(spec, path):
                    untyped.add(f"{call.tool} -> {path or '(whole result)'}")
    return untyped


def _empty_container_typed(spec: ToolSpec, path: str) -> bool:
    """An empty list or dict at ``path`` is typed when its elements would be."""
    return spec.result_type(f"{path}.0" if path else "0") is not None or any(
        pattern.startswith(f"{path}.") or (not path and pattern) for pattern, _ in spec.result_types
    )


def test_every_result_field_of_the_seeds_is_typed() -> None:
    tasks = [task for path in sorted(SEEDS.glob("*.jsonl")) for task in read_records(path, Task)]
    untyped = _untyped_results(tasks)
    assert not untyped, f"result fields without a semantic type: {sorted(untyped)}"


@pytest.mark.slow
def test_every_result_field_of_bfcl_tasks_is_typed(bfcl_dir: Path) -> None:
    report = import_bfcl(multi_turn_files(bfcl_dir), Granularity.TASK)
    if not report.tasks:
        pytest.skip("no BFCL tasks imported")
    untyped = _untyped_results(report.tasks)
    assert not untyped, f"result fields without a semantic type: {sorted(untyped)}"
