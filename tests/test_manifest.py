"""The run manifest through the command line: each stage records its own section and keeps the
others, a release copies it, and a manifest that does not fit is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.cli import main
from pipeline.jsonl import read_records, write_records
from pipeline.manifest import Manifest, parse_manifest, read_manifest
from pipeline.models import Instance
from pipeline.seeds import load_seeds


def _evolved_run(output: Path) -> Path:
    """A small evolved run ``r`` under ``output`` (a few seeds, one round)."""
    seeds = output / "some_seeds.jsonl"
    write_records(seeds, load_seeds()[:24])
    argv = ["evolve", "--inline", "--output", str(output), "--run-id", "r", "--seeds", str(seeds),
            "--rounds", "1", "--target", "10"]  # fmt: skip
    assert main(argv) == 0
    return output / "runs" / "r"


def _manifest(run: Path) -> Manifest:
    manifest = read_manifest(run)
    assert manifest is not None
    return manifest


def test_each_stage_records_its_section_and_keeps_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = _evolved_run(tmp_path)
    evolved = _manifest(run).evolve
    assert evolved is not None and evolved.counts.evolved == len(
        (run / "evolved.jsonl").read_text().splitlines()
    )
    candidates = tmp_path / "candidates.jsonl"
    write_records(candidates, load_seeds()[:5])
    validate = ["validate", str(candidates), "--output", str(tmp_path), "--run-id", "r"]
    assert main([*validate, "--inline"]) == 0
    assert main(["compose", "--output", str(tmp_path), "--run", "r", "--count", "6"]) == 0
    manifest = _manifest(run)
    assert manifest.run_id == "r" and manifest.evolve == evolved  # later stages left it alone
    assert manifest.validation is not None and manifest.validation.counts.input == 5
    assert manifest.validation.config.runner == "inline"
    instances = list(read_records(run / "instances.jsonl", Instance))
    assert manifest.compose is not None and manifest.compose.instances == len(instances) > 0
    assert manifest.compose.settings["count"] == 6
    written = json.loads((run / "manifest.json").read_text())
    assert list(written) == ["run_id", "validate", "evolve", "compose"]  # stage order
    capsys.readouterr()
    assert main(["publish", "--run-dir", str(run)]) == 0
    release_file = run / "dataset" / "manifest.json"
    release = parse_manifest(release_file.read_text(), release_file)
    assert release.published is not None and release.published.manifest_disagreements == []
    assert release.model_copy(update={"published": None}) == manifest
    assert release.published.instances.published == len(instances)


def _bad_evolve_section() -> dict[str, Any]:
    counts = {"seeds": 3, "seeds_accepted": 3, "seeds_rejected": 0, "rounds": 1}
    counts |= {"new_accepted": 2, "evolved": "five", "rejected": 0, "duplicates_merged": 0}
    counts["rejected_by_code"] = {}
    section = {"settings": {}, "counts": counts, "operators": {}, "token_usage": {}}
    return {"evolve": {**section, "seconds": 1.0}}


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (json.dumps({"run_id": "r", "eval": {"agent": "oracle"}}), "eval: unknown field"),
        (json.dumps({"run_id": "r", **_bad_evolve_section()}), "evolve.counts.evolved: "),
        ('{"run_id": "r", "compose": ', "is not JSON"),
        ("[]", "is not a JSON object"),
    ],
    ids=["unknown-section", "malformed-section", "not-json", "not-an-object"],
)
def test_a_manifest_that_does_not_fit_is_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, says: str
) -> None:
    run = tmp_path / "runs" / "r"
    run.mkdir(parents=True)
    write_records(run / "evolved.jsonl", load_seeds()[:12])
    (run / "manifest.json").write_text(text, encoding="utf-8")
    seeds = tmp_path / "seeds.jsonl"
    write_records(seeds, load_seeds()[:3])
    commands = [
        ["compose", "--output", str(tmp_path), "--run", "r", "--count", "4"],
        ["publish", "--run-dir", str(run)],
        ["evolve", "--inline", "--output", str(tmp_path), "--run-id", "r", "--seeds", str(seeds)],
    ]
    for argv in commands:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith(f"error: {run / 'manifest.json'} ") and err.count("\n") == 1, err
        assert says in err and "Traceback" not in err
    # refused before any work: nothing composed, published or evolved, the file as it was
    assert not (run / "instances.jsonl").exists() and not (run / "dataset").exists()
    assert not (run / "evolve").exists()
    assert (run / "manifest.json").read_text(encoding="utf-8") == text


def test_a_flat_manifest_from_before_sections_is_read_into_its_sections(tmp_path: Path) -> None:
    run = _evolved_run(tmp_path)
    evolved = _manifest(run).evolve
    assert evolved is not None
    # the layout `make dataset` wrote before sections: evolve's keys at the top, then the rest
    flat = {"run_id": "r", "stage": "evolve", **evolved.model_dump(mode="json")}
    flat |= {"sources": {"seeds": 24}, "imports": {}}
    flat["compose"] = {"instances": 1, "per_split": {"train": 1}, "settings": {}}
    (run / "manifest.json").write_text(json.dumps(flat), encoding="utf-8")
    assert main(["compose", "--output", str(tmp_path), "--run", "r", "--count", "4"]) == 0
    manifest = _manifest(run)
    assert manifest.evolve == evolved
    assert manifest.gather is not None and manifest.gather.sources == {"seeds": 24}
    assert manifest.gather.imports is None
    assert manifest.compose is not None and manifest.compose.settings["count"] == 4
    assert "stage" not in json.loads((run / "manifest.json").read_text())  # rewritten in sections
