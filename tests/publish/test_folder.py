"""The dataset folder: every config and split loads with ``datasets``, rows round-trip into the
contracts, train and test share no seed ancestor, and the card describes what is there."""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
from huggingface_hub.repocard import metadata_load

from pipeline.cli import main
from pipeline.evolve.rename import rename
from pipeline.jsonl import write_records
from pipeline.models import (
    Bounds,
    Composition,
    Decision,
    Evidence,
    Expected,
    Instance,
    Rejection,
    RejectionCode,
    Review,
    Stage,
    Task,
)
from pipeline.publish import PublishError, build_dataset_folder
from pipeline.publish.rows import SCHEMAS, row_to_instance, row_to_rejection, row_to_task
from pipeline.seeds import load_seeds
from pipeline.splits import Split, root_ancestors, split_of

_NOTHING_EVOLVED = {"seeds": 0, "seeds_accepted": 0, "seeds_rejected": 0, "rounds": 0}
_NOTHING_EVOLVED |= {"new_accepted": 0, "evolved": 0, "rejected": 0, "duplicates_merged": 0}
#: a run manifest whose evolve counts disagree with the run's files (which the card must say)
MANIFEST = {
    "run_id": "t",
    "gather": {"sources": {"ünïcode seeds": 3}},
    "evolve": {
        "settings": {},
        "counts": {**_NOTHING_EVOLVED, "rejected_by_code": {}},
        "operators": {},
        "token_usage": {},
        "seconds": 0.5,
    },
}


def _evolved() -> list[Task]:
    seeds = load_seeds()
    tasks = list(seeds)
    for number, seed in enumerate(seeds[::4]):
        child = rename(seed, random.Random(number))
        if child is None:
            continue
        child = child.with_content_id().model_copy(
            update={"expected": Expected(state_digest=f"d{number}", outputs={"s1": [number]})}
        )
        tasks.append(child)
        grandchild = rename(child, random.Random(number + 100))
        if grandchild is not None:
            tasks.append(grandchild.with_content_id())
    return tasks


def _instances(tasks: list[Task]) -> list[Instance]:
    roots = root_ancestors(tasks)
    by_split: dict[Split, list[Task]] = {split: [] for split in Split}
    for task in sorted(tasks, key=lambda t: t.id):
        by_split[split_of(roots[task.id])].append(task)
    instances = []
    for split, pool in by_split.items():
        for index in range(4):
            size = 2 + index % 2
            picked = pool[index * 3 : index * 3 + size]
            tools = sorted({call.tool for task in picked for call in task.calls})
            instances.append(
                Instance(
                    id=f"{split.value}-{index}",
                    tasks=picked,
                    composition=Composition.CROSS_CATEGORY
                    if index % 2
                    else Composition.SAME_CATEGORY,
                    latency_profile="uniform" if index % 2 else "paper-rounds",
                    seed=index,
                    latency={tool: 0.5 + i / 7 for i, tool in enumerate(tools)},
                    bounds=Bounds(optimal_makespan=2.5, sequential_makespan=7.0, turn_cost=1.0),
                )
            )
    return instances


REJECTIONS = [
    Rejection(
        sample_id="z1",
        stage=Stage.EXECUTE,
        code=RejectionCode.EXECUTE_TOOL_ERROR,
        message="step s1 raised",
        evidence=Evidence(step_id="s1", output={"error": "no such file"}, diff=["-a", "+b"]),
    ),
    Rejection(
        sample_id="a2",
        stage=Stage.PARSE,
        code=RejectionCode.PARSE_MALFORMED,
        message="bad",
        raw="{",
    ),
    Rejection(
        sample_id="z1",
        stage=Stage.EXECUTE,
        code=RejectionCode.EXECUTE_TOOL_ERROR,
        message="step s2 raised",
    ),
]
REVIEWS = [
    Review(sample_id=sample, decision=decision, reviewer=who, at=datetime(2026, 1, day, tzinfo=UTC))
    for sample, decision, who, day in (
        ("z1", Decision.CONFIRM_REJECT, "ann", 1),
        ("a2", Decision.OVERRIDE_ACCEPT, "bo", 2),
        ("a2", Decision.OVERRIDE_ACCEPT, "cy", 3),
    )
]


def make_run(run_dir: Path, instances: bool = True) -> tuple[list[Task], list[Instance]]:
    tasks = _evolved()
    composed = _instances(tasks) if instances else []
    write_records(run_dir / "evolved.jsonl", tasks)
    if instances:
        write_records(run_dir / "instances.jsonl", composed)
    write_records(run_dir / "evolve_rejected.jsonl", REJECTIONS)
    write_records(run_dir / "reviews.jsonl", REVIEWS)
    (run_dir / "manifest.json").write_text(json.dumps(MANIFEST), encoding="utf-8")
    return tasks, composed


def _load(folder: Path, config: str, split: str, cache: Path) -> list[dict[str, Any]]:
    return list(datasets.load_dataset(str(folder), config, split=split, cache_dir=str(cache)))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Task], list[Instance]]:
    run_dir = tmp_path_factory.mktemp("run")
    tasks, instances = make_run(run_dir)
    return build_dataset_folder(run_dir, version="1.2.3"), tasks, instances


def _configs(folder: Path) -> dict[str, list[str]]:
    meta = metadata_load(folder / "README.md") or {}
    return {c["config_name"]: [f["split"] for f in c["data_files"]] for c in meta["configs"]}


def test_every_config_and_split_loads_and_round_trips(
    built: tuple[Path, list[Task], list[Instance]], tmp_path: Path
) -> None:
    folder, tasks, instances = built
    assert _configs(folder) == {
        "multi": ["train", "test"],
        "single": ["train", "test"],
        "rejected": ["full"],
    }
    roots = root_ancestors(tasks)
    read_tasks: dict[str, Task] = {}
    for split in ("train", "test"):
        rows = _load(folder, "single", split, tmp_path)
        assert [row["id"] for row in rows] == sorted(row["id"] for row in rows)
        for row in rows:
            assert row["split"] == split == split_of(roots[row["id"]]).value
            read_tasks[row["id"]] = row_to_task(row)
    assert read_tasks == {task.id: task for task in tasks}
    read_instances = {
        row["id"]: row_to_instance(row)
        for split in ("train", "test")
        for row in _load(folder, "multi", split, tmp_path)
    }
    assert read_instances == {instance.id: instance for instance in instances}
    rejected = [row_to_rejection(row) for row in _load(folder, "rejected", "full", tmp_path)]
    key = Rejection.model_dump_json
    assert sorted(rejected, key=key) == sorted(REJECTIONS, key=key)
    assert [r.sample_id for r in rejected] == ["a2", "z1", "z1"]  # sorted by sample id
    published = json.loads((folder / "manifest.json").read_text("utf-8"))
    assert {key: published[key] for key in MANIFEST} == MANIFEST  # the run's, plus `published`
    assert published["published"]["rows"]["multi"] == {"test": 4, "train": 4}


def test_train_and_test_share_no_seed_ancestor(
    built: tuple[Path, list[Task], list[Instance]], tmp_path: Path
) -> None:
    folder = built[0]
    roots: dict[str, set[str]] = {}
    single = {s: _load(folder, "single", s, tmp_path) for s in ("train", "test")}
    lineage_roots = root_ancestors(row_to_task(r) for rows in single.values() for r in rows)
    for split in ("train", "test"):
        found = roots.setdefault(split, set())
        for row in single[split]:
            assert row["root_id"] == lineage_roots[row["id"]]
            found.add(row["root_id"])
        for row in _load(folder, "multi", split, tmp_path):
            instance_roots = json.loads(row["root_ids"])
            assert instance_roots == [lineage_roots[t.id] for t in row_to_instance(row).tasks]
            found.update(instance_roots)
    assert roots["train"] and roots["test"]
    assert not roots["train"] & roots["test"]


def test_card_metadata_and_counts(built: tuple[Path, list[Task], list[Instance]]) -> None:
    folder, tasks, instances = built
    meta = metadata_load(folder / "README.md") or {}
    assert meta["version"] == "1.2.3" and meta["license"] == "apache-2.0"
    assert meta["size_categories"] == ["n<1K"] and "tool-calling" in meta["tags"]
    assert [c.get("default", False) for c in meta["configs"]] == [True, False, False]
    for config in meta["configs"]:
        for entry in config["data_files"]:
            assert (folder / entry["path"]).is_file()
    body = (folder / "README.md").read_text("utf-8")
    roots = root_ancestors(tasks)
    per_split = Counter(split_of(roots[t.id]).value for t in tasks)
    totals = re.findall(r"\| \*\*total\*\* \| (\d+) \| (\d+) \| (\d+) \|", body)
    assert totals[0] == (str(per_split["train"]), str(per_split["test"]), str(len(tasks)))
    assert totals[1] == ("4", "4", "8")  # instances: four per split
    category = tasks[0].category
    train_n = sum(
        1 for t in tasks if t.category == category and split_of(roots[t.id]) is Split.TRAIN
    )
    test_n = sum(1 for t in tasks if t.category == category) - train_n
    assert f"| {category} | {train_n} | {test_n} | {train_n + test_n} |" in body
    assert "| execute.tool_error | 2 |" in body and "| parse.malformed | 1 |" in body
    assert "| execute | 2 |" in body and "3 rejected candidates: 3 by the validator" in body
    # only the latest decision per sample counts; the superseded one is said, not counted
    assert "3 review decisions on 2 samples" in body and "(1 superseded by a later decision" in body
    assert "| override_accept | 1 |" in body and "| confirm_reject | 1 |" in body
    # the override of a2 cannot be published (it never parsed): said, with the reason
    assert "not published: override of `a2`: no candidate task was stored" in body
    assert "0 overrides (`override_accept`) were published" in body
    # a card built for a local folder shows how to load that folder, and names no made-up repo
    run = folder.parent.name
    assert f'load_dataset("output/runs/{run}/dataset", "multi", split="test")' in body
    assert "user/asynctool-forge" not in body and "revision=" not in body
    assert '"ünïcode seeds": 3' in body  # the manifest, as a JSON block
    # the manifest's stage counts disagree with the files: listed, the files win
    assert f"evolve.counts.evolved is 0, evolved.jsonl holds {len(tasks)}" in body
    digest = hashlib.sha256(
        "".join(
            f"{path} {hashlib.sha256((folder / path).read_bytes()).hexdigest()}\n"
            for path in sorted(e["path"] for c in meta["configs"] for e in c["data_files"])
        ).encode()
    ).hexdigest()
    assert meta["data_sha256"] == digest and digest in body


def test_card_explains_columns_evaluation_limits_licence_and_citation(
    built: tuple[Path, list[Task], list[Instance]],
) -> None:
    folder = built[0]
    body = (folder / "README.md").read_text("utf-8")
    for config, schema in SCHEMAS.items():
        section = body.split(f"`{config}`:\n\n| column | type | meaning |", 1)[1].split("\n\n")[0]
        documented = re.findall(r"^\| `(\w+)` \| [\w ]+ \| .+ \|$", section, re.MULTILINE)
        assert documented == list(schema), config  # every column, in file order, with a meaning
    assert "| `optimal_makespan` | float64 | seconds (simulated)" in body
    run = folder.parent.name
    assert f"asynctool eval --dataset output/runs/{run}/dataset --split test" in body
    for metric in ("task_success", "subtask_success", "name_f1", "efficiency", "label_*"):
        assert f"`{metric}`" in body
    assert "## Limitations" in body and "Simulated latency" in body
    assert "Apache-2.0" in body and "AsyncTool paper (arXiv 2605.27995" in body
    assert "@misc{asynctool2026," in body and "@inproceedings{patil2025bfcl," in body


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_rebuild_is_byte_identical_and_replaces_atomically(tmp_path: Path) -> None:
    make_run(tmp_path)
    first = _snapshot(build_dataset_folder(tmp_path))
    (tmp_path / "dataset" / "stale.txt").write_text("from an older build")
    second = _snapshot(build_dataset_folder(tmp_path))
    assert first == second and "stale.txt" not in second
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_without_instances_there_is_no_multi_config(tmp_path: Path) -> None:
    make_run(tmp_path, instances=False)
    folder = build_dataset_folder(tmp_path)
    assert set(_configs(folder)) == {"single", "rejected"}
    assert not (folder / "data" / "multi").exists()
    card = (folder / "README.md").read_text("utf-8")
    assert "no multi-task instances" in card
    # the loading examples name only configs that exist, and the default is `single`
    assert f'single = load_dataset("output/runs/{tmp_path.name}/dataset", "single"' in card
    assert '"multi", split=' not in card and "`load_dataset` opens `single`" in card
    assert len(_load(folder, "single", "test", tmp_path / "cache")) > 0


def test_instance_mixing_splits_is_an_error_naming_it(tmp_path: Path) -> None:
    tasks, instances = make_run(tmp_path)
    train = next(i for i in instances if i.id.startswith("train")).tasks[0]
    test = next(i for i in instances if i.id.startswith("test")).tasks[0]
    mixed = instances[0].model_copy(update={"id": "mixed-1", "tasks": [train, test]})
    write_records(tmp_path / "instances.jsonl", [*instances, mixed])
    with pytest.raises(PublishError, match="instance mixed-1 mixes splits"):
        build_dataset_folder(tmp_path)
    assert not (tmp_path / "dataset").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_bad_inputs_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="evolved.jsonl"):
        build_dataset_folder(tmp_path)
    make_run(tmp_path, instances=False)
    for version in ("1.0", "v1.0.0", "1.0.0-rc1", "01.2.3"):
        with pytest.raises(ValueError, match="MAJOR.MINOR.PATCH"):
            build_dataset_folder(tmp_path, version=version)
    with pytest.raises(PublishError, match="test fraction"):
        build_dataset_folder(tmp_path, test_fraction=1.5)


def test_cli_publish_picks_the_newest_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    older, newer = tmp_path / "runs" / "a", tmp_path / "runs" / "b"
    for run_dir in (older, newer):
        run_dir.mkdir(parents=True)
        make_run(run_dir, instances=False)
    assert main(["publish", "--output", str(tmp_path), "--version", "2.0.0"]) == 0
    out = capsys.readouterr().out
    assert str(newer / "dataset") in out and "asynctool push" in out
    assert (metadata_load(newer / "dataset" / "README.md") or {})["version"] == "2.0.0"
    assert not (older / "dataset").exists()
    assert main(["publish", "--output", str(tmp_path), "--run", "a", "--repo", "me/forge"]) == 0
    assert 'load_dataset("me/forge"' in (older / "dataset" / "README.md").read_text("utf-8")
    assert main(["publish", "--output", str(tmp_path), "--run", "nope"]) == 2


@pytest.fixture
def default_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The cache a user's plain ``load_dataset`` call uses (no ``cache_dir``), in a tmp folder
    shared by every call of the test, as one shared cache is what hid stale rows."""
    home = tmp_path / "hf"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(home / "datasets"))
    # datasets reads these at import time, so the module's copies are pointed there too
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", home / "datasets")
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", home / "datasets" / "dl")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", home / "datasets" / "ex")
    return home


def _on_disk(folder: Path, config: str, split: str) -> list[str]:
    """The ids in the Parquet file the card lists for ``config``/``split``, read directly."""
    meta = metadata_load(folder / "README.md") or {}
    entry = next(c for c in meta["configs"] if c["config_name"] == config)
    (path,) = [f["path"] for f in entry["data_files"] if f["split"] == split]
    return [str(value) for value in pq.read_table(folder / path, columns=["id"])["id"].to_pylist()]


def test_readme_load_returns_the_rows_on_disk_across_runs_and_republish(
    tmp_path: Path, default_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    runs = {name: tmp_path / "output" / "runs" / name for name in ("A", "B")}
    for name, run_dir in runs.items():
        run_dir.mkdir(parents=True)
        _, instances = make_run(run_dir)
        if name == "B":  # another run: one test instance fewer
            write_records(run_dir / "instances.jsonl", [i for i in instances if i.id != "test-3"])
    for name in runs:
        assert main(["publish", "--output", "output", "--run", name]) == 0

    def readme_load(name: str, **options: Any) -> list[str]:
        # exactly what the README tells a user to run, with the default cache
        rows = datasets.load_dataset(
            f"output/runs/{name}/dataset", "multi", split="test", **options
        )
        return [row["id"] for row in rows]

    seen = {name: readme_load(name) for name in runs}
    for name, run_dir in runs.items():
        assert seen[name] == _on_disk(run_dir / "dataset", "multi", "test")
    assert len(seen["A"]) == 4 and len(seen["B"]) == 3
    # republish A in place with other rows: the same command returns the new rows
    write_records(runs["A"] / "instances.jsonl", make_run(runs["A"])[1][:5])
    assert main(["publish", "--output", "output", "--run", "A"]) == 0
    assert readme_load("A") == _on_disk(runs["A"] / "dataset", "multi", "test") == ["test-0"]
    assert readme_load("A", download_mode="force_redownload") == ["test-0"]
    assert readme_load("B") == seen["B"]  # and B's cached copy is still B's
    assert list((default_cache / "datasets").iterdir())  # the shared cache was the one used
