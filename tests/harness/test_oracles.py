"""The reference agents on a freshly built dataset, and the evaluation's files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from pipeline.harness.evaluate import evaluate, load_split
from pipeline.harness.oracles import OracleAsync, OracleSync
from pipeline.harness.runner import run_many
from pipeline.harness.sim import Mode
from pipeline.models import Instance


@pytest.mark.parametrize("mode", list(Mode))
def test_oracles_on_the_whole_test_split(built_run: Path, mode: Mode) -> None:
    test_split = load_split(built_run, "test")
    assert len(test_split) >= 30
    fast = asyncio.run(run_many(test_split, OracleAsync, "oracle-async", mode))
    slow = asyncio.run(run_many(test_split, OracleSync, "oracle-sync", mode))
    for score in fast:
        assert score.success, (score.instance_id, score.subtask_success, score.label_details)
        assert score.efficiency == pytest.approx(1.0)
        assert score.name_f1 == score.argument_f1 == 1.0
        assert score.labels == [] and score.extra_calls == 0
    for score in slow:
        assert score.success and score.labels == []
        expected = score.optimal_makespan / score.sequential_makespan
        assert score.efficiency == pytest.approx(expected, abs=1e-5)
    if mode is Mode.CLOCK:
        # interleaving shortens the makespan whenever two tasks wait at the same time
        assert sum(s.same_task_streak for s in fast) < sum(s.same_task_streak for s in slow)
        assert any(s.optimal_makespan < s.sequential_makespan for s in fast)


def test_clock_bounds_match_the_instance(instances: list[Instance]) -> None:
    scores = asyncio.run(run_many(instances[:50], OracleAsync, "oracle-async", Mode.CLOCK))
    for instance, score in zip(instances, scores):
        assert score.makespan == pytest.approx(instance.bounds.optimal_makespan)


@pytest.mark.slow
def test_evaluate_writes_logs_reports_and_plots(built_run: Path, instances: list[Instance]) -> None:
    out = built_run / "eval" / "oracle-async-clock"
    summary = evaluate(instances[:12], "oracle-async", Mode.CLOCK, out, plots=2)
    assert summary["task_success"] == 1.0 and summary["episodes"] == 12
    logs = sorted((out / "episodes").glob("*.jsonl"))
    assert len(logs) == 12
    events = [json.loads(line) for line in logs[0].read_text().splitlines()]
    kinds = {event["event"] for event in events}
    assert {"turn", "call", "delivery", "finish", "score"} <= kinds
    assert all("sim_time" in e and "wall_time" in e for e in events if e["event"] != "score")
    assert (out / "summary.csv").exists() and (out / "summary.md").read_text().startswith("| agent")
    assert (
        len(list((out / "plots").glob("*.png"))) == 2
        and len(list((out / "plots").glob("*.svg"))) == 2
    )
    evaluate(
        instances[:5],
        "oracle-sync",
        Mode.ROUNDS,
        built_run / "eval" / "oracle-sync-rounds",
        plots=0,
    )
    overall = (built_run / "eval" / "summary.md").read_text()
    assert "oracle-async" in overall and "oracle-sync" in overall


@pytest.mark.slow
def test_eval_on_dask_matches_inline(built_run: Path, prefect_harness: None) -> None:
    from pipeline.cli import main

    base = ["eval", "--run-dir", str(built_run), "--agent", "oracle-sync", "--mode", "clock"]
    assert main([*base, "--plots", "0"]) == 0
    inline = (built_run / "eval" / "oracle-sync-clock" / "episodes.csv").read_text()
    assert main([*base, "--plots", "0", "--runner", "dask"]) == 0
    dask = (built_run / "eval" / "oracle-sync-clock" / "episodes.csv").read_text()
    assert sorted(dask.splitlines()) == sorted(inline.splitlines())


@pytest.mark.slow
def test_eval_on_dask_keeps_the_turn_cost(built_run: Path, prefect_harness: None) -> None:
    from pipeline.cli import main

    base = ["eval", "--run-dir", str(built_run), "--agent", "oracle-sync", "--mode", "clock",
            "--plots", "0", "--turn-cost", "2.5", "--fresh"]  # fmt: skip
    assert main(base) == 0
    inline = (built_run / "eval" / "oracle-sync-clock" / "episodes.csv").read_text()
    assert main([*base, "--runner", "dask"]) == 0
    dask = (built_run / "eval" / "oracle-sync-clock" / "episodes.csv").read_text()
    assert sorted(dask.splitlines()) == sorted(inline.splitlines())
