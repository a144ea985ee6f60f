"""The sharded runner and the Prefect flow: conservation, resumption, manifest, progress."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.cli import main
from pipeline.jsonl import read_records
from pipeline.manifest import Manifest, read_manifest
from pipeline.models import Rejection, RejectionCode, Task
from pipeline.seeds import load_seeds
from pipeline.validate.chain import validate_line
from pipeline.validate.runner import plan_shards, validate_file

HOSTILE_LINES = [
    "{not json",
    "[1, 2, 3]",
    '{"category": "maths", "envs": ["maths"], "question": "q", "calls": ["__import__(\\"os\\")"]}',
    '{"category": "maths", "envs": ["maths"], "question": "q", "calls": ["add(a=1"]}',
    '{"id": "x", "category": "maths"}',
    '{"category": "maths", "envs": ["maths"], "question": "<script>alert(1)</script>",'
    ' "calls": ["add(a=1, b=2)", "multiply(a=3, b=2)"]}',
    "\u0000\u0001 binary junk \udcff",
    "9" * 5000,
    "[" * 100_000,
]


@pytest.fixture()
def candidates(tmp_path: Path) -> Path:
    path = tmp_path / "candidates.jsonl"
    seeds = load_seeds()
    lines = [seed.model_dump_json() for seed in seeds] + HOSTILE_LINES
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8", errors="surrogatepass")
    return path


def _ids(run: Path) -> tuple[list[str], list[str]]:
    accepted = [task.id for task in read_records(run / "accepted.jsonl", Task)]
    rejected = [r.sample_id for r in read_records(run / "rejected.jsonl", Rejection)]
    return accepted, rejected


def test_every_input_ends_in_exactly_one_file(candidates: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    section = validate_file(candidates, run, shard_size=7)
    accepted, rejected = _ids(run)
    total = len(load_seeds()) + len(HOSTILE_LINES)
    assert len(accepted) + len(rejected) == total == section.counts.input
    assert len(accepted) == len(load_seeds()) == section.counts.accepted
    assert section.counts.rejected_by_stage["parse"] >= 6
    assert section.input.sha256
    assert section.versions["pydantic"]
    assert read_manifest(run) == Manifest(run_id=run.name, validate=section)
    for rejection in read_records(run / "rejected.jsonl", Rejection):
        if rejection.stage.value == "parse":
            assert rejection.raw, "parse failures keep the raw text"
    accepted_tasks = list(read_records(run / "accepted.jsonl", Task))
    assert all(task.expected is not None for task in accepted_tasks)


def test_rerun_resumes_finished_shards_and_gives_the_same_files(
    candidates: Path, tmp_path: Path
) -> None:
    whole = tmp_path / "whole"
    validate_file(candidates, whole, shard_size=10)
    interrupted = tmp_path / "interrupted"
    validate_file(candidates, interrupted, shard_size=10)
    # simulate a crash: two shards lost their outputs, merged files never written
    for stem in ("00001", "00003"):
        for suffix in ("accepted.jsonl", "rejected.jsonl", "stats.json"):
            (interrupted / "shards" / f"{stem}.{suffix}").unlink()
    (interrupted / "accepted.jsonl").unlink()
    validate_file(candidates, interrupted, shard_size=10)
    for name in ("accepted.jsonl", "rejected.jsonl"):
        assert (interrupted / name).read_bytes() == (whole / name).read_bytes()


def test_plan_shards_covers_every_line(candidates: Path) -> None:
    shards = plan_shards(candidates, 4)
    assert sum(s.lines for s in shards) == len(load_seeds()) + len(HOSTILE_LINES)
    assert all(s.lines == 4 for s in shards[:-1])
    with pytest.raises(ValueError, match="at least 1"):
        plan_shards(candidates, 0)


def test_first_failure_is_reported_with_cheap_evidence_of_the_rest() -> None:
    line = json.dumps({
        "category": "maths", "envs": ["maths"], "question": "Use add_numbers() then mean",
        "calls": [{"id": "s1", "tool": "maths.nope"}],
    })  # fmt: skip
    verdict = validate_line(line)
    assert verdict.rejection is not None
    assert verdict.rejection.code is RejectionCode.STATIC_UNKNOWN_TOOL
    assert "static.too_few_calls" in verdict.rejection.evidence.also_failed
    assert verdict.rejection.evidence.step_id == "s1"


@pytest.mark.slow
def test_validate_flow_matches_the_inline_runner(
    prefect_harness: None, candidates: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inline = tmp_path / "inline"
    validate_file(candidates, inline, shard_size=25)
    assert main(["validate", str(candidates), "--output", str(tmp_path / "out"),
                 "--run-id", "flow", "--shard-size", "25"]) == 0  # fmt: skip
    flow_run = tmp_path / "out" / "runs" / "flow"
    for name in ("accepted.jsonl", "rejected.jsonl"):
        assert (flow_run / name).read_bytes() == (inline / name).read_bytes()
    manifest = json.loads((flow_run / "manifest.json").read_text())
    assert manifest["validate"]["config"]["runner"] == "prefect-threads"
    assert "accepted" in capsys.readouterr().out


@pytest.mark.slow
def test_bfcl_turn_tasks_through_the_flow(
    prefect_harness: None, bfcl_dir: Path, tmp_path: Path
) -> None:
    from pipeline.dataset import gather_candidates
    from pipeline.flows import run_validate_flow

    candidates = tmp_path / "bfcl.jsonl"
    sources = gather_candidates(candidates, bfcl_dir).sources
    counts = run_validate_flow(candidates, tmp_path / "run", shard_size=100).counts
    total = sources["seeds"] + sources["bfcl"]
    assert counts.accepted + counts.rejected == total
    rate = counts.accepted / total
    print(f"\nBFCL turn-level + seeds: accepted {counts.accepted}/{total} ({rate:.0%}); "
          f"top rejection codes: {counts.rejected_by_code}")  # fmt: skip
    assert counts.accepted >= sources["seeds"]


@pytest.mark.slow
def test_validate_on_a_two_worker_dask_cluster_matches_threads(
    prefect_harness: None, candidates: Path, tmp_path: Path
) -> None:
    argv = ["validate", str(candidates), "--output", str(tmp_path), "--shard-size", "20"]
    assert main([*argv, "--run-id", "threads"]) == 0
    assert main([*argv, "--run-id", "dask", "--runner", "dask", "--dask-workers", "2"]) == 0
    for name in ("accepted.jsonl", "rejected.jsonl"):
        dask_bytes = (tmp_path / "runs" / "dask" / name).read_bytes()
        assert dask_bytes == (tmp_path / "runs" / "threads" / name).read_bytes()
    manifest = json.loads((tmp_path / "runs" / "dask" / "manifest.json").read_text())
    assert manifest["validate"]["config"]["runner"] == "prefect-dask"
