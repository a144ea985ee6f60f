"""Evaluating a release: a run's published (post-review) split, a dataset folder, a Hub repo at
a revision; published rows back to the instance contract; clear errors for what cannot be
read (issue 14 item 4, issue 13)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import datasets
import pytest

from pipeline.cli import main
from pipeline.harness.runner import file_stem
from pipeline.jsonl import read_records
from pipeline.models import Instance
from pipeline.publish.rows import row_to_instance

if TYPE_CHECKING:
    from tests.harness.conftest import PublishedRun, ServedHub


def _load_rows(folder: Path, split: str, cache: Path) -> list[dict[str, object]]:
    """What the README tells a user to run (with a cache of its own)."""
    rows = datasets.load_dataset(str(folder), "multi", split=split, cache_dir=str(cache))
    return [dict(row) for row in rows]


def _evaluated(out: Path) -> set[str]:
    return {path.stem for path in (out / "episodes").glob("*.jsonl")}


def _eval(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["eval", "--plots", "0", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_published_rows_round_trip_to_the_instance_contract(
    published_run: PublishedRun, tmp_path: Path
) -> None:
    composed = {i.id: i for i in read_records(published_run.run_dir / "instances.jsonl", Instance)}
    seen = 0
    for split in ("train", "test"):
        for row in _load_rows(published_run.folder, split, tmp_path / "cache"):
            instance = row_to_instance(row)
            assert instance == composed[instance.id]
            # exactly: the same JSON, so every float and key order survived Parquet
            assert instance.model_dump_json() == composed[instance.id].model_dump_json()
            seen += 1
    assert seen == len(composed) - len(published_run.held_by)


def test_a_run_is_evaluated_on_its_published_split_after_review(
    published_run: PublishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = published_run.run_dir
    assert published_run.held_by, "the rejected task is in a test instance"
    out = tmp_path / "eval"
    code, said, _ = _eval(capsys, "--run-dir", str(run_dir), "--out", str(out))
    assert code == 0
    assert f"source: published dataset {published_run.folder} (after review)" in said
    published = {row["id"] for row in _load_rows(published_run.folder, "test", tmp_path / "c")}
    evaluated = _evaluated(out / "oracle-async-clock")
    assert evaluated == {file_stem(str(i)) for i in published}
    assert not evaluated & {file_stem(i) for i in published_run.held_by}
    summary = (out / "summary.md").read_text()
    assert "| published dataset |" in summary and "| test |" in summary


@pytest.mark.slow
def test_an_unpublished_run_leaves_out_what_reviewers_rejected(
    published_run: PublishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "unpublished"
    run_dir.mkdir()
    for name in ("evolved.jsonl", "instances.jsonl", "reviews.jsonl"):
        shutil.copy(published_run.run_dir / name, run_dir / name)
    code, said, err = _eval(capsys, "--run-dir", str(run_dir), "--split", "all")
    assert code == 0
    assert f"source: {run_dir / 'instances.jsonl'} (not published" in said
    assert f"{len(published_run.held_by)} instances left out" in err
    composed = [i.id for i in read_records(run_dir / "instances.jsonl", Instance)]
    expected = {file_stem(i) for i in composed if i not in published_run.held_by}
    assert _evaluated(run_dir / "eval" / "oracle-async-clock") == expected


def test_a_stale_publication_is_named(
    published_run: PublishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "runs" / "stale"
    shutil.copytree(published_run.run_dir, run_dir)
    (run_dir / "instances.jsonl").touch()  # recomposed after publishing
    later = (run_dir / "dataset" / "README.md").stat().st_mtime + 5
    import os

    os.utime(run_dir / "instances.jsonl", (later, later))
    code, said, err = _eval(capsys, "--run-dir", str(run_dir), "--limit", "2")
    assert code == 0 and "source: published dataset" in said
    assert "instances.jsonl changed after" in err and "asynctool publish" in err


def test_a_dataset_folder_is_evaluated_where_its_run_would_be(
    published_run: PublishedRun, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    elsewhere = tmp_path / "downloads" / "asynctool-0.1.0"
    shutil.copytree(published_run.folder, elsewhere)
    output = tmp_path / "output"
    code, said, _ = _eval(capsys, "--dataset", str(elsewhere), "--output", str(output))
    assert code == 0 and f"source: published dataset {elsewhere}" in said
    outs = list((output / "eval").glob("asynctool-0.1.0-*/oracle-async-clock"))
    assert len(outs) == 1
    published = {row["id"] for row in _load_rows(elsewhere, "test", tmp_path / "cache")}
    assert _evaluated(outs[0]) == {file_stem(str(i)) for i in published}


@pytest.mark.slow
def test_a_hub_repo_is_evaluated_at_the_revision_asked(
    published_run: PublishedRun,
    served_hub: ServedHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from huggingface_hub import constants

    # main moved on: a second release in which the reviewer also rejected another test task
    later = tmp_path / "runs" / "later"
    shutil.copytree(published_run.run_dir, later)
    test_rows = _load_rows(published_run.folder, "test", tmp_path / "cache")
    second = json.loads(str(test_rows[-1]["task_ids"]))[0]
    reviews = (later / "reviews.jsonl").read_text()
    extra = json.loads(reviews.splitlines()[0]) | {"sample_id": second}
    (later / "reviews.jsonl").write_text(reviews + json.dumps(extra) + "\n")
    assert main(["publish", "--run-dir", str(later), "--version", "0.2.0"]) == 0
    served_hub.repos["ann/asynctool"] = {"v0.1.0": published_run.folder, "main": later / "dataset"}
    capsys.readouterr()

    results = {}
    for revision in ("v0.1.0", "main"):
        argv = ["--dataset", "ann/asynctool", "--revision", revision, "--endpoint", served_hub.url]
        code, said, err = _eval(capsys, *argv, "--output", str(tmp_path / "output"))
        assert code == 0, err
        commit = served_hub.commit("ann/asynctool", revision)
        assert (
            f"source: Hub dataset ann/asynctool at revision {revision} (commit {commit[:12]})"
            in said
        )
        out = tmp_path / "output" / "eval" / f"ann--asynctool@{revision}" / "oracle-async-clock"
        results[revision] = _evaluated(out)
    first = {file_stem(str(row["id"])) for row in test_rows}
    assert results["v0.1.0"] == first
    assert results["main"] < first and results["main"]

    # offline again (as make targets run), a revision downloaded once is read from the cache
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    asked = len(served_hub.asked)
    argv = ["--dataset", "ann/asynctool", "--revision", "v0.1.0", "--fresh"]
    code, said, err = _eval(capsys, *argv, "--out", str(tmp_path / "offline"))
    assert code == 0, err
    assert "source: Hub dataset ann/asynctool at revision v0.1.0" in said
    assert _evaluated(tmp_path / "offline" / "oracle-async-clock") == first
    assert len(served_hub.asked) == asked


@pytest.mark.parametrize(
    ("repo", "revision", "said"),
    [
        ("ann/missing", "v0.1.0", "there is no Hub dataset ann/missing"),
        ("ann/asynctool", "v9.9.9", "has no revision 'v9.9.9'"),
        ("ann/not-a-release", "main", "has no README.md: not a dataset asynctool published"),
    ],
)
def test_a_hub_repo_or_revision_that_is_not_there_is_one_clear_line(
    published_run: PublishedRun,
    served_hub: ServedHub,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    repo: str,
    revision: str,
    said: str,
) -> None:
    served_hub.repos["ann/asynctool"] = {"v0.1.0": published_run.folder}
    stray = tmp_path / "stray"
    (stray / "data").mkdir(parents=True)
    (stray / "data" / "notes.txt").write_text("no card here\n")
    served_hub.repos["ann/not-a-release"] = {"main": stray}
    argv = ["--dataset", repo, "--revision", revision, "--endpoint", served_hub.url]
    code, _, err = _eval(capsys, *argv, "--output", str(tmp_path))
    assert code == 2 and said in err and "Traceback" not in err


def test_offline_without_a_cached_copy_says_how_to_download(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the test session runs with HF_HUB_OFFLINE=1, as every make target does
    code, _, err = _eval(capsys, "--dataset", "ann/never-downloaded", "--output", str(tmp_path))
    assert code == 2 and "HF_HUB_OFFLINE" in err and "Traceback" not in err
