"""Importing BFCL multi-turn files: both granularities, inferred dependencies, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.bfcl.data import load_tasks
from pipeline.bfcl.importer import Granularity, import_bfcl, multi_turn_files, tasks_from_bfcl
from pipeline.cli import main
from pipeline.jsonl import read_records
from pipeline.models import Task
from pipeline.replay import replay


def _upstream(bfcl_dir: Path, task_id: str):  # type: ignore[no-untyped-def]
    tasks = {t.id: t for t in load_tasks(bfcl_dir / "BFCL_v4_multi_turn_base.json")}
    return tasks[task_id]


def test_turn_granularity_starts_from_the_state_before_the_turn(bfcl_dir: Path) -> None:
    upstream = _upstream(bfcl_dir, "multi_turn_base_0")
    tasks = list(tasks_from_bfcl(upstream, Granularity.TURN))
    # turns 0, 1 and 3 have at least two calls; turn 2 has one
    assert [t.lineage.source for t in tasks] == [
        "bfcl:multi_turn_base_0#turn0",
        "bfcl:multi_turn_base_0#turn1",
        "bfcl:multi_turn_base_0#turn3",
    ]
    first = tasks[0]
    assert first.envs == ["filesystem"] and first.category == "filesystem"
    assert [c.tool for c in first.calls] == ["filesystem.cd", "filesystem.mkdir", "filesystem.mv"]
    # mkdir happens inside the folder cd entered; mv moves into the folder mkdir made
    assert [c.depends_on for c in first.calls] == [[], ["s1"], ["s2"]]
    # turn 1 starts where turn 0 left the filesystem: inside document/, temp/ already made
    assert tasks[1].initial_config["filesystem"] != first.initial_config["filesystem"]
    for task in tasks:
        assert replay(task).ok


def test_task_granularity_joins_all_turns(bfcl_dir: Path) -> None:
    upstream = _upstream(bfcl_dir, "multi_turn_base_0")
    (task,) = tasks_from_bfcl(upstream, Granularity.TASK)
    assert task.question.count("\n") == len(upstream.turns) - 1
    assert len(task.calls) == sum(len(turn) for turn in upstream.ground_truth)
    assert set(task.initial_config) <= set(task.envs) == {"filesystem", "posting"}
    assert task.id == task.content_id()


def test_all_base_tasks_import_and_replay(bfcl_dir: Path) -> None:
    report = import_bfcl([bfcl_dir / "BFCL_v4_multi_turn_base.json"], Granularity.TURN)
    print("\n" + report.summary())
    assert not report.skipped, report.skipped[:5]
    assert len(report.tasks) > 150
    clean = sum(replay(task).ok for task in report.tasks)
    print(f"replay without ToolError: {clean}/{len(report.tasks)}")
    assert clean / len(report.tasks) >= 0.9
    with_deps = sum(any(c.depends_on for c in task.calls) for task in report.tasks)
    assert with_deps / len(report.tasks) >= 0.6
    for task in report.tasks:
        ids = [c.id for c in task.calls]
        for position, call in enumerate(task.calls):
            assert set(call.depends_on) <= set(ids[:position])


def test_cli_imports_every_multi_turn_file(
    bfcl_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "tasks.jsonl"
    assert main(["import-bfcl", str(bfcl_dir), "--granularity", "task", "--out", str(out)]) == 0
    tasks = list(read_records(out, Task))
    files = multi_turn_files(bfcl_dir)
    assert len(files) >= 3  # base, miss_func, miss_param (and long_context where present)
    assert len(tasks) >= 150
    assert "imported" in capsys.readouterr().out
    assert main(["import-bfcl", str(tmp_path)]) == 2
