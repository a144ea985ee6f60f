"""The command line as a user runs it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.jsonl import read_records
from pipeline.models import Rejection, Task
from pipeline.seeds import load_seeds, seed_files


@pytest.mark.slow
def test_dataset_evolves_the_seeds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["dataset", "--output", str(tmp_path), "--run-id", "r1", "--no-bfcl", "--inline"]
    assert main(argv) == 0
    run = tmp_path / "runs" / "r1"
    evolved = list(read_records(run / "evolved.jsonl", Task))
    rejected = list(read_records(run / "evolve_rejected.jsonl", Rejection))
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["gather"]["sources"] == {"seeds": len(load_seeds())}
    assert manifest["evolve"]["counts"]["evolved"] == len(evolved) >= 1000
    assert manifest["evolve"]["counts"]["rejected"] == len(rejected)
    assert manifest["compose"]["instances"] >= 1000
    out = capsys.readouterr().out
    assert "dataset folder" in out and "make push REPO=" in out
    from datasets import load_dataset

    multi = load_dataset(str(run / "dataset"), "multi", split="train")
    assert len(multi) >= 700


@pytest.mark.slow
def test_dataset_takes_bfcl_turns_as_seeds(
    bfcl_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "dataset",
        "--output",
        str(tmp_path),
        "--run-id",
        "r2",
        "--bfcl",
        str(bfcl_dir),
        "--inline",
    ]
    assert main(argv) == 0
    manifest = json.loads((tmp_path / "runs" / "r2" / "manifest.json").read_text())
    sources = manifest["gather"]["sources"]
    assert sources["bfcl"] > 100
    counts = manifest["evolve"]["counts"]
    assert counts["seeds"] == sources["bfcl"] + sources["seeds"]
    assert counts["seeds_accepted"] + counts["seeds_rejected"] == counts["seeds"]
    # every BFCL turn is accounted for: kept, merged or dropped
    imports = manifest["gather"]["imports"]
    assert imports["tasks"] == sources["bfcl"]
    assert sum(imports["dropped_by_code"].values()) == imports["turns_dropped"] > 0
    assert imports["turns_kept"] > 0 and imports["turns_merged"] > 0
    # what it prints adds up: the rejected total is the sum of the codes listed under it, and
    # both are the rows of the published `rejected` config (issue 14)
    out = capsys.readouterr().out
    total = re.search(r"^rejected candidates: (\d+) ", out, re.MULTILINE)
    codes = re.findall(r"^  [a-z_]+\.[a-z_]+: (\d+)$", out, re.MULTILINE)
    published = json.loads((tmp_path / "runs" / "r2" / "dataset" / "manifest.json").read_text())
    assert total is not None and int(total[1]) == sum(map(int, codes))
    assert int(total[1]) == published["published"]["rejections"]["published"]


def test_replay_and_tools_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seeds = seed_files()
    assert main(["replay", str(seeds[0])]) == 0
    assert "0 calls raised ToolError" in capsys.readouterr().out
    assert main(["tools"]) == 0
    listing = capsys.readouterr().out
    assert "| maths.add | read |" in listing
    assert "fuelAmount: volume.gallons" in listing  # semantic types are listed
    assert main(["tools", "--full"]) == 0
    full = capsys.readouterr().out
    # an agent's view: optional parameters with their defaults and documentation
    assert "- `required` (list of string or null; field_name; default null): The fields" in full
    assert "- `folder` (string; folder_name; required):" in full


def test_bad_input_file_gives_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n')
    assert main(["replay", str(bad)]) == 2
    assert "bad.jsonl:1: not a valid Task" in capsys.readouterr().err
    assert main(["replay", str(tmp_path / "missing.jsonl")]) == 2


def test_console_script_runs() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "schemas", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "up to date" in done.stdout


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["dataset", "--run-id", "../../x"], "is not a run id"),
        (["dataset", "--run-id", "/abs/path"], "is not a run id"),
        (["evolve", "--run-id", "r" * 300], "is not a run id"),
        (["compose", "--run", "a/b"], "is not a run id"),
        (["compose", "--count", "-5"], "out of range"),
        (["compose", "--turn-cost", "nan"], "not a finite number"),
        (["compose", "--three-share", "1.5"], "between 0 and 1"),
        (["eval", "--limit", "-1"], "out of range"),
        (["eval", "--concurrency", "0"], "out of range"),
        (["eval", "--turn-cost", "-1"], "negative"),
        (["eval", "--turn-cost", "inf"], "not a finite number"),
        (["evolve", "--rounds", "x"], "not a whole number"),
        (["evolve", "--rpm", "0"], "not a positive rate"),
        (["audit", "serve", "--port", "70000"], "not a TCP port"),
        (["publish", "--repo", "../evil"], "not of the form user/name"),
        (["push", "--repo", "a/b/c", "--version", "0.1.0"], "not of the form user/name"),
    ],
)
def test_bad_arguments_are_refused_at_the_door(
    argv: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err


def test_validate_says_when_nothing_usable_was_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("", encoding="utf-8")
    argv = ["validate", "--inline", "--output", str(tmp_path)]
    assert main([*argv, str(empty)]) == 2
    assert "holds no candidate tasks" in capsys.readouterr().err
    junk = tmp_path / "junk.jsonl"
    junk.write_text("not json\n{\n[1, 2]\n", encoding="utf-8")
    assert main([*argv, "--run-id", "junk", str(junk)]) == 1
    err = capsys.readouterr().err
    assert "every one failed to parse" in err and "Traceback" not in err
    rejected = (tmp_path / "runs" / "junk" / "rejected.jsonl").read_text(encoding="utf-8")
    assert rejected.count("\n") == 3  # each line kept with its reason


def test_help_loads_no_stage_dependencies() -> None:
    """`asynctool --help` builds the parser only: no simulator, model client or dataframe
    library is imported (each stage imports its own inside its command)."""
    probe = (
        "import sys; from pipeline.cli import build_parser; build_parser(); "
        "heavy = ('openai', 'datasets', 'pandas', 'prefect', 'pydantic', 'pipeline.envs'); "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""


def test_granularity_choices_match_the_importer() -> None:
    from pipeline.bfcl.importer import Granularity
    from pipeline.cli import GRANULARITIES

    assert sorted(GRANULARITIES) == sorted(g.value for g in Granularity)
