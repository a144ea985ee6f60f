"""`asynctool evolve` in a run that `asynctool validate` filled grows what validation accepted:
round 0 takes the validate stage's files (its rejections join the run's) instead of checking
the seeds a second time (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.jsonl import read_records
from pipeline.manifest import read_manifest
from pipeline.models import Rejection, Task
from pipeline.seeds import load_seeds


def test_evolve_grows_what_validation_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    candidates = tmp_path / "candidates.jsonl"
    lines = [seed.model_dump_json() for seed in load_seeds()[:16]]
    lines += ["{not json", json.dumps({"id": "half-a-task"})]
    candidates.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = ["--output", str(tmp_path), "--run-id", "r"]
    assert main(["validate", str(candidates), *out, "--inline"]) == 0
    run = tmp_path / "runs" / "r"
    accepted = [task.id for task in read_records(run / "accepted.jsonl", Task)]
    rejected = list(read_records(run / "rejected.jsonl", Rejection))
    assert accepted and len(rejected) >= 2
    capsys.readouterr()

    assert main(["evolve", "--inline", *out, "--rounds", "1", "--target", "5"]) == 0
    said = capsys.readouterr().out
    assert f"evolving what validation accepted in {run}: {len(accepted)} tasks" in said
    assert not (run / "seeds.jsonl").exists(), "the project's seeds were not used"
    evolved = [task.id for task in read_records(run / "evolved.jsonl", Task)]
    assert evolved[: len(accepted)] == accepted and len(evolved) > len(accepted)
    # validation's rejections are the run's first rejections, as validation wrote them
    carried = list(read_records(run / "evolve_rejected.jsonl", Rejection))
    assert carried[: len(rejected)] == rejected
    round_0 = json.loads((run / "evolve" / "round_00" / "stats.json").read_text())
    assert round_0["from"] == "validate"
    manifest = read_manifest(run)
    assert manifest is not None and manifest.evolve and manifest.validation
    counts, validated = manifest.evolve.counts, manifest.validation.counts
    assert (counts.seeds_accepted, counts.seeds_rejected) == (len(accepted), len(rejected))
    assert counts.seeds == validated.input == len(lines)


def test_given_seeds_are_validated_in_round_0_as_before(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(s.model_dump_json() + "\n" for s in load_seeds()[:6]), "utf-8")
    out = ["--output", str(tmp_path), "--run-id", "r", "--rounds", "1", "--target", "3"]
    assert main(["evolve", "--inline", *out, "--seeds", str(seeds)]) == 0
    assert "evolving what validation accepted" not in capsys.readouterr().out
    round_0 = json.loads(
        (tmp_path / "runs" / "r" / "evolve" / "round_00" / "stats.json").read_text()
    )
    assert "from" not in round_0 and round_0["accepted"] == 6
