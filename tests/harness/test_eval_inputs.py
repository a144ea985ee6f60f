"""Every number and name `asynctool eval` takes is checked: a bad one is one clear line naming
the argument, the file and row or the instance, and exit 2 — never a traceback, a deadlock or
a run that grows without bound (issue 13)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow.parquet as pq
import pytest

from pipeline.cli import main

if TYPE_CHECKING:
    from tests.harness.conftest import PublishedRun


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--turn-cost", "nan"], "--turn-cost: 'nan' is not a finite number"),
        (["--turn-cost", "inf"], "--turn-cost: 'inf' is not a finite number"),
        (["--turn-cost", "-1"], "--turn-cost: "),
        (["--concurrency", "0"], "--concurrency: 0 is out of range"),
        (["--limit", "-1"], "--limit: -1 is out of range"),
        (["--limit", "0"], "--limit: 0 is out of range"),
        (["--plots", "-1"], "--plots: -1 is out of range"),
        (["--mode", "warp"], "--mode: invalid choice"),
        (["--split", "validation"], "--split: invalid choice"),
        (["--run", "../x"], "--run: '../x' is not a run id"),
    ],
)
def test_bad_arguments_are_refused_at_the_door(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["eval", *argv])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def _run_with(tmp_path: Path, instance: dict[str, Any]) -> Path:
    run = tmp_path / "runs" / "bad"
    run.mkdir(parents=True)
    (run / "instances.jsonl").write_text(json.dumps(instance) + "\n")
    return run


def _first(published_run: PublishedRun) -> dict[str, Any]:
    line = (published_run.run_dir / "instances.jsonl").read_text().splitlines()[0]
    data: dict[str, Any] = json.loads(line)
    return data


def _latency(value: float) -> Any:
    def change(instance: dict[str, Any]) -> None:
        tool = next(iter(instance["latency"]))
        instance["latency"][tool] = value

    return change


def _turn_cost(value: float) -> Any:
    def change(instance: dict[str, Any]) -> None:
        instance["bounds"]["turn_cost"] = value

    return change


BAD_INSTANCES = [
    pytest.param(_latency(float("nan")), "finite number", id="nan-latency"),
    pytest.param(_latency(float("inf")), "finite number", id="infinite-latency"),
    pytest.param(_latency(-1.0), "greater than or equal to 0", id="negative-latency"),
    pytest.param(_turn_cost(float("nan")), "finite number", id="nan-turn-cost"),
    pytest.param(_turn_cost(-3.0), "greater than or equal to 0", id="negative-turn-cost"),
]


@pytest.mark.parametrize(("change", "said"), BAD_INSTANCES)
def test_a_bad_instance_in_a_run_names_its_file_and_line(
    published_run: PublishedRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: Any,
    said: str,
) -> None:
    instance = _first(published_run)
    change(instance)
    run = _run_with(tmp_path, instance)
    assert main(["eval", "--run-dir", str(run), "--split", "all", "--plots", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{run / 'instances.jsonl'}:1" in err and said in err and "Traceback" not in err
    assert not (run / "eval").exists()


@pytest.mark.parametrize(("change", "said"), BAD_INSTANCES)
def test_a_bad_published_row_names_its_file_row_and_instance(
    published_run: PublishedRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    change: Any,
    said: str,
) -> None:
    folder = tmp_path / "release"
    shutil.copytree(published_run.folder, folder)
    data = next((folder / "data" / "multi").glob("test-*.parquet"))
    table = pq.read_table(data)
    rows = table.to_pylist()
    nested = {name: json.loads(rows[1][name]) for name in ("latency", "bounds")}
    change(nested)  # in the JSON text a published row holds: NaN and Infinity tokens included
    rows[1].update({name: json.dumps(value) for name, value in nested.items()})
    pq.write_table(table.from_pylist(rows, schema=table.schema), data)
    argv = ["eval", "--dataset", str(folder), "--out", str(tmp_path / "eval"), "--plots", "0"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"{data}: row 2 (instance {rows[1]['id']!r})" in err
    assert said in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["--revision", "v1"], "--revision and --endpoint go with --dataset"),
        (["--dataset", "ann/x", "--run", "r1"], "give --dataset or a run"),
        (["--dataset", "no/such/place"], "neither a dataset folder (no such path) nor a Hub"),
        (["--dataset", "{run}"], "is not a published dataset folder: it needs README.md and "
         "data/ (it is a run folder: use --run-dir)"),
        (["--dataset", "{folder}", "--revision", "v1"], "--revision is for a Hub repo id"),
        (["--agent", "gpt-7"], "unknown agent 'gpt-7'"),
        (["--agent", "openai"], "the openai agent needs --llm-base-url and --llm-model"),
        (["--split", "train", "--dataset", "{empty}"], "no instances in split 'train'"),
    ],
)  # fmt: skip
def test_bad_sources_and_agents_are_one_clear_line(
    published_run: PublishedRun,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    said: str,
) -> None:
    empty = tmp_path / "empty"
    (empty / "data").mkdir(parents=True)
    (empty / "README.md").write_text("---\nlicense: apache-2.0\n---\n# nothing published\n")
    places = {"run": published_run.run_dir, "folder": published_run.folder, "empty": empty}
    argv = [arg.format(**{k: str(v) for k, v in places.items()}) for arg in argv]
    if "--dataset" not in argv and "--run" not in argv:
        argv += ["--run-dir", str(published_run.run_dir)]
    code = main(["eval", *argv, "--out", str(tmp_path / "eval"), "--limit", "1"])
    assert code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err
