"""The evolve stage through its real interfaces: the CLI, the Prefect flow, a killed run."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.envs import ENVIRONMENTS
from pipeline.evolve.extend import extend
from pipeline.evolve.rename import rename
from pipeline.evolve.verbalise import Verbaliser
from pipeline.jsonl import read_records
from pipeline.models import Rejection, Task
from pipeline.seeds import SEED_DIR, load_seeds
from pipeline.validate.chain import validate_task


def _run(output: Path, run_id: str, *extra: str) -> dict[str, object]:
    argv = ["evolve", "--inline", "--output", str(output), "--run-id", run_id, *extra]
    assert main(argv) == 0
    return json.loads((output / "runs" / run_id / "manifest.json").read_text())["evolve"]  # type: ignore[no-any-return]


@pytest.mark.slow
def test_offline_default_grows_over_a_thousand_validated_tasks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = _run(tmp_path, "offline")
    out = capsys.readouterr().out
    assert "running the programmatic operators only" in out
    run = tmp_path / "runs" / "offline"
    evolved = list(read_records(run / "evolved.jsonl", Task))
    rejected = list(read_records(run / "evolve_rejected.jsonl", Rejection))
    counts = manifest["counts"]
    assert isinstance(counts, dict)
    assert counts["new_accepted"] >= 1000
    assert len(evolved) == counts["evolved"] == counts["seeds_accepted"] + counts["new_accepted"]
    assert len(rejected) == counts["rejected"]
    assert {t.category for t in evolved if t.lineage.operator != "seed"} == set(ENVIRONMENTS)
    operators = manifest["operators"]
    assert isinstance(operators, dict)
    for name, record in operators.items():
        # every candidate ends accepted or rejected
        assert record["generated"] == record["accepted"] + record["rejected"], name
        assert record["acceptance_rate"] is not None
    # accepted = new tasks + merged duplicates; rejected candidates are all on file
    accepted_candidates = sum(record["accepted"] for record in operators.values())
    assert accepted_candidates == counts["new_accepted"] + counts["duplicates_merged"]
    assert sum(r["rejected"] for r in operators.values()) == counts["rejected"]
    ids = {task.id for task in evolved}
    sample = random.Random(0).sample([t for t in evolved if t.lineage.operator != "seed"], 60)
    for task in sample:
        assert task.lineage.parents and task.lineage.parents[0] in ids
        assert task.lineage.round >= 1
        assert validate_task(task).accepted


def test_operators_keep_their_promises() -> None:
    rng = random.Random(3)
    verbaliser = Verbaliser()
    seeds = load_seeds()
    renamed = [r for r in (rename(s, rng) for s in seeds) if r is not None]
    assert len(renamed) > 50
    for task, seed in zip(renamed, seeds):
        assert task.lineage.operator == "rename" and task.id != seed.id
    extended = [(s, e) for s in seeds if (e := extend(s, rng, verbaliser)) is not None]
    # fewer since bindings follow meaning, not JSON type, and since a step may not take a value a
    # later call changed or parse a JSON text already shown (session 12)
    assert len(extended) > 40
    for seed, task in extended:
        added = task.calls[-1]
        assert len(task.calls) == len(seed.calls) + 1
        assert added.bindings, "an extension consumes an earlier output"
        # the request is written anew from the chain; the added step names what it consumes
        # by its meaning and step, never by the value itself
        last_step = task.question.rsplit("; ", 1)[-1]
        assert last_step.startswith(("finally", "then")), task.question
        assert "step" in last_step, task.question
        for slot in added.bindings:
            value = added.arguments[slot.split(".")[0]]
            if isinstance(value, str) and len(value) > 3:
                assert value not in last_step, task.question


def _evolve_command(output: Path, run_id: str) -> list[str]:
    return [
        sys.executable, "-m", "pipeline.cli", "evolve", "--inline", "--output", str(output),
        "--run-id", run_id, "--rounds", "2", "--target", "100000", "--shard-size", "5",
        "--seeds", str(SEED_DIR / "filesystem.jsonl"), str(SEED_DIR / "tickets.jsonl"),
    ]  # fmt: skip


@pytest.mark.slow
def test_killed_run_resumes_to_the_same_output(tmp_path: Path) -> None:
    whole = subprocess.run(_evolve_command(tmp_path, "whole"), capture_output=True, check=False)
    assert whole.returncode == 0, whole.stderr.decode()[-2000:]
    process = subprocess.Popen(
        _evolve_command(tmp_path, "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    shards = tmp_path / "runs" / "killed" / "evolve" / "round_02" / "shards"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(shards.glob("*.stats.json")):
        if process.poll() is not None:
            break
        time.sleep(0.01)
    killed_mid_way = process.poll() is None
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert killed_mid_way, "the run finished before it could be killed; use more shards"
    assert not (tmp_path / "runs" / "killed" / "evolved.jsonl").exists()
    again = subprocess.run(_evolve_command(tmp_path, "killed"), capture_output=True, check=False)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    for name in ("evolved.jsonl", "evolve_rejected.jsonl"):
        expected = (tmp_path / "runs" / "whole" / name).read_bytes()
        assert (tmp_path / "runs" / "killed" / name).read_bytes() == expected, name


def test_unknown_operator_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["evolve", "--inline", "--output", str(tmp_path), "--operators", "teleport"]) == 2
    assert "unknown operator" in capsys.readouterr().err


@pytest.mark.slow
def test_evolve_flow_matches_inline(tmp_path: Path, prefect_harness: None) -> None:
    seeds = ["--seeds", str(SEED_DIR / "maths.jsonl"), "--rounds", "1"]
    inline = _run(tmp_path, "inline", *seeds)
    assert main(["evolve", "--output", str(tmp_path), "--run-id", "flow", *seeds]) == 0
    for name in ("evolved.jsonl", "evolve_rejected.jsonl"):
        flow_bytes = (tmp_path / "runs" / "flow" / name).read_bytes()
        assert flow_bytes == (tmp_path / "runs" / "inline" / name).read_bytes()
    evolved = (tmp_path / "runs" / "flow" / "evolved.jsonl").read_bytes().splitlines()
    counts = Counter(json.loads(line)["lineage"]["operator"] for line in evolved)
    assert inline["counts"]["evolved"] == sum(counts.values())  # type: ignore[index]


@pytest.mark.slow
def test_rerun_with_other_settings_is_refused_not_mixed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(tmp_path, "r", "--rounds", "1", "--target", "20")
    evolved = (tmp_path / "runs" / "r" / "evolved.jsonl").read_bytes()
    argv = ["evolve", "--inline", "--output", str(tmp_path), "--run-id", "r", "--rounds", "2"]
    assert main([*argv, "--target", "20"]) == 2
    assert "evolved from other settings" in capsys.readouterr().err
    assert (tmp_path / "runs" / "r" / "evolved.jsonl").read_bytes() == evolved  # nothing lost
    _run(tmp_path, "r", "--rounds", "1", "--target", "20")  # the same inputs resume


@pytest.mark.slow
def test_the_flow_refuses_other_inputs_before_it_starts(tmp_path: Path) -> None:
    from pipeline.evolve.engine import EvolveSettings
    from pipeline.flows import run_evolve_flow
    from pipeline.jsonl import write_records

    seeds = tmp_path / "seeds.jsonl"
    write_records(seeds, load_seeds(SEED_DIR)[:20])
    _run(tmp_path, "f", "--seeds", str(seeds), "--rounds", "1", "--target", "10")
    with pytest.raises(ValueError, match="evolved from other settings"):
        run_evolve_flow(seeds, tmp_path / "runs" / "f", EvolveSettings(rounds=2, target=10))
